"""The fitter on landmarks projected from known parameters (no images involved)."""

import math

import numpy as np
import pytest
import torch

from headsplat.core.rotation import axis_angle_to_matrix, matrix_to_euler_yxz
from headsplat.rig.controls import controls_to_params
from headsplat.track.fit import FitConfig, fit_landmarks, per_frame_gauss_newton, project

W = H = 512
FOCAL = W / (2 * math.tan(math.radians(25) / 2))


def _landmarks(rig, controls, n, noise_px=0.0, seed=0):
    exp, rot = controls_to_params(controls, rig.expression_names, n)
    trans = torch.tensor([0.0, 0.01, -0.7]).expand(n, 3)
    with torch.no_grad():
        uv, z = project(rig, torch.zeros(478, 3), torch.zeros(()), exp, rot, trans, FOCAL, W, H)
    rel = (z - z.mean(-1, keepdim=True)) * FOCAL / z.mean(-1, keepdim=True)
    lm = torch.cat([uv, rel[..., None]], -1).numpy()
    lm[..., :2] += np.random.default_rng(seed).normal(0, noise_px, lm[..., :2].shape)
    return lm.astype(np.float32), exp.numpy(), rot


def _angles_deg(rot):
    return np.degrees(matrix_to_euler_yxz(axis_angle_to_matrix(torch.as_tensor(rot).double())).numpy())


def test_recovers_pose_expression_and_focal(rig):
    n = 30
    t = np.arange(n) / 25
    controls = {"head_yaw": 25 * np.sin(2 * np.pi * t), "head_pitch": 10 * np.cos(2 * np.pi * t),
                "jaw_open": 0.5 + 0.5 * np.sin(5 * t), "blink_left": (t > 0.6).astype(float)}
    lm, exp, rot = _landmarks(rig, controls, n, noise_px=0.3)
    res = fit_landmarks(lm, np.ones(n, bool), W, H, rig, temporal=True)
    err = np.abs(_angles_deg(res.rotation) - _angles_deg(rot)).max()
    assert err < 2.0, f"pose error {err:.2f} deg"
    jaw = rig.expression_names.index("jaw_open")
    assert np.corrcoef(res.expression[:, jaw], exp[:, jaw])[0, 1] > 0.97
    assert np.abs(res.expression[:, jaw] - exp[:, jaw]).mean() < 0.1
    assert abs(res.focal / FOCAL - 1) < 0.2  # focal length and depth trade off for a small head
    assert np.nanmean(res.fit_error) < 1.0


def test_still_head_does_not_jitter_and_fast_motion_does_not_lag(rig):
    n = 40
    still, _, _ = _landmarks(rig, {"head_yaw": np.full(n, 10.0)}, n, noise_px=1.0, seed=3)
    cfg = FitConfig(fov_deg=25.0)
    smooth = fit_landmarks(still, np.ones(n, bool), W, H, rig, temporal=True, cfg=cfg)
    raw = fit_landmarks(still, np.ones(n, bool), W, H, rig, temporal=False, cfg=cfg)
    jitter_smooth = _angles_deg(smooth.rotation)[:, 0].std()
    jitter_raw = _angles_deg(raw.rotation)[:, 0].std()
    assert jitter_smooth < 0.5 * jitter_raw, (jitter_smooth, jitter_raw)
    # 6 degrees per frame (150 deg/s at 25 fps), then a sudden reversal
    yaw = np.concatenate([np.linspace(-30, 30, 20), np.linspace(30, -30, 20)])
    fast, _, rot = _landmarks(rig, {"head_yaw": yaw}, n, noise_px=0.3, seed=4)
    res = fit_landmarks(fast, np.ones(n, bool), W, H, rig, temporal=True, cfg=cfg)
    lag = np.abs(_angles_deg(res.rotation)[:, 0] - yaw).max()
    assert lag < 1.5, f"max yaw error on fast motion {lag:.2f} deg"


def test_missing_frames_are_interpolated(rig):
    n = 20
    yaw = np.linspace(-20, 20, n)
    lm, _, _ = _landmarks(rig, {"head_yaw": yaw}, n)
    found = np.ones(n, bool)
    found[8:11] = False
    lm[~found] = np.nan
    res = fit_landmarks(lm, found, W, H, rig, temporal=True, cfg=FitConfig(fov_deg=25.0))
    assert np.abs(_angles_deg(res.rotation)[8:11, 0] - yaw[8:11]).max() < 1.5
    assert np.isnan(res.fit_error[~found]).all()


def test_calibrate_lids_scales_up_closing_eyes_only():
    """MediaPipe reads a full blink as ~57 % closure: the calibration raises closure, leaves open and wide eyes
    (and noise on open eyes) as they are, and never moves a lid past the other."""
    from headsplat.face import indices as ix
    from headsplat.track.fit import calibrate_lids

    T = 40
    lm = np.zeros((T, 478, 3))
    for upper, lower, corners, x0 in ((ix.RIGHT_EYE_UPPER, ix.RIGHT_EYE_LOWER, ix.RIGHT_EYE_CORNERS, 100.0),
                                      (ix.LEFT_EYE_UPPER, ix.LEFT_EYE_LOWER, ix.LEFT_EYE_CORNERS, 200.0)):
        xs = x0 + np.linspace(0, 60, len(upper))
        lm[:, corners[0], :2] = [x0, 100]
        lm[:, corners[1], :2] = [x0 + 60, 100]
        lm[:, upper, 0] = xs
        lm[:, lower, 0] = xs
        lm[:, lower, 1] = 110.0
    gap = np.full(T, 20.0)  # open: the upper lid 20 px above the lower
    gap[10] = 20.0 * 0.43  # a blink as MediaPipe reads it
    gap[20] = 20.0 * 0.97  # landmark noise
    gap[30] = 24.0  # wide eyes
    for upper in (ix.RIGHT_EYE_UPPER, ix.LEFT_EYE_UPPER):
        lm[:, upper, 1] = 110.0 - gap[:, None]
    out = calibrate_lids(lm, np.ones(T, bool), gain=1.75)
    new_gap = 110.0 - out[:, ix.RIGHT_EYE_UPPER[3], 1]
    assert new_gap[10] < 0.05 * 20.0  # closed
    assert new_gap[20] == pytest.approx(gap[20], abs=1e-9) and new_gap[30] == pytest.approx(24.0)
    assert new_gap[0] == pytest.approx(20.0) and (new_gap >= 0).all()
    assert np.array_equal(out[:, ix.RIGHT_EYE_LOWER], lm[:, ix.RIGHT_EYE_LOWER])


def test_per_frame_solver_projects_onto_lower_bounds():
    """Residuals pull the first parameter to −1 and the second to +2: bounded at 0, the first stops there and the
    second still reaches its target (and so does the first without the bound)."""
    target = torch.tensor([[-1.0, 2.0], [0.5, -3.0]], dtype=torch.float64)

    def residuals(x):
        return (x - target)[:, :, None].expand(-1, -1, 2) * 0.01, torch.ones(2, dtype=torch.float64)

    x0 = torch.zeros(2, 2, dtype=torch.float64)
    prior = torch.zeros(2, dtype=torch.float64)
    free = per_frame_gauss_newton(residuals, x0, prior, 1.0, iters=20)
    torch.testing.assert_close(free, target, atol=1e-6, rtol=0)
    lower = torch.tensor([0.0, -math.inf], dtype=torch.float64)
    bounded = per_frame_gauss_newton(residuals, x0, prior, 1.0, iters=20, lower=lower)
    torch.testing.assert_close(bounded, torch.tensor([[0.0, 2.0], [0.5, -3.0]], dtype=torch.float64), atol=1e-6, rtol=0)
