"""StyleGAN2's generator parts (Karras et al. 2020) as EG3D, Portrait4D and OmniAvatar build on them: mapping
network, modulated convolution, synthesis layers and blocks, the synthesis network.

Constructor arguments are the reference classes' (so a pickle's ``init_kwargs`` construct them) and attribute
names are its ``state_dict()`` keys (so released weights load strictly). Two options of Portrait4D's copy are
included: ``MappingNetwork(normalize=False)`` and ``SynthesisBlock(up=1)``. Off CUDA every block runs in float32,
as the reference does; on CUDA ``use_fp16`` blocks run in float16.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from headsplat.core.errors import ArgumentError, ShapeError
from headsplat.models.eg3d.ops import ACTIVATIONS, bias_act, conv2d_resample, setup_filter, upsample2d

NOISE_MODES = ("random", "const", "none")


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """``x`` divided by its root mean square along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None = None,
                     up: int = 1, down: int = 1, padding: int = 0, resample_filter: torch.Tensor | None = None,
                     demodulate: bool = True, flip_weight: bool = True, fused_modconv: bool = True
                     ) -> torch.Tensor:
    """StyleGAN2's modulated convolution: the weight scaled per sample and input channel by ``styles``, then
    (``demodulate``) normalised per sample and output channel to unit L2 norm.

    Args:
        x: (N, I, H, W). weight: (O, I, k, k). styles: (N, I).
        noise: broadcastable to the output, added after demodulation, or None.
        fused_modconv: True: one grouped convolution with per-sample weights; False: scale the activations
            before and after a shared convolution (the same result up to rounding).

    Returns:
        (N, O, H * up / down, W * up / down).
    """
    n = x.shape[0]
    o, i, kh, kw = weight.shape
    if x.ndim != 4 or x.shape[1] != i or styles.shape != (n, i):
        raise ShapeError(f"x, styles: expected ({n}, {i}, H, W) and ({n}, {i}), got {tuple(x.shape)} and "
                         f"{tuple(styles.shape)}")
    if x.dtype == torch.float16 and demodulate:  # pre-normalise against fp16 overflow
        weight = weight * (1 / np.sqrt(i * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    w = dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # (N, O, I, k, k)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # (N, O)
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(n, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return x + noise.to(x.dtype) if noise is not None else x

    x = x.reshape(1, -1, *x.shape[2:])
    x = conv2d_resample(x, w.reshape(-1, i, kh, kw).to(x.dtype), f=resample_filter, up=up, down=down,
                        padding=padding, groups=n, flip_weight=flip_weight)
    x = x.reshape(n, -1, *x.shape[2:])
    return x + noise if noise is not None else x


class FullyConnectedLayer(nn.Module):
    """A linear layer with equalised learning rate: weight stored as ``randn / lr_multiplier``, used times
    ``lr_multiplier / sqrt(in_features)``; bias times ``lr_multiplier``. (B, in) -> (B, out)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1, bias_init: float = 0):
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)


class Conv2dLayer(nn.Module):
    """A convolution with equalised learning rate, optional FIR up/downsampling, bias, activation and clamp."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1, resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, channels_last: bool = False, trainable: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.activation = in_channels, out_channels, activation
        self.up, self.down, self.conv_clamp = up, down, conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = ACTIVATIONS[activation].gain
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        bias_t = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias_t) if bias_t is not None else None
        else:
            self.register_buffer("weight", weight)
            if bias_t is not None:
                self.register_buffer("bias", bias_t)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=self.up == 1)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class MappingNetwork(nn.Module):
    """z (and a label c) -> w, broadcast to ``num_ws`` copies, optionally truncated towards ``w_avg``.

    ``normalize`` (Portrait4D's option): False feeds the label embedding on without its 2nd-moment
    normalisation.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.998, normalize: bool = True):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta, self.normalize = num_layers, w_avg_beta, normalize
        embed_features = w_dim if embed_features is None else embed_features
        embed_features = 0 if c_dim == 0 else embed_features
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                                          lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, update_emas: bool = False, need_repeat: bool = True
                ) -> torch.Tensor:
        """z: (B, z_dim), c: (B, c_dim) -> ws: (B, num_ws, w_dim) (or (B, w_dim) when ``num_ws`` is None, or
        ``need_repeat`` is False: OmniAvatar's option)."""
        x = None
        if self.z_dim > 0:
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            y = self.embed(c.to(torch.float32))
            y = normalize_2nd_moment(y) if self.normalize else y
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None and need_repeat:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


def _check_noise_mode(noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ArgumentError("noise_mode", f"unknown value {noise_mode!r}; choose random, const or none")


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally upsampling), per-pixel noise, bias, leaky ReLU, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation].gain
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
                gain: float = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """x: (B, in, R / up, R / up), w: (B, w_dim) -> (B, out, R, R). ``noise_mode``: fresh normal noise
        (``random``, from ``generator``), the stored ``noise_const``, or ``none``."""
        _check_noise_mode(noise_mode)
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device,
                                generator=generator) * self.noise_strength
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=self.up == 1,
                             fused_modconv=fused_modconv)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution without demodulation, bias, clamp: features -> ``out_channels`` image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None, channels_last: bool = False, zero_weight: bool = False):
        super().__init__()
        self.in_channels, self.out_channels, self.w_dim, self.conv_clamp = in_channels, out_channels, w_dim, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        init = torch.zeros if zero_weight else torch.randn
        self.weight = nn.Parameter(init([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (const or upsampling conv0) + conv1, and a ToRGB added to the
    upsampled running image (``skip`` architecture).

    ``up`` (Portrait4D's option): 1 makes a block at the input's resolution (conv0 does not upsample and the
    image is not upsampled), as ``SynthesisBlockNoUp`` of EG3D's super-resolution modules.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = 256, use_fp16: bool = False, fp16_channels_last: bool = False,
                 fused_modconv_default: bool | str = True, up: int = 2, zero_torgb: bool = False, **layer_kwargs):
        super().__init__()
        if architecture not in ("orig", "skip", "resnet"):
            raise ArgumentError("architecture", f"unknown value {architecture!r}; choose orig, skip or resnet")
        self.in_channels, self.w_dim, self.resolution, self.img_channels = in_channels, w_dim, resolution, img_channels
        self.is_last, self.architecture, self.use_fp16, self.up = is_last, architecture, use_fp16, up
        self.channels_last = use_fp16 and fp16_channels_last
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=up,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    zero_weight=zero_torgb)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, force_fp32: bool = False,
                fused_modconv: bool | None = None, update_emas: bool = False, **layer_kwargs):
        """x: (B, in, R / up, R / up) or None (first block); img: (B, img_channels, R / up, R / up) or None;
        ws: (B, num_conv + num_torgb, w_dim) -> (x (B, out, R, R), img (B, img_channels, R, R) float32)."""
        if ws.ndim != 3 or ws.shape[1] != self.num_conv + self.num_torgb:
            raise ShapeError(f"ws: expected (B, {self.num_conv + self.num_torgb}, {self.w_dim}), got "
                             f"{tuple(ws.shape)}")
        w_iter = iter(ws.unbind(dim=1))
        if ws.device.type != "cuda":
            force_fp32 = True
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        fmt = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format
        if fused_modconv is None:
            fused_modconv = self.fused_modconv_default
        if fused_modconv == "inference_only":
            fused_modconv = not self.training
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=fmt).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = x.to(dtype=dtype, memory_format=fmt)
        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=np.sqrt(0.5), **layer_kwargs)
            x = y.add_(x)
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        if img is not None and self.up > 1:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img.add_(y) if img is not None else y
        return x, img


def SynthesisBlockNoUp(*args, **kwargs) -> SynthesisBlock:
    """EG3D's ``SynthesisBlockNoUp``: a :class:`SynthesisBlock` at its input's resolution (same keys)."""
    return SynthesisBlock(*args, up=1, **kwargs)


class SynthesisNetwork(nn.Module):
    """ws -> image: blocks ``b4 ... b{img_resolution}``, channels ``min(channel_base // res, channel_max)``,
    float16 for the ``num_fp16_res`` highest resolutions (on CUDA)."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 4, **block_kwargs):
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ArgumentError("img_resolution", f"{img_resolution}: not a power of two >= 4")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = res == img_resolution
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=is_last, use_fp16=res >= fp16_resolution,
                                   **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, res_out: torch.Tensor | None = None, res_skip: torch.Tensor | None = None,
                **block_kwargs) -> torch.Tensor:
        """ws: (B, num_ws, w_dim) -> (B, img_channels, R, R) float32. ``res_out`` and ``res_skip`` (OmniAvatar's
        injection, both or neither) are added to the features and the image after the 16² block."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ShapeError(f"ws: expected (B, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            cur = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, cur, **block_kwargs)
            if x.shape[2] == 16 and res_out is not None and res_skip is not None:
                x, img = x + res_out, img + res_skip
        return img


class Generator(nn.Module):
    """StyleGAN2's generator (mapping + synthesis), EG3D's triplane backbone."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, **synthesis_kwargs):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                      **(mapping_kwargs or {}))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)
