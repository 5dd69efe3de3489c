"""Bilinear warps of uint8 images computed as OpenCV 4's ``warpPerspective`` computes them (the arithmetic
MediaPipe's CPU graphs crop with), in PyTorch: the same pixels on any OpenCV version, on the CPU or a GPU, for
many crops of one image at once.

OpenCV maps each output pixel through the inverse matrix in double precision, rounds the source position to
1/32 px, and blends the four neighbours with integer weights ``(32 - fx)(32 - fy)``, ... in units of 1/1024,
rounding the sum (``(sum + 512) >> 10``). OpenCV 5 rounds differently (its new SIMD warps), by up to 3 grey
levels in about 8% of the pixels of a downscaled crop, enough to move a segmentation edge by 0.1.
"""

from __future__ import annotations

import numpy as np
import torch

from headsplat.core.threads import cpu_threads

TAB_BITS = 5  # OpenCV's INTER_BITS: source positions in 1/32 px
TAB = 1 << TAB_BITS


def warp_perspective(image: torch.Tensor, matrices: np.ndarray, out_w: int, out_h: int,
                     border_zero: bool) -> torch.Tensor:
    """Crops of one image through perspective matrices.

    Args:
        image: (H, W, C) uint8 tensor (on the device the crops are wanted on).
        matrices: (N, 3, 3) float64, image pixels to crop pixels (OpenCV's pixel convention: centres at integers).
        out_w, out_h: the crops' size.
        border_zero: pixels outside the image are 0 (``BORDER_CONSTANT``), else the nearest edge pixel
            (``BORDER_REPLICATE``).
    Returns:
        (N, out_h, out_w, C) uint8.
    """
    if image.dtype != torch.uint8 or image.ndim != 3:
        raise ValueError(f"image: expected (H, W, C) uint8, got {tuple(image.shape)} {image.dtype}")
    # One CPU thread: the gathers below take 180 ms for a 192 px crop of a 1080p frame on two threads, 4.7 ms on
    # one (idle two-core machine).
    with cpu_threads(1, image.device):
        return _warp(image, matrices, out_w, out_h, border_zero)


def _warp(image: torch.Tensor, matrices: np.ndarray, out_w: int, out_h: int, border_zero: bool) -> torch.Tensor:
    h, w, c = image.shape
    dev = image.device
    inv = torch.from_numpy(np.linalg.inv(np.asarray(matrices, np.float64))).to(dev)  # (N, 3, 3)
    xs = torch.arange(out_w, dtype=torch.float64, device=dev)
    ys = torch.arange(out_h, dtype=torch.float64, device=dev)

    def row(k: int) -> torch.Tensor:  # (N, out_h, out_w): the row's constant part first, then + M[k, 0] * x
        base = inv[:, k, 1, None] * ys[None] + inv[:, k, 2, None]
        return base[:, :, None] + inv[:, k, 0, None, None] * xs[None, None]

    x0, y0, wz = row(0), row(1), row(2)
    scale = torch.where(wz != 0, TAB / torch.where(wz != 0, wz, torch.ones_like(wz)), torch.zeros_like(wz))
    lim = float(2 ** 31 - 1)
    fx = torch.round((x0 * scale).clamp(-lim - 1, lim)).to(torch.int64)  # round half to even, as cvRound
    fy = torch.round((y0 * scale).clamp(-lim - 1, lim)).to(torch.int64)
    sx, ax = torch.div(fx, TAB, rounding_mode="floor"), fx % TAB
    sy, ay = torch.div(fy, TAB, rounding_mode="floor"), fy % TAB
    flat = image.reshape(h * w, c)  # gathered as uint8, widened after: a 1080p frame is never copied whole
    out = torch.zeros(*fx.shape, c, dtype=torch.int32, device=dev)
    for dy, wy in ((0, TAB - ay), (1, ay)):
        for dx, wx in ((0, TAB - ax), (1, ax)):
            px, py = sx + dx, sy + dy
            weight = wy * wx
            if border_zero:
                weight = weight * ((px >= 0) & (px < w) & (py >= 0) & (py < h))
            pix = flat[py.clamp(0, h - 1) * w + px.clamp(0, w - 1)].to(torch.int32)
            out += pix * weight[..., None].to(torch.int32)
    return ((out + (1 << (2 * TAB_BITS - 1))) >> (2 * TAB_BITS)).clamp(0, 255).to(torch.uint8)
