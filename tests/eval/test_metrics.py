import math

import numpy as np
import pytest
import torch

from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.eval import metrics as M
from headsplat.eval.baselines import warp_face
from headsplat.face.indices import LIPS_INNER_LOWER, MOUTH_CORNERS, RIGHT_EYE_UPPER, interocular


@pytest.fixture(scope="module")
def astro_landmarks():
    from skimage import data

    from headsplat.face import LandmarkDetector

    img = data.astronaut()
    with LandmarkDetector("image") as det:
        return img, det(img).points


def test_psnr_identical_and_known_noise():
    rng = np.random.default_rng(0)
    a = np.full((128, 128, 3), 0.5, np.float32)
    assert M.psnr(a, a) == pytest.approx(120.0)
    noisy = a + rng.normal(0, 0.05, a.shape).astype(np.float32)
    assert M.psnr(noisy, a) == pytest.approx(20 * math.log10(1 / 0.05), abs=0.1)  # 26.02 dB
    # uint8 images are scaled to [0, 1]: an error of 5 levels everywhere is 20 log10(255 / 5) dB.
    b8 = np.full((32, 32, 3), 100, np.uint8)
    assert M.psnr(b8 + 5, b8) == pytest.approx(20 * math.log10(255 / 5), abs=1e-3)


def test_psnr_and_ssim_over_a_mask():
    a = np.full((64, 64, 3), 0.5, np.float32)
    b = a.copy()
    b[:, 32:] += 0.1  # error only on the right half
    left = np.zeros((64, 64), bool)
    left[:, :32] = True
    assert M.psnr(b, a, left) == pytest.approx(120.0)
    assert M.psnr(b, a, ~left) == pytest.approx(20.0, abs=1e-3)
    assert M.psnr(b, a) == pytest.approx(10 * math.log10(1 / (0.5 * 0.01)), abs=1e-3)
    with pytest.raises(ValueError, match="mask shape"):
        M.psnr(a, b, left[:10])


def test_ssim_matches_scikit_image(astro_landmarks):
    from skimage.metrics import structural_similarity

    img = astro_landmarks[0][:200, :200].astype(np.float32) / 255
    rng = np.random.default_rng(1)
    noisy = np.clip(img + rng.normal(0, 0.08, img.shape), 0, 1).astype(np.float32)
    assert M.ssim(img, img) == pytest.approx(1.0, abs=1e-6)
    _, smap = structural_similarity(img, noisy, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=1.0, channel_axis=2, full=True)
    interior = np.zeros(img.shape[:2], bool)
    interior[8:-8, 8:-8] = True  # away from the borders, where the two pad differently
    ref = float(smap.mean(-1)[interior].mean())
    assert ref < 0.9  # the noise matters
    assert M.ssim(img, noisy, interior) == pytest.approx(ref, abs=2e-3)


def test_landmark_errors(astro_landmarks):
    pts = astro_landmarks[1]
    akd, nme = M.landmark_errors(pts[None] + np.array([3.0, 4.0, 0.0]), pts[None])
    assert akd[0] == pytest.approx(5.0)
    assert nme[0] == pytest.approx(5.0 / interocular(pts[:, :2]))
    akd, _ = M.landmark_errors(np.full_like(pts, np.nan)[None], pts[None])
    assert np.isnan(akd[0])


def test_mouth_and_eye_opening_follow_the_lids_and_lips(astro_landmarks):
    pts = astro_landmarks[1].astype(np.float64)
    width = np.linalg.norm(pts[MOUTH_CORNERS[0], :2] - pts[MOUTH_CORNERS[1], :2])
    opened = pts.copy()
    opened[LIPS_INNER_LOWER[1:-1], 1] += 10.0  # drop the inner lower lip by 10 px
    gain = M.mouth_opening(opened[None])[0] - M.mouth_opening(pts[None])[0]
    assert gain == pytest.approx(10.0 / width, rel=0.15)  # the lips are not exactly vertical pairs
    shut = pts.copy()
    shut[RIGHT_EYE_UPPER[1:-1], 1] += 4.0  # lower the right upper lid
    assert M.eye_opening(shut[None])[0] < M.eye_opening(pts[None])[0] - 0.05


def test_correlation():
    t = np.linspace(0, 1, 20)
    assert M.correlation(t, 2 * t + 1) == pytest.approx(1.0)
    assert M.correlation(t, -t) == pytest.approx(-1.0)
    assert np.isnan(M.correlation(t, np.ones_like(t)))  # the reference does not move: nothing to follow
    assert M.correlation(np.ones_like(t), t) == 0.0  # the reference moves, the output does not
    assert np.isnan(M.correlation(t, 1 + 0.001 * t, min_std=0.01))  # it moves less than the threshold
    with_nan = t.copy()
    with_nan[3] = np.nan
    assert M.correlation(with_nan, t) == pytest.approx(1.0)


def test_rotation_distances_and_yaw_pitch():
    a = np.array([[0.0, 0.0, 0.0], [0.1, 0.2, 0.0]])
    b = np.array([[0.0, math.radians(30), 0.0], [0.1, 0.2, 0.0]])
    assert M.rotation_angle_deg(a, b) == pytest.approx([30.0, 0.0], abs=1e-6)
    yaw, pitch = M.yaw_pitch_deg(np.array([[0.0, math.radians(20), 0.0], [math.radians(10), 0.0, 0.0]]))
    assert yaw == pytest.approx([20.0, 0.0], abs=1e-6)
    # A rotation of +10 degrees about +x turns the face (+z) towards -y: it looks down.
    assert pitch == pytest.approx([0.0, 10.0], abs=1e-6)
    r = axis_angle_to_matrix(torch.tensor([math.radians(10), 0.0, 0.0], dtype=torch.float64)).numpy()
    assert r[1, 2] < 0


def test_expression_distance():
    assert M.expression_distance(np.zeros((2, 4)), np.array([[1.0, 0, 0, 0], [0, 0, 0, 0]])) == \
        pytest.approx([0.25, 0.0])


def test_warp_face_identity_and_translation(astro_landmarks):
    img, pts = astro_landmarks
    same = warp_face(img, pts, pts)
    assert M.psnr(same[40:-40, 40:-40], img[40:-40, 40:-40]) > 35
    moved = warp_face(img, pts, pts + np.array([12.0, 6.0, 0.0]))
    # Everything (face and, through the similarity transform, the rest) moves by (12, 6) px.
    assert M.psnr(moved[56:-40, 62:-40], img[50:-46, 50:-52]) > 30
    assert M.psnr(moved, img) < 25


def test_seam_excess_sees_a_pasted_crop_border_only():
    from skimage import data

    a = data.astronaut()
    assert M.seam_excess(a, a) == 0.0
    pasted = a.copy()
    pasted[100:400, 150:350] = np.clip(a[100:400, 150:350].astype(int) + 40, 0, 255).astype(np.uint8)
    # A 300-row border stepping by ~40 grey levels: about 40 * 300 / 512 on those two columns.
    assert 15 < M.seam_excess(pasted, a) < 30


def test_speckles_counts_isolated_outliers_not_edges():
    img = np.full((64, 64, 3), 128, np.uint8)
    img[:, 32:] = 200  # a straight edge is no speckle
    assert M.speckles(img) == 0.0
    img[10, 10] = 0
    img[40, 50] = 255 - 200  # two isolated specks, one on each side
    assert M.speckles(img) == pytest.approx(2 / 64 ** 2)
    mask = np.zeros((64, 64), bool)
    mask[:, :32] = True
    assert M.speckles(img, mask) == pytest.approx(1 / (64 * 32))
