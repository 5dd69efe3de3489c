"""Portrait4D's reconstructor networks (Deng et al., ECCV 2024): the global and detail appearance encoders, the
canonicalisation/reenactment encoder driven by motion codes, the triplane decoder and the background U-Net.

Attribute names are the released ``G_ema``'s keys under ``encoder_global.``, ``encoder_detail.``,
``encoder_canonical.``, ``generator_triplane.`` and ``background.``; defaults are the released sizes (512²
input, 64² global features, 256² triplanes of 3 x 32 channels). Initialisation is plain (weights come from the
checkpoint).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from headsplat.models.portrait4d.segformer import Block, BlockCross, OverlapPatchEmbed


def add_coords(im: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C + 2, H, W): x then y pixel coordinates, ``linspace(-1, 1)`` (corners at ±1)."""
    b, _, h, w = im.shape
    y, x = torch.meshgrid(torch.linspace(-1, 1, h, dtype=torch.float32, device=im.device),
                          torch.linspace(-1, 1, w, dtype=torch.float32, device=im.device), indexing="ij")
    return torch.cat([im, torch.stack([x, y])[None].expand(b, -1, -1, -1).to(im.dtype)], 1)


# -- global encoder: DeepLabV3 on a ResNet34 without normalisation, output stride 8 ---------------------------
class BasicBlock(nn.Module):
    """ResNet's basic block with its BatchNorms replaced by identities (so no norm keys)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu(self.conv1(x)))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class ResNet34Encoder(nn.Module):
    """segmentation_models_pytorch's ``resnet34`` encoder, normalisation removed, made dilated for output stride
    8 the way that library does it: every convolution of layer3 (layer4) gets stride 1 and dilation 2 (4)."""

    def __init__(self, in_channels: int = 5, layers=(3, 4, 6, 3), width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, strides, dilations = tuple(width * k for k in (1, 2, 4, 8)), (1, 2, 1, 1), (1, 1, 2, 4)
        inplanes = width
        for i, (n, w, s, d) in enumerate(zip(layers, widths, strides, dilations)):
            # layer3/4's first blocks keep their 1x1 downsampling convs (the channels change), at stride 1
            first_stride = s if d == 1 else 1
            blocks = [BasicBlock(inplanes, w, first_stride, d)]
            blocks += [BasicBlock(w, w, 1, d) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = w
        self.out_channels = (in_channels, width, *widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in, H, W) -> (B, 8 width, H / 8, W / 8) (the deepest feature, all the decoder uses)."""
        x = self.maxpool(self.relu(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class _ASPPPooling(nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for mod in self:
            x = mod(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling without normalisation: 1x1, three dilated 3x3 (12, 24, 36) and image
    pooling branches, concatenated and projected."""

    def __init__(self, in_channels: int, out_channels: int, atrous_rates=(12, 24, 36)):
        super().__init__()
        branches = [nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.ReLU())]
        branches += [nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=r, dilation=r, bias=False),
                                   nn.ReLU()) for r in atrous_rates]
        branches.append(_ASPPPooling(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                     nn.ReLU()))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(nn.Conv2d(5 * out_channels, out_channels, 1, bias=False), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs], 1))


class DeepLabV3Decoder(nn.Sequential):
    """ASPP, a 3x3 convolution and ReLU (Portrait4D's copy, normalisation removed)."""

    def __init__(self, in_channels: int, out_channels: int = 256, atrous_rates=(12, 24, 36)):
        super().__init__(ASPP(in_channels, out_channels, atrous_rates),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.ReLU())
        self.out_channels = out_channels


class EncoderGlobal(nn.Module):
    """(B, 3, H, W) image in [-1, 1] (coordinates appended) -> (B, 256, H / 8, W / 8) global features."""

    def __init__(self, in_channels: int = 5, decoder_channels: int = 256, width: int = 64):
        super().__init__()
        self.encoder = ResNet34Encoder(in_channels, width=width)
        self.decoder = DeepLabV3Decoder(8 * width, decoder_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(add_coords(x)))


# -- detail encoder, background --------------------------------------------------------------------------------
def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(negative_slope=0.01, inplace=True)


class EncoderDetail(nn.Module):
    """(B, 3, H, W) -> (B, 96, H / 2, W / 2): a 7x7/2 convolution and four 3x3, leaky ReLU (0.01)."""

    def __init__(self, in_channels: int = 5):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 64, 7, stride=2, padding=3), _lrelu(),
                                   nn.Conv2d(64, 96, 3, padding=1), _lrelu()]
        for _ in range(3):
            layers += [nn.Conv2d(96, 96, 3, padding=1), _lrelu()]
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(add_coords(x))


class Downsample(nn.Module):
    """A 3x3 stride-2 convolution (the reference's ``openaimodel.Downsample`` with ``use_conv``)."""

    def __init__(self, channels: int, use_conv: bool = True, dims: int = 2, out_channels: int | None = None):
        super().__init__()
        self.channels, self.out_channels = channels, out_channels or channels
        self.op = nn.Conv2d(channels, self.out_channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest 2x upsampling, then a 3x3 convolution (``openaimodel.Upsample`` with ``use_conv``)."""

    def __init__(self, channels: int, use_conv: bool = True, dims: int = 2, out_channels: int | None = None):
        super().__init__()
        self.channels, self.out_channels = channels, out_channels or channels
        self.conv = nn.Conv2d(channels, self.out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class EncoderBG(nn.Module):
    """The background U-Net: (B, 3, H, W) -> (B, out_channels, H, W) (before its sigmoid)."""

    def __init__(self, in_channels: int = 5, out_channels: int = 32, width: int = 64):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels

        def conv(i, o):
            return [nn.Conv2d(i, o, 3, padding=1), _lrelu()]

        a, b, c, d = (width * k for k in (1, 2, 4, 8))
        self.input_conv = nn.Sequential(nn.Conv2d(in_channels, a, 3, stride=2, padding=1), _lrelu())
        self.down_conv_1 = nn.Sequential(*conv(a, a), Downsample(a, True, 2, b))
        self.down_conv_2 = nn.Sequential(*conv(b, b), Downsample(b, True, 2, c))
        self.down_conv_3 = nn.Sequential(*conv(c, c), Downsample(c, True, 2, d))
        self.middle = nn.Sequential(*conv(d, d))
        self.up_conv_1 = nn.Sequential(*conv(2 * d, c), Upsample(c, True, 2, c))
        self.up_conv_2 = nn.Sequential(*conv(2 * c, b), Upsample(b, True, 2, b))
        self.up_conv_3 = nn.Sequential(*conv(2 * b, a), Upsample(a, True, 2, a))
        self.up_conv_4 = nn.Sequential(*conv(2 * a, a), Upsample(a, True, 2, a))
        self.out_conv = nn.Conv2d(a, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.input_conv(add_coords(x))
        h2 = self.down_conv_1(h1)
        h3 = self.down_conv_2(h2)
        h4 = self.down_conv_3(h3)
        x = self.up_conv_1(torch.cat([self.middle(h4), h4], 1))
        x = self.up_conv_2(torch.cat([x, h3], 1))
        x = self.up_conv_3(torch.cat([x, h2], 1))
        return self.out_conv(self.up_conv_4(torch.cat([x, h1], 1)))


# -- canonicalisation / reenactment and the triplane decoder ---------------------------------------------------
def _mapping(layers: int, dims: int, hidden: int) -> nn.ModuleList:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(dims if i == 0 else hidden, hidden), _lrelu()]
    return nn.ModuleList(mods)


class EncoderCanonical(nn.Module):
    """Global features + motion codes -> canonical features: the source's own motion (``y_x``) neutralises the
    face in ``num_blocks_neutral`` cross-attention blocks, the driver's (``y``) animates it in
    ``num_blocks_motion``; tokens of the global features at stride 2, motion codes as ``H_y x W_y`` tokens."""

    def __init__(self, img_size: int = 64, patch_size: int = 3, in_chans: int = 256, embed_dims: int = 1024,
                 mot_dims: int = 512, mot_dims_hidden: int = 512, H_y: int = 8, W_y: int = 8,
                 num_heads: int = 4, mlp_ratios: float = 2, qkv_bias: bool = True, qk_scale: float | None = None,
                 num_blocks_neutral: int = 3, num_blocks_motion: int = 3, sr_ratios: int = 1,
                 mapping_layers: int = 0):
        super().__init__()
        self.num_blocks_neutral, self.num_blocks_motion, self.mapping_layers = (num_blocks_neutral,
                                                                               num_blocks_motion, mapping_layers)
        self.H_y, self.W_y = H_y, W_y
        if mapping_layers > 0:
            self.maps = _mapping(mapping_layers, mot_dims, mot_dims_hidden)
            self.maps_neutral = _mapping(mapping_layers, mot_dims, mot_dims_hidden)
        else:
            self.maps = self.maps_neutral = None
            mot_dims_hidden = mot_dims
        self.proj_y_neutral = nn.Linear(mot_dims_hidden, H_y * W_y * embed_dims)
        self.proj_y = nn.Linear(mot_dims_hidden, H_y * W_y * embed_dims)
        self.patch_embed = OverlapPatchEmbed(img_size, patch_size, 2, in_chans, embed_dims)

        def blocks(n):
            return nn.ModuleList([BlockCross(embed_dims, mot_dims_hidden, H_y, W_y, num_heads, mlp_ratios, qkv_bias,
                                             qk_scale, sr_ratios) for _ in range(n)])

        self.trans_blocks_neutral = blocks(num_blocks_neutral)
        self.trans_blocks_motion = blocks(num_blocks_motion)
        self.pixelshuffle = nn.PixelShuffle(upscale_factor=2)
        self.convs = nn.Sequential(nn.UpsamplingBilinear2d(scale_factor=2), nn.Conv2d(in_chans, 128, 3, padding=1),
                                   nn.ReLU(inplace=True), nn.UpsamplingBilinear2d(scale_factor=2),
                                   nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(inplace=True),
                                   nn.Conv2d(128, 96, 3, padding=1))

    def forward(self, x: torch.Tensor, y: torch.Tensor, y_x: torch.Tensor, scale: float = 1.0
                ) -> list[torch.Tensor]:
        """x: (B, 256, 64, 64) global features; y, y_x: (B, mot_dims) driver and source motion codes;
        scale: the motion cross-attention's weight. Returns [(B, 256, 64, 64), (B, 96, 256, 256)]."""
        b = x.shape[0]
        for layer in self.maps or ():
            y = layer(y)
        for layer in self.maps_neutral or ():
            y_x = layer(y_x)
        y = self.proj_y(y).reshape(b, self.H_y * self.W_y, -1)
        y_x = self.proj_y_neutral(y_x).reshape(b, self.H_y * self.W_y, -1)
        x, h, w = self.patch_embed(x)
        for blk in self.trans_blocks_neutral:
            x = blk(x, y_x, h, w, scale=scale)
        for blk in self.trans_blocks_motion:
            x = blk(x, y, h, w, scale=scale)
        x = self.pixelshuffle(x.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous())
        return [x, self.convs(x)]


class DecoderTriplane(nn.Module):
    """Canonical (B, 96, 256, 256) + detail (B, 96, 256, 256) features -> (B, 96, 256, 256) triplanes
    (3 planes x 32 channels)."""

    def __init__(self, img_size: int = 256, patch_size: int = 3, embed_dims: int = 1024, num_heads: int = 2,
                 mlp_ratios: float = 2, qkv_bias: bool = True, qk_scale: float | None = None, num_blocks: int = 1,
                 sr_ratios: int = 2, width: int = 256):
        super().__init__()
        self.num_blocks = num_blocks
        w, h = width, width // 2
        self.convs1 = nn.Sequential(nn.Conv2d(192, w, 3, padding=1), _lrelu(), nn.Conv2d(w, h, 3, padding=1), _lrelu())
        self.patch_embed = OverlapPatchEmbed(img_size, patch_size, 2, h, embed_dims)
        self.trans_blocks = nn.ModuleList([Block(embed_dims, num_heads, mlp_ratios, qkv_bias, qk_scale, sr_ratios)
                                           for _ in range(num_blocks)])
        self.pixelshuffle = nn.PixelShuffle(upscale_factor=2)
        # the pixel-shuffled tokens (embed_dims / 4 channels) beside the canonical features (96)
        self.convs2 = nn.Sequential(nn.Conv2d(embed_dims // 4 + 96, w, 3, padding=1), _lrelu(),
                                    nn.Conv2d(w, h, 3, padding=1), _lrelu(), nn.Conv2d(h, h, 3, padding=1), _lrelu())
        self.conv_last = nn.Conv2d(h, 96, 3, padding=1)

    def forward(self, x_global: torch.Tensor, x_detail: torch.Tensor) -> torch.Tensor:
        b = x_global.shape[0]
        x = self.convs1(torch.cat([x_global, x_detail], 1))
        x, h, w = self.patch_embed(x)
        for blk in self.trans_blocks:
            x = blk(x, h, w)
        x = self.pixelshuffle(x.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous())
        return self.conv_last(self.convs2(torch.cat([x, x_global], 1)))
