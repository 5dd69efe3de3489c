"""3D Gaussian Splatting PLY files (the layout of the reference implementation, read by common splat viewers).

Vertex properties, all float32: ``x y z nx ny nz f_dc_0..2 f_rest_0..M opacity scale_0..2 rot_0..3`` where
opacity is the logit, scales are logs, rot is a w x y z quaternion, and f_rest holds the higher SH
coefficients channel-major (all of red's, then green's, then blue's), M + 1 = 3 × (K - 1).
Only world-space fields are stored: a PLY is a posed snapshot, not a rig-bound avatar.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from headsplat.core.errors import InputError
from headsplat.core.fileio import atomic_path, check_input_file
from headsplat.splat.gaussians import SH_COEFFS, GaussianSet

_REST_TO_DEGREE = {3 * (k - 1): d for d, k in SH_COEFFS.items()}


def ply_property_names(sh_degree: int) -> list[str]:
    """Vertex property names, in file order, for a set of SH degree ``sh_degree``."""
    n_rest = 3 * (SH_COEFFS[sh_degree] - 1)
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(n_rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def write_ply(path: str | os.PathLike, gaussians: GaussianSet) -> None:
    """Write the world-space fields of ``gaussians`` as a binary little-endian 3DGS PLY, atomically."""
    gs = gaussians.detach().to("cpu", torch.float32)
    n, k = len(gs), gs.sh.shape[1]
    sh = gs.sh.numpy()
    columns = [gs.means.numpy(), np.zeros((n, 3), np.float32), sh[:, 0, :],
               sh[:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * (k - 1)),
               gs.opacity_logits.numpy()[:, None], gs.log_scales.numpy(), gs.quats.numpy()]
    data = np.concatenate(columns, 1)
    names = ply_property_names(gs.sh_degree)
    vertex = np.empty(n, dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        vertex[name] = data[:, i]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(vertex, "vertex")], text=False, byte_order="<").write(str(tmp))


def read_ply(path: str | os.PathLike) -> GaussianSet:
    """Read a 3DGS PLY (any SH degree 0..3, properties in any order, extra properties ignored).

    Raises:
        InputError: the file is missing, not a PLY, or lacks a property of the layout.
    """
    p = check_input_file(path)
    try:
        ply = PlyData.read(str(p))
    except Exception as e:  # plyfile raises several types for malformed files
        raise InputError(f"{p}: not a readable PLY file ({type(e).__name__}: {e})") from None
    if "vertex" not in [el.name for el in ply.elements]:
        raise InputError(f"{p}: PLY has no 'vertex' element, so it holds no Gaussians")
    v = ply["vertex"].data
    names = set(v.dtype.names)
    n_rest = sum(1 for name in names if name.startswith("f_rest_"))
    if n_rest not in _REST_TO_DEGREE:
        raise InputError(f"{p}: {n_rest} f_rest_* properties; a 3DGS PLY has 0, 9, 24 or 45 (SH degree 0-3)")
    degree = _REST_TO_DEGREE[n_rest]
    missing = [name for name in ply_property_names(degree) if name not in names and name[0] != "n"]
    if missing:
        raise InputError(f"{p}: not a 3D Gaussian Splatting PLY: missing properties {', '.join(missing)}")

    def cols(*keys: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.asarray(v[key], np.float32) for key in keys], 1))

    n, k = len(v), SH_COEFFS[degree]
    dc = cols("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :]
    if k > 1:
        rest = cols(*[f"f_rest_{i}" for i in range(n_rest)]).reshape(n, 3, k - 1).transpose(1, 2)
        sh = torch.cat([dc, rest], 1)
    else:
        sh = dc
    return GaussianSet(means=cols("x", "y", "z"), quats=cols("rot_0", "rot_1", "rot_2", "rot_3"),
                       log_scales=cols("scale_0", "scale_1", "scale_2"), opacity_logits=cols("opacity")[:, 0],
                       sh=sh.contiguous())


def is_ply(path: str | os.PathLike) -> bool:
    """True when ``path`` starts with the PLY magic line."""
    with open(Path(path), "rb") as f:
        return f.read(4) == b"ply\n"
