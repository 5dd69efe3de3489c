import math

import torch

from headsplat.core.rotation import axis_angle_to_matrix, quat_to_matrix
from headsplat.splat.binding import (
    bound_to_world,
    init_by_area,
    init_per_triangle,
    per_triangle_barycentrics,
    pose_gaussians,
    triangle_areas,
    triangle_frames,
)


def _mesh(rig):
    return rig.template.double(), rig.triangles


def test_frames_are_right_handed_orthonormal_with_z_along_the_normal(rig):
    v, f = _mesh(rig)
    fr = triangle_frames(v, f)
    eye = torch.eye(3, dtype=torch.float64).expand_as(fr.rotation)
    assert torch.allclose(fr.rotation.transpose(-1, -2) @ fr.rotation, eye, atol=1e-9)
    assert torch.allclose(torch.linalg.det(fr.rotation), torch.ones(len(f), dtype=torch.float64))
    n = torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert torch.allclose(fr.rotation[..., 2], n / n.norm(dim=-1, keepdim=True), atol=1e-9)


def test_rigid_motion_of_the_mesh_moves_gaussians_rigidly(rig):
    v, f = _mesh(rig)
    gs = init_by_area(v, f, 500, generator=torch.Generator().manual_seed(0))
    gs = gs.map(lambda name, t: t + 0.3 * torch.randn_like(t) if name.startswith("local_") else t)
    rest = pose_gaussians(gs, v, f)
    R = axis_angle_to_matrix(torch.tensor([0.3, -1.1, 0.4], dtype=torch.float64))
    t = torch.tensor([0.05, -0.2, 1.5], dtype=torch.float64)
    s = 1.7
    moved = pose_gaussians(gs, s * v @ R.T + t, f)
    assert torch.allclose(moved.means, s * rest.means @ R.T + t, atol=1e-9)
    assert torch.allclose(quat_to_matrix(moved.quats), R @ quat_to_matrix(rest.quats), atol=1e-9)
    assert torch.allclose(moved.log_scales, rest.log_scales + math.log(s), atol=1e-9)


def test_gaussians_move_with_their_own_triangles_only(rig):
    v, f = _mesh(rig)
    gs = init_per_triangle(v, f, k=4)
    rest = pose_gaussians(gs, v, f)
    bent = v.clone()
    bent[10] += torch.tensor([0.0, 0.0, 0.01], dtype=torch.float64)
    posed = pose_gaussians(gs, bent, f)
    touches = (f[gs.parent] == 10).any(1)
    moved = (posed.means - rest.means).norm(dim=1) > 1e-9
    assert touches.any() and torch.equal(moved, touches)
    # per-triangle points start on their triangle: the barycentric blend of its corners
    bary = per_triangle_barycentrics(4, torch.float64).repeat(len(f), 1)
    assert torch.allclose(rest.means, (bary[..., None] * v[f[gs.parent]]).sum(1), atol=1e-9)


def test_batched_vertices_pose_every_frame(rig):
    v, f = _mesh(rig)
    gs = init_per_triangle(v, f, k=1)
    frames = torch.stack([v, v + 1.0, 2 * v])
    means, quats, log_scales = bound_to_world(gs.parent, gs.local_means, gs.local_quats, gs.local_log_scales,
                                              triangle_frames(frames, f))
    assert means.shape == (3, len(gs), 3) and quats.shape == (3, len(gs), 4)
    assert torch.allclose(means[1], means[0] + 1.0) and torch.allclose(log_scales[2], log_scales[0] + math.log(2))


def test_binding_is_differentiable_in_vertices_and_local_fields():
    v = torch.tensor([[0.0, 0, 0], [1, 0.1, 0], [0.2, 1, 0.1], [0.1, 0.2, 1]], dtype=torch.float64,
                     requires_grad=True)
    f = torch.tensor([[0, 2, 1], [0, 1, 3], [1, 2, 3]])
    parent = torch.tensor([0, 1, 2, 2])
    lm = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    lq = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    ls = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)

    def fn(v, lm, lq, ls):
        return bound_to_world(parent, lm, lq, ls, triangle_frames(v, f))

    assert torch.autograd.gradcheck(fn, (v, lm, lq, ls))


def test_init_by_area_covers_the_surface_evenly(rig):
    v, f = _mesh(rig)
    n = 20000
    gs = init_by_area(v, f, n, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(gs.parent, minlength=len(f)).double()
    share = triangle_areas(v, f) / triangle_areas(v, f).sum()
    big = share > 2e-3
    assert torch.allclose(counts[big] / n, share[big], rtol=0.35)
    assert per_triangle_barycentrics(7).sum(1).allclose(torch.ones(7))
    assert len(set(map(tuple, per_triangle_barycentrics(9).tolist()))) == 9
