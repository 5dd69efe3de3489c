"""Gaussians bound to mesh triangles (GaussianAvatars-style): each lives in its parent triangle's frame.

A triangle's frame has its origin at the centroid, x along the first edge, z along the normal, y = z × x,
and a scale equal to the mean edge length. Posing the mesh moves, rotates and scales its Gaussians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from headsplat.core.rotation import matrix_to_quat, quat_multiply
from headsplat.core.validate import check_shape
from headsplat.splat.gaussians import SH_COEFFS, GaussianSet, rgb_to_sh_dc

_EPS = 1e-12


@dataclass(frozen=True)
class TriangleFrames:
    """Local frames of F triangles.

    Attributes:
        origin: (..., F, 3) centroids.
        rotation: (..., F, 3, 3) columns are the frame's x (first edge), y, z (normal) axes in world space.
        scale: (..., F) mean edge length.
    """

    origin: torch.Tensor
    rotation: torch.Tensor
    scale: torch.Tensor


def triangle_frames(vertices: torch.Tensor, triangles: torch.Tensor) -> TriangleFrames:
    """Frames of the triangles of a mesh, differentiable in the vertices.

    Args:
        vertices: (..., V, 3).
        triangles: (F, 3) int64 vertex indices, counter-clockwise seen from outside.

    Returns:
        :class:`TriangleFrames` with leading dims (..., F).
    """
    check_shape("vertices", vertices, ("...", None, 3))
    check_shape("triangles", triangles, (None, 3))
    v0, v1, v2 = (vertices[..., triangles[:, i], :] for i in range(3))
    e0, e1, e2 = v1 - v0, v2 - v1, v0 - v2
    x = e0 / e0.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    n = torch.linalg.cross(e0, v2 - v0)
    z = n / n.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    y = torch.linalg.cross(z, x)
    scale = (e0.norm(dim=-1) + e1.norm(dim=-1) + e2.norm(dim=-1)) / 3
    return TriangleFrames((v0 + v1 + v2) / 3, torch.stack([x, y, z], -1), scale)


def bound_to_world(parent: torch.Tensor, local_means: torch.Tensor, local_quats: torch.Tensor,
                   local_log_scales: torch.Tensor, frames: TriangleFrames
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World means, rotations and log-scales of Gaussians bound to triangles.

    Args:
        parent: (N,) int64 triangle index per Gaussian.
        local_means: (N, 3) in units of the triangle scale.
        local_quats: (N, 4) w x y z in the triangle frame.
        local_log_scales: (N, 3) log standard deviations in units of the triangle scale.
        frames: triangle frames with leading dims (..., F).

    Returns:
        means (..., N, 3), quats (..., N, 4) (unit), log_scales (..., N, 3).
    """
    rot = frames.rotation[..., parent, :, :]  # (..., N, 3, 3)
    scale = frames.scale[..., parent, None]  # (..., N, 1)
    means = frames.origin[..., parent, :] + scale * (rot @ local_means[..., None])[..., 0]
    q_local = local_quats / local_quats.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    quats = quat_multiply(matrix_to_quat(frames.rotation)[..., parent, :], q_local)
    log_scales = local_log_scales + scale.clamp_min(_EPS).log()
    return means, quats, log_scales


def pose_gaussians(gs: GaussianSet, vertices: torch.Tensor, triangles: torch.Tensor) -> GaussianSet:
    """The bound set with its world fields recomputed for a posed mesh.

    Args:
        gs: bound Gaussians.
        vertices: (V, 3) posed vertices.
        triangles: (F, 3) the mesh triangles the Gaussians were bound to.
    """
    if not gs.is_bound:
        raise ValueError("pose_gaussians: the Gaussians are not bound to a mesh")
    check_shape("vertices", vertices, (None, 3))
    means, quats, log_scales = bound_to_world(gs.parent, gs.local_means, gs.local_quats,
                                              gs.local_log_scales, triangle_frames(vertices, triangles))
    return replace(gs, means=means, quats=quats, log_scales=log_scales)


def bind_points(vertices: torch.Tensor, triangles: torch.Tensor, face: torch.Tensor, bary: torch.Tensor,
                rgb: torch.Tensor | None = None, opacity: float = 0.5, size: float | torch.Tensor = 0.5,
                flatness: float = 0.2, sh_degree: int = 0) -> GaussianSet:
    """Bound Gaussians at barycentric points of triangles, flat and aligned with their triangle.

    Args:
        vertices: (V, 3) rest-pose vertices.
        triangles: (F, 3).
        face: (N,) int64 parent triangle per Gaussian.
        bary: (N, 3) barycentric coordinates (rows sum to 1).
        rgb: (N, 3) colours in [0, 1]; grey when None.
        opacity: initial opacity.
        size: in-plane standard deviation in units of the triangle scale; a float or (N,).
        flatness: normal-axis standard deviation relative to the in-plane one.
        sh_degree: SH degree of the set (higher coefficients start at zero).
    """
    check_shape("bary", bary, (None, 3))
    check_shape("face", face, (bary.shape[0],))
    n, dtype, device = bary.shape[0], vertices.dtype, vertices.device
    frames = triangle_frames(vertices, triangles)
    corners = vertices[triangles[face]]  # (N, 3, 3)
    points = (bary[..., None] * corners).sum(1)
    rot, scale = frames.rotation[face], frames.scale[face, None]
    local_means = (rot.transpose(-1, -2) @ (points - frames.origin[face])[..., None])[..., 0] / scale
    size = torch.as_tensor(size, dtype=dtype, device=device).expand(n)
    local_log_scales = torch.stack([size, size, size * flatness], -1).log()
    local_quats = torch.zeros(n, 4, dtype=dtype, device=device)
    local_quats[:, 0] = 1
    if rgb is None:
        rgb = torch.full((n, 3), 0.5, dtype=dtype, device=device)
    check_shape("rgb", rgb, (n, 3))
    sh = torch.zeros(n, SH_COEFFS[sh_degree], 3, dtype=dtype, device=device)
    sh[:, 0] = rgb_to_sh_dc(rgb)
    means, quats, log_scales = bound_to_world(face, local_means, local_quats, local_log_scales, frames)
    logit = math.log(opacity / (1 - opacity))
    return GaussianSet(means, quats, log_scales, torch.full((n,), logit, dtype=dtype, device=device), sh,
                       parent=face.clone(), local_means=local_means, local_quats=local_quats,
                       local_log_scales=local_log_scales)


def per_triangle_barycentrics(k: int, dtype=torch.float32) -> torch.Tensor:
    """(k, 3) fixed, well-spread barycentric points for k Gaussians per triangle (k = 1: the centroid).

    Points are the centres of the cells of a regular subdivision of the triangle into m² sub-triangles
    (m the smallest with m² >= k), taken in an order that spreads the first ones out.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    m = math.ceil(math.sqrt(k))
    cells = []
    for i in range(m):
        for j in range(m - i):
            cells.append(((i + 1 / 3) / m, (j + 1 / 3) / m))  # upright cells
            if j < m - i - 1:
                cells.append(((i + 2 / 3) / m, (j + 2 / 3) / m))  # inverted cells
    uv = torch.tensor(cells, dtype=torch.float64)
    # Farthest-point order from the centroid so that any prefix is spread over the triangle.
    order = [int(((uv - 1 / 3) ** 2).sum(1).argmin())]
    dist = ((uv - uv[order[0]]) ** 2).sum(1)
    while len(order) < k:
        order.append(int(dist.argmax()))
        dist = torch.minimum(dist, ((uv - uv[order[-1]]) ** 2).sum(1))
    uv = uv[order]
    return torch.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], -1).to(dtype)


def init_per_triangle(vertices: torch.Tensor, triangles: torch.Tensor, k: int = 1, **kwargs) -> GaussianSet:
    """k bound Gaussians on every triangle, sized to tile it. ``kwargs`` go to :func:`bind_points`."""
    f = triangles.shape[0]
    bary = per_triangle_barycentrics(k, vertices.dtype).to(vertices.device)
    face = torch.arange(f, device=vertices.device).repeat_interleave(k)
    kwargs.setdefault("size", 0.5 / math.sqrt(k))
    return bind_points(vertices, triangles, face, bary.repeat(f, 1), **kwargs)


def triangle_areas(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """(..., F) triangle areas."""
    v0, v1, v2 = (vertices[..., triangles[:, i], :] for i in range(3))
    return 0.5 * torch.linalg.cross(v1 - v0, v2 - v0).norm(dim=-1)


def init_by_area(vertices: torch.Tensor, triangles: torch.Tensor, n: int,
                 generator: torch.Generator | None = None, coverage: float = 0.5, **kwargs) -> GaussianSet:
    """n bound Gaussians at points drawn uniformly over the mesh surface (triangles picked by area).

    Each Gaussian's in-plane standard deviation is ``coverage`` times the mean spacing between Gaussians, so
    the set covers the surface about evenly. ``kwargs`` go to :func:`bind_points`.
    """
    areas = triangle_areas(vertices, triangles).double().cpu()
    face = torch.multinomial(areas / areas.sum(), n, replacement=True, generator=generator)
    u, v = torch.rand(2, n, generator=generator, dtype=torch.float64)
    flip = u + v > 1
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    bary = torch.stack([1 - u - v, u, v], -1)
    frames = triangle_frames(vertices, triangles)
    spacing = math.sqrt(float(areas.sum()) / n)  # side of the patch each Gaussian covers
    size = coverage * spacing / frames.scale[face.to(vertices.device)]
    kwargs.setdefault("size", size)
    return bind_points(vertices, triangles, face.to(vertices.device), bary.to(vertices), **kwargs)
