"""GAGAvatar's source-image encoder: DINOv2 features of the last four blocks fused by a DPT-style head.

Parameter names follow the released checkpoint (``base_model.dino_model``, ``projects``, ``resize_layers``,
``layer_rn``, ``refinenet``, ``output_conv``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from headsplat.models.gagavatar.vit import DinoViT, ViTConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class EncoderConfig:
    vit: ViTConfig = field(default_factory=ViTConfig)
    out_dims: tuple = (256, 512, 1024, 1024)  # channels of the four projected feature levels
    hidden_dim: int = 256  # channels of the fusion path
    output_dim: int = 256  # channels of the local feature map f0


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, 1, 1)
        self.conv2 = nn.Conv2d(features, features, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FeatureFusionBlock(nn.Module):
    """Adds a skip level (through ``resConfUnit1``), refines, upsamples (bilinear, corners aligned), projects."""

    def __init__(self, features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size=None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


class SourceEncoder(nn.Module):
    """(B, 3, H, W) source image in [0, 1] -> local features f0 (B, C, 8H/p, 8W/p) and a global feature f1
    (B, D).

    f1 is the *first patch token* of the last block (the class token is dropped before it is taken): a quirk
    of the reference that the weights were trained with.
    """

    def __init__(self, cfg: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.cfg = cfg
        d, dims, hidden = cfg.vit.embed_dim, cfg.out_dims, cfg.hidden_dim
        self.dino_model = DinoViT(cfg.vit)
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.projects = nn.ModuleList([nn.Conv2d(d, c, 1) for c in dims])
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(dims[0], dims[0], kernel_size=4, stride=4),
            nn.ConvTranspose2d(dims[1], dims[1], kernel_size=2, stride=2),
            nn.Identity(),
            nn.Conv2d(dims[3], dims[3], kernel_size=3, stride=2, padding=1),
        ])
        self.layer_rn = nn.ModuleList([nn.Conv2d(c + 3, hidden, 3, 1, 1, bias=False) for c in dims])
        self.refinenet = nn.ModuleList([FeatureFusionBlock(hidden) for _ in range(4)])
        self.output_conv = nn.Conv2d(hidden, cfg.output_dim, 3, 1, 1)

    def forward(self, images: torch.Tensor, output_size=None) -> tuple[torch.Tensor, torch.Tensor]:
        images = (images - self._mean) / self._std
        p = self.cfg.vit.patch_size
        gh, gw = images.shape[-2] // p, images.shape[-1] // p
        tokens = self.dino_model.intermediate_layers(images, 4)
        levels = []
        for i, t in enumerate(tokens):
            f = t.permute(0, 2, 1).reshape(t.shape[0], t.shape[-1], gh, gw)
            f = self.resize_layers[i](self.projects[i](f))
            # the normalised image itself, resized (bilinear, antialiased), rides along as 3 extra channels
            small = F.interpolate(images, size=f.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
            levels.append(self.layer_rn[i](torch.cat([small, f], 1)))
        x = self.refinenet[0](levels[3], size=levels[2].shape[2:])
        x = self.refinenet[1](x, levels[2], size=levels[1].shape[2:])
        x = self.refinenet[2](x, levels[1], size=levels[0].shape[2:])
        x = self.refinenet[3](x, levels[0])
        f0 = self.output_conv(x)
        if output_size is not None:
            f0 = F.interpolate(f0, output_size, mode="bilinear", align_corners=True)
        return f0, tokens[-1][:, 0]
