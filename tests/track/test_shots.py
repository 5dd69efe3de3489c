"""Shot cuts: content change, face jumps, and the fitter's smoothing that must not cross them."""

import copy

import numpy as np

from headsplat.track.shots import ShotConfig, content_change, detect_shots, shot_ranges, thumbnail


def _face(cx, cy, iod, n=478):
    """(478, 3) landmarks: a ring whose eye corners are ``iod`` apart, centred at (cx, cy)."""
    from headsplat.face.indices import LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS

    pts = np.zeros((n, 3), np.float32)
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts[:, 0], pts[:, 1] = cx + iod * np.cos(ang), cy + iod * np.sin(ang)
    pts[RIGHT_EYE_CORNERS, :2] = [cx - iod / 2, cy]
    pts[LEFT_EYE_CORNERS, :2] = [cx + iod / 2, cy]
    return pts


def test_content_change_is_zero_for_equal_frames_and_large_for_a_cut():
    from skimage import data

    a = data.astronaut()
    b = data.coffee()
    assert content_change(thumbnail(a), thumbnail(a)) == 0.0
    assert content_change(thumbnail(a), thumbnail(b)) > ShotConfig().content_cut
    shifted = np.roll(a, 3, axis=1)  # a small pan is not a cut
    assert content_change(thumbnail(a), thumbnail(shifted)) < ShotConfig().content_cut / 2


def test_cuts_from_content_and_from_face_jumps():
    T = 30
    changes = np.full(T, 0.004)
    changes[10] = 0.3  # a hard cut
    changes[20] = 0.05  # a soft change: a cut only because the face jumps there
    lms = np.stack([_face(100 + t, 100, 40) for t in range(T)])  # a face drifting 1 px per frame
    lms[20:] = np.stack([_face(300, 120, 60) for _ in range(20, T)])
    found = np.ones(T, bool)
    shots = detect_shots(changes, lms, found)
    assert shot_ranges(shots) == [(0, 10), (10, 20), (20, 30)]
    # The same face jump without a change of picture (a fast head move) is no cut, nor a colour flicker alone.
    changes2 = np.full(T, 0.004)
    changes2[15] = 0.06
    assert detect_shots(changes2, lms[:, :, :] * 0 + lms[0], found).max() == 0
    # A face that reappears elsewhere after a gap: the cut goes where the picture changed most.
    lost = found.copy()
    lost[18:22] = False
    shots = detect_shots(changes, lms, lost)
    assert shot_ranges(shots) == [(0, 10), (10, 20), (20, 30)]


def test_fit_smoothing_does_not_cross_a_cut(rig):
    """A head that jumps at a cut is fitted right on both sides with shots, smeared without."""
    import torch

    from headsplat.track.fit import FitConfig, fit_landmarks, project

    T, W = 16, 256
    rot = torch.zeros(T, 3, dtype=torch.float64)
    rot[8:, 1] = 0.5  # a cut to a view 29 degrees to the side
    trans = torch.tensor([0.0, 0.0, -0.6], dtype=torch.float64).expand(T, 3)
    focal = torch.tensor(W / (2 * np.tan(np.radians(15))), dtype=torch.float64)
    with torch.no_grad():
        uv, z = project(copy.deepcopy(rig).double(), torch.zeros(rig.identity_shape, dtype=torch.float64),
                        torch.zeros((), dtype=torch.float64), torch.zeros(T, rig.n_expressions, dtype=torch.float64),
                        rot, trans, focal, W, W)
    lms = torch.cat([uv, (z - z.mean(-1, keepdim=True))[..., None] * 0], -1).float().numpy()
    found = np.ones(T, bool)
    cfg = FitConfig(fov_deg=30.0, smooth_rotation=5.0)
    shots = (np.arange(T) >= 8).astype(np.int32)
    with_cut = fit_landmarks(lms, found, W, W, rig, temporal=True, cfg=cfg, shots=shots)
    without = fit_landmarks(lms, found, W, W, rig, temporal=True, cfg=cfg)
    # The fit has a small constant bias here (no depth cue); what matters is the step at the cut.
    step_cut = with_cut.rotation[8, 1] - with_cut.rotation[7, 1]
    step_smear = without.rotation[8, 1] - without.rotation[7, 1]
    assert abs(step_cut - 0.5) < 0.1, step_cut
    assert step_smear < 0.15, step_smear  # without the cut the smoother turns the jump into a slow turn
    assert np.ptp(with_cut.rotation[:8, 1]) < 0.02 and np.ptp(with_cut.rotation[8:, 1]) < 0.02
