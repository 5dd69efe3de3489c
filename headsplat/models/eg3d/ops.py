"""StyleGAN2's image ops as their reference (non-CUDA) paths compute them: FIR resampling (``upfirdn2d``), fused
bias + activation (``bias_act``), and convolution with up/downsampling (``conv2d_resample``).

Pure functions on ``(N, C, H, W)`` tensors; the order of operations follows the authors' reference paths so that
results agree to float rounding, fp16 included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from headsplat.core.errors import ShapeError


@dataclass(frozen=True)
class Activation:
    """One activation of :func:`bias_act`: the function, its default slope and its default gain."""
    func: Callable[[torch.Tensor, float], torch.Tensor]
    alpha: float = 0.0
    gain: float = 1.0


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": Activation(lambda x, a: torch.tanh(x)),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x)),
    "elu": Activation(lambda x, a: F.elu(x)),
    "selu": Activation(lambda x, a: F.selu(x)),
    "softplus": Activation(lambda x, a: F.softplus(x)),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
             alpha: float | None = None, gain: float | None = None, clamp: float | None = None) -> torch.Tensor:
    """``clamp(act(x + b) * gain)``.

    Args:
        x: any shape. b: (C,) added along ``dim`` (C = ``x.shape[dim]``), or None.
        act: a key of :data:`ACTIVATIONS`. alpha, gain: None takes the activation's default.
        clamp: clamp the result to ``[-clamp, clamp]``; None: no clamping.
    """
    spec = ACTIVATIONS[act]
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ShapeError(f"b: expected shape ({x.shape[dim]},), got {tuple(b.shape)}")
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, float(spec.alpha if alpha is None else alpha))
    g = float(spec.gain if gain is None else gain)
    if g != 1:
        x = x * g
    if clamp is not None and clamp >= 0:
        x = x.clamp(-float(clamp), float(clamp))
    return x


def setup_filter(f, normalize: bool = True, flip_filter: bool = False, gain: float = 1.0,
                 separable: bool | None = None) -> torch.Tensor:
    """A FIR filter as :func:`upfirdn2d` takes it: float32, separable taps ``(K,)`` (chosen by default for 1-D
    filters of 8 taps or more) or a 2-D ``(K, K)`` outer product; normalised to unit DC gain by default."""
    f = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    return f * (gain ** (f.ndim / 2))


def _pair(v, what: str) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _padding4(p) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) from an int, (x, y) or (x0, x1, y0, y1)."""
    if isinstance(p, int):
        return p, p, p, p
    p = [int(v) for v in p]
    return (p[0], p[0], p[1], p[1]) if len(p) == 2 else (p[0], p[1], p[2], p[3])


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a filter; 1-D filters are square."""
    return (1, 1) if f is None else (int(f.shape[-1]), int(f.shape[0]))


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up=1, down=1, padding=0, flip_filter: bool = False,
              gain: float = 1.0) -> torch.Tensor:
    """Upsample (insert ``up - 1`` zeros after each pixel), pad (negative: crop), convolve with the FIR filter
    ``f`` (valid part only) and keep every ``down``-th pixel, per channel, as :func:`scipy.signal.upfirdn` does.

    Args:
        x: (N, C, H, W). f: (K,) separable, (Kh, Kw), or None (identity); float32.
        up, down: int or (x, y). padding: int, (x, y) or (x0, x1, y0, y1), in upsampled pixels.
        flip_filter: False: convolution; True: correlation. gain: overall signal scale.

    Returns:
        (N, C, H', W') with ``H' = (H * up + pad_y0 + pad_y1 - Kh + down) // down``.
    """
    if x.ndim != 4:
        raise ShapeError(f"x: expected shape (N, C, H, W), got {tuple(x.shape)}")
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    upx, upy = _pair(up, "up")
    downx, downy = _pair(down, "down")
    px0, px1, py0, py1 = _padding4(padding)
    # 1. zero insertion
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape(n, c, h * upy, w * upx)
    # 2. pad, then crop for negative padding
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    # 3. the filter as a depthwise convolution (conv2d correlates: flip it for a true convolution)
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([c, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=c)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=c)
        x = F.conv2d(x, f.unsqueeze(3), groups=c)
    # 4. decimation
    return x[:, :, ::downy, ::downx]


def filter2d(x: torch.Tensor, f: torch.Tensor | None, padding=0, flip_filter: bool = False, gain: float = 1.0
             ) -> torch.Tensor:
    """Filter keeping the size (``padding`` on top of the centring padding)."""
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = _filter_size(f)
    return upfirdn2d(x, f, padding=[px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2],
                     flip_filter=flip_filter, gain=gain)


def upsample2d(x: torch.Tensor, f: torch.Tensor | None, up=2, padding=0, flip_filter: bool = False,
               gain: float = 1.0) -> torch.Tensor:
    """Upsample by ``up`` with the FIR filter: (N, C, H, W) -> (N, C, H * up, W * up)."""
    upx, upy = _pair(up, "up")
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = _filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x: torch.Tensor, f: torch.Tensor | None, down=2, padding=0, flip_filter: bool = False,
                 gain: float = 1.0) -> torch.Tensor:
    """Downsample by ``down`` with the FIR filter: (N, C, H, W) -> (N, C, H / down, W / down)."""
    downx, downy = _pair(down, "down")
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = _filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2,
         py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain)


def _conv(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, down: int = 1,
                    padding: int | Sequence[int] = 0, groups: int = 1, flip_weight: bool = True,
                    flip_filter: bool = False) -> torch.Tensor:
    """2-D convolution with FIR up/downsampling, padding applied once (relative to the upsampled image).

    Args:
        x: (N, Cin, H, W). w: (Cout, Cin / groups, kh, kw), same dtype as x.
        f: the low-pass filter of :func:`setup_filter` (used when up or down > 1).
        flip_weight: True: correlation (as ``F.conv2d``); False: convolution.

    Returns:
        (N, Cout, H * up / down, W * up / down) for the usual ``padding = kernel // 2``.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ShapeError(f"x, w: expected 4-D tensors, got {tuple(x.shape)} and {tuple(w.shape)}")
    cout, cin_g, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2

    if kw == 1 and kh == 1 and down > 1 and up == 1:  # 1x1 after filtering and decimating
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:  # 1x1 before upsampling
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)
    if down > 1 and up == 1:  # filter, then strided convolution
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:  # transposed strided convolution, then filter
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, cout // groups, cin_g, kh, kw).transpose(1, 2)
            w = w.reshape(groups * cin_g, cout // groups, kh, kw)
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2,
                      flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:  # plain convolution
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x
