import math

import numpy as np
import pytest
import torch

from headsplat.face import indices as ix
from headsplat.rig.controls import CONTROL_NAMES, controls_to_params, demo_performance
from headsplat.rig.mesh_ops import boundary_loops


def _pose(rig, expression=None, rotation=None, translation=None, offsets=None, scale=1.0):
    e = torch.zeros(rig.n_expressions) if expression is None else expression
    return rig(torch.zeros(478, 3) if offsets is None else offsets, torch.tensor(scale), e,
               torch.zeros(3) if rotation is None else rotation,
               torch.zeros(3) if translation is None else translation).vertices


def test_head_is_closed_except_the_mouth_and_the_eyes_which_have_eyeballs_behind_them(rig):
    t = rig.triangles.numpy()
    loops = boundary_loops(t)
    assert sorted(len(lp) for lp in loops) == [16, 16, 16, 16, 20]
    lids = [lp for lp in loops if len(lp) == 16 and lp.max() < 478]
    caps = [lp for lp in loops if len(lp) == 16 and lp.min() >= 478]
    assert len(lids) == 2 and len(caps) == 2
    mouth = next(lp for lp in loops if len(lp) == 20)
    assert set(mouth) <= set(np.concatenate([ix.LIPS_INNER_UPPER, ix.LIPS_INNER_LOWER]))
    v = _pose(rig).numpy()
    for lid in lids:
        cap = min(caps, key=lambda c: np.linalg.norm(v[c].mean(0) - v[lid].mean(0)))
        # The cap's rim reaches beyond the opening (in the face plane) and lies behind it.
        c = v[lid].mean(0)
        def polar(p):
            d = (p - c)[:, :2]
            return np.arctan2(d[:, 1], d[:, 0]), np.linalg.norm(d, axis=1)
        a_lid, r_lid = polar(v[lid])
        a_cap, r_cap = polar(v[cap])
        o = np.argsort(a_cap)
        rim_at = np.interp(a_lid, a_cap[o], r_cap[o], period=2 * np.pi)  # the rim's radius towards each lid vertex
        assert (rim_at > 1.2 * r_lid).all()
        o = np.argsort(a_lid)
        lid_z_at = np.interp(a_cap, a_lid[o], v[lid, 2][o], period=2 * np.pi)
        assert (v[cap, 2] < lid_z_at - 0.002).all()


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


def test_blink_closes_the_lids_whatever_their_opening_and_the_eyeball_stays(rig):
    names = rig.expression_names
    for opened in ({}, {"wide_left": 1.0}, {"squint_left": -1.0}, {"wide_left": 1.0, "squint_left": -1.0}):
        e0 = torch.zeros(rig.n_expressions)
        for k, x in opened.items():
            e0[names.index(k)] = x
        e1 = e0.clone()
        e1[names.index("blink_left")] = 1.0
        v0, v1 = _pose(rig, e0).numpy(), _pose(rig, e1).numpy()
        gap0 = np.linalg.norm(v0[ix.LEFT_EYE_UPPER] - v0[ix.LEFT_EYE_LOWER], axis=1).mean()
        gap1 = np.linalg.norm(v1[ix.LEFT_EYE_UPPER] - v1[ix.LEFT_EYE_LOWER], axis=1).mean()
        assert gap1 < 0.1 * gap0, (opened, gap0, gap1)  # closed, however wide the eye was
        assert np.abs(v1[ix.RIGHT_EYE_UPPER] - v0[ix.RIGHT_EYE_UPPER]).max() < 1e-6  # the other eye stays open
        # The eyeball does not move with the lids, and the closed lids lie in front of it.
        moved = np.linalg.norm(v1 - v0, axis=1)
        caps = [lp for lp in boundary_loops(rig.triangles.numpy()) if len(lp) == 16 and lp.min() >= 478]
        cap = min(caps, key=lambda c: np.linalg.norm(v0[c].mean(0) - v0[ix.LEFT_EYE_UPPER].mean(0)))
        assert moved[cap].max() < 1e-7
        centre = int(min(rig.eyeball_centres, key=lambda i: np.linalg.norm(v0[int(i)] - v0[cap].mean(0))))
        assert v1[ix.LEFT_EYE_UPPER[2:5], 2].min() > v1[centre, 2] + 0.001


def test_teeth_upper_row_fixed_to_the_skull_lower_row_rides_on_the_jaw(rig):
    from headsplat.rig.open_rig import TEETH

    names = rig.expression_names
    is_teeth = rig.mouth_material == TEETH
    teeth, upper = rig.mouth_triangles[is_teeth], rig.mouth_upper[is_teeth]
    up_v, lo_v = teeth[upper].unique(), teeth[~upper].unique()
    assert len(teeth) > 0 and len(up_v) and len(lo_v)
    e = torch.zeros(rig.n_expressions)
    for k in ("jaw_open", "smile_left", "lips_funnel", "blink_left"):
        e[names.index(k)] = 1.0
    v0, v1 = _pose(rig), _pose(rig, e)
    assert (v1[up_v] - v0[up_v]).abs().max() < 1e-7
    # The lower row turns with the jaw: it moves down with the chin and stays behind the lower lip.
    assert (v1[lo_v, 1] - v0[lo_v, 1]).mean() < -0.004
    for jaw in (0.0, 0.5, 1.0):
        ej = torch.zeros(rig.n_expressions)
        ej[names.index("jaw_open")] = jaw
        vj = _pose(rig, ej).numpy()
        for row, lip in ((lo_v, ix.LIPS_INNER_LOWER), (up_v, ix.LIPS_INNER_UPPER)):
            o = np.argsort(vj[lip, 0])
            lip_z = np.interp(vj[row, 0], vj[lip, 0][o], vj[lip, 2][o])  # the lip's depth in front of each tooth
            assert (vj[row, 2] < lip_z - 0.002).all(), jaw


def test_asymmetric_shapes_move_one_side(rig):
    names = rig.expression_names
    v0 = _pose(rig)
    for name, moving, still in (("smile_left", 291, 61), ("brow_up_right", 105, 334), ("squint_left", 374, 145),
                                ("wide_right", 159, 386), ("mouth_sideways", 61, None)):
        e = torch.zeros(rig.n_expressions)
        e[names.index(name)] = 1.0
        d = (_pose(rig, e) - v0).norm(dim=-1)
        assert d[moving] > 1e-3, name
        if still is not None:
            assert d[still] < 0.1 * d[moving], name


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
    names = rig.expression_names
    assert exp[0, names.index("smile_left")] == 1 and exp[0, names.index("smile_right")] == 1
    assert rot[0, 1].item() == pytest.approx(math.radians(30), abs=1e-6)
    with pytest.raises(KeyError, match="unknown control 'grin'"):
        controls_to_params({"grin": 1.0}, rig.expression_names, 1)


def test_gaze_slides_irises_and_eyeballs_not_the_lids(rig):
    names = rig.expression_names
    v0 = _pose(rig)
    caps = [lp for lp in boundary_loops(rig.triangles.numpy()) if len(lp) == 16 and lp.min() >= 478]
    for name, axis in (("gaze_yaw", 0), ("gaze_pitch", 1)):
        e = torch.zeros(rig.n_expressions)
        e[names.index(name)] = 1.0
        d = (_pose(rig, e) - v0).numpy()
        for moving in (ix.RIGHT_IRIS, ix.LEFT_IRIS, caps[0], caps[1], rig.eyeball_centres.numpy()):
            assert (d[moving, axis] > 0.002).all() and np.abs(np.delete(d[moving], axis, 1)).max() < 1e-7, name
        lids = np.concatenate([ix.RIGHT_EYE_UPPER, ix.RIGHT_EYE_LOWER, ix.LEFT_EYE_UPPER, ix.LEFT_EYE_LOWER])
        assert np.abs(d[lids]).max() < 1e-7 and np.abs(d[:468]).max() < 1e-7
