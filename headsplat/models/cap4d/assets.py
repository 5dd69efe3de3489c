"""CAP4D's published assets, read from the user's copy of the authors' repository (never shipped by headsplat).

The MMDM was trained with conditioning built from these files; headsplat reads them where the user keeps them
(``--cap4d-assets DIR``, ``$HEADSPLAT_CAP4D_ASSETS``, or ``"cap4d_assets"`` in the settings file). DIR may be the
repository's root, its ``data/assets`` folder, or one folder holding the files:

    flame/cap4d_flame_template.obj   the pose map's canonical mesh: FLAME's vertices then the mouth's 200, and the
                                     triangles the conditioning is rasterised with
    flame/head_vertices.txt          the head's vertices (the crop box and the pose map's mask)
    flame/blink_blendshape.npy       the blink direction in the last expression slot
    datasets/gen_data.npz            expressions ("expr", (N, 65)) and eye rotations ("eye_rot", (N, 3)) of the
                                     generated views
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from headsplat.core.errors import InputError
from headsplat.core.validate import resolve_user_file

ENV = "HEADSPLAT_CAP4D_ASSETS"
CONFIG_KEY = "cap4d_assets"
FILES = {"template": "flame/cap4d_flame_template.obj", "head_vertices": "flame/head_vertices.txt",
         "blink": "flame/blink_blendshape.npy", "generation": "datasets/gen_data.npz"}
N_MOUTH = 200


@dataclass(frozen=True)
class Cap4dAssets:
    """The assets, checked against each other.

    Attributes:
        template: (V + 200, 3) float32 the pose map's canonical vertices. faces: (F, 3) int64 its triangles.
        head_vertices: (H,) int64 head vertex indices. blink: (V, 3) float32.
        expressions: (N, 65) float32 and eye_rotations: (N, 3) float32, of the generated views, in order.
        folder: where they were read.
    """

    template: torch.Tensor
    faces: torch.Tensor
    head_vertices: np.ndarray
    blink: np.ndarray
    expressions: np.ndarray
    eye_rotations: np.ndarray
    folder: Path

    @property
    def n_flame_vertices(self) -> int:
        return int(self.template.shape[0]) - N_MOUTH

    def face_mask(self) -> torch.Tensor:
        """(F,) bool: triangles touching a head or mouth vertex (where the pose map is kept)."""
        keep = torch.zeros(self.template.shape[0], dtype=torch.bool)
        keep[torch.from_numpy(self.head_vertices)] = True
        keep[-N_MOUTH:] = True
        return keep[self.faces].any(-1)


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) float64 vertices and (F, 3) int64 triangles (0-based) of a Wavefront OBJ; texture and normal indices
    are ignored; polygons are fanned into triangles."""
    verts, faces = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("v "):
                verts.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("f "):
                idx = [int(tok.split("/")[0]) for tok in line.split()[1:]]
                idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
                faces.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))
    return np.asarray(verts, np.float64).reshape(-1, 3), np.asarray(faces, np.int64).reshape(-1, 3)


def _locate(folder: Path) -> Path:
    for base in (folder, folder / "data" / "assets", folder / "assets"):
        if (base / FILES["template"]).is_file():
            return base
    return folder


def _file(base: Path, key: str) -> Path:
    p = base / FILES[key]
    if p.is_file():
        return p
    flat = base / Path(FILES[key]).name
    if flat.is_file():
        return flat
    raise InputError(f"{base}: CAP4D asset {FILES[key]} not found (give the CAP4D repository's data/assets folder "
                     "with --cap4d-assets)")


def load_assets(folder: str | os.PathLike | None = None, n_flame_vertices: int | None = None) -> Cap4dAssets:
    """Read and check CAP4D's assets (see the module docstring for where they are looked for).

    Args:
        n_flame_vertices: the user's FLAME vertex count, checked against the template's.

    Raises:
        InputError: none configured, a file missing or unreadable, or files that disagree (named).
    """
    chosen = resolve_user_file(folder, ENV, CONFIG_KEY, "CAP4D assets",
                               "--cap4d-assets DIR (the CAP4D repository's data/assets)", kind="folder",
                               see="docs/learned-models.md")
    base = _locate(chosen)
    paths = {k: _file(base, k) for k in FILES}
    try:
        verts, faces = read_obj(paths["template"])
    except (ValueError, IndexError) as e:
        raise InputError(f"{paths['template']}: not a readable OBJ mesh ({e})") from None
    if len(verts) <= N_MOUTH or len(faces) == 0 or faces.min() < 0 or faces.max() >= len(verts):
        raise InputError(f"{paths['template']}: {len(verts)} vertices and {len(faces)} triangles with indices "
                         "outside them: not CAP4D's template")
    nv = len(verts) - N_MOUTH
    try:
        head = np.genfromtxt(paths["head_vertices"]).astype(np.int64).reshape(-1)
        blink = np.load(paths["blink"], allow_pickle=False)
        with np.load(paths["generation"], allow_pickle=False) as g:
            expr, eye = np.asarray(g["expr"], np.float32), np.asarray(g["eye_rot"], np.float32)
    except (ValueError, OSError, KeyError) as e:
        raise InputError(f"{base}: unreadable CAP4D asset ({type(e).__name__}: {e})") from None
    if head.size == 0 or head.min() < 0 or head.max() >= nv:
        raise InputError(f"{paths['head_vertices']}: vertex indices outside the template's {nv} FLAME vertices")
    if blink.shape != (nv, 3):
        raise InputError(f"{paths['blink']}: shape {blink.shape}, expected ({nv}, 3) (the template's vertices)")
    if expr.ndim != 2 or eye.shape != (len(expr), 3) or len(expr) == 0:
        raise InputError(f"{paths['generation']}: expr {expr.shape} and eye_rot {eye.shape}, expected (N, E), (N, 3)")
    if n_flame_vertices is not None and n_flame_vertices != nv:
        raise InputError(f"{paths['template']}: made for {nv} FLAME vertices, the FLAME file has {n_flame_vertices}; "
                         "CAP4D needs FLAME 2023 (flame2023_no_jaw.pkl)")
    return Cap4dAssets(template=torch.from_numpy(verts).float(), faces=torch.from_numpy(faces), head_vertices=head,
                       blink=blink.astype(np.float32), expressions=expr, eye_rotations=eye, folder=base)
