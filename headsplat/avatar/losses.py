"""Image losses for fitting: masked L1, SSIM (Gaussian window, as in 3DGS), their photometric mix, the
alpha loss, and PSNR."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    """(size,) normalised 1D Gaussian; the 2D window is its outer product (applied as two 1D passes)."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM of two images (H, W, 3) in [0, 1] -> (H, W), averaged over channels."""
    g = _window(window, sigma, a.dtype, a.device)
    gx, gy = g.view(1, 1, 1, window).expand(15, 1, 1, window), g.view(1, 1, window, 1).expand(15, 1, window, 1)
    x, y = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
    pad = window // 2
    # The five local statistics in one separable Gaussian blur: 15 channels, two 1D passes.
    stats = torch.cat([x, y, x * x, y * y, x * y], 1)
    blurred = F.conv2d(F.pad(stats, (pad, pad, 0, 0), mode="replicate"), gx, groups=15)
    blurred = F.conv2d(F.pad(blurred, (0, 0, pad, pad), mode="replicate"), gy, groups=15)
    mx, my, exx, eyy, exy = blurred.split(3, 1)
    sxx = exx - mx * mx
    syy = eyy - my * my
    sxy = exy - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s[0].mean(0)


def masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the pixels of ``mask`` (H, W) (weights in [0, 1])."""
    return ((a - b).abs().mean(-1) * mask).sum() / mask.sum().clamp_min(1.0)


def photometric_loss(rgb: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, ssim_weight: float
                     ) -> torch.Tensor:
    """3DGS's photometric loss over ``mask`` (H, W): ``(1 - ssim_weight)`` L1 + ``ssim_weight`` D-SSIM of the
    images (H, W, 3)."""
    return (1 - ssim_weight) * masked_l1(rgb, target, mask) + \
        ssim_weight * ((1 - ssim_map(rgb, target)) * mask).sum() / mask.sum().clamp_min(1.0)


def alpha_loss(alpha: torch.Tensor, matte: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |alpha - matte| of (H, W) maps over the pixels of ``mask`` (H, W)."""
    return ((alpha - matte).abs() * mask).sum() / mask.sum().clamp_min(1.0)


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """PSNR in dB of images in [0, 1], over ``mask`` (H, W) when given."""
    err = (a - b).pow(2).mean(-1)
    if mask is not None:
        mse = float((err * mask).sum() / mask.sum().clamp_min(1.0))
    else:
        mse = float(err.mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))
