"""Portrait4D's head-pose deformation of space (``DeformationModuleOnlyHead``, after GNARF's surface field):
points around the posed head are carried to where they were before the neck rotation, through the closest
triangle of a simplified FLAME mesh, evaluated on two grids and blended by distance to the surface.

The geometry only: the caller gives the simplified mesh posed and unposed (FLAME evaluated elsewhere). The
closest-triangle search reproduces pytorch3d's ``point_face_distance`` (squared distances; a triangle under
``min_triangle_area`` counts only by its edges) in plain torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headsplat.core.validate import check_shape

MIN_TRIANGLE_AREA = 5e-3  # pytorch3d's default, which Portrait4D passes
_EPS = 1e-8  # pytorch3d's kEpsilon / vEpsilon


def _segment_sq_dist(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distance from points p (..., 3) to segments ab (..., 3); a point-like segment measures to b."""
    ab = b - a
    l2 = (ab * ab).sum(-1)
    t = ((ab * (p - a)).sum(-1) / torch.where(l2 <= _EPS, torch.ones_like(l2), l2)).clamp(0, 1)
    proj = a + t[..., None] * ab
    d = ((p - proj) ** 2).sum(-1)
    return torch.where(l2 <= _EPS, ((p - b) ** 2).sum(-1), d)


def point_triangle_sq_dist(p: torch.Tensor, v0: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor,
                           min_triangle_area: float = MIN_TRIANGLE_AREA) -> torch.Tensor:
    """pytorch3d's point-to-triangle squared distance, broadcast over leading dims: the distance to the plane
    when the projection falls inside a triangle of area >= ``min_triangle_area``, else to the nearest edge."""
    normal = torch.linalg.cross(v2 - v0, v1 - v0)
    nn_ = normal.norm(dim=-1)
    normal = normal / (nn_[..., None] + _EPS)
    t = ((v0 - p) * normal).sum(-1)
    p0 = p + t[..., None] * normal
    e0, e1, e2 = v1 - v0, v2 - v0, p0 - v0
    d00, d01, d11 = (e0 * e0).sum(-1), (e0 * e1).sum(-1), (e1 * e1).sum(-1)
    d20, d21 = (e2 * e0).sum(-1), (e2 * e1).sum(-1)
    denom = d00 * d11 - d01 * d01 + _EPS
    w1 = (d11 * d20 - d01 * d21) / denom
    w2 = (d00 * d21 - d01 * d20) / denom
    w0 = 1.0 - w1 - w2
    inside = (w0 >= 0) & (w0 <= 1) & (w1 >= 0) & (w1 <= 1) & (w2 >= 0) & (w2 <= 1)
    area = 0.5 * torch.linalg.cross(v1 - v0, v2 - v0).norm(dim=-1)
    inside = inside & (area >= min_triangle_area) & (nn_ > _EPS)
    edges = torch.minimum(torch.minimum(_segment_sq_dist(p, v0, v1), _segment_sq_dist(p, v0, v2)),
                          _segment_sq_dist(p, v1, v2))
    return torch.where(inside, t * t, edges)


def barycentric(points: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    """Barycentric coordinates (unclamped) of points (..., 3) in the planes of triangles (..., 3, 3), as
    Portrait4D's ``get_barycentric`` computes them (denominator clamped at 1e-12)."""
    v1, v2, v3 = tris[..., 0, :], tris[..., 1, :], tris[..., 2, :]
    vq = points - v1
    r31r31 = ((v3 - v1) ** 2).sum(-1)
    r21r21 = ((v2 - v1) ** 2).sum(-1)
    r21r31 = ((v2 - v1) * (v3 - v1)).sum(-1)
    r31vq = ((v3 - v1) * vq).sum(-1)
    r21vq = ((v2 - v1) * vq).sum(-1)
    d = torch.clamp(r31r31 * r21r21 - r21r31 ** 2, 1e-12)
    b3 = (r21r21 * r31vq - r21r31 * r21vq) / d
    b2 = (r31r31 * r21vq - r21r31 * r31vq) / d
    return torch.stack([1.0 - b2 - b3, b2, b3], -1)


@torch.no_grad()
def point_to_face(points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor,
                  min_triangle_area: float = MIN_TRIANGLE_AREA, chunk: int = 256
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The closest triangle of a mesh to each point, as pytorch3d's ``point_face_distance`` finds it (the
    first of equal distances).

    Exact, but not by comparing every point with every triangle: for a block of ``chunk`` points, the triangles
    that can be closest to one of them are those whose bounding sphere (about the centroid, through the farthest
    corner) comes nearer to the point than the exact distance to the triangle with the nearest centroid; only
    those (in index order, so ties resolve as the brute force does) are measured.

    Args:
        points: (B, P, 3). verts: (B, N, 3). faces: (T, 3) long, shared by the batch.
        chunk: points per block (the grids' points come in x-slowest order, so a block is compact in space).

    Returns:
        squared distances (B, P), triangle indices (B, P), barycentric coordinates (B, P, 3) of the points in
        their triangles (unclamped, :func:`barycentric`).
    """
    check_shape("points", points, ("B", "P", 3))
    check_shape("verts", verts, ("B", "N", 3))
    check_shape("faces", faces, ("T", 3))
    tris = verts[:, faces]  # (B, T, 3, 3)
    b, n = points.shape[:2]
    dist = torch.empty(b, n, dtype=points.dtype, device=points.device)
    idx = torch.empty(b, n, dtype=torch.long, device=points.device)
    for k in range(b):
        t = tris[k]
        centre = t.mean(1)  # (T, 3)
        radius = (t - centre[:, None]).norm(dim=-1).amax(1)  # (T,)
        for s in range(0, n, chunk):
            p = points[k, s:s + chunk]  # (c, 3)
            cd = torch.cdist(p, centre)  # (c, T)
            near = cd.argmin(1)
            nt = t[near]
            ub = point_triangle_sq_dist(p, nt[:, 0], nt[:, 1], nt[:, 2], min_triangle_area)
            lb = (cd - radius).clamp(min=0) ** 2
            cand = torch.nonzero((lb <= (ub * (1 + 1e-4) + 1e-10)[:, None]).any(0)).squeeze(1)  # ascending
            v = t[cand][None]  # (1, C, 3, 3)
            d = point_triangle_sq_dist(p[:, None], v[..., 0, :], v[..., 1, :], v[..., 2, :], min_triangle_area)
            m, i = d.min(dim=-1)
            dist[k, s:s + chunk], idx[k, s:s + chunk] = m, cand[i]
    closest = torch.gather(tris, 1, idx[..., None, None].expand(-1, -1, 3, 3))
    return dist, idx, barycentric(points, closest)


def face_normals(tris: torch.Tensor) -> torch.Tensor:
    """Unit normals ``(v2 - v1) x (v3 - v1)`` of triangles (..., 3, 3) -> (..., 3)."""
    return F.normalize(torch.linalg.cross(tris[..., 1, :] - tris[..., 0, :], tris[..., 2, :] - tris[..., 0, :]),
                       dim=-1)


@torch.no_grad()
def surface_field_offsets(points: torch.Tensor, posed: torch.Tensor, unposed: torch.Tensor, faces: torch.Tensor,
                          min_triangle_area: float = MIN_TRIANGLE_AREA) -> tuple[torch.Tensor, torch.Tensor]:
    """GNARF's surface field: a point near the posed mesh keeps its barycentric position and its height above
    its closest triangle, carried to the same triangle of the unposed mesh.

    Args:
        points: (B, P, 3). posed, unposed: (B, N, 3) the same mesh with and without the head pose.
        faces: (T, 3).

    Returns:
        offsets (B, P, 3) (canonical point - point), squared distances to the posed surface (B, P).
    """
    dist, idx, bary = point_to_face(points, posed, faces, min_triangle_area)
    gather = idx[..., None, None].expand(-1, -1, 3, 3)
    posed_tris = torch.gather(posed[:, faces], 1, gather)
    unposed_tris = torch.gather(unposed[:, faces], 1, gather)
    surface_posed = (posed_tris * bary[..., None]).sum(-2)
    surface_unposed = (unposed_tris * bary[..., None]).sum(-2)
    height = ((points - surface_posed) * face_normals(posed_tris)).sum(-1, keepdim=True)
    return surface_unposed + height * face_normals(unposed_tris) - points, dist


def grid_points(resolution: int, box_warp: float, batch: int, device=None) -> torch.Tensor:
    """Cell centres of a ``resolution``³ grid over the cube of side ``box_warp``: (batch, R³, 3), x slowest."""
    r = torch.arange(resolution, dtype=torch.float32, device=device) * (1.0 / resolution) + (0.5 / resolution) - 0.5
    g = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1) * box_warp
    return g.reshape(1, -1, 3).repeat(batch, 1, 1)


def _sample(volume: torch.Tensor, points: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Trilinear samples (align_corners: ``lo``/``hi`` are the first/last cell centres) of (B, C, R, R, R) at
    points (B, P, 3) -> (B, P, C)."""
    g = (points - hi) / (hi - lo) * 2 + 1
    g = g.flip(-1).reshape(points.shape[0], -1, 1, 1, 3)  # grid_sample's (W, H, D) = (z, y, x)
    out = F.grid_sample(volume, g, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(volume.shape[0], volume.shape[1], -1).permute(0, 2, 1)


def _box_blur(volume: torch.Tensor) -> torch.Tensor:
    k = torch.ones([volume.shape[1], 1, 3, 3, 3], dtype=volume.dtype, device=volume.device) / 27
    return F.conv3d(F.pad(volume, (1, 1, 1, 1, 1, 1), "replicate"), k, groups=volume.shape[1])


class PoseField:
    """``DeformationModuleOnlyHead``'s field for one pose: the surface field's offsets on a ``fine``³ grid, and on
    a ``coarse``³ grid box-blurred twice (3³, replicate padding), computed once; at points, the two are blended
    by ``w = exp(-1000 relu(d² - smooth_th))`` with d² the interpolated squared distance to the posed surface.

    Args:
        posed, unposed: (B, N, 3) the simplified mesh with and without the neck rotation. faces: (T, 3).
    """

    @torch.no_grad()
    def __init__(self, posed: torch.Tensor, unposed: torch.Tensor, faces: torch.Tensor, box_warp: float = 1.3,
                 smooth_th: float = 3e-3, fine: int = 24, coarse: int = 8,
                 min_triangle_area: float = MIN_TRIANGLE_AREA):
        b = posed.shape[0]
        self.smooth_th = smooth_th
        fields = {}
        for res in (fine, coarse):
            g = grid_points(res, box_warp, b, posed.device)
            off, dist = surface_field_offsets(g, posed, unposed, faces, min_triangle_area)
            fields[res] = (off.permute(0, 2, 1).reshape(b, 3, res, res, res),
                           dist.reshape(b, 1, res, res, res), g[0, 0, 0].item(), g[0, -1, 0].item())
        self.off_fine, self.dist_fine, self.lo_fine, self.hi_fine = fields[fine]
        off_c, _, self.lo_coarse, self.hi_coarse = fields[coarse]
        self.off_coarse = _box_blur(_box_blur(off_c))

    @torch.no_grad()
    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """(B, P, 3) observed points -> (B, P, 3) the points where the canonical triplanes are sampled."""
        near = _sample(self.off_fine, points, self.lo_fine, self.hi_fine)
        far = _sample(self.off_coarse, points, self.lo_coarse, self.hi_coarse)
        w = torch.exp(-1000 * F.relu(_sample(self.dist_fine, points, self.lo_fine, self.hi_fine) - self.smooth_th))
        return (w * near + (1 - w) * far + points).detach()


def head_pose_deformation(points: torch.Tensor, posed: torch.Tensor, unposed: torch.Tensor, faces: torch.Tensor,
                          box_warp: float = 1.3, smooth_th: float = 3e-3, fine: int = 24, coarse: int = 8,
                          min_triangle_area: float = MIN_TRIANGLE_AREA) -> torch.Tensor:
    """:class:`PoseField` of one pose at ``points`` (B, P, 3) -> (B, P, 3)."""
    return PoseField(posed, unposed, faces, box_warp, smooth_th, fine, coarse, min_triangle_area)(points)
