"""Tracking with FLAME (--rig flame) on the trackable FLAME-layout file the tests generate."""

import numpy as np
import pytest
import torch

from headsplat.core.camera import intrinsics_from_fov, project_points, world_to_opencv
from headsplat.rig.flame.head import FlameHead
from headsplat.track.fit import FitConfig, fit_landmarks


@pytest.fixture(scope="module")
def head(flame_head_file, tmp_path_factory):
    return FlameHead.from_file(flame_head_file, n_shape=20, n_expr=10,
                               cache_dir=tmp_path_factory.mktemp("cache"))


def _landmarks_of(head, identity, scale, expression, rotation, translation, size, fov):
    with torch.no_grad():
        pts = head.landmarks(identity, torch.tensor(scale), expression, rotation, translation)
    uv, z = project_points(pts.double(), world_to_opencv().double(), intrinsics_from_fov(fov, size, size).double())
    # MediaPipe's z: relative depth in pixels on the x scale (only its centred profile is used)
    f = size / (2 * np.tan(np.radians(fov) / 2))
    depth = (z - z.mean(-1, keepdim=True)) * f / z.mean(-1, keepdim=True)
    return torch.cat([uv, depth[..., None]], -1).float().numpy()


def test_round_trip_recovers_pose_expression_jaw_and_eyes(head):
    """Random FLAME parameters -> landmarks through the embedding -> tracker -> the same parameters."""
    rng = np.random.default_rng(3)
    T, E, size, fov = 12, head.n_expressions, 512, 30.0
    ident = torch.from_numpy(rng.normal(scale=0.8, size=head.n_shape)).float()
    expr = torch.zeros(T, E)
    # unit-variance coefficients (0 would duplicate the jaw)
    expr[:, 1:7] = torch.from_numpy(rng.uniform(-2, 2, size=(T, 6))).float()
    expr[:, head.n_expr] = torch.from_numpy(rng.uniform(0.0, 0.25, size=T)).float()  # jaw opening
    gaze = torch.from_numpy(rng.uniform(-0.25, 0.25, size=(T, 2))).float()  # eyes: pitch, yaw (both eyes)
    expr[:, head.n_expr + 3: head.n_expr + 5] = gaze
    expr[:, head.n_expr + 6: head.n_expr + 8] = gaze
    rot = torch.from_numpy(rng.uniform(-0.3, 0.3, size=(T, 3))).float()
    trans = torch.tensor([0.0, 0.0, -0.6]) + torch.from_numpy(rng.normal(scale=0.02, size=(T, 3))).float()
    lms = _landmarks_of(head, ident, 1.0, expr, rot, trans, size, fov)
    res = fit_landmarks(lms, np.ones(T, bool), size, size, head, temporal=False, cfg=FitConfig(fov_deg=fov))
    assert np.nanmean(res.fit_error) < 0.5, res.fit_error  # pixels
    rot_err = np.degrees(np.abs(res.rotation - rot.numpy())).max()
    assert rot_err < 1.5, rot_err
    n = head.n_expr
    exp = res.expression
    # Expression as geometry: coefficients whose motion is mostly along the view axis are weakly observed
    # from 2D landmarks, so compare the expression-deformed faces (head space, landmarks, millimetres).
    zero_pose = torch.zeros(T, 3)

    def face(identity, scale, e):
        with torch.no_grad():
            return head.landmarks(identity, torch.tensor(scale), e, zero_pose, zero_pose)[:, head.fit_points[:-2]]

    fit_id, fit_scale = torch.from_numpy(res.identity), float(res.identity_scale)
    fitted = face(fit_id, fit_scale, torch.from_numpy(exp)) - face(fit_id, fit_scale, torch.zeros_like(expr))
    truth = face(ident, 1.0, expr) - face(ident, 1.0, torch.zeros_like(expr))
    moved = truth.norm(dim=-1).mean() * 1000
    # in the image plane (depth along the view axis is what 2D landmarks leave open: ~1 mm here)
    err_xy = (fitted - truth)[..., :2].norm(dim=-1).mean() * 1000
    assert err_xy < 0.15 * moved, (err_xy, moved)
    assert np.degrees(np.abs(exp[:, n] - expr[:, n].numpy())).max() < 1.5
    # gaze from the two iris centres alone
    assert np.degrees(np.abs(exp[:, n + 3: n + 5] - gaze.numpy())).max() < 3.0
    assert np.degrees(np.abs(exp[:, n + 6: n + 8] - gaze.numpy())).max() < 3.0
    # landmarks it has no embedding for are not reported
    assert np.isnan(res.reprojected[:, 469]).all() and np.isfinite(res.reprojected[:, head.fit_points]).all()


def test_a_mesh_without_a_mouth_opening_is_refused_with_the_reason(tmp_path, synthetic_flame):
    from headsplat.core.errors import InputError

    path = synthetic_flame(tmp_path / "flame2023.pkl", n_verts=300)  # a closed lumpy sphere
    with pytest.raises(InputError, match="flame2023.pkl: this FLAME mesh has no mouth opening between the lips"):
        FlameHead.from_file(path, cache_dir=tmp_path)


def test_iris_centres_map_to_the_eye_on_their_side(head):
    from headsplat.face.indices import LEFT_IRIS, RIGHT_IRIS, eye_centres

    lm = head.neutral_landmarks().numpy()
    right, left = eye_centres(lm)  # from the eyelids (mesh landmarks)
    assert np.linalg.norm(lm[RIGHT_IRIS[0], :2] - right[:2]) < 0.004
    assert np.linalg.norm(lm[LEFT_IRIS[0], :2] - left[:2]) < 0.004
