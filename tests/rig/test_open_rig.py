import math

import numpy as np
import torch

from headsplat.face import indices as ix
from headsplat.rig.controls import CONTROL_NAMES, controls_to_params, demo_performance
from headsplat.rig.mesh_ops import boundary_loops

import pytest


def _pose(rig, expression=None, rotation=None, translation=None, offsets=None, scale=1.0):
    e = torch.zeros(rig.n_expressions) if expression is None else expression
    return rig(torch.zeros(478, 3) if offsets is None else offsets, torch.tensor(scale), e,
               torch.zeros(3) if rotation is None else rotation,
               torch.zeros(3) if translation is None else translation).vertices


def test_head_is_closed_except_the_mouth(rig):
    loops = boundary_loops(rig.triangles.numpy())
    assert [len(lp) for lp in loops] == [20]
    assert set(loops[0]) <= set(np.concatenate([ix.LIPS_INNER_UPPER, ix.LIPS_INNER_LOWER]))


def test_template_is_metric_symmetric_and_faces_plus_z(rig):
    v = rig.template.numpy()
    assert 0.06 < np.linalg.norm(v[ix.RIGHT_EYE_CORNERS].mean(0) - v[ix.LEFT_EYE_CORNERS].mean(0)) < 0.07
    assert v[ix.NOSE_TIP, 2] > v[:478, 2].mean() + 0.03  # nose points along +z
    assert v[ix.FOREHEAD, 1] > v[ix.CHIN, 1]  # +y up
    m = rig.mirror.numpy()
    assert np.allclose(v[m][:478] * [-1, 1, 1], v[:478], atol=1e-6)
    t = rig.triangles.numpy()
    n = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    outward = ((v[t].mean(1) - v.mean(0)) * n).sum(1) > 0
    assert outward.mean() > 0.97


def test_jaw_open_moves_the_chin_down_not_the_forehead(rig):
    e = torch.zeros(rig.n_expressions)
    e[rig.expression_names.index("jaw_open")] = 1.0
    d = (_pose(rig, e) - _pose(rig)).numpy()
    assert d[ix.CHIN, 1] < -0.01
    assert np.abs(d[ix.FOREHEAD]).max() < 1e-6 and np.abs(d[ix.NOSE_TIP]).max() < 1e-6
    gap = _pose(rig, e)[ix.LOWER_LIP_CENTRE, 1] - _pose(rig, e)[ix.UPPER_LIP_CENTRE, 1]
    assert gap < -0.01


def test_blink_closes_the_lids(rig):
    e = torch.zeros(rig.n_expressions)
    e[rig.expression_names.index("blink_left")] = 1.0
    v0, v1 = _pose(rig).numpy(), _pose(rig, e).numpy()
    gap0 = np.linalg.norm(v0[ix.LEFT_EYE_UPPER] - v0[ix.LEFT_EYE_LOWER], axis=1).mean()
    gap1 = np.linalg.norm(v1[ix.LEFT_EYE_UPPER] - v1[ix.LEFT_EYE_LOWER], axis=1).mean()
    assert gap1 < 0.15 * gap0
    assert np.abs(v1[ix.RIGHT_EYE_UPPER] - v0[ix.RIGHT_EYE_UPPER]).max() < 1e-6  # the other eye stays open


def test_pose_is_rigid_and_the_shell_follows(rig):
    rot = torch.tensor([0.2, -0.5, 0.1])
    tr = torch.tensor([0.01, -0.02, -0.7])
    v0, v1 = _pose(rig), _pose(rig, rotation=rot, translation=tr)
    v0, v1 = v0.double(), v1.double()
    d0 = torch.cdist(v0, v0)
    d1 = torch.cdist(v1, v1)
    assert torch.allclose(d0, d1, atol=1e-5)


def test_shell_blends_into_the_face_outline(rig):
    e = torch.zeros(rig.n_expressions)
    e[rig.expression_names.index("jaw_open")] = 1.0
    d = (_pose(rig, e) - _pose(rig)).norm(dim=-1)
    spread = rig.spread[478:]
    near = spread.sum(1) > 0.5  # first ring: follows the outline strongly
    far = spread.sum(1) == 0
    assert d[478:][near].max() > 1e-3 and d[478:][far].max() == 0


def test_named_controls(rig):
    perf = demo_performance(50, 25.0)
    assert set(perf) == set(CONTROL_NAMES)
    exp, rot = controls_to_params({"smile": 1.0, "head_yaw": 30.0}, rig.expression_names, 1)
    assert exp[0, rig.expression_names.index("smile_left")] == 1 and exp[0, rig.expression_names.index("smile_right")] == 1
    assert rot[0, 1].item() == pytest.approx(math.radians(30), abs=1e-6)
    with pytest.raises(KeyError, match="unknown control 'grin'"):
        controls_to_params({"grin": 1.0}, rig.expression_names, 1)
