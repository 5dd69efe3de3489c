"""Small scenes shared by the rasterizer tests."""

from __future__ import annotations

import torch

from headsplat.core.camera import Camera, intrinsics_from_fov, look_at
from headsplat.splat.gaussians import GaussianSet


def random_scene(n: int, seed: int, k: int = 4, opacity_bias: float = 0.0, spread: float = 0.1,
                 dtype=torch.float64) -> GaussianSet:
    g = torch.Generator().manual_seed(seed)
    return GaussianSet(
        means=torch.randn(n, 3, generator=g, dtype=dtype) * spread,
        quats=torch.randn(n, 4, generator=g, dtype=dtype),
        log_scales=torch.log(torch.rand(n, 3, generator=g, dtype=dtype) * 0.03 + 0.004),
        opacity_logits=torch.randn(n, generator=g, dtype=dtype) + opacity_bias,
        sh=torch.randn(n, k, 3, generator=g, dtype=dtype) * 0.5,
    )


def front_camera(width: int, height: int, distance: float = 0.6, fov: float = 40.0, dtype=torch.float64) -> Camera:
    view = look_at(torch.tensor([0.0, 0.0, distance]), torch.zeros(3)).to(dtype)
    return Camera(view, intrinsics_from_fov(fov, width, height, dtype=dtype), width, height)
