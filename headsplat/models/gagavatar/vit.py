"""A DINOv2 vision transformer (ViT with LayerScale), parameter names as in the released DINOv2 weights.

Our own module, not timm's: timm's DINOv2 ViT has no ``mask_token`` and names its intermediate-layer call
differently, and GAGAvatar's checkpoint stores the DINOv2 tensors under their original names. The maths is
DINOv2's: pre-norm blocks, LayerNorm eps 1e-6, exact GELU, LayerScale on both residual branches, the position
embedding interpolated bicubically (scale factors with DINOv2's +0.1 offset) only when the patch grid differs
from the one it was trained at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ViTConfig:
    """A DINOv2 backbone's size."""

    img_size: int = 518  # the image size of its position embedding
    patch_size: int = 14
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0


class PatchEmbed(nn.Module):
    """(B, 3, H, W) image -> (B, H/p · W/p, D) patch tokens, row-major."""

    def __init__(self, patch_size: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoViT(nn.Module):
    """DINOv2 backbone (no register tokens, unchunked blocks)."""

    def __init__(self, cfg: ViTConfig = ViTConfig()):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.patch_size, d)
        n = (cfg.img_size // cfg.patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, d))
        self.mask_token = nn.Parameter(torch.zeros(1, d))  # unused at inference; part of the weights' layout
        self.blocks = nn.ModuleList([Block(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)

    def _position(self, n_patches: int, h: int, w: int) -> torch.Tensor:
        n = self.pos_embed.shape[1] - 1
        if n_patches == n and h == w:
            return self.pos_embed
        # DINOv2 names the image's first spatial size w and its second h; the maths is the same either way.
        pos = self.pos_embed.float()
        m = int(math.sqrt(n))
        h0, w0 = h // self.cfg.patch_size, w // self.cfg.patch_size
        grid = pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=((h0 + 0.1) / m, (w0 + 0.1) / m), mode="bicubic",
                             antialias=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, -1, pos.shape[-1])
        return torch.cat([pos[:, :1], grid], 1).to(self.pos_embed.dtype)

    def intermediate_layers(self, x: torch.Tensor, n: int) -> list[torch.Tensor]:
        """The patch tokens (B, N, D) after each of the last ``n`` blocks, through the final norm, class token
        removed (DINOv2's ``get_intermediate_layers(x, n)``).

        Args:
            x: (B, 3, H, W) normalised image, H and W multiples of the patch size.
        """
        b, _, h, w = x.shape
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], 1)
        tokens = tokens + self._position(tokens.shape[1] - 1, h, w)
        outputs = []
        first = len(self.blocks) - n
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i >= first:
                outputs.append(self.norm(tokens)[:, 1:])
        return outputs
