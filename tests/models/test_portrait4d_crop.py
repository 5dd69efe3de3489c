"""The PD-FGC face crop: the similarity fit (against skimage, and on an exact similarity), the warp against a
direct bilinear lookup, and the crop's geometry. Equivalence with the reference's skimage + kornia path is
measured outside the repository."""

import math
import warnings

import numpy as np
import pytest
import torch

from headsplat.models.portrait4d.crop import TEMPLATE, crop_transform, motion_crop, three_points, umeyama, warp_affine


def _similarity(scale=0.7, angle=0.2, t=(30.0, -12.0)):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[scale * c, -scale * s, t[0]], [scale * s, scale * c, t[1]], [0, 0, 1]])


def test_umeyama_recovers_an_exact_similarity_and_matches_skimage():
    T = _similarity()
    src = np.random.default_rng(0).uniform(0, 200, size=(5, 2))
    dst = (src @ T[:2, :2].T) + T[:2, 2]
    np.testing.assert_allclose(umeyama(src, dst), T, atol=1e-9)
    skimage = pytest.importorskip("skimage.transform")
    src32, dst32 = src.astype(np.float32)[:3], TEMPLATE
    ref = skimage.SimilarityTransform()
    with warnings.catch_warnings():  # estimate() is deprecated in skimage 0.26, the reference's call
        warnings.simplefilter("ignore", FutureWarning)
        ref.estimate(src32, dst32)
    np.testing.assert_array_equal(umeyama(src32, dst32), ref.params)  # same dtypes, same operations


def test_warp_affine_equals_a_direct_bilinear_lookup():
    torch.manual_seed(0)
    img = torch.rand(1, 2, 20, 30)
    M = torch.tensor(_similarity(1.3, -0.1, (-4.0, 2.0))[:2], dtype=torch.float32)[None]
    out = warp_affine(img, M, (12, 16))
    inv = np.linalg.inv(np.vstack([M[0].numpy(), [0, 0, 1]]).astype(np.float64))
    a = img[0].numpy().astype(np.float64)
    for y in range(12):
        for x in range(16):
            sx, sy, _ = inv @ [x, y, 1]
            x0, y0 = math.floor(sx), math.floor(sy)
            val = np.zeros(2)
            for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
                xi, yi = x0 + dx, y0 + dy
                wgt = (1 - abs(sx - xi)) * (1 - abs(sy - yi))
                if 0 <= xi < 30 and 0 <= yi < 20:
                    val += wgt * a[:, yi, xi]
            np.testing.assert_allclose(out[0, :, y, x].numpy(), val, atol=1e-5)


def test_motion_crop_places_the_eyes_and_mouth_on_the_template():
    lm = np.zeros((68, 2), np.float32)
    target = np.array([[200.0, 230.0], [310.0, 228.0], [255.0, 350.0]], np.float32)
    lm[36:42], lm[42:48], lm[60:68] = target[0], target[1], target[2]
    np.testing.assert_allclose(three_points(lm), target)
    M = crop_transform(torch.from_numpy(lm)[None], 512)[0].double().numpy()
    mapped = target @ M[:, :2].T + M[:, 2]
    assert np.abs(mapped - TEMPLATE).max() < 2.0  # three points, four parameters: nearly exact
    img = torch.zeros(1, 3, 512, 512)
    img[..., 220:240, 190:210] = 1.0  # a bright square over the right eye
    crop = motion_crop(img, torch.from_numpy(lm)[None])
    assert crop.shape == (1, 3, 224, 224) and crop.min() >= -1 and crop.max() <= 1
    # the eye lands at (87, 59) of the warp; the 192² window from column 16, resized by 224/192
    ys, xs = torch.nonzero(crop[0, 0] > 0.5, as_tuple=True)
    assert abs(xs.float().mean().item() - (87 - 16) * 224 / 192) < 4
    assert abs(ys.float().mean().item() - 59 * 224 / 192) < 4
