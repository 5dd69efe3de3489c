"""Where MediaPipe's 478 landmarks sit on the FLAME surface: a barycentric embedding.

headsplat computes it from the user's own FLAME file: the open rig's neutral MediaPipe face (metres, +y up,
+z out of the face, like FLAME) is aligned to the FLAME template by a similarity ICP started from the nose tips,
and each landmark is projected to its closest point on the FLAME surface. The result is cached beside the
user's settings, keyed by the file's content hash, and a user-supplied embedding in the common ``.npz`` layout
(``lmk_face_idx``, ``lmk_b_coords``, ``landmark_indices``) overrides it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from headsplat.core.config import config_file
from headsplat.core.errors import InputError
from headsplat.core.fileio import atomic_path, check_input_file
from headsplat.core.rotation import similarity_transform
from headsplat.face.indices import NOSE_TIP
from headsplat.rig.open_rig import load_face_template


@dataclass(frozen=True)
class LandmarkEmbedding:
    """L landmarks on a triangle mesh.
    Attributes:
        face_idx: (L,) int64 triangle of each landmark.
        bary: (L, 3) float barycentric coordinates in that triangle.
        landmark_indices: (L,) int64 which MediaPipe landmark (0..477) each row is.
        rms_mm: fit residual of the registration in millimetres (NaN when loaded from a file).
    """
    face_idx: np.ndarray
    bary: np.ndarray
    landmark_indices: np.ndarray
    rms_mm: float = float("nan")

    def points(self, vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """(..., L, 3) landmark positions on a posed mesh with vertices (..., V, 3) and faces (F, 3)."""
        tri = faces[torch.as_tensor(self.face_idx, device=faces.device)]  # (L, 3)
        corners = vertices[..., tri, :]  # (..., L, 3, 3)
        w = torch.as_tensor(self.bary, dtype=vertices.dtype, device=vertices.device)
        return (w[..., None] * corners).sum(-2)


def closest_points_on_mesh(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, k: int = 8
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest surface point to each query point, among the triangles around its k nearest vertices.
    Returns:
        triangle index (N,), barycentric coordinates (N, 3), distance (N,).
    """
    tree = cKDTree(vertices)
    _, near = tree.query(points, k=min(k, len(vertices)))
    near = np.atleast_2d(near)
    vert_faces = [[] for _ in range(len(vertices))]
    for f, tri in enumerate(faces):
        for v in tri:
            vert_faces[v].append(f)
    best_f = np.zeros(len(points), np.int64)
    best_b = np.zeros((len(points), 3))
    best_d = np.full(len(points), np.inf)
    for i, p in enumerate(points):
        cand = np.unique(np.concatenate([vert_faces[v] for v in near[i]]).astype(np.int64))
        if len(cand) == 0:
            continue
        b = _closest_barycentric(p, vertices[faces[cand]])
        q = (b[:, :, None] * vertices[faces[cand]]).sum(1)
        d = np.linalg.norm(q - p, axis=1)
        j = int(np.argmin(d))
        best_f[i], best_b[i], best_d[i] = cand[j], b[j], d[j]
    return best_f, best_b, best_d


def _closest_barycentric(p: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (T, 3) of the closest point to p on each triangle (T, 3, 3) (Ericson 5.1.5)."""
    a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp, cp = p - b, p - c
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    out = np.zeros((len(tris), 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1.0 / (va + vb + vc)
        v, w = vb * denom, vc * denom
        out[:] = np.stack([1 - v - w, v, w], 1)
        # edge and vertex regions, most specific last
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        m = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
        out[m] = np.stack([np.zeros(m.sum()), 1 - t_bc[m], t_bc[m]], 1)
        t_ac = d2 / (d2 - d6)
        m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
        out[m] = np.stack([1 - t_ac[m], np.zeros(m.sum()), t_ac[m]], 1)
        t_ab = d1 / (d1 - d3)
        m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
        out[m] = np.stack([1 - t_ab[m], t_ab[m], np.zeros(m.sum())], 1)
        m = (d6 >= 0) & (d5 <= d6)
        out[m] = [0, 0, 1]
        m = (d3 >= 0) & (d4 <= d3)
        out[m] = [0, 1, 0]
        m = (d1 <= 0) & (d2 <= 0)
        out[m] = [1, 0, 0]
    return np.nan_to_num(out, nan=1 / 3)


def compute_embedding(flame_vertices: np.ndarray, flame_faces: np.ndarray, mediapipe_face: np.ndarray,
                      nose_tip: int, iterations: int = 40) -> LandmarkEmbedding:
    """Register the MediaPipe face to the FLAME template and embed its 478 landmarks.
    Args:
        flame_vertices: (V, 3) FLAME template. flame_faces: (F, 3).
        mediapipe_face: (478, 3) a neutral MediaPipe face in metres (+y up, +z out of the face).
        nose_tip: index of the MediaPipe nose tip (started on FLAME's most forward vertex).
    """
    mp = mediapipe_face.astype(np.float64)
    fv = flame_vertices.astype(np.float64)
    surface = mp[:468]  # the iris points (468..477) float inside the eyes: they do not steer the registration
    s, R, t = 1.0, np.eye(3), fv[np.argmax(fv[:, 2])] - mp[nose_tip]
    for _ in range(iterations):
        moved = s * surface @ R.T + t
        f_idx, bary, _ = closest_points_on_mesh(moved, fv, flame_faces)
        target = (bary[:, :, None] * fv[flame_faces[f_idx]]).sum(1)
        s, R, t = similarity_transform(surface, target)
    f_idx, bary, dist = closest_points_on_mesh(s * mp @ R.T + t, fv, flame_faces)
    rms = float(np.sqrt((dist[:468] ** 2).mean()) * 1000)
    return LandmarkEmbedding(f_idx, bary, np.arange(len(mp), dtype=np.int64), rms)


def load_embedding_npz(path: str | os.PathLike, n_faces: int | None = None) -> LandmarkEmbedding:
    """Read an embedding in the common layout (``lmk_face_idx``, ``lmk_b_coords``, ``landmark_indices``)."""
    p = check_input_file(path)
    keys = ("lmk_face_idx", "lmk_b_coords", "landmark_indices")
    try:
        with np.load(p, allow_pickle=False) as d:
            missing = [k for k in keys if k not in d.files]
            if missing:
                raise InputError(f"{p}: landmark embedding without {', '.join(missing)}; expected "
                                 f"{', '.join(keys)}")
            arrays = {k: d[k] for k in keys}
    except (OSError, ValueError) as e:
        raise InputError(f"{p}: not a readable .npz landmark embedding ({e})") from None
    fi, b, li = (arrays[k] for k in ("lmk_face_idx", "lmk_b_coords", "landmark_indices"))
    n = len(fi)
    if fi.shape != (n,) or b.shape != (n, 3) or li.shape != (n,):
        raise InputError(f"{p}: shapes lmk_face_idx {fi.shape}, lmk_b_coords {b.shape}, landmark_indices "
                         f"{li.shape}; expected (L,), (L, 3), (L,)")
    if li.min() < 0 or li.max() > 477:
        raise InputError(f"{p}: landmark_indices must be MediaPipe indices 0..477")
    if n_faces is not None and (fi.min() < 0 or fi.max() >= n_faces):
        raise InputError(f"{p}: lmk_face_idx refers to triangles outside this FLAME model's {n_faces}")
    return LandmarkEmbedding(fi.astype(np.int64), b.astype(np.float64), li.astype(np.int64))


def save_embedding_npz(path: str | os.PathLike, emb: LandmarkEmbedding) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, lmk_face_idx=emb.face_idx, lmk_b_coords=emb.bary, landmark_indices=emb.landmark_indices,
                     rms_mm=np.float64(emb.rms_mm))


def file_digest(path: str | os.PathLike) -> str:
    """First 16 hex digits of the file's SHA-1 (identifies a FLAME file in caches and saved files)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def flame_embedding(flame_path: str | os.PathLike, flame_vertices: np.ndarray, flame_faces: np.ndarray,
                    override: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                    surface: np.ndarray | None = None) -> LandmarkEmbedding:
    """The MediaPipe embedding for a FLAME file: ``override`` if given, else the cached one, else computed
    (and cached in ``cache_dir``, default: beside the per-user config). ``surface``: (F,) bool, the
    triangles landmarks may lie on (FLAME: not the eyeballs, which fill the eye openings)."""
    if override is not None:
        return load_embedding_npz(override, len(flame_faces))

    digest = file_digest(flame_path)
    cache = Path(cache_dir) if cache_dir is not None else config_file().parent
    cached = cache / f"flame_mediapipe_embedding_{digest}.npz"  # (the surface mask follows from the file)
    if cached.is_file():
        return load_embedding_npz(cached, len(flame_faces))

    mp, _, _ = load_face_template()
    keep = np.flatnonzero(surface) if surface is not None else np.arange(len(flame_faces))
    emb = compute_embedding(flame_vertices, flame_faces[keep], mp, int(np.atleast_1d(NOSE_TIP)[0]))
    emb = LandmarkEmbedding(keep[emb.face_idx], emb.bary, emb.landmark_indices, emb.rms_mm)
    cache.mkdir(parents=True, exist_ok=True)
    save_embedding_npz(cached, emb)
    return emb
