"""Portrait4D's head-pose deformer geometry: the closest-triangle search against an exact brute force (Ericson's
closest point on a triangle), pytorch3d's small-triangle rule, and the surface field on rigid motions.

Equivalence with the authors' deformer (their code with a transcription of pytorch3d's kernel, which does not
install here) is measured outside the repository; see the issue's note.
"""

import math

import numpy as np
import pytest
import torch

from headsplat.models.portrait4d.deformer import (
    barycentric,
    grid_points,
    head_pose_deformation,
    point_to_face,
    surface_field_offsets,
)


def _closest_point(p, a, b, c):
    """Ericson, Real-Time Collision Detection 5.1.5: the closest point of triangle abc to p (float64)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = ab @ ap, ac @ ap
    if d1 <= 0 and d2 <= 0:
        return a
    bp = p - b
    d3, d4 = ab @ bp, ac @ bp
    if d3 >= 0 and d4 <= d3:
        return b
    vc = d1 * d4 - d3 * d2
    if vc <= 0 and d1 >= 0 and d3 <= 0:
        return a + d1 / (d1 - d3) * ab
    cp = p - c
    d5, d6 = ab @ cp, ac @ cp
    if d6 >= 0 and d5 <= d6:
        return c
    vb = d5 * d2 - d1 * d6
    if vb <= 0 and d2 >= 0 and d6 <= 0:
        return a + d2 / (d2 - d6) * ac
    va = d3 * d6 - d5 * d4
    if va <= 0 and d4 - d3 >= 0 and d5 - d6 >= 0:
        return b + (d4 - d3) / ((d4 - d3) + (d5 - d6)) * (c - b)
    denom = 1 / (va + vb + vc)
    return a + ab * vb * denom + ac * vc * denom


def test_point_to_face_equals_exact_brute_force_on_large_triangles():
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(1, 30, 3)).astype(np.float32)
    faces = rng.choice(30, size=(25, 3), replace=True)
    faces = faces[[len(set(f)) == 3 for f in faces]]
    tris = verts[0][faces].astype(np.float64)
    areas = 0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=-1)
    keep = areas > 0.05  # well above the small-triangle threshold
    faces, tris = faces[keep], tris[keep]
    points = rng.normal(size=(1, 200, 3)).astype(np.float32)
    d, idx, bary = point_to_face(torch.from_numpy(points), torch.from_numpy(verts), torch.from_numpy(faces))
    for i, p in enumerate(points[0].astype(np.float64)):
        exact = np.array([np.sum((p - _closest_point(p, *t)) ** 2) for t in tris])
        assert d[0, i].item() == pytest.approx(exact.min(), rel=1e-4, abs=1e-6)
        assert exact[idx[0, i]] == pytest.approx(exact.min(), rel=1e-4, abs=1e-6)
    # barycentrics reproduce the point's projection on its triangle's plane
    t = torch.from_numpy(tris)[idx[0]].float()
    proj = (t * bary[0, :, :, None]).sum(1)
    n = torch.linalg.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    n = n / n.norm(dim=-1, keepdim=True)
    resid = torch.from_numpy(points[0]) - proj
    torch.testing.assert_close(torch.linalg.cross(resid, n), torch.zeros_like(resid), atol=1e-4, rtol=0)


def test_small_triangles_count_by_their_edges_only():
    """pytorch3d: a triangle under the minimum area has no inside; the distance is to its nearest edge."""
    tri = torch.tensor([[[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.05, 0.0]]])  # area 1.25e-3 < 5e-3
    p = torch.tensor([[[0.01, 0.01, 0.2]]])
    faces = torch.tensor([[0, 1, 2]])
    d_small, _, _ = point_to_face(p, tri, faces)
    d_plane, _, _ = point_to_face(p, tri, faces, min_triangle_area=0.0)
    assert d_plane.item() == pytest.approx(0.04, rel=1e-5)  # straight above the inside
    assert d_small.item() == pytest.approx(0.04 + 0.01 ** 2, rel=1e-5)  # to the edge along x (or y)


def _ball(n_lat=10, n_lon=16, r=0.3):
    verts = [[0, r, 0]] + [[r * math.sin(math.pi * i / n_lat) * math.cos(2 * math.pi * j / n_lon),
                            r * math.cos(math.pi * i / n_lat),
                            r * math.sin(math.pi * i / n_lat) * math.sin(2 * math.pi * j / n_lon)]
                           for i in range(1, n_lat) for j in range(n_lon)] + [[0, -r, 0]]
    faces = [[0, 1 + (j + 1) % n_lon, 1 + j] for j in range(n_lon)]
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b = 1 + i * n_lon + j, 1 + i * n_lon + (j + 1) % n_lon
            faces += [[a, b, b + n_lon], [a, b + n_lon, a + n_lon]]
    last = len(verts) - 1
    faces += [[1 + (n_lat - 2) * n_lon + j, 1 + (n_lat - 2) * n_lon + (j + 1) % n_lon, last] for j in range(n_lon)]
    return torch.tensor(verts)[None], torch.tensor(faces)


def test_surface_field_undoes_a_rigid_motion_near_the_surface():
    verts, faces = _ball()
    a = 0.3
    R = torch.tensor([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
    shift = torch.tensor([0.02, -0.01, 0.03])
    posed = verts @ R.T + shift
    torch.manual_seed(0)
    pts = posed[:, torch.randint(0, verts.shape[1], (50,))] * (1 + 0.05 * torch.rand(1, 50, 1))
    off, d = surface_field_offsets(pts, posed, verts, faces)
    expected = (pts - shift) @ R  # the inverse motion
    torch.testing.assert_close(pts + off, expected, atol=2e-5, rtol=0)
    off0, _ = surface_field_offsets(pts, verts, verts, faces)
    torch.testing.assert_close(off0, torch.zeros_like(off0), atol=1e-6, rtol=0)


def test_head_pose_deformation_is_identity_without_a_pose_and_barycentric_sums_to_one():
    verts, faces = _ball()
    pts = (torch.rand(1, 200, 3) - 0.5) * 1.2
    out = head_pose_deformation(pts, verts, verts, faces, box_warp=1.3)
    torch.testing.assert_close(out, pts, atol=1e-6, rtol=0)
    g = grid_points(4, 1.3, 2)
    assert g.shape == (2, 64, 3) and g[0, 0, 0] == pytest.approx((0.125 - 0.5) * 1.3) and g[0, 1, 2] > g[0, 0, 2]
    tris = torch.rand(5, 3, 3)
    torch.testing.assert_close(barycentric(torch.rand(5, 3), tris).sum(-1), torch.ones(5))


# -- FLAME as the deformer evaluates it --------------------------------------------------------------------------
def _toy_flame(n=40, seed=0):
    """A FLAME-shaped model: 5 joints (root, neck, jaw, eyes), all skinning on the neck joint."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.zeros(n, 5)
    weights[:, 1] = 1.0
    regressor = torch.zeros(5, n)
    regressor[:, 0] = 1.0  # every joint at vertex 0 (the neck point)
    return {"v_template": torch.randn(n, 3, generator=g) * 0.3, "shapedirs": torch.randn(n, 3, 400, generator=g) * 1e-3,
            "posedirs": torch.zeros(36, 3 * n), "J_regressor": regressor, "parents": torch.tensor([-1, 0, 1, 1, 1]),
            "lbs_weights": weights}


def test_rodrigues_matches_headsplat_rotations():
    from headsplat.core.rotation import axis_angle_to_matrix
    from headsplat.models.portrait4d.flame import rodrigues

    aa = torch.randn(20, 3)
    torch.testing.assert_close(rodrigues(aa), axis_angle_to_matrix(aa), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rodrigues(torch.zeros(1, 3)), torch.eye(3)[None], atol=1e-6, rtol=0)


def test_flame_forward_rotates_about_the_neck_joint():
    from headsplat.models.portrait4d.flame import flame_forward, rodrigues

    buf = _toy_flame()
    z = torch.zeros(1, 300), torch.zeros(1, 100)
    rest, joints = flame_forward(buf, *z, torch.zeros(1, 6), torch.zeros(1, 6))
    torch.testing.assert_close(rest[0], buf["v_template"], atol=1e-6, rtol=0)
    neck = torch.tensor([[0.3, -0.2, 0.1]])
    posed, _ = flame_forward(buf, *z, torch.cat([neck, torch.zeros(1, 3)], 1), torch.zeros(1, 6))
    pivot = buf["v_template"][0]
    expected = (buf["v_template"] - pivot) @ rodrigues(neck)[0].T + pivot
    torch.testing.assert_close(posed[0], expected, atol=1e-5, rtol=0)


def test_head_pose_deformer_needs_the_checkpoint_tensors_and_is_identity_without_neck_pose():
    from headsplat.core.errors import InputError
    from headsplat.models.portrait4d.flame import FLAME_PREFIX, HeadPoseDeformer

    verts, faces = _ball(6, 8)
    n = verts.shape[1]
    buf = _toy_flame(n)
    buf["v_template"] = verts[0]
    state = {FLAME_PREFIX + k: v for k, v in buf.items()}
    with pytest.raises(InputError, match="flame_deform.simplify_idxs"):
        HeadPoseDeformer(state)
    state.update({"flame_deform.simplify_idxs": torch.arange(n)[:, None].repeat(1, 3),
                  "flame_deform.simplify_baris": torch.tensor([[1.0, 0.0, 0.0]]).repeat(n, 1),
                  "flame_deform.simplify_faces": faces})
    field = HeadPoseDeformer(state).field(torch.zeros(1, 300), torch.zeros(1, 100),
                                          torch.tensor([[0.0, 0.0, 0.0, 0.2, 0.0, 0.0]]), torch.zeros(1, 6))
    pts = (torch.rand(1, 50, 3) - 0.5)
    torch.testing.assert_close(field(pts), pts, atol=1e-6, rtol=0)


def test_pruned_search_picks_the_same_triangle_as_measuring_every_one():
    """The bounding-sphere pruning is exact: on a fine ball (with small triangles that count by their edges)
    and on a posed-like dense mesh, grid points and points far outside get the brute force's triangle and
    distance, ties included (the lowest index)."""
    from headsplat.models.portrait4d.deformer import point_triangle_sq_dist

    verts, faces = _ball(24, 40, r=0.4)
    verts = verts * torch.tensor([1.0, 1.3, 0.9])
    g = torch.Generator().manual_seed(3)
    points = torch.cat([grid_points(12, 1.3, 1), torch.randn(1, 500, 3, generator=g) * 0.8], 1)
    d, idx, _ = point_to_face(points, verts, faces, chunk=64)
    t = verts[0][faces]
    dense = point_triangle_sq_dist(points[0][:, None], t[None, :, 0], t[None, :, 1], t[None, :, 2])
    best, best_idx = dense.min(-1)
    assert torch.equal(idx[0], best_idx) and torch.equal(d[0], best)
    # straight above the pole, shared by a fan of triangles: equal distances resolve to the lowest index
    above = verts[:, :1] + torch.tensor([0.0, 0.2, 0.0])
    all_d = point_triangle_sq_dist(above[0], t[:, 0], t[:, 1], t[:, 2])
    assert int((all_d == all_d.min()).sum()) > 1
    assert point_to_face(above, verts, faces)[1].item() == int(torch.nonzero(all_d == all_d.min())[0])
