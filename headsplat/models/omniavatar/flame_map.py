"""Where FLAME sits in OmniAvatar's world, measured from the network itself.

OmniAvatar's implicit 3DMM (``renderer.im3dmm``) was trained to give, for the 206 controls (FLAME shape 100,
expression 100, neck 3, jaw 3), the signed distance to the FLAME head those controls make. The FLAME mesh of the
same controls, placed right, therefore lies on the prior's zero set, and a point 4 mm outside (inside) it along
the normal is 4 mm (times the world's scale) outside (inside). :func:`align_flame` finds that placement, a
similarity ``x_world = scale * R v + offset`` from FLAME's head frame (metres) to the network's world, and the
residual left (millimetres of FLAME), which says how well a FLAME file matches the codes: the version the codes
belong to fits, another version (other template, other expression basis) leaves a larger residual.

Pure tensor functions: the prior SDF comes in as a callable, the FLAME vertices as tensors (the caller poses
FLAME; this module knows nothing of files).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from headsplat.core.rotation import axis_angle_to_matrix, matrix_to_axis_angle

#: signed offsets along the vertex normals (metres of FLAME) at which the prior's distance is compared
NORMAL_OFFSETS = (-0.004, 0.0, 0.004)
HUBER_M = 0.002  # residuals beyond 2 mm count linearly (the mesh's open neck, hair the SDF may hold)


@dataclass(frozen=True)
class FlameAlignment:
    """FLAME's head frame in OmniAvatar's world.

    Attributes:
        scale: world units per metre of FLAME.
        rotation: (3, 3) FLAME axes in world axes.
        offset: (3,) FLAME's origin in the world.
        rms_mm: RMS distance of the aligned FLAME surface from the prior's zero set, in FLAME millimetres
            (over the sampled vertices of every control row, on the surface only).
        offset_rms_mm: the same for the points off the surface (how well the prior's distances scale).
    """
    scale: float
    rotation: np.ndarray
    offset: np.ndarray
    rms_mm: float
    offset_rms_mm: float

    def world(self, vertices: torch.Tensor) -> torch.Tensor:
        """(..., 3) FLAME head-frame points (metres) -> world points."""
        rot = torch.as_tensor(self.rotation, dtype=vertices.dtype, device=vertices.device)
        off = torch.as_tensor(self.offset, dtype=vertices.dtype, device=vertices.device)
        return self.scale * vertices @ rot.T + off

    def as_dict(self) -> dict:
        return {"scale": round(self.scale, 6), "rotation": np.round(self.rotation, 6).tolist(),
                "offset": np.round(self.offset, 6).tolist(), "rms_mm": round(self.rms_mm, 3),
                "offset_rms_mm": round(self.offset_rms_mm, 3)}


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(..., V, 3) vertices, (F, 3) triangles -> (..., V, 3) unit normals (area-weighted sums of the faces')."""
    a, b, c = (vertices[..., faces[:, i], :] for i in range(3))
    fn = torch.cross(b - a, c - a, dim=-1)
    vn = torch.zeros_like(vertices)
    for i in range(3):
        vn = vn.index_add(-2, faces[:, i], fn)
    return torch.nn.functional.normalize(vn, dim=-1, eps=1e-12)


def _huber(r: torch.Tensor) -> torch.Tensor:
    a = r.abs()
    return torch.where(a < HUBER_M, 0.5 * r * r, HUBER_M * (a - 0.5 * HUBER_M))


def align_flame(sdf: Callable[[torch.Tensor], torch.Tensor], vertices: torch.Tensor, normals: torch.Tensor,
                box: torch.Tensor, n_points: int = 600, steps: int = 40, seed: int = 0) -> FlameAlignment:
    """The similarity that puts FLAME on the prior's zero set.

    Args:
        sdf: (R, K, 3) world points -> (R, K) signed distance in world units, row r under control row r's
            controls (differentiable in the points).
        vertices, normals: (R, V, 3) FLAME's vertices (head frame, metres) under each row's controls, and their
            unit normals; rows of vertices that should not count (eyeballs inside the head) left out by the
            caller.
        box: (2, 3) the world box that holds the head (the prior's ``bbox``), for the first guess.
        n_points: vertices sampled (the same for every row). steps: L-BFGS iterations.

    Returns:
        :class:`FlameAlignment`; ``rotation`` starts at the identity (both worlds are y up, face towards +z in
        the networks of this family) and is fitted.
    """
    vertices, normals, box = vertices.double(), normals.double(), box.double()
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(vertices.shape[1], generator=g)[:n_points]
    v, n = vertices[:, pick], normals[:, pick]
    deltas = torch.tensor(NORMAL_OFFSETS, dtype=v.dtype)
    pts = (v[:, None] + deltas[None, :, None, None] * n[:, None]).reshape(len(v), -1, 3)  # (R, 3K, 3)
    target = deltas[None, :, None].expand(len(v), -1, v.shape[1]).reshape(len(v), -1)
    on_surface = (deltas == 0)[None, :, None].expand_as(target.reshape(len(v), len(deltas), -1)).reshape(len(v), -1)

    def residuals(log_s, aa, t):
        s = log_s.exp()
        world = s * pts @ axis_angle_to_matrix(aa).T + t
        return sdf(world.float()).double() / s - target  # metres of FLAME

    flat = vertices.reshape(-1, 3)
    f_lo, f_hi = flat.min(0).values, flat.max(0).values
    extent, centre = box[1] - box[0], 0.5 * (box[0] + box[1])
    s0 = float((extent / (f_hi - f_lo)).min())
    best = None
    with torch.no_grad():
        for factor in 2.0 ** np.linspace(-2.0, 0.5, 11):
            s = s0 * factor
            t = centre - s * 0.5 * (f_lo + f_hi)
            loss = float(_huber(residuals(torch.tensor(math.log(s), dtype=v.dtype), torch.zeros(3, dtype=v.dtype),
                                          t)).mean())
            if best is None or loss < best[0]:
                best = (loss, s, t)
    log_s = torch.tensor(math.log(best[1]), dtype=v.dtype, requires_grad=True)
    aa = torch.zeros(3, dtype=v.dtype, requires_grad=True)
    t = best[2].clone().requires_grad_(True)
    opt = torch.optim.LBFGS([log_s, aa, t], lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        # in mm² (the loss in m² is ~1e-7, under L-BFGS's default change tolerance of 1e-9 near the optimum)
        loss = _huber(residuals(log_s, aa, t)).mean() * 1e6
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        r = residuals(log_s, aa, t)
        rot = axis_angle_to_matrix(aa)
    rms = lambda x: float(x.pow(2).mean().sqrt()) * 1000  # noqa: E731
    return FlameAlignment(scale=float(log_s.detach().exp()), rotation=rot.numpy(), offset=t.detach().numpy(),
                          rms_mm=rms(r[on_surface]), offset_rms_mm=rms(r[~on_surface]))


#: headsplat's tracking camera looks down -z with y up; OpenCV's looks down +z with y down
OPENCV_FROM_TRACKING = np.diag([1.0, -1.0, -1.0])


def head_pose(cam2world: np.ndarray, alignment: FlameAlignment) -> tuple[np.ndarray, np.ndarray]:
    """The pose of FLAME's head (metres) in headsplat's tracking frame that looks, through a camera at the origin,
    as the aligned FLAME looks through the network's OpenCV camera ``cam2world`` (4, 4).

    The world point of a FLAME point ``v`` is ``s R_a v + t_a``; the camera sees ``R_wc (s R_a v + t_a) + T_wc``.
    Scaling the scene by ``1 / s`` about the camera changes no pixel, so the head's rotation is
    ``F R_wc R_a`` and its translation ``F (R_wc t_a + T_wc) / s`` (``F``: OpenCV to tracking axes).

    Returns:
        (3,) axis-angle rotation and (3,) translation in metres (identity scale 1).
    """
    w2c = np.linalg.inv(np.asarray(cam2world, np.float64))
    r_wc, t_wc = w2c[:3, :3], w2c[:3, 3]
    rot = OPENCV_FROM_TRACKING @ r_wc @ np.asarray(alignment.rotation, np.float64)
    trans = OPENCV_FROM_TRACKING @ (r_wc @ np.asarray(alignment.offset, np.float64) + t_wc) / alignment.scale
    aa = matrix_to_axis_angle(torch.from_numpy(rot)).numpy()
    return aa, trans
