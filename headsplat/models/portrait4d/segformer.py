"""SegFormer's transformer parts (Xie et al. 2021) as Portrait4D's reconstructor uses them: overlapping patch
embedding, efficient self-attention (keys/values from a strided convolution of the tokens), cross-attention to
motion tokens, and the Mix-FFN (an MLP with a depthwise 3x3 convolution).

Tokens are ``(B, N, C)`` with ``N = H * W`` in row-major order; attribute names are the reference's keys.
Dropout and drop-path are zero at inference and omitted.
"""

from __future__ import annotations

import torch
from torch import nn


class DWConv(nn.Module):
    """Depthwise 3x3 convolution on tokens: (B, H * W, C) -> (B, H * W, C)."""

    def __init__(self, dim: int = 768):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        b, n, c = x.shape
        x = self.dwconv(x.transpose(1, 2).view(b, c, H, W))
        return x.flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    """Mix-FFN: fc1, depthwise conv, GELU, fc2."""

    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None):
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.dwconv = DWConv(hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), H, W)))


def _attend(q: torch.Tensor, kv: torch.Tensor, heads: int, scale: float) -> torch.Tensor:
    """q: (B, N, C), kv: (B, M, 2C) -> (B, N, C), softmax attention per head (explicit, as the reference)."""
    b, n, c = q.shape
    q = q.reshape(b, n, heads, c // heads).permute(0, 2, 1, 3)
    kv = kv.reshape(b, -1, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = ((q @ kv[0].transpose(-2, -1)) * scale).softmax(dim=-1)
    return (attn @ kv[1]).transpose(1, 2).reshape(b, n, c)


class Attention(nn.Module):
    """Efficient self-attention: with ``sr_ratio > 1`` keys and values come from the token grid reduced by a
    ``sr_ratio``-strided convolution and a LayerNorm."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, qk_scale: float | None = None,
                 sr_ratio: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not a multiple of num_heads {num_heads}")
        self.dim, self.num_heads, self.sr_ratio = dim, num_heads, sr_ratio
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        b, n, c = x.shape
        src = x
        if self.sr_ratio > 1:
            src = self.norm(self.sr(x.permute(0, 2, 1).reshape(b, c, H, W)).reshape(b, c, -1).permute(0, 2, 1))
        return self.proj(_attend(self.q(x), self.kv(src), self.num_heads, self.scale))


class CrossAttention(nn.Module):
    """Attention of the image tokens to ``H_y * W_y`` motion tokens of width ``dim_y_hidden`` (default ``dim``;
    the reference's ``dim_y`` argument is unused)."""

    def __init__(self, dim: int, dim_y: int, H_y: int, W_y: int, dim_y_hidden: int | None = None,
                 num_heads: int = 8, qkv_bias: bool = False, qk_scale: float | None = None, sr_ratio: int = 1,
                 normalize_y: bool = False):
        super().__init__()
        self.dim, self.num_heads, self.sr_ratio = dim, num_heads, sr_ratio
        self.dim_y_hidden = dim_y_hidden or dim
        self.H_y, self.W_y, self.normalize_y = H_y, W_y, normalize_y
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        if normalize_y:
            self.norm_y = nn.LayerNorm(self.dim_y_hidden)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(self.dim_y_hidden, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """x: (B, N, dim) image tokens, y: (B, H_y * W_y, dim_y_hidden) motion tokens -> (B, N, dim)."""
        b, _, c = x.shape
        if self.normalize_y:
            y = self.norm_y(y)
        if self.sr_ratio > 1:
            y = self.norm(self.sr(y.permute(0, 2, 1).reshape(b, c, self.H_y, self.W_y)).reshape(b, c, -1)
                          .permute(0, 2, 1))
        return self.proj(_attend(self.q(x), self.kv(y), self.num_heads, self.scale))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + scale * attn(norm1(x))``, ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = False,
                 qk_scale: float | None = None, sr_ratio: int = 1):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, sr_ratio=sr_ratio)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, H: int, W: int, scale: float = 1) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), H, W) * scale
        return x + self.mlp(self.norm2(x), H, W)


class BlockCross(nn.Module):
    """Cross-attention to the motion tokens (times ``scale``: 0 switches the motion off), then self-attention,
    then the Mix-FFN; each pre-norm and residual. (``norm2`` precedes the cross-attention, ``norm1`` the
    self-attention, as the reference names them.)"""

    def __init__(self, dim: int, dim_y: int, H_y: int, W_y: int, num_heads: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = False, qk_scale: float | None = None, sr_ratio: int = 1):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, sr_ratio=sr_ratio)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = CrossAttention(dim, dim_y, H_y, W_y, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
                                    sr_ratio=sr_ratio)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, y: torch.Tensor, H: int, W: int, scale: float = 1.0
                ) -> torch.Tensor:
        x = x + self.attn2(self.norm2(x), y, H, W) * scale
        x = x + self.attn1(self.norm1(x), H, W)
        return x + self.mlp(self.norm3(x), H, W)


class OverlapPatchEmbed(nn.Module):
    """A strided convolution with ``patch_size // 2`` padding, flattened to tokens and LayerNorm'ed:
    (B, C, H, W) -> ((B, H' * W', embed_dim), H', W')."""

    def __init__(self, img_size: int = 224, patch_size: int = 7, stride: int = 4, in_chans: int = 3,
                 embed_dim: int = 768):
        super().__init__()
        self.img_size, self.patch_size = (img_size, img_size), (patch_size, patch_size)
        self.H = self.W = img_size // patch_size
        self.num_patches = self.H * self.W
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        _, _, h, w = x.shape
        return self.norm(x.flatten(2).transpose(1, 2)), h, w
