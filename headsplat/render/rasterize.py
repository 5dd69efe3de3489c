"""One entry point to splat a GaussianSet into an image, with interchangeable backends.

Backends: ``torch`` (pure PyTorch, exact, the reference for tests), ``cpu`` (Numba kernels, the default on
CPU), ``gsplat`` (CUDA). ``auto`` picks gsplat for CUDA tensors and cpu otherwise. All share one set of
conventions: OpenCV cameras, pixel centres at i + 0.5, 0.3 px dilation, alpha capped at 0.99, alpha below
1/255 skipped, a pixel stops before the Gaussian that would bring its transmittance to 1e-4 or below.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from headsplat.core.camera import Camera
from headsplat.core.validate import check_choice, check_shape
from headsplat.render.projection import project_gaussians, view_colors
from headsplat.splat.gaussians import SH_COEFFS, GaussianSet

BACKENDS = ("auto", "cpu", "torch", "gsplat")


@dataclass(frozen=True)
class RenderOutput:
    """One rendered view.

    Attributes:
        rgb: (H, W, C) colour (or features, see :func:`rasterize`) composited over the background.
        alpha: (H, W, 1) accumulated opacity.
        depth: (H, W, 1) expected camera-space z of what was drawn; 0 where nothing was.
        means2d: (N, 2) screen positions of the Gaussians in pixels (for densification statistics).
        visible: (N,) bool: in front of the camera with a valid projection.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    means2d: torch.Tensor
    visible: torch.Tensor


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend for ``backend`` (one of BACKENDS) on tensors living on ``device``."""
    check_choice("backend", backend, BACKENDS)
    if backend == "auto":
        return "gsplat" if device.type == "cuda" else "cpu"
    return backend


def render(gaussians: GaussianSet, camera: Camera, width: int | None = None, height: int | None = None,
           background: torch.Tensor | float | None = None, sh_degree: int | None = None,
           backend: str = "auto") -> RenderOutput:
    """Render Gaussians through a camera.

    Args:
        gaussians: N Gaussians (their world fields are drawn).
        camera: pinhole camera; ``viewmat`` and ``K`` on the Gaussians' device.
        width, height: output size; defaults to the camera's. A different size keeps the field of view
            (K is rescaled).
        background: (3,) colour or a scalar grey; black when None.
        sh_degree: highest SH degree used (default: all the set has).
        backend: "auto", "cpu", "torch" or "gsplat".

    Returns:
        :class:`RenderOutput`; differentiable in every floating field of ``gaussians`` (and the camera).
    """
    sh = gaussians.sh
    if sh_degree is not None:
        if sh_degree not in SH_COEFFS:
            raise ValueError(f"sh_degree must be 0..3, got {sh_degree}")
        sh = sh[:, :SH_COEFFS[sh_degree]]
    colors = view_colors(gaussians.means, sh, camera.viewmat)
    return rasterize(gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, colors, camera,
                     width, height, background, backend)


def rasterize(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
              colors: torch.Tensor, camera: Camera, width: int | None = None, height: int | None = None,
              background: torch.Tensor | float | None = None, backend: str = "auto",
              normalize_quats: bool = True) -> RenderOutput:
    """Splat Gaussians with precomputed colours of any number of channels (RGB, or a network's features).

    Args:
        means: (N, 3) world centres. quats: (N, 4) w x y z. scales: (N, 3) standard deviations.
        opacities: (N,) in [0, 1]. colors: (N, C) per-Gaussian values, composited as they are.
        camera, width, height: as for :func:`render`.
        background: (C,) values or a scalar; zeros when None.
        backend: "auto", "cpu", "torch" or "gsplat".
        normalize_quats: False builds the covariances from the quaternions as given, as the 3DGS CUDA
            rasterizer does (models trained with it may rely on non-unit quaternions).

    Returns:
        :class:`RenderOutput` with ``rgb`` (H, W, C).
    """
    width = camera.width if width is None else int(width)
    height = camera.height if height is None else int(height)
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    n_ch = colors.shape[-1]
    check_shape("colors", colors, (means.shape[0], n_ch))
    K = camera.K
    if (width, height) != (camera.width, camera.height):
        scale = torch.tensor([width / camera.width, height / camera.height, 1.0], dtype=K.dtype, device=K.device)
        K = K * scale[:, None]
    viewmat = camera.viewmat
    name = resolve_backend(backend, means.device)
    bg = torch.zeros(n_ch, dtype=colors.dtype, device=colors.device) if background is None else \
        torch.as_tensor(background, dtype=colors.dtype, device=colors.device)
    if bg.dim() == 0:
        bg = bg.expand(n_ch)
    check_shape("background", bg, (n_ch,))

    if name == "gsplat":
        from headsplat.render.gsplat_backend import composite_gsplat
        acc, depth_acc, alpha, means2d = composite_gsplat(means, quats, scales, opacities, colors, viewmat, K,
                                                          width, height, normalize_quats)
        visible = torch.ones(len(means), dtype=torch.bool, device=means.device)
    else:
        proj = project_gaussians(means, quats, scales, viewmat, K, width, height, normalize_quats=normalize_quats)
        means2d, visible = proj.means2d, proj.valid
        if name == "cpu":
            from headsplat.render.cpu import composite_cpu
            # Background and depth normalisation are fused into the kernels (fewer full-image passes).
            rgb, alpha, depth = composite_cpu(proj.means2d, proj.conics, colors, opacities, proj.depths, bg,
                                              proj.valid, width, height)
            return RenderOutput(rgb, alpha, depth, means2d, visible)
        from headsplat.render.reference import composite_reference
        out, alpha = composite_reference(proj.means2d, proj.conics, torch.cat([colors, proj.depths[:, None]], -1),
                                         opacities, proj.depths, proj.valid, width, height)
        acc, depth_acc = out[..., :n_ch], out[..., n_ch:]

    rgb = acc + (1 - alpha) * bg
    depth = torch.where(alpha > 0, depth_acc / alpha.clamp_min(1e-10), torch.zeros_like(depth_acc))
    return RenderOutput(rgb, alpha, depth, means2d, visible)
