"""Pin the conventions every backend shares: quaternion order, camera axes, pixel centres, sizes, depth."""

import math

import pytest
import torch

from headsplat.core.camera import Camera, intrinsics_from_fov, world_to_opencv
from headsplat.render.projection import eval_sh, view_colors
from headsplat.render.rasterize import render
from headsplat.splat.gaussians import GaussianSet

BACKENDS = ["torch", "cpu"]


def _one(mean, scales=(0.01, 0.01, 0.01), quat=(1.0, 0.0, 0.0, 0.0), opacity=0.9, rgb=(1.0, 1.0, 1.0)):
    sh = ((torch.tensor(rgb) - 0.5) / 0.28209479177387814).reshape(1, 1, 3)
    return GaussianSet(torch.tensor([mean], dtype=torch.float32), torch.tensor([quat]),
                       torch.tensor([scales]).log(), torch.tensor([math.log(opacity / (1 - opacity))]), sh)


def _cam(w=33, h=33, fov=60.0):
    # world_to_opencv: camera at the origin looking down world -z, with world +y up on screen.
    return Camera(world_to_opencv(), intrinsics_from_fov(fov, w, h), w, h)


@pytest.mark.parametrize("backend", BACKENDS)
def test_quaternions_are_w_x_y_z(backend):
    # Long along local x, turned 90° about z by (w, x, y, z) = (cos 45°, 0, 0, sin 45°): long along world y,
    # so tall on screen. Read as (x, y, z, w) the same numbers would turn it about x and it would stay wide.
    q = (math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4))
    out = render(_one([0.0, 0.0, -1.0], scales=(0.2, 0.01, 0.01), quat=q), _cam(), backend=backend)
    a = out.alpha[..., 0]
    rows, cols = (a.sum(1) > 0.5).sum(), (a.sum(0) > 0.5).sum()
    assert rows > 3 * cols


@pytest.mark.parametrize("backend", BACKENDS)
def test_camera_looks_down_plus_z_in_opencv_axes(backend):
    cam = _cam()
    front = render(_one([0.0, 0.0, -1.0]), cam, backend=backend)  # camera z = +1: visible
    behind = render(_one([0.0, 0.0, 1.0]), cam, backend=backend)  # camera z = -1: not drawn
    assert front.alpha.max() > 0.5 and behind.alpha.max() == 0
    assert not behind.visible[0] and front.visible[0]
    # +x world is image right, +y world is image up (OpenCV y down)
    right_up = render(_one([0.2, 0.2, -1.0]), cam, backend=backend)
    iy, ix = divmod(int(right_up.alpha[..., 0].argmax()), 33)
    assert ix > 16 and iy < 16


@pytest.mark.parametrize("backend", BACKENDS)
def test_pixel_centres_are_at_i_plus_half(backend):
    # 33 px wide with the principal point at 16.5: the image centre is the centre of pixel 16, so a small
    # Gaussian on the axis lights pixels 15 and 17 equally. With centres at integers it would not.
    out = render(_one([0.0, 0.0, -1.0], scales=(0.004, 0.004, 0.004)), _cam(), backend=backend)
    a = out.alpha[16, :, 0]
    assert int(a.argmax()) == 16
    assert a[15] == pytest.approx(a[17].item(), rel=1e-5) and a[15] < a[16]
    col = out.alpha[:, 16, 0]
    assert col[15] == pytest.approx(col[17].item(), rel=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_depth_is_camera_z_and_size_override_keeps_the_field_of_view(backend):
    out = render(_one([0.0, 0.0, -2.0], opacity=0.99), _cam(), backend=backend)
    assert out.depth[16, 16, 0] == pytest.approx(2.0, rel=1e-5)
    assert out.depth[0, 0, 0] == 0
    big = render(_one([0.1, 0.0, -2.0]), _cam(), width=66, height=66, backend=backend)
    small = render(_one([0.1, 0.0, -2.0]), _cam(), backend=backend)
    cx_big = (big.alpha[..., 0].sum(0) * torch.arange(66)).sum() / big.alpha.sum()
    cx_small = (small.alpha[..., 0].sum(0) * torch.arange(33)).sum() / small.alpha.sum()
    assert (cx_big + 0.5) / 66 == pytest.approx((cx_small.item() + 0.5) / 33, abs=1e-3)


def test_background_fills_where_nothing_is_drawn():
    out = render(_one([0.0, 0.0, -1.0], rgb=(1.0, 0.0, 0.0)), _cam(), background=torch.tensor([0.0, 1.0, 0.0]))
    assert torch.allclose(out.rgb[0, 0], torch.tensor([0.0, 1.0, 0.0]))
    centre = out.rgb[16, 16]
    assert centre[0] > 0.8 and centre[1] < 0.2


def test_spherical_harmonics_follow_the_3dgs_convention():
    # Degree 1 with only the "y" coefficient set: colour = 0.5 - C1 * y * c. Seen from above (looking down),
    # the direction from the camera to the Gaussian has y = -1.
    c1 = 0.4886025119029199
    sh = torch.zeros(1, 4, 3)
    sh[0, 1] = torch.tensor([0.2, 0.0, -0.2])
    down = torch.tensor([[0.0, -1.0, 0.0]])
    assert torch.allclose(eval_sh(sh, down), torch.tensor([[0.5 + c1 * 0.2, 0.5, 0.5 - c1 * 0.2]]))
    # view_colors uses the direction camera -> Gaussian: a camera above a Gaussian at the origin
    view = torch.eye(4)
    view[:3, :3] = torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # looks down world -y
    view[:3, 3] = -view[:3, :3] @ torch.tensor([0.0, 2.0, 0.0])
    assert torch.allclose(view_colors(torch.zeros(1, 3), sh, view), eval_sh(sh, down))
