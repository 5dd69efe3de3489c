"""Pinhole cameras in the OpenCV convention (x right, y down, z forward); pixel centres at i + 0.5.

World space follows the canonical head space (+y up, +z towards the viewer). A camera at the world
origin looking down -z has ``viewmat = diag(1, -1, -1, 1)``: see :func:`look_at`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from headsplat.core.validate import check_shape


@dataclass(frozen=True)
class Camera:
    """One pinhole camera.

    Attributes:
        viewmat: (4, 4) world-to-camera transform (OpenCV camera axes).
        K: (3, 3) intrinsics in pixels.
        width: image width in pixels.
        height: image height in pixels.
    """

    viewmat: torch.Tensor
    K: torch.Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        check_shape("viewmat", self.viewmat, (4, 4))
        check_shape("K", self.K, (3, 3))

    def to(self, device=None, dtype=None) -> "Camera":
        return Camera(self.viewmat.to(device=device, dtype=dtype), self.K.to(device=device, dtype=dtype),
                      self.width, self.height)

    @property
    def fov_x_deg(self) -> float:
        return math.degrees(2 * math.atan(self.width / (2 * float(self.K[0, 0]))))


def intrinsics_from_fov(fov_x_deg: float, width: int, height: int, dtype=torch.float32) -> torch.Tensor:
    """(3, 3) intrinsics with square pixels, principal point at the image centre and horizontal FoV."""
    f = width / (2 * math.tan(math.radians(fov_x_deg) / 2))
    return torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=dtype)


def intrinsics_from_focal(focal: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(..., 3, 3) intrinsics from focal lengths (...) in pixels, principal point at the image centre."""
    z = torch.zeros_like(focal)
    o = torch.ones_like(focal)
    return torch.stack([focal, z, z + width / 2, z, focal, z + height / 2, z, z, o], -1).reshape(
        *focal.shape, 3, 3)


def world_to_opencv() -> torch.Tensor:
    """(4, 4) viewmat of a camera at the world origin looking down world -z with world +y up."""
    return torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """(4, 4) world-to-camera viewmat (OpenCV axes) of a camera at ``eye`` (3,) looking at ``target`` (3,)."""
    if up is None:
        up = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype)
    z = target - eye
    z = z / z.norm()
    x = torch.linalg.cross(z, up)  # camera right = forward x up
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    r = torch.stack([x, y, z], 0)  # rows: camera axes in world coordinates
    view = torch.eye(4, dtype=eye.dtype)
    view[:3, :3] = r
    view[:3, 3] = -r @ eye
    return view


def project_points(points: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project world points to pixels.

    Args:
        points: (..., N, 3) world points.
        viewmat: (..., 4, 4) world-to-camera.
        K: (..., 3, 3) intrinsics.

    Returns:
        uv: (..., N, 2) pixel coordinates (pixel centres at i + 0.5), depth: (..., N) camera z.
    """
    pc = points @ viewmat[..., :3, :3].transpose(-1, -2) + viewmat[..., None, :3, 3]
    z = pc[..., 2]
    zs = torch.where(z.abs() < 1e-9, torch.full_like(z, 1e-9), z)
    uv = torch.stack([pc[..., 0] / zs, pc[..., 1] / zs], -1)
    uv = uv * torch.stack([K[..., 0, 0], K[..., 1, 1]], -1)[..., None, :] + K[..., None, :2, 2]
    return uv, z
