import math

import torch

from headsplat.core.rotation import (
    axis_angle_to_matrix,
    euler_yxz_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler_yxz,
    matrix_to_quat,
    quat_multiply,
    quat_to_matrix,
)


def test_axis_angle_round_trip_including_zero_and_pi():
    torch.manual_seed(0)
    aa = torch.randn(100, 3, dtype=torch.float64)
    aa = aa / aa.norm(dim=-1, keepdim=True) * torch.rand(100, 1, dtype=torch.float64) * 3.1
    aa[0] = 0
    m = axis_angle_to_matrix(aa)
    assert torch.allclose(m @ m.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(100, 3, 3), atol=1e-12)
    assert torch.allclose(matrix_to_axis_angle(m), aa, atol=1e-9)


def test_quaternion_order_is_wxyz():
    # 90 degrees about +x as (w, x, y, z): must map +y to +z. An xyzw mix-up would rotate about another axis.
    q = torch.tensor([math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0])
    r = quat_to_matrix(q)
    assert torch.allclose(r @ torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    assert torch.allclose(matrix_to_quat(r), q, atol=1e-6)


def test_quaternion_matrix_round_trip_and_product():
    torch.manual_seed(1)
    q = torch.nn.functional.normalize(torch.randn(50, 4, dtype=torch.float64), dim=-1)
    q = torch.where(q[:, :1] < 0, -q, q)
    assert torch.allclose(matrix_to_quat(quat_to_matrix(q)), q, atol=1e-10)
    p = torch.nn.functional.normalize(torch.randn(50, 4, dtype=torch.float64), dim=-1)
    assert torch.allclose(quat_to_matrix(quat_multiply(p, q)), quat_to_matrix(p) @ quat_to_matrix(q), atol=1e-10)


def test_gradcheck_axis_angle():
    aa = torch.tensor([[0.3, -0.2, 0.5], [1e-5, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,))


def test_euler_convention_yaw_turns_face_to_plus_x():
    r = euler_yxz_to_matrix(torch.tensor(math.radians(30)), torch.tensor(0.0), torch.tensor(0.0))
    face = r @ torch.tensor([0.0, 0.0, 1.0])
    assert face[0] > 0.49 and abs(face[1]) < 1e-6
    ang = torch.tensor([0.4, -0.3, 0.2])
    assert torch.allclose(matrix_to_euler_yxz(euler_yxz_to_matrix(*ang)), ang, atol=1e-6)
