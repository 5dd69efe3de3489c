"""CAP4D's morphable multi-view denoiser (MMDM): Stable Diffusion 2.1's UNet with the text cross-attention
removed, 8 frames per call that attend to each other in the 32², 16² and middle levels, and 50 conditioning
channels added after the first convolution. Parameter names follow the released checkpoint (latent diffusion's
``model.diffusion_model.*`` with the prefix removed).

Our own modules (the reference's non-commercial code was read for facts only). Conventions reproduced: GroupNorm
(32 groups, eps 1e-5 in the UNet, 1e-6 in the transformers) and LayerNorm computed in float32; timestep embedding
cos then sin; GEGLU feed-forward; attention ``softmax(q kᵀ / √d) v`` (PyTorch's fused kernel: equal to float rounding);
"3d" attention over the tokens of all frames of a sample at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple = (4, 2, 1)  # downsampling factors with attention
    num_head_channels: int = 64
    condition_channels: int = 50
    frames: int = 8  # frames per call (the "3d" attention spans them)
    norm_groups: int = 32


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the input and parameter dtypes (as latent diffusion's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).type(x.dtype)


class LayerNorm32(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(),
                            self.eps).type(x.dtype)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(N,) timesteps -> (N, dim) sinusoidal embedding, cosines first (latent diffusion's order)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, emb: int, cout: int, groups: int):
        super().__init__()
        self.in_layers = nn.Sequential(GroupNorm32(groups, cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb, cout))
        self.out_layers = nn.Sequential(GroupNorm32(groups, cout), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(cout, cout, 3, padding=1))
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour ×2, then a 3×3 convolution (``conv``): the UNet's and the autoencoder's alike."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Attention(nn.Module):
    """Self-attention over a frame's tokens (``frames`` = 1) or over all ``frames`` frames of a sample ("3d")."""

    def __init__(self, dim: int, heads: int, dim_head: int, frames: int = 1):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.frames = heads, frames
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bt, n, _ = x.shape
        t, h = self.frames, self.heads

        def split(y):  # (B·T, N, H·D) -> (B, H, T·N, D)
            return y.reshape(bt // t, t * n, h, -1).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(bt, n, -1))


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, frames: int):
        super().__init__()
        self.attn1 = Attention(dim, heads, dim_head, frames)
        self.norm1 = LayerNorm32(dim)
        self.norm3 = LayerNorm32(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        return self.ff(self.norm3(x)) + x


class SpatioTemporalTransformer(nn.Module):
    """GroupNorm, linear in, one transformer block, linear out, residual; ``frames`` > 1 attends across frames."""

    def __init__(self, ch: int, heads: int, dim_head: int, frames: int, groups: int):
        super().__init__()
        inner = heads * dim_head
        self.norm = GroupNorm32(groups, ch, eps=1e-6)
        self.proj_in = nn.Linear(ch, inner)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(inner, heads, dim_head, frames)])
        self.proj_out = nn.Linear(ch, inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.proj_in(self.norm(x).reshape(b, c, h * w).transpose(1, 2))
        for block in self.transformer_blocks:
            y = block(y)
        return self.proj_out(y).transpose(1, 2).reshape(b, c, h, w) + x


class Step(nn.ModuleList):
    """latent diffusion's TimestepEmbedSequential: children called in order, ResBlocks also given ``emb``."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class MMDMUNet(nn.Module):
    """ε prediction for B samples of V frames.

    ``forward(x (B, V, 4, h, w), t (B, V), z_input (B, V, 4, h, w), ref_mask (B, V) bool, condition (B, V, h, w,
    50))``: reference frames (``ref_mask``) are replaced by their clean latents on the way in, and their output is
    the noise that was added to them (x − z), so only generated frames carry a prediction.
    """

    def __init__(self, cfg: UNetConfig = UNetConfig()):
        super().__init__()
        self.cfg = cfg
        mc, g = cfg.model_channels, cfg.norm_groups
        emb = mc * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))

        def attention(ch: int, mult: int) -> SpatioTemporalTransformer:
            heads = ch // cfg.num_head_channels
            return SpatioTemporalTransformer(ch, heads, cfg.num_head_channels, cfg.frames if mult >= 2 else 1, g)

        self.input_blocks = nn.ModuleList([Step([nn.Conv2d(cfg.in_channels, mc, 3, padding=1)])])
        chans, ch, ds = [mc], mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb, mult * mc, g)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(attention(ch, mult))
                self.input_blocks.append(Step(layers))
                chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(Step([Downsample(ch)]))
                chans.append(ch)
                ds *= 2
        self.middle_block = Step([ResBlock(ch, emb, ch, g), attention(ch, cfg.channel_mult[-1]),
                                  ResBlock(ch, emb, ch, g)])
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + chans.pop(), emb, mc * mult, g)]
                ch = mc * mult
                if ds in cfg.attention_resolutions:
                    layers.append(attention(ch, mult))
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(Step(layers))
        self.out = nn.Sequential(GroupNorm32(g, ch), nn.SiLU(), nn.Conv2d(mc, cfg.out_channels, 3, padding=1))
        self.cond_linear = nn.Linear(cfg.condition_channels, mc)

    def forward(self, x: torch.Tensor, t: torch.Tensor, z_input: torch.Tensor, ref_mask: torch.Tensor,
                condition: torch.Tensor) -> torch.Tensor:
        b, v = x.shape[:2]
        m = ref_mask.reshape(b, v, 1, 1, 1).to(x.dtype)
        noise_of_refs = x - z_input
        x = z_input * m + x * (1 - m)
        h = x.flatten(0, 1)
        emb = self.time_embed(timestep_embedding(t.flatten(), self.cfg.model_channels).to(h.dtype))
        cond = self.cond_linear(condition.flatten(0, 1).to(h.dtype)).permute(0, 3, 1, 2)
        skips = []
        for k, block in enumerate(self.input_blocks):
            h = block(h, emb)
            if k == 0:
                h = h + cond
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], 1), emb)
        out = self.out(h).type(x.dtype).unflatten(0, (b, v))
        return noise_of_refs * m + out * (1 - m)
