"""Portrait4D-v2's inputs from headsplat's tracking, by the reference's rules: the five-point POS alignment and its
512² crop (an aligned crop aligns to itself), the fixed and orbiting cameras, FLAME's parameters from headsplat's
expression layout, and the view-set conventions of its generator."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from headsplat.avatar.generators.portrait4d import view_to_tracking
from headsplat.core.camera import project_points
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.models.gagavatar.inputs import posed_to_opencv
from headsplat.models.portrait4d.inputs import (
    TEMPLATE_3D,
    AlignedCrop,
    five_points,
    flame_parameters,
    intrinsics,
    motion_points,
    orbit_camera,
    pos,
)
from headsplat.models.portrait4d.model import world_to_camera
from headsplat.rig.flame.head import POSE_NAMES

FIVE = np.array([[200.0, 240.0], [290.0, 236.0], [246.0, 290.0], [212.0, 335.0], [282.0, 332.0]])


def test_pos_recovers_the_scale_and_translation_of_an_affine_projection():
    rot = axis_angle_to_matrix(torch.tensor([0.1, -0.3, 0.05], dtype=torch.float64))
    xp = 2.5 * (TEMPLATE_3D @ rot.numpy().T)[:, :2] + np.array([120.0, -40.0])
    t, s = pos(xp, TEMPLATE_3D)
    np.testing.assert_allclose(t, [120.0, -40.0], atol=1e-9)
    assert s == pytest.approx(2.5, rel=1e-9)


def test_an_aligned_crop_aligns_to_itself_and_its_points_follow_the_pixels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    crop = AlignedCrop(FIVE, 640, 480)
    assert crop.s == pytest.approx(180 / pos(np.c_[FIVE[:, 0], 479 - FIVE[:, 1]], TEMPLATE_3D)[1])
    inner = crop.points(FIVE)
    again = AlignedCrop(inner, 512, 512)  # the crop's own five points: the identity crop, to truncation
    assert again.s == pytest.approx(1.0, abs=2e-3) and abs(again.left) <= 1 and abs(again.up) <= 1
    # the landmark formula and the pixel map agree to the reference's rounding (sizes truncated to pixels)
    mapped = FIVE @ crop.matrix()[:, :2].T + crop.matrix()[:, 2]
    assert np.abs(mapped - inner).max() < 2.0
    # the cut is the reference's: the whole image resized (Lanczos), then a 512² window
    cut = crop.cut(image)
    assert cut.shape == (512, 512, 3)
    w, h = crop.resized
    resized = np.asarray(Image.fromarray(image).resize((w, h), resample=Image.LANCZOS))
    assert crop.left >= 0 and crop.up >= 0 and crop.left + 512 <= w and crop.up + 512 <= h  # no padding here
    np.testing.assert_array_equal(cut, resized[crop.up:crop.up + 512, crop.left:crop.left + 512])


def test_a_crop_past_the_border_repeats_the_edge():
    image = np.zeros((300, 300, 3), np.uint8)
    image[:, :150] = 200  # left half bright: the padding left of the image repeats it
    crop = AlignedCrop(FIVE * 0.5 - np.array([60.0, 0.0]), 300, 300)
    assert crop.left < 0
    cut = crop.cut(image)
    assert (cut[:, :5] == 200).all()


def test_five_and_motion_points_come_from_the_mediapipe_positions():
    lm = np.random.default_rng(1).normal(size=(478, 3)) * 50 + 250
    p = five_points(lm)
    np.testing.assert_allclose(p[0], lm[468, :2])
    np.testing.assert_allclose(p[2], (lm[1, :2] + lm[4, :2]) / 2)
    np.testing.assert_allclose(p[4], lm[291, :2])
    m = motion_points(lm)
    np.testing.assert_allclose(m[2], lm[[78, 82, 13, 312, 308, 317, 14, 87], :2].mean(0))


def test_cameras_are_the_fixed_one_and_orbits_at_its_distance():
    c = orbit_camera()
    c2w, K = c[:16].view(4, 4), c[16:].view(3, 3)
    torch.testing.assert_close(c2w[:3, :3], torch.eye(3))
    torch.testing.assert_close(c2w[:3, 3], torch.tensor([0.0, 0.01, 4.2]))
    assert K[0, 0].item() == pytest.approx(1 / (2 * math.tan(math.radians(6))), rel=1e-6) and K[0, 2] == 0.5
    side = orbit_camera(90.0)[:16].view(4, 4)
    torch.testing.assert_close(side[:3, 3], torch.tensor([4.2, 0.01, 0.0]), atol=1e-5, rtol=0)
    # it looks at the head's axis: its -z passes through (0, 0.01, 0)
    torch.testing.assert_close(side[:3, 3] - 4.2 * side[:3, 2], torch.tensor([0.0, 0.01, 0.0]), atol=1e-5, rtol=0)
    above = orbit_camera(0.0, 30.0)[:16].view(4, 4)
    assert above[1, 3] > 2.0 and torch.linalg.norm(above[:3, 3] - torch.tensor([0, 0.01, 0])) == pytest.approx(4.2)


def test_flame_parameters_take_headsplat_columns_by_name():
    names = tuple(f"expr_{i:03d}" for i in range(50)) + POSE_NAMES
    expr = torch.arange(59, dtype=torch.float32)[None].repeat(2, 1)
    rot = torch.tensor([[0.1, 0.2, 0.3], [0.0, -0.1, 0.0]])
    f = flame_parameters(torch.ones(100), expr, rot, names)
    assert f["shape"].shape == (2, 300) and f["shape"][:, 100:].abs().sum() == 0 and f["shape"][:, :100].eq(1).all()
    assert f["expression"].shape == (2, 100) and f["expression"][0, 49] == 49 and f["expression"][:, 50:].eq(0).all()
    torch.testing.assert_close(f["pose"][:, :3], rot)
    torch.testing.assert_close(f["pose"][0, 3:], torch.tensor([50.0, 51.0, 52.0]))
    torch.testing.assert_close(f["eye_pose"][0], torch.arange(53, 59, dtype=torch.float32))


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (35.0, -10.0), (-60.0, 20.0)])
def test_a_generated_view_projects_the_head_as_the_network_sees_it(yaw, pitch):
    """headsplat's track of a view (head rotation and translation, camera at the origin) puts every FLAME point
    where the network's camera sees it in its world (3 x - offset)."""
    offset, scale = torch.tensor([0.02, -0.4, 0.1]), 1.07
    x = torch.randn(20, 3, dtype=torch.float64) * 0.08  # FLAME points, metres
    cam = orbit_camera(yaw, pitch)
    rot, trans = view_to_tracking(cam, offset, scale)
    # the network: world 3x - offset, its camera looking down -z with y up, normalised intrinsics at 512
    w2c = world_to_camera(cam[:16].view(1, 4, 4).double())[0]
    p = (3 * x - offset.double()) @ w2c[:3, :3].T + w2c[:3, 3]
    K = intrinsics().double() * torch.tensor([[512.0], [512.0], [1.0]])
    uv_net = torch.stack([p[:, 0] / -p[:, 2], -p[:, 1] / -p[:, 2]], 1) * K[0, 0] + K[:2, 2]
    # headsplat: the head posed in front of an OpenCV camera at the origin
    cv = posed_to_opencv(x, torch.tensor(scale, dtype=torch.float64), rot.double(), trans.double())
    uv, _ = project_points(cv, torch.eye(4, dtype=torch.float64), K)
    torch.testing.assert_close(uv, uv_net, atol=1e-3, rtol=0)
