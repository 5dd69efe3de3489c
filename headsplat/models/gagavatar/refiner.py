"""GAGAvatar's neural refiner (``upsampler``): a StyleUNet — a UNet encoder whose bottleneck gives a style code
and whose decoder levels give SFT scale/shift maps for a StyleGAN2 generator — from the 32 rendered feature
channels to RGB.

Parameter names follow the released checkpoint. The UNet's ``toRGB`` convolutions are stored in the weights but
never used by the forward pass (as in the reference). Noise inputs: fresh normal noise per call (the
reference's inference), optionally from a seeded ``torch.Generator``, or the stored ``noises`` buffers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from headsplat.core.validate import check_choice

UNET_CHANNELS = {4: 256, 8: 256, 16: 256, 32: 256, 64: 128, 128: 64, 256: 32, 512: 16, 1024: 8}
DECODER_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
NOISE_MODES = ("random", "stored")


@dataclass(frozen=True)
class RefinerConfig:
    size: int = 512  # input and output size (power of two)
    in_dim: int = 32
    out_dim: int = 3
    num_style_feat: int = 512
    num_mlp: int = 8
    channel_divisor: int = 1  # >1 only for tiny test models: every channel count divided by it


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class ResBlock(nn.Module):
    """Residual block with bilinear down- or upsampling by 2."""

    def __init__(self, cin: int, cout: int, mode: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)
        self.scale_factor = 0.5 if mode == "down" else 2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _leaky(self.conv1(x))
        out = F.interpolate(out, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        out = _leaky(self.conv2(out))
        x = F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        return out + self.skip(x)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution (no bias), optional bilinear upsampling by 2 before it."""

    def __init__(self, cin: int, cout: int, kernel: int, num_style_feat: int, demodulate: bool, upsample: bool):
        super().__init__()
        self.cin, self.cout, self.kernel = cin, cout, kernel
        self.demodulate, self.upsample = demodulate, upsample
        self.modulation = nn.Linear(num_style_feat, cin)
        self.weight = nn.Parameter(torch.randn(1, cout, cin, kernel, kernel) / math.sqrt(cin * kernel ** 2))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        w = self.weight * self.modulation(style).view(b, 1, self.cin, 1, 1)
        if self.demodulate:
            w = w * torch.rsqrt(w.pow(2).sum([2, 3, 4]) + 1e-8).view(b, self.cout, 1, 1, 1)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        h, wd = x.shape[-2:]
        out = F.conv2d(x.reshape(1, b * self.cin, h, wd), w.reshape(b * self.cout, self.cin, self.kernel, self.kernel),
                       padding=self.kernel // 2, groups=b)
        return out.view(b, self.cout, *out.shape[2:])


class StyleConv(nn.Module):
    def __init__(self, cin: int, cout: int, num_style_feat: int, upsample: bool):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(cin, cout, 3, num_style_feat, True, upsample)
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        out = self.modulated_conv(x, style) * 2 ** 0.5
        return _leaky(out + self.weight * noise + self.bias)


class ToRGB(nn.Module):
    def __init__(self, cin: int, cout: int, num_style_feat: int, upsample: bool):
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(cin, cout, 1, num_style_feat, False, False)
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample:
                skip = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
            out = out + skip
        return out


class NormStyleCode(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


class ConstantInput(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, channels, 4, 4))


class StyleGAN2GeneratorCSFT(nn.Module):
    """StyleGAN2 generator whose features are modulated, level by level, by SFT scale and shift maps."""

    def __init__(self, cfg: RefinerConfig):
        super().__init__()
        ch = {k: v // cfg.channel_divisor for k, v in DECODER_CHANNELS.items()}
        nf = cfg.num_style_feat
        self.log_size = int(math.log2(cfg.size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2
        mlp: list[nn.Module] = [NormStyleCode()]
        for _ in range(cfg.num_mlp):
            mlp += [nn.Linear(nf, nf), nn.LeakyReLU(0.2)]
        self.style_mlp = nn.Sequential(*mlp)
        self.constant_input = ConstantInput(ch[4])
        self.style_conv1 = StyleConv(ch[4], ch[4], nf, upsample=False)
        self.to_rgb1 = ToRGB(ch[4], cfg.out_dim, nf, upsample=False)
        self.noises = nn.Module()
        for i in range(self.num_layers):
            r = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, r, r))
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        cin = ch[4]
        for i in range(3, self.log_size + 1):
            cout = ch[2 ** i]
            self.style_convs.append(StyleConv(cin, cout, nf, upsample=True))
            self.style_convs.append(StyleConv(cout, cout, nf, upsample=False))
            self.to_rgbs.append(ToRGB(cout, cfg.out_dim, nf, upsample=True))
            cin = cout

    def forward(self, style: torch.Tensor, conditions: list[torch.Tensor], noise: str = "random",
                generator: torch.Generator | None = None) -> torch.Tensor:
        latent = self.style_mlp(style)
        b = latent.shape[0]

        def noise_for(i: int, out: torch.Tensor) -> torch.Tensor:
            if noise == "stored":
                return getattr(self.noises, f"noise{i}")
            return torch.randn(b, 1, *out.shape[-2:], generator=generator, device=out.device, dtype=out.dtype)

        def conv(layer: StyleConv, x: torch.Tensor, i: int) -> torch.Tensor:
            out = layer.modulated_conv(x, latent) * 2 ** 0.5
            return _leaky(out + layer.weight * noise_for(i, out) + layer.bias)

        out = self.constant_input.weight.repeat(b, 1, 1, 1)
        out = conv(self.style_conv1, out, 0)
        skip = self.to_rgb1(out, latent)
        i = 1
        for level, to_rgb in enumerate(self.to_rgbs):
            out = conv(self.style_convs[2 * level], out, i)
            if i < len(conditions):
                out = out * conditions[i - 1] + conditions[i]
            out = conv(self.style_convs[2 * level + 1], out, i + 1)
            skip = to_rgb(out, latent, skip)
            i += 2
        return skip


class StyleUNet(nn.Module):
    """(B, in_dim, S, S) rendered features -> (B, out_dim, S, S) image in (0, 1) (sigmoid)."""

    def __init__(self, cfg: RefinerConfig = RefinerConfig()):
        super().__init__()
        self.cfg = cfg
        ch = {k: v // cfg.channel_divisor for k, v in UNET_CHANNELS.items()}
        s = cfg.size
        self.log_size = int(math.log2(s))
        if 2 ** self.log_size != s or s not in ch:
            raise ValueError(f"refiner size must be a power of two in 8..1024, got {s}")
        self.conv_body_first = nn.Conv2d(cfg.in_dim, ch[s], 1)
        self.conv_body_down = nn.ModuleList()
        cin = ch[s]
        for i in range(self.log_size, 2, -1):
            self.conv_body_down.append(ResBlock(cin, ch[2 ** (i - 1)], "down"))
            cin = ch[2 ** (i - 1)]
        self.final_conv = nn.Conv2d(cin, ch[4], 3, 1, 1)
        self.conv_body_up = nn.ModuleList()
        cin = ch[4]
        for i in range(3, self.log_size + 1):
            self.conv_body_up.append(ResBlock(cin, ch[2 ** i], "up"))
            cin = ch[2 ** i]
        self.toRGB = nn.ModuleList([nn.Conv2d(ch[2 ** i], 3, 1) for i in range(3, self.log_size + 1)])  # unused
        self.final_linear = nn.Linear(ch[4] * 16, cfg.num_style_feat)
        self.stylegan_decoder = StyleGAN2GeneratorCSFT(cfg)
        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        for i in range(3, self.log_size + 1):
            c = ch[2 ** i]
            for group in (self.condition_scale, self.condition_shift):
                group.append(nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(c, 2 * c, 3, 1, 1)))

    def forward(self, x: torch.Tensor, noise: str = "random", generator: torch.Generator | None = None
                ) -> torch.Tensor:
        """Args: x (B, in_dim, h, w) features (smaller inputs are first resized bilinearly to ``size``);
        noise: "random" (fresh, from ``generator`` if given) or "stored" (the ``noises`` buffers)."""
        check_choice("noise", noise, NOISE_MODES)
        if x.shape[-1] < self.cfg.size:
            x = F.interpolate(x, size=(self.cfg.size, self.cfg.size), mode="bilinear", align_corners=False)
        feat = _leaky(self.conv_body_first(x))
        skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.insert(0, feat)
        feat = _leaky(self.final_conv(feat))
        style = self.final_linear(feat.reshape(feat.shape[0], -1))
        conditions = []
        for i, block in enumerate(self.conv_body_up):
            feat = block(feat + skips[i])
            conditions += [self.condition_scale[i](feat), self.condition_shift[i](feat)]
        return torch.sigmoid(self.stylegan_decoder(style, conditions, noise, generator))
