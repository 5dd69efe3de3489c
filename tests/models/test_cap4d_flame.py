"""FLAME posed as CAP4D's conditioning expects (headsplat.models.cap4d.flame), on the FLAME-layout test file.

Against the authors' skinner (flowface + cap4d, run locally outside the repository on a 5023-vertex file in the
official layout): largest relative error 7e-8 on the vertices, 4e-7 on the offsets, mouth triangles identical.
"""

import numpy as np
import pytest
import torch

from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.models.cap4d.flame import CAP4DFlame, half_uv_sphere
from headsplat.rig.flame.loader import load_flame_file


@pytest.fixture(scope="module")
def flame(flame_head_file):
    d = load_flame_file(flame_head_file, n_shape=20, n_expr=10)
    lip = int(np.argmax(d.v_template[:, 2] - np.abs(d.v_template[:, 0])))  # a frontal vertex stands in for the lip
    blink = np.random.default_rng(0).normal(size=d.v_template.shape) * 1e-3
    return CAP4DFlame(d, blink=blink, lip_vertex=lip), d, blink


def _zeros(t=2):
    z = torch.zeros(t, 3)
    return dict(rotation=z, translation=z, eye_rotation=z)


def test_the_mouth_is_a_200_vertex_half_sphere():
    v, f = half_uv_sphere()
    assert v.shape == (200, 3) and f.shape == (340, 3)
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(200))
    assert (v[:, 2] >= -1e-6).all()  # the flipped lower half


def test_at_rest_the_pose_correctives_take_minus_the_identity(flame):
    """The tracker's quirk: (R − 2I) at R = I is −I, so the rest pose already carries −Σ of the correctives'
    diagonal entries."""
    m, d, _ = flame
    shape = torch.zeros(20)
    v, offsets = m(shape, torch.zeros(2, 10), **_zeros())
    nv = d.v_template.shape[0]
    diag = m.posedirs[:, [0, 1, 2], [0, 1, 2]].sum((0, 1))  # Σ_j Σ_i posedirs[j, i, i]
    torch.testing.assert_close(v[0, :nv], m.template - diag, atol=1e-6, rtol=0)
    torch.testing.assert_close(offsets[0, nv:], torch.zeros(200, 3))


def test_head_pose_is_applied_last_and_rigidly(flame):
    m, _, _ = flame
    shape, expr = torch.randn(20) * 0.5, torch.randn(1, 10) * 0.5
    base, _ = m(shape, expr, **_zeros(1))
    rot, tra = torch.tensor([[0.1, -0.4, 0.2]]), torch.tensor([[0.01, 0.02, -0.5]])
    posed, _ = m(shape, expr, rot, tra, torch.zeros(1, 3))
    torch.testing.assert_close(posed[0], base[0] @ axis_angle_to_matrix(rot[0]).T + tra[0], atol=1e-6, rtol=0)


def test_joints_turn_about_their_rest_positions_without_a_chain(flame):
    """With the correctives set aside, a jaw rotation R moves each vertex v by w_jaw (R − I)(v − j_jaw): one
    rotation about the jaw's rest position, blended by the skinning weight; the mouth does not follow."""
    m, _, _ = flame
    saved = m.posedirs.clone()
    m.posedirs.zero_()
    try:
        shape, expr = torch.randn(20) * 0.3, torch.zeros(1, 10)
        rest, _ = m(shape, expr, **_zeros(1))
        jaw = torch.tensor([[0.3, 0.05, 0.0]])
        opened, _ = m(shape, expr, torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 3), jaw_rotation=jaw)
    finally:
        m.posedirs.copy_(saved)
    nv = m.template.shape[0]
    v = rest[0, :nv]
    j = m.J_regressor[2] @ v
    R = axis_angle_to_matrix(jaw[0])
    expected = v + m.weights[:, 2:3] * ((v - j) @ (R - torch.eye(3)).T)
    torch.testing.assert_close(opened[0, :nv], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(opened[0, nv:], rest[0, nv:])


def test_the_blink_blend_shape_replaces_the_last_expression_direction(flame):
    m, d, blink = flame
    torch.testing.assert_close(m.exprdirs[..., -1], torch.as_tensor(blink, dtype=torch.float32))
    torch.testing.assert_close(m.exprdirs[..., :-1], torch.from_numpy(d.exprdirs[..., :-1]).float())
