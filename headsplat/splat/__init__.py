"""Gaussian state: the one GaussianSet of per-Gaussian tensors, its binding to rig triangles, densification,
the expression deformation field, and its files (safetensors, 3DGS PLY)."""

from headsplat.splat.gaussians import GaussianSet

__all__ = ["GaussianSet"]
