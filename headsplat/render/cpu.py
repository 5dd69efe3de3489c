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
    def forward(ctx, means2d, conics, colors, opacities, depths, valid, width, height):
        binning = _Binning(_np32(means2d), _np32(conics), _np32(colors), _np32(opacities), _np32(depths),
                           valid.detach().cpu().numpy().astype(np.bool_), width, height)
        out, out_t, out_last = K.rasterize_forward(*binning.args())
        ctx.binning, ctx.out_t, ctx.out_last = binning, out_t, out_last
        ctx.n = means2d.shape[0]
        ctx.dtype, ctx.device = means2d.dtype, means2d.device
        acc = torch.from_numpy(out).to(device=means2d.device, dtype=colors.dtype)
        alpha = torch.from_numpy(1.0 - out_t)[..., None].to(device=means2d.device, dtype=colors.dtype)
        return acc, alpha

    @staticmethod
    def backward(ctx, v_acc, v_alpha):
        b = ctx.binning
        # autograd materialises zero gradients for unused outputs, so both are tensors here.
        v_alpha = _np32(v_alpha[..., 0])
        packed = K.rasterize_backward(*b.args(), ctx.out_t, ctx.out_last, _np32(v_acc), v_alpha)
        full = np.zeros((ctx.n, packed.shape[1]), np.float32)
        full[b.order] = packed
        g = torch.from_numpy(full).to(device=ctx.device, dtype=ctx.dtype)
        n_geom = K.N_GRAD_GEOM
        return g[:, 0:2], g[:, 2:5], g[:, n_geom:], g[:, 5], None, None, None, None


def composite_cpu(means2d: torch.Tensor, conics: torch.Tensor, colors: torch.Tensor, opacities: torch.Tensor,
                  depths: torch.Tensor, valid: torch.Tensor, width: int, height: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as :func:`headsplat.render.reference.composite_reference`, with Numba kernels."""
    return _Composite.apply(means2d, conics, colors, opacities, depths, valid, width, height)
