"""The fast CPU pixel stage: Numba kernels wrapped in an autograd Function.

Computes in float32 whatever the input dtype (gradients are returned in the input dtype).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from headsplat.render import cpu_kernels as K

TILE = K.TILE


class _Binning:
    """What the forward pass leaves for the backward pass: packed Gaussians, tile lists, tile chunks."""

    def __init__(self, means2d, conics, colors, opacities, depths, valid, width, height):
        self.width, self.height = width, height
        rects, r2s = K._rects(means2d, conics, opacities, valid, width, height)
        drawn = np.flatnonzero(rects[:, 0] <= rects[:, 1])
        self.order = drawn[np.argsort(depths[drawn], kind="stable")]
        tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
        self.offsets, self.ids = K._bin(rects, self.order, tiles_x, tiles_x * tiles_y)
        self.chunk_offsets, self.chunk_tiles = K._deal_tiles(self.offsets, max(1, numba.get_num_threads()))
        self.scal, self.cols, self.prect = K._pack(self.order, means2d, conics, opacities, r2s, colors, rects)

    def args(self):
        return (self.scal, self.cols, self.prect, self.offsets, self.ids, self.chunk_offsets, self.chunk_tiles,
                self.width, self.height)


def _np32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


class _Composite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, depths, background, valid, width, height):
        feats = torch.cat([colors, depths[:, None]], -1)
        binning = _Binning(_np32(means2d), _np32(conics), _np32(feats), _np32(opacities), _np32(depths),
                           valid.detach().cpu().numpy().astype(np.bool_), width, height)
        bg = _np32(background)
        rgb, alpha, depth, out_t, out_last = K.rasterize_forward(*binning.args(), bg)
        ctx.binning, ctx.bg, ctx.state = binning, bg, (depth, out_t, out_last)
        ctx.n, ctx.dtype, ctx.device = means2d.shape[0], means2d.dtype, means2d.device

        def back(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(device=means2d.device, dtype=colors.dtype)

        return back(rgb), back(alpha)[..., None], back(depth)[..., None]

    @staticmethod
    def backward(ctx, v_rgb, v_alpha, v_depth):
        # autograd materialises zero gradients for unused outputs, so all three are tensors here.
        b = ctx.binning
        depth, out_t, out_last = ctx.state
        packed = K.rasterize_backward(*b.args(), ctx.bg, depth, out_t, out_last, _np32(v_rgb), _np32(v_alpha[..., 0]),
                                      _np32(v_depth[..., 0]))
        full = np.zeros((ctx.n, packed.shape[1]), np.float32)
        full[b.order] = packed
        g = torch.from_numpy(full).to(device=ctx.device, dtype=ctx.dtype)
        n_geom = K.N_GRAD_GEOM
        v_bg = None
        if ctx.needs_input_grad[5]:  # d rgb / d background = transmittance
            v_bg = (torch.from_numpy(out_t)[..., None] * v_rgb.cpu()).sum((0, 1)).to(v_rgb)
        return (g[:, 0:2], g[:, 2:5], g[:, n_geom:-1], g[:, 5], g[:, -1], v_bg, None, None, None)


def composite_cpu(means2d: torch.Tensor, conics: torch.Tensor, colors: torch.Tensor, opacities: torch.Tensor,
                  depths: torch.Tensor, background: torch.Tensor, valid: torch.Tensor, width: int, height: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite screen-space Gaussians over a background with the Numba kernels.

    Args:
        means2d: (N, 2) px. conics: (N, 3). colors: (N, C). opacities: (N,). depths: (N,) camera z.
        background: (C,). valid: (N,) bool. width, height: image size.

    Returns:
        rgb (H, W, C) over the background, alpha (H, W, 1), expected depth (H, W, 1) (0 where alpha is 0).
    """
    return _Composite.apply(means2d, conics, colors, opacities, depths, background, valid, width, height)
