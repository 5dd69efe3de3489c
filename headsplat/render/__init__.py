"""Rendering: one ``render(gaussians, camera) -> RenderOutput`` over interchangeable rasterizer backends
(pure-torch reference, Numba CPU, gsplat on CUDA), and mesh overlays and textures for checks."""

from headsplat.render.rasterize import BACKENDS, RenderOutput, render

__all__ = ["BACKENDS", "RenderOutput", "render"]
