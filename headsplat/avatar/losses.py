"""Photometric losses for fitting: masked L1 and SSIM (Gaussian window, as in 3DGS)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM of two images (H, W, 3) in [0, 1] -> (H, W), averaged over channels."""
    w = _window(window, sigma, a.dtype, a.device)
    x, y = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
    pad = window // 2

    def blur(t):
        return F.conv2d(F.pad(t, (pad,) * 4, mode="replicate"), w, groups=3)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s[0].mean(0)


def masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the pixels of ``mask`` (H, W) (weights in [0, 1])."""
    return ((a - b).abs().mean(-1) * mask).sum() / mask.sum().clamp_min(1.0)


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """PSNR in dB of images in [0, 1], over ``mask`` (H, W) when given."""
    err = (a - b).pow(2).mean(-1)
    if mask is not None:
        mse = float((err * mask).sum() / mask.sum().clamp_min(1.0))
    else:
        mse = float(err.mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))
