"""The MMDM's conditioning maps: the PyTorch3D-convention rasteriser on analytic scenes, the encodings, the ray map."""

import math

import numpy as np
import torch

from headsplat.models.cap4d import conditioning as C


def _quad(z: float, half: float = 0.5, value: float = 0.0, shift: float = 0.01):
    """A square facing the camera at depth z in NDC, as two triangles wound so that they are front faces; shifted
    off the pixel grid so that no pixel centre lies on the shared diagonal."""
    v = torch.tensor([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]])
    v[:, 0] += shift
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    return v, faces, torch.full((4, 1), value)


def test_pixel_centres_follow_pytorch3d_ndc():
    x, y = C.pixel_ndc(4)
    assert x[0, 0] == 0.75 and y[0, 0] == 0.75  # row 0 at the top (+y up), column 0 on the left (+x left)
    assert x[0, -1] == -0.75 and y[-1, 0] == -0.75


def test_front_faces_are_drawn_back_faces_culled_and_attributes_interpolate_linearly():
    v, faces, _ = _quad(2.0)
    idx, bary = C.rasterize(v, faces, 16)
    drawn = idx >= 0
    assert drawn.sum() == 64  # the 8 x 8 pixels inside the square
    x, y = C.pixel_ndc(16)
    assert drawn.equal(((x - 0.01).abs() < 0.5) & (y.abs() < 0.5))
    # an attribute equal to the vertices' x comes out as each pixel's x; depth likewise
    out = C.interpolate(idx, bary, faces, v[:, :1])
    torch.testing.assert_close(out[..., 0][drawn], x[drawn], atol=1e-6, rtol=0)
    assert (out[..., 0][~drawn] == 0).all()
    idx_back, _ = C.rasterize(v, faces[:, [0, 2, 1]], 16)
    assert (idx_back < 0).all()
    # PyTorch3D's strict inside test: a pixel centre exactly on the shared edge is drawn by neither triangle
    on_grid, f2, _ = _quad(2.0, shift=0.0)
    idx, _ = C.rasterize(on_grid, f2, 16)
    assert (idx[torch.arange(4, 12), torch.arange(4, 12)] < 0).all() and (idx >= 0).sum() == 56


def test_barycentrics_are_clipped_and_renormalised_as_cap4d_asks():
    """A triangle a few thousandths of a pixel across around a pixel centre: its raw barycentrics sum to
    area / (area + 1e-8), well below 1; CAP4D's clip_barycentric_coords renormalises them to sum 1."""
    x, y = C.pixel_ndc(8)
    cx, cy, r = float(x[3, 4]), float(y[3, 4]), 2e-4
    v = torch.tensor([[cx - r, cy - r, 1.0], [cx + r, cy - r, 1.0], [cx, cy + r, 1.0]])
    faces = torch.tensor([[0, 2, 1]])
    idx, bary = C.rasterize(v, faces, 8)
    if idx[3, 4] < 0:  # the winding that is front-facing in PyTorch3D's NDC
        faces = faces[:, [0, 2, 1]]
        idx, bary = C.rasterize(v, faces, 8)
    assert idx[3, 4] == 0 and (idx >= 0).sum() == 1
    area = 2 * r * 2 * r / 2
    assert area / (area + C.EPS) < 0.9  # what the sum would be unclipped
    assert abs(float(bary[3, 4].sum()) - 1.0) < 1e-6


def test_the_nearest_face_wins_and_faces_behind_the_camera_are_not_drawn():
    near, fn, _ = _quad(2.0, 0.3)
    far, ff, _ = _quad(3.0, 0.6)
    v = torch.cat([near, far])
    faces = torch.cat([fn, ff + 4])
    idx, _ = C.rasterize(v, faces, 20)
    x, y = C.pixel_ndc(20)
    inner = ((x - 0.01).abs() < 0.3) & (y.abs() < 0.3)
    assert (idx[inner] < 2).all() and (idx[~inner & (idx >= 0)] >= 2).all()
    behind, fb, _ = _quad(-1.0)
    assert (C.rasterize(behind, fb, 8)[0] < 0).all()


def test_positional_encoding_is_sines_then_cosines_per_coordinate():
    p = torch.tensor([[0.3, -0.2, 0.9]])
    e = C.positional_encoding(p)
    assert e.shape == (1, 42)
    f = 2.0 ** torch.arange(7)
    torch.testing.assert_close(e[0, :14], torch.cat([torch.sin(0.3 * f), torch.cos(0.3 * f)]))
    torch.testing.assert_close(e[0, 28:], torch.cat([torch.sin(0.9 * f), torch.cos(0.9 * f)]))


def test_pose_map_is_masked_and_area_averaged_and_maps_have_50_channels():
    v, faces, _ = _quad(2.0, 0.5)
    template = v.clone()
    offsets = torch.zeros(4, 3)
    offsets[:, 0] = C.OFFSET_STD  # one unit after scaling
    maps = C.pose_and_offsets(v, faces, torch.tensor([True, True]), template, offsets, size=8)
    assert maps.shape == (8, 8, 45)
    assert maps[0, 0].abs().max() == 0  # outside the head
    torch.testing.assert_close(maps[4, 4, 42], torch.tensor(1.0))
    hidden = C.pose_and_offsets(v, faces, torch.tensor([False, False]), template, offsets, size=8)
    assert hidden.abs().max() == 0
    rays = torch.from_numpy(C.ray_map(np.array([0, 0, 8, 8]), np.diag([8.0, 8.0, 1.0]), np.eye(3), 8)).float()
    full = C.conditioning_maps(maps, rays, True, torch.ones(8, 8))
    assert full.shape == (8, 8, 50) and (full[..., 48] == 1).all() and (full[..., 49] == 1).all()


def test_ray_map_centre_is_the_camera_axis_and_rays_turn_with_the_reference():
    a = math.radians(30)
    R = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    box = np.array([320 - 100, 240 - 100, 320 + 100, 240 + 100])
    rays = C.ray_map(box, K, R, 64)
    # no half-pixel offset: pixel (32, 32) sits on the principal point
    np.testing.assert_allclose(rays[:, 32, 32], R.T @ np.array([0, 0, 1.0]), atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=0), 1.0, atol=1e-6)
    in_own_frame = C.ray_map(box, K, R, 64, reference_rotation=R)
    np.testing.assert_allclose(in_own_frame[:, 32, 32], [0, 0, 1.0], atol=1e-7)
    assert in_own_frame[0, 32, 40] > 0  # right of centre looks to +x in the camera's frame


def test_projection_crop_and_ndc_follow_cap4d():
    """Equal to the authors' helpers (run locally: projection and ray map exactly, crop boxes identical, NDC to
    1e-7); here their defining properties."""
    verts = torch.tensor([[[0.0, 0.0, 1.0], [0.1, -0.05, 1.2], [-0.1, 0.05, 0.8]]])
    K = torch.tensor([[800.0, 0, 320], [0, 820, 240], [0, 0, 1]])
    p = C.project(verts, K, torch.eye(4))
    torch.testing.assert_close(p[0, 0, :2], torch.tensor([320.0, 240.0]))
    torch.testing.assert_close(p[..., 2].mean(), torch.tensor(810.0))  # depth / its mean × (fx + fy) / 2
    box = C.head_crop_box(np.array([[10.7, 20.2], [50.9, 80.6], [30.0, 40.0]]), np.array([0, 1]))
    # box (10, 20, 50, 80) → centre (30, 50), half-side ⌊60 // 2 · 1.2⌋ = 36
    assert box.tolist() == [-6, 14, 66, 86]
    ndc = C.to_ndc(torch.tensor([[-6.0, 14.0, 5.0], [66.0, 86.0, 5.0]]), box)
    torch.testing.assert_close(ndc, torch.tensor([[1.0, 1.0, 5.0], [-1.0, -1.0, 5.0]]))
    m = C.crop_mask((100, 100), box, 8)
    # the crop's left edge lies outside the frame: 3 of the first pixel's 9 columns are in it, rounded to 0 as
    # the reference's 8-bit resize does
    assert m[4, 0] == 0 and m[4, 4] == 1 and set(np.unique(m).tolist()) <= {0.0, 1.0}
