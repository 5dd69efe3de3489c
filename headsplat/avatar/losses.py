"""Image losses for fitting: masked L1, SSIM (Gaussian window, as in 3DGS), their photometric mix, the
alpha loss, and PSNR."""

from __future__ import annotations

import math

import torch


def _window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    """(size,) normalised 1D Gaussian; the 2D window is its outer product (applied as two 1D passes)."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def blur_matrix(n: int, window: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """(n, n) matrix of a 1D Gaussian blur over ``n`` samples with replicate padding: row i holds the window's
    weights at the clamped indices i - window // 2 .. i + window // 2 (edge samples repeated)."""
    g = _window(window, sigma, dtype, device)
    rows = torch.arange(n, device=device)
    m = torch.zeros(n, n, dtype=dtype, device=device)
    for k in range(window):
        m.index_put_((rows, (rows + k - window // 2).clamp(0, n - 1)), g[k].expand(n), accumulate=True)
    return m


def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM of two images (H, W, 3) in [0, 1] -> (H, W), averaged over channels."""
    h, w = a.shape[:2]
    x, y = a.permute(2, 0, 1), b.permute(2, 0, 1)
    # The five local statistics in one separable Gaussian blur (replicate padding) of 15 channels, as two
    # banded matrix products: 2.6x faster on a CPU than depthwise convolutions, forward and backward.
    stats = torch.cat([x, y, x * x, y * y, x * y], 0)
    blurred = blur_matrix(h, window, sigma, a.dtype, a.device) @ stats @ \
        blur_matrix(w, window, sigma, a.dtype, a.device).T
    mx, my, exx, eyy, exy = blurred.split(3, 0)
    sxx = exx - mx * mx
    syy = eyy - my * my
    sxy = exy - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(0)


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
