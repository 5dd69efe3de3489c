"""GAGAvatar's conventions, converted here and nowhere else.

The reference describes a view by a PyTorch3D-style ``[R|T]`` (3, 4): a world point X (row vector) is at
``X @ R + T`` in a camera whose axes are x left, y up, z forward. headsplat's cameras are OpenCV (x right, y
down, z forward) world-to-camera 4×4 matrices; the two differ by a transpose and a flip of x and y.
Intrinsics: a square image of ``size`` pixels with ``tan(fov/2) = 1/focal`` (focal 12 in the released model),
principal point at the centre. World units are FLAME's metres × 5.
"""

from __future__ import annotations

import torch

from headsplat.core.camera import Camera

FOCAL = 12.0  # the reference's focal length in half-image units
FLAME_SCALE = 5.0  # reference world units per metre of FLAME
_FLIP = (-1.0, -1.0, 1.0)


def opencv_viewmat(transform: torch.Tensor) -> torch.Tensor:
    """PyTorch3D-style (..., 3, 4) ``[R|T]`` -> OpenCV world-to-camera (..., 4, 4)."""
    flip = transform.new_tensor(_FLIP)
    out = torch.zeros(*transform.shape[:-2], 4, 4, dtype=transform.dtype, device=transform.device)
    out[..., :3, :3] = flip[:, None] * transform[..., :3, :3].transpose(-1, -2)
    out[..., :3, 3] = flip * transform[..., :3, 3]
    out[..., 3, 3] = 1.0
    return out


def pytorch3d_transform(viewmat: torch.Tensor) -> torch.Tensor:
    """OpenCV world-to-camera (..., 4, 4) -> PyTorch3D-style (..., 3, 4) ``[R|T]`` (inverse of
    :func:`opencv_viewmat`)."""
    flip = viewmat.new_tensor(_FLIP)
    R = (flip[:, None] * viewmat[..., :3, :3]).transpose(-1, -2)
    T = flip * viewmat[..., :3, 3]
    return torch.cat([R, T[..., None]], -1)


def intrinsics(size: int, focal: float = FOCAL, dtype=torch.float32, device=None) -> torch.Tensor:
    """(3, 3) K in pixels of the reference's camera at ``size`` × ``size`` (pixel centres at i + 0.5, so the
    principal point is size/2, matching the 3DGS rasterizer's pixel grid)."""
    f = focal * size / 2.0
    return torch.tensor([[f, 0.0, size / 2.0], [0.0, f, size / 2.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def render_camera(transform: torch.Tensor, size: int, focal: float = FOCAL) -> Camera:
    """The headsplat camera of one reference view (3, 4)."""
    return Camera(opencv_viewmat(transform), intrinsics(size, focal, transform.dtype, transform.device), size, size)


def source_plane(transform: torch.Tensor, plane_size: int, focal: float = FOCAL) -> tuple[torch.Tensor, torch.Tensor]:
    """The plane the pixel Gaussians are lifted from: through the world origin, facing the source camera.

    Args:
        transform: (B, 3, 4) source view ``[R|T]``.
        plane_size: P, the side of the feature map (one Gaussian per feature pixel).
        focal: the camera's focal length in half-image units.

    Returns:
        points (B, P·P, 3) where the rays through a P × P grid spanning the image (row-major, top row first)
        meet the plane, and the plane's normal (B, 3): the camera's viewing direction in world space.
    """
    lin = torch.linspace(1.0, -1.0, plane_size, dtype=transform.dtype, device=transform.device)
    y, x = torch.meshgrid(lin, lin, indexing="ij")  # PyTorch3D's x points left and y up
    rays = torch.stack([x / focal, y / focal, torch.ones_like(x)], -1).reshape(-1, 3)
    R, T = transform[:, :3, :3], transform[:, :3, 3]
    dirs = R[:, :, 2]  # R @ (0, 0, 1)
    world_rays = rays @ R.transpose(-1, -2)  # (B, P·P, 3)
    origins = -(R @ T[:, :, None])[..., 0]  # the camera centre
    distance = (origins * dirs).sum(-1).abs()
    return origins[:, None] + distance[:, None, None] * world_rays, dirs
