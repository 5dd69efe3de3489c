"""The CUDA pixel stage through gsplat's ``rasterization()``, loaded lazily (``pip install headsplat[cuda]``).

gsplat already shares our conventions for pixel centres (i + 0.5), the 0.3 px dilation, the 1/255 alpha
cut and the 1e-4 transmittance stop; its 3.33σ radius equals the alpha cut for opacities <= 1. What differs
is handled here: gsplat caps alpha at 0.999, so opacities are capped at 0.99 on the way in (identical images
for opacities <= 0.99), and background and expected depth are composited outside, as for the CPU backends.
"""

from __future__ import annotations

import torch

from headsplat.core.errors import MissingDependencyError
from headsplat.render.projection import ALPHA_MAX, EPS_2D, NEAR_PLANE, covariances_3d


def _import_gsplat():
    try:
        import gsplat
    except ImportError as e:
        raise MissingDependencyError(
            "backend 'gsplat' needs gsplat with its CUDA extension: pip install 'headsplat[cuda]' "
            f"({e})") from e
    return gsplat


def composite_gsplat(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
                     colors: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int,
                     normalize_quats: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Accumulated colour (H, W, C), depth (H, W, 1), alpha (H, W, 1) and means2d (N, 2) on CUDA.

    Args:
        means: (N, 3), quats: (N, 4) w x y z, scales: (N, 3), opacities: (N,), colors: (N, C),
        viewmat: (4, 4), K: (3, 3); all on one CUDA device.
        normalize_quats: False passes covariances built from the quaternions as given (gsplat normalises
            quaternions itself).
    """
    if not means.is_cuda:
        raise ValueError("backend 'gsplat' needs CUDA tensors; use backend='cpu' or 'torch' on the CPU")
    gsplat = _import_gsplat()
    covars = None
    if not normalize_quats:
        covars = covariances_3d(quats, scales, normalize_quats=False)  # gsplat then ignores quats and scales
    out, alpha, meta = gsplat.rasterization(
        means, quats, scales, opacities.clamp_max(ALPHA_MAX), colors, viewmat[None], K[None], width, height,
        near_plane=NEAR_PLANE, eps2d=EPS_2D, sh_degree=None, packed=False, render_mode="RGB+D",
        rasterize_mode="classic", covars=covars)
    means2d = meta["means2d"][0] if meta["means2d"].dim() == 3 else meta["means2d"]
    return out[0, ..., :-1], out[0, ..., -1:], alpha[0], means2d
