"""Projection of 3D Gaussians to screen-space ellipses, and view-dependent colour from spherical harmonics.

Shared by every CPU backend, differentiable through autograd. The maths follows the EWA splatting used by
3DGS and gsplat (same Jacobian clamp at 1.3 × the field of view, same 0.3 px dilation), so that the CPU
backends and gsplat rasterize the same ellipses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from headsplat.core.rotation import quat_to_matrix

EPS_2D = 0.3  # px² added to each 2D covariance: the low-pass filter of 3DGS/gsplat
NEAR_PLANE = 0.01  # metres; Gaussians whose centre is nearer are not drawn
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4

_SH_C0 = 0.28209479177387814
_SH_C1 = 0.4886025119029199
_SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
          0.5462742152960396)
_SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
          -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


@dataclass(frozen=True)
class Projected:
    """Screen-space Gaussians.

    Attributes:
        means2d: (N, 2) centres in pixels (pixel centres at i + 0.5).
        conics: (N, 3) inverse 2D covariance (a, b, c) = [[a, b], [b, c]], in 1/px².
        depths: (N,) camera-space z.
        valid: (N,) bool: in front of the near plane with a positive-definite 2D covariance.
    """

    means2d: torch.Tensor
    conics: torch.Tensor
    depths: torch.Tensor
    valid: torch.Tensor


def covariances_3d(quats: torch.Tensor, scales: torch.Tensor, normalize_quats: bool = True) -> torch.Tensor:
    """(..., 3, 3) covariances R S S Rᵀ from quaternions (..., 4) w x y z and standard deviations (..., 3).
    ``normalize_quats=False``: R from the quaternions as given (the 3DGS CUDA rasterizer's covariance)."""
    m = quat_to_matrix(quats, normalize_quats) * scales[..., None, :]
    return m @ m.transpose(-1, -2)


def project_gaussians(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, viewmat: torch.Tensor,
                      K: torch.Tensor, width: int, height: int, eps2d: float = EPS_2D,
                      near: float = NEAR_PLANE, normalize_quats: bool = True) -> Projected:
    """EWA projection of 3D Gaussians through a pinhole camera.

    Args:
        means: (N, 3) world centres.
        quats: (N, 4) w x y z.
        scales: (N, 3) standard deviations.
        viewmat: (4, 4) world-to-camera (OpenCV axes).
        K: (3, 3) intrinsics in pixels.
        width, height: image size; bounds the Jacobian's clamp as in gsplat.
        eps2d: dilation added to the 2D covariance.
        near: near plane.
        normalize_quats: False builds covariances from the quaternions as given (see :func:`covariances_3d`).
    """
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    p = means @ R.T + t
    x, y, z = p.unbind(-1)
    valid = z > near
    z = torch.where(valid, z, torch.ones_like(z))  # keeps gradients finite for culled Gaussians
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # gsplat clamps the point used for the Jacobian to 1.3 × the half field of view beyond each edge.
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    tx = z * torch.minimum((x / z).clamp_min(-lim_x_neg), lim_x_pos)
    ty = z * torch.minimum((y / z).clamp_min(-lim_y_neg), lim_y_pos)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * tx / (z * z), zero, fy / z, -fy * ty / (z * z)], -1).reshape(-1, 2, 3)
    JW = J @ R
    cov = JW @ covariances_3d(quats, scales, normalize_quats) @ JW.transpose(-1, -2)
    a = cov[:, 0, 0] + eps2d
    b = cov[:, 0, 1]
    c = cov[:, 1, 1] + eps2d
    det = a * c - b * b
    valid = valid & (det > 0)
    det = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det, -b / det, a / det], -1)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)
    return Projected(means2d, conics, z, valid)


def camera_centre(viewmat: torch.Tensor) -> torch.Tensor:
    """(3,) world position of the camera of a (4, 4) world-to-camera matrix."""
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    return -R.T @ t


def eval_sh(sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Colour of SH coefficients seen along unit directions, as in 3DGS (+0.5, clamped at 0).

    Args:
        sh: (N, K, C) coefficients, K in {1, 4, 9, 16}.
        dirs: (N, 3) unit directions from the camera to each Gaussian (ignored for K = 1).

    Returns:
        (N, C) colours, >= 0.
    """
    k = sh.shape[-2]
    out = _SH_C0 * sh[:, 0]
    if k > 1:
        x, y, z = (d[:, None] for d in dirs.unbind(-1))
        out = out - _SH_C1 * y * sh[:, 1] + _SH_C1 * z * sh[:, 2] - _SH_C1 * x * sh[:, 3]
        if k > 4:
            xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
            out = (out + _SH_C2[0] * xy * sh[:, 4] + _SH_C2[1] * yz * sh[:, 5]
                   + _SH_C2[2] * (2 * zz - xx - yy) * sh[:, 6] + _SH_C2[3] * xz * sh[:, 7]
                   + _SH_C2[4] * (xx - yy) * sh[:, 8])
            if k > 9:
                out = (out + _SH_C3[0] * y * (3 * xx - yy) * sh[:, 9] + _SH_C3[1] * xy * z * sh[:, 10]
                       + _SH_C3[2] * y * (4 * zz - xx - yy) * sh[:, 11]
                       + _SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[:, 12]
                       + _SH_C3[4] * x * (4 * zz - xx - yy) * sh[:, 13]
                       + _SH_C3[5] * z * (xx - yy) * sh[:, 14] + _SH_C3[6] * x * (xx - 3 * yy) * sh[:, 15])
    return (out + 0.5).clamp_min(0.0)


def view_colors(means: torch.Tensor, sh: torch.Tensor, viewmat: torch.Tensor) -> torch.Tensor:
    """(N, 3) colours of Gaussians at ``means`` (N, 3) with coefficients ``sh`` (N, K, 3) seen by a camera."""
    if sh.shape[1] == 1:
        return (_SH_C0 * sh[:, 0] + 0.5).clamp_min(0.0)
    d = means - camera_centre(viewmat)
    return eval_sh(sh, d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12))
