"""Rotation conversions on tensors. Quaternions are (w, x, y, z); axis-angle vectors are (x, y, z) * angle."""

from __future__ import annotations

import numpy as np
import torch

from headsplat.core.validate import check_shape


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, smooth at zero.

    Args:
        aa: (..., 3) axis-angle vectors in radians.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    check_shape("aa", aa, ("...", 3))
    theta2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = theta2 < 1e-8
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = theta2_safe.sqrt()
    # sin(t)/t and (1-cos t)/t^2 with Taylor series near zero.
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2_safe)
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`axis_angle_to_matrix` through the quaternion (stable for all angles).

    Args:
        m: (..., 3, 3) rotation matrices.

    Returns:
        (..., 3) axis-angle vectors with angle in [0, pi].
    """
    q = matrix_to_quat(m)
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., :1], q[..., 1:]
    n = v.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(n, w)
    scale = torch.where(n < 1e-8, 2 / w.clamp_min(1e-8), angle / n.clamp_min(1e-12))
    return v * scale


def quat_to_matrix(q: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Unit quaternions (w, x, y, z) to rotation matrices; ``q`` is normalised first.

    Args:
        q: (..., 4) quaternions, w first.
        normalize: False applies the rotation formula to ``q`` as it is (for a non-unit q the result is not a
            rotation): what the 3DGS CUDA rasterizer computes, which some released models were trained with.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    check_shape("q", q, ("...", 4))
    if normalize:
        q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    m = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1)
    return m.reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to unit quaternions (w, x, y, z) with w >= 0 (Shepperd's method, branch-free).

    Args:
        m: (..., 3, 3) rotation matrices.

    Returns:
        (..., 4) quaternions.
    """
    check_shape("m", m, ("...", 3, 3))
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # Four candidate solutions, each accurate when its denominator is large; pick the best per element.
    cands = torch.stack([
        torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
        torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
    ], -2)  # (..., 4, 4)
    diag = torch.stack([cands[..., i, i] for i in range(4)], -1)
    best = diag.argmax(-1, keepdim=True)
    q = torch.gather(cands, -2, best[..., None].expand(*best.shape, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a * b`` of (w, x, y, z) quaternions, shapes (..., 4)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], -1)


def euler_yxz_to_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Head rotation from yaw (about +y), pitch (about +x) and roll (about +z), applied as R = Ry @ Rx @ Rz.

    In the canonical head space (+y up, +z out of the face) positive yaw turns the face towards +x (the
    person's left), positive pitch tilts it down, positive roll tilts the top of the head towards -x.

    Args:
        yaw, pitch, roll: (...) angles in radians.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    z = torch.zeros_like(yaw)
    ry = axis_angle_to_matrix(torch.stack([z, yaw, z], -1))
    rx = axis_angle_to_matrix(torch.stack([pitch, z, z], -1))
    rz = axis_angle_to_matrix(torch.stack([z, z, roll], -1))
    return ry @ rx @ rz


def matrix_to_euler_yxz(m: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`euler_yxz_to_matrix`: (..., 3, 3) -> (..., 3) as (yaw, pitch, roll) in radians."""
    pitch = torch.asin((-m[..., 1, 2]).clamp(-1, 1))
    yaw = torch.atan2(m[..., 0, 2], m[..., 2, 2])
    roll = torch.atan2(m[..., 1, 0], m[..., 1, 1])
    return torch.stack([yaw, pitch, roll], -1)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama's least-squares similarity: s, R, t minimising sum |s R src_i + t - dst_i|^2 (R a proper
    rotation, no reflection).

    Args:
        src, dst: (N, D) corresponding points (D = 2 or 3).

    Returns:
        scale s, (D, D) rotation R, (D,) translation t.
    """
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(src.shape[1])
    d[-1] = np.sign(np.linalg.det(u @ vt))
    R = u @ np.diag(d) @ vt
    s = float((sig * d).sum() / (a ** 2).sum(1).mean())
    return s, R, md - s * R @ ms
