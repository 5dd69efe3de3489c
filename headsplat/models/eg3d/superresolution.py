"""EG3D's super-resolution modules: the volume-rendered feature image (and its first three channels as RGB)
upsampled by StyleGAN2 synthesis blocks with constant styles (the last ``w`` repeated).

Constructor arguments and keys are the reference's; ``ws_super``/``use_ws_ones`` are Portrait4D's additions to
``SuperresolutionHybrid8XDC``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from headsplat.core.errors import ArgumentError
from headsplat.models.eg3d.ops import setup_filter
from headsplat.models.eg3d.stylegan2 import SynthesisBlock, SynthesisBlockNoUp


class _Superresolution(nn.Module):
    """Two blocks; the input is resized (bilinear, optionally antialiased) to ``input_resolution`` first.

    A subclass names its sizes: ``input_resolution`` -> ``output_resolution`` through blocks at
    ``block_resolutions`` with ``default_widths`` channels, the first block of type ``first_block``, and
    whether it registers the (unused) ``resample_filter`` buffer the reference's module has. ``widths``: the two
    blocks' channels (default: the reference's; smaller for tests' tiny networks)."""
    input_resolution = 128
    output_resolution = 0
    block_resolutions = (256, 512)
    default_widths = (128, 64)
    first_block = SynthesisBlock
    has_resample_filter = True
    resize_only_smaller = False  # SuperresolutionHybrid4X resizes only inputs smaller than its input size

    def __init__(self, channels: int, img_resolution: int, sr_num_fp16_res: int, sr_antialias: bool,
                 num_fp16_res: int = 4, conv_clamp=None, channel_base=None, channel_max=None,
                 widths: tuple[int, int] | None = None, **block_kwargs):
        super().__init__()
        if img_resolution != self.output_resolution:
            raise ArgumentError("img_resolution", f"{type(self).__name__} makes {self.output_resolution}² images, "
                                f"not {img_resolution}²")
        self.sr_antialias = sr_antialias
        mid, out = widths or self.default_widths
        res0, res1 = self.block_resolutions
        use_fp16 = sr_num_fp16_res > 0
        clamp = 256 if use_fp16 else None
        img_channels = block_kwargs.pop("img_channels", 3)  # OmniAvatar's option (its SR modules take it)
        first = type(self).first_block  # a class or a function: taken from the class, so never bound
        self.block0 = first(channels, mid, w_dim=512, resolution=res0, img_channels=img_channels, is_last=False,
                            use_fp16=use_fp16, conv_clamp=clamp, **block_kwargs)
        self.block1 = SynthesisBlock(mid, out, w_dim=512, resolution=res1, img_channels=img_channels, is_last=True,
                                     use_fp16=use_fp16, conv_clamp=clamp, **block_kwargs)
        if self.has_resample_filter:
            self.register_buffer("resample_filter", setup_filter([1, 3, 3, 1]))

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        r = self.input_resolution
        if x.shape[-1] == r or (self.resize_only_smaller and x.shape[-1] >= r):
            return x
        return F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=self.sr_antialias)

    def forward(self, rgb: torch.Tensor, x: torch.Tensor, ws: torch.Tensor, ws_super: torch.Tensor | None = None,
                **block_kwargs) -> torch.Tensor:
        """rgb: (B, 3, r, r), x: (B, channels, r, r), ws: (B, num_ws, 512) (the last one is used) ->
        (B, 3, R, R)."""
        ws = (ws if ws_super is None else ws_super)[:, -1:, :].repeat(1, 3, 1)
        if getattr(self, "use_ws_ones", False):
            ws = torch.ones_like(ws)
        x, rgb = self._resize(x), self._resize(rgb)
        x, rgb = self.block0(x, rgb, ws, **block_kwargs)
        x, rgb = self.block1(x, rgb, ws, **block_kwargs)
        return rgb


class SuperresolutionHybrid8XDC(_Superresolution):
    """128² -> 512², 256 then 128 channels (EG3D's FFHQ 512 models, Portrait4D, OmniAvatar)."""
    output_resolution = 512
    default_widths = (256, 128)
    has_resample_filter = False

    def __init__(self, *args, use_ws_ones: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_ws_ones = use_ws_ones


class SuperresolutionHybrid8X(_Superresolution):
    """128² -> 512², 128 then 64 channels."""
    output_resolution = 512


class SuperresolutionHybrid4X(_Superresolution):
    """128² -> 256² (a first block without upsampling), 128 then 64 channels."""
    output_resolution = 256
    block_resolutions = (128, 256)
    first_block = SynthesisBlockNoUp
    resize_only_smaller = True


class SuperresolutionHybrid2X(_Superresolution):
    """64² -> 128² (a first block without upsampling), 128 then 64 channels."""
    input_resolution = 64
    output_resolution = 128
    block_resolutions = (64, 128)
    first_block = SynthesisBlockNoUp


#: the reference's class paths (``rendering_kwargs['superresolution_module']``) -> class
SUPERRESOLUTION = {
    "training.superresolution.SuperresolutionHybrid8XDC": SuperresolutionHybrid8XDC,
    "training.superresolution.SuperresolutionHybrid8X": SuperresolutionHybrid8X,
    "training.superresolution.SuperresolutionHybrid4X": SuperresolutionHybrid4X,
    "training.superresolution.SuperresolutionHybrid2X": SuperresolutionHybrid2X,
}


def build_superresolution(name: str, **kwargs) -> nn.Module:
    """The super-resolution module a ``rendering_kwargs['superresolution_module']`` class path names, built with
    ``kwargs``.

    Raises:
        ArgumentError: a class path that is not one of :data:`SUPERRESOLUTION` (named ``superresolution_module``).
    """
    if name not in SUPERRESOLUTION:
        raise ArgumentError("superresolution_module", f"unknown module {name!r}; known: "
                            + ", ".join(sorted(SUPERRESOLUTION)))
    return SUPERRESOLUTION[name](**kwargs)
