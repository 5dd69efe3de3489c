"""GAGAvatar's Gaussian generators: one Gaussian per FLAME vertex (``gs_generator_g``) and one per feature
pixel lifted from a plane (``gs_generator_l0``/``l1``), plus the harmonic encoding of the view direction.

Quirks reproduced exactly (the weights were trained with them):
- vertex Gaussians: the quaternions are L2-normalised over dimension 1, which is the *Gaussian* axis of a
  (B, N, 4) tensor, not each quaternion; the rasterizer then builds covariances from these non-unit
  quaternions without normalising them (see ``conventions.render_features``).
- pixel Gaussians: the colour sigmoid is written ``colors[..., :3]`` on a (B, 32, H, W) tensor, so it applies
  to every channel of the first three pixel *columns* and to no other pixel; the remaining RGB channels stay
  raw. Quaternions there are normalised over channels (correctly).
- scales are ``0.05 · sigmoid``, opacities ``sigmoid``, the plane offset ``sigmoid`` (in the reference's units,
  FLAME × 5).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

FEATURE_CHANNELS = 32  # rendered channels; the first three are RGB


def harmonic_embedding(x: torch.Tensor, n_frequencies: int = 4) -> torch.Tensor:
    """PyTorch3D's HarmonicEmbedding (ω₀ = 1, log-spaced, input appended): (..., 3) -> (..., 3·2·F + 3).

    Order: sin of (x₀·1, x₀·2, …, x₂·2^(F-1)), then cos of the same, then x. The cosines are computed as
    sin(· + π/2), as PyTorch3D ≥ 0.7.5 does (the reference ran 0.7.8): equal to cos only to float rounding,
    which the downstream networks amplify to ~1e-4 relative.
    """
    freqs = 2.0 ** torch.arange(n_frequencies, dtype=x.dtype, device=x.device)
    e = x[..., None] * freqs  # (..., 3, F)
    shift = torch.tensor([0.0, 0.5 * math.pi], dtype=x.dtype, device=x.device)
    e = (e[..., None, :, :] + shift[:, None, None]).sin().reshape(*x.shape[:-1], -1)
    return torch.cat([e, x], -1)


class HarmonicEncoder(nn.Module):
    """``harmo_encoder``: parameter-free, kept as a member because the reference has one."""

    def __init__(self, n_frequencies: int = 4):
        super().__init__()
        self.n_frequencies = n_frequencies

    @property
    def out_dim(self) -> int:
        return 3 * 2 * self.n_frequencies + 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return harmonic_embedding(x, self.n_frequencies)


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(dims[i], dims[i + 1]))
    return nn.Sequential(*layers)


class VertexGaussians(nn.Module):
    """``gs_generator_g``: (B, N, in_dim) per-vertex features and (B, dir_dim) view encoding -> per-vertex
    colours (B, N, 32), opacities (B, N, 1), scales (B, N, 3), rotations (B, N, 4) (see the quirks above)."""

    def __init__(self, in_dim: int, dir_dim: int, hidden: int = 128):
        super().__init__()
        q = in_dim // 4
        self.feature_layers = _mlp([in_dim, q, q, q, q])
        self.color_layers = _mlp([q + dir_dim, hidden, FEATURE_CHANNELS])
        self.opacity_layers = _mlp([q + dir_dim, hidden, 1])
        self.scale_layers = _mlp([q + dir_dim, hidden, 3])
        self.rotation_layers = _mlp([q + dir_dim, hidden, 4])

    def forward(self, x: torch.Tensor, direnc: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.feature_layers(x)
        x = torch.cat([x, direnc[:, None].expand(-1, x.shape[1], -1)], -1)
        colors = self.color_layers(x)
        colors = torch.cat([torch.sigmoid(colors[..., :3]), colors[..., 3:]], -1)
        return {"colors": colors,
                "opacities": torch.sigmoid(self.opacity_layers(x)),
                "scales": torch.sigmoid(self.scale_layers(x)) * 0.05,
                "rotations": F.normalize(self.rotation_layers(x), dim=1)}  # quirk: over the Gaussians


class PixelGaussians(nn.Module):
    """``gs_generator_l0``/``l1``: (B, C, H, W) features and (B, dir_dim) view encoding -> per-pixel Gaussians,
    row-major (B, H·W, ·): colours 32, opacities 1, scales 3, rotations 4, positions 1 (offset along the
    plane's normal, 0..1)."""

    def __init__(self, in_dim: int, dir_dim: int):
        super().__init__()
        h = in_dim // 2
        out = FEATURE_CHANNELS + 1 + 3 + 4 + 1
        self.gaussian_conv = nn.Sequential(
            nn.Conv2d(in_dim + dir_dim, h, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(h, h, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(h, h, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(h, out, 1))

    def forward(self, f: torch.Tensor, direnc: torch.Tensor) -> dict[str, torch.Tensor]:
        d = direnc[:, :, None, None].expand(-1, -1, f.shape[2], f.shape[3])
        p = self.gaussian_conv(torch.cat([f, d], 1))
        c = FEATURE_CHANNELS
        colors = p[:, :c]
        # quirk: the sigmoid covers the first three pixel columns of every channel (see the module docstring)
        colors = torch.cat([torch.sigmoid(colors[..., :3]), colors[..., 3:]], -1)
        out = {"colors": colors,
               "opacities": torch.sigmoid(p[:, c:c + 1]),
               "scales": torch.sigmoid(p[:, c + 1:c + 4]) * 0.05,
               "rotations": F.normalize(p[:, c + 4:c + 8], dim=1),
               "positions": torch.sigmoid(p[:, c + 8:c + 9])}
        return {k: v.permute(0, 2, 3, 1).reshape(v.shape[0], -1, v.shape[1]) for k, v in out.items()}
