"""The pure-PyTorch pixel stage: exact front-to-back alpha compositing per 16×16 tile, through autograd.

Slow and memory-hungry by design; it is the truth the fast backends are tested against.
"""

from __future__ import annotations

import math

import torch

from headsplat.render.projection import ALPHA_MAX, ALPHA_MIN, T_MIN

TILE = 16


def extents(conics: torch.Tensor, opacities: torch.Tensor) -> torch.Tensor:
    """(N, 2) half-widths in px of the box outside which a Gaussian's alpha is below 1/255.

    alpha = o·exp(-½ dᵀ Q d) >= 1/255  ⇔  dᵀ Q d <= 2 ln(255 o): an ellipse whose bounding box has
    half-widths sqrt(2 ln(255 o) · Σ_ii), with Σ = Q⁻¹. Zero when o < 1/255.
    """
    a, b, c = conics.unbind(-1)
    det = (a * c - b * b).clamp_min(1e-30)
    r2 = (2 * torch.log(255 * opacities.clamp_min(1e-30))).clamp_min(0)
    return torch.stack([(r2 * c / det).sqrt(), (r2 * a / det).sqrt()], -1)


def composite_reference(means2d: torch.Tensor, conics: torch.Tensor, colors: torch.Tensor,
                        opacities: torch.Tensor, depths: torch.Tensor, valid: torch.Tensor,
                        width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Alpha-composite screen-space Gaussians front to back (no background).

    Args:
        means2d: (N, 2) px. conics: (N, 3). colors: (N, C). opacities: (N,). depths: (N,) sort keys.
        valid: (N,) bool, Gaussians to draw.
        width, height: image size.

    Returns:
        accumulated colour (H, W, C) and alpha (H, W, 1).
    """
    n_ch = colors.shape[-1]
    out_rows = []
    # Empty tiles still hang off the graph (through sums of empty slices, exactly 0), so that backward works
    # and gives zero gradients on a scene that draws nothing.
    linked_zero = sum(t[:0].sum() for t in (means2d, conics, colors, opacities))
    with torch.no_grad():
        ext = extents(conics, opacities) + 1.0  # conservative: the alpha test below is the exact cut
        lo, hi = means2d - ext, means2d + ext
        keep = valid & (opacities >= ALPHA_MIN)
    ys, xs = torch.meshgrid(torch.arange(TILE, dtype=colors.dtype), torch.arange(TILE, dtype=colors.dtype),
                            indexing="ij")
    for ty in range(math.ceil(height / TILE)):
        row = []
        for tx in range(math.ceil(width / TILE)):
            x0, y0 = tx * TILE, ty * TILE
            w, h = min(TILE, width - x0), min(TILE, height - y0)
            hit = keep & (hi[:, 0] >= x0) & (lo[:, 0] <= x0 + w) & (hi[:, 1] >= y0) & (lo[:, 1] <= y0 + h)
            idx = hit.nonzero()[:, 0]
            px = (xs[:h, :w] + x0 + 0.5).reshape(-1, 1)
            py = (ys[:h, :w] + y0 + 0.5).reshape(-1, 1)
            if idx.numel() == 0:
                row.append(colors.new_zeros(h, w, n_ch + 1) + linked_zero)
                continue
            idx = idx[torch.argsort(depths[idx], stable=True)]
            mx, my = means2d[idx, 0][None], means2d[idx, 1][None]
            a, b, c = (conics[idx, i][None] for i in range(3))
            dx, dy = mx - px, my - py  # (P, M)
            sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
            alpha = torch.clamp_max(opacities[idx][None] * torch.exp(-sigma), ALPHA_MAX)
            alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
            # A pixel stops before the Gaussian that would bring its transmittance to T_MIN or below; T is
            # monotone, so the drawn Gaussians are a prefix.
            with torch.no_grad():
                drawn = torch.cumprod(1 - alpha, dim=1) > T_MIN
            alpha = alpha * drawn
            trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], 1), dim=1)
            weights = alpha * trans
            acc = weights @ colors[idx]
            opacity = 1 - trans[:, -1:] * (1 - alpha[:, -1:])
            row.append(torch.cat([acc, opacity], -1).reshape(h, w, n_ch + 1))
        out_rows.append(torch.cat(row, 1))
    out = torch.cat(out_rows, 0)
    return out[..., :n_ch], out[..., n_ch:]
