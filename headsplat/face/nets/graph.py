"""A PyTorch executor for the converted MediaPipe graphs: each tflite op, computed the way tflite computes it.

The op list comes from ``headsplat/face/data/<model>.json`` (written by ``tools/convert_mediapipe.py``); the
weights are the module's parameters, named as in ``<model>.safetensors``. Activations run channels-first
(NCHW) for PyTorch's convolutions; ops whose meaning depends on the memory layout (reshape, concatenation
axis, strided slice, mean axes, depth-to-space) are computed in tflite's NHWC order. Any leading batch size
works: tflite's batch of 1 in the recorded shapes is replaced by the input's.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from headsplat.core.errors import InputError
from headsplat.core.validate import check_shape, read_safetensors

DATA = Path(__file__).resolve().parents[1] / "data"


class WeightsError(InputError):
    """A weights file does not match the network: missing or unexpected keys, or wrong shapes."""


def _activation(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "none":
        return x
    if kind == "relu":
        return torch.relu(x)
    if kind == "relu6":
        return torch.clamp(x, 0.0, 6.0)
    if kind == "relu_n1_to_1":
        return torch.clamp(x, -1.0, 1.0)
    if kind == "tanh":
        return torch.tanh(x)
    raise NotImplementedError(f"fused activation {kind!r}")


def _same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """tflite SAME padding: the output is ceil(size / stride); the odd pixel of padding goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: list[int], stride: list[int], dilation: list[int] = (1, 1),
              value: float = 0.0) -> torch.Tensor:
    top, bottom = _same_pads(x.shape[2], kernel[0], stride[0], dilation[0])
    left, right = _same_pads(x.shape[3], kernel[1], stride[1], dilation[1])
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


# The tflite ops the executor computes; a graph with any other op is refused when the module is built.
SUPPORTED_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "HARD_SWISH",
    "LOGISTIC", "MAX_POOL_2D", "MEAN", "MUL", "PAD", "PRELU", "RELU", "RELU6", "RESHAPE", "RESIZE_BILINEAR",
    "STRIDED_SLICE", "SUB", "TANH", "CUSTOM:Convolution2DTransposeBias", "CUSTOM:Landmarks2TransformMatrix",
    "CUSTOM:TransformLandmarks", "CUSTOM:TransformTensorBilinear",
})


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1) if x.ndim == 4 else x


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2) if x.ndim == 4 else x


class _Weights(nn.Module):
    """The constants of one op (a convolution's weight and bias, a PReLU's slopes, an ADD's operand)."""

    def __init__(self, shapes: dict[str, list[int]]):
        super().__init__()
        for role, shape in sorted(shapes.items()):
            self.register_parameter(role, nn.Parameter(torch.zeros(shape), requires_grad=False))


class TfliteGraph(nn.Module):
    """One converted MediaPipe network, executed op by op in PyTorch.

    Args:
        spec: the parsed ``<model>.json``; its ``parameters`` (name -> shape) are created zero-filled, to be
            filled from ``<model>.safetensors`` by :func:`load_strict`.

    :meth:`run_graph` takes the model's input in tflite's layout, ``(B, H, W, C)`` float32, and returns the
    graph's outputs in tflite's layouts and order, with the batch size of the input; the networks built on
    this class give them names and shapes in their ``forward``.
    """

    def __init__(self, spec: dict):
        super().__init__()
        unknown = sorted({op["op"] for op in spec["ops"]} - SUPPORTED_OPS)
        if unknown:
            raise NotImplementedError(f"{spec.get('model', 'graph')}: tflite ops without a PyTorch version: "
                                      + ", ".join(unknown))
        self.spec = spec
        self.ops = spec["ops"]
        self.shapes = {int(k): v for k, v in spec["shapes"].items()}
        per_module: dict[str, dict[str, list[int]]] = {}
        for key, shape in spec["parameters"].items():
            module, role = key.split(".", 1)
            per_module.setdefault(module, {})[role] = shape
        # One child module per op with constants, named as in the file: state_dict() keys are the file's keys.
        for module, shapes in sorted(per_module.items()):
            self.add_module(module, _Weights(shapes))
        self.input_ids = [t["id"] for t in spec["inputs"]]
        self.output_ids = [t["id"] for t in spec["outputs"]]
        # Activations are dropped after their last reader, so a large batch holds only the live ones.
        last_read: dict[int, int] = {}
        for k, op in enumerate(self.ops):
            for ref in op["inputs"]:
                if isinstance(ref, int):
                    last_read[ref] = k
        self._release: list[list[int]] = [[] for _ in self.ops]
        for tid, k in last_read.items():
            if tid not in self.output_ids:
                self._release[k].append(tid)
        self.trace_after: int | None = 32
        self._traced: dict[tuple, torch.jit.ScriptFunction] = {}
        self._calls: dict[tuple, int] = {}

    # -- helpers --------------------------------------------------------------------------------------------
    def _param(self, key: str) -> torch.Tensor:
        module, role = key.split(".", 1)
        return getattr(getattr(self, module), role)

    def _operand(self, ref, env: dict[int, torch.Tensor], like: torch.Tensor | None = None) -> torch.Tensor:
        """An op input: an activation from ``env``, or a constant laid out to broadcast against ``like``."""
        if isinstance(ref, int):
            return env[ref]
        if "param" in ref:
            c = self._param(ref["param"])
        else:
            c = torch.tensor(ref["int"], dtype=torch.int64, device=next(iter(env.values())).device)
            c = c.reshape(ref["shape"])
        if like is not None and like.ndim == 4 and c.ndim >= 1:
            # A constant broadcast against an NHWC activation: give it NHWC rank, then the NCHW order.
            c = _nchw(c.reshape([1] * (4 - c.ndim) + list(c.shape)))
        return c

    def _shape(self, tensor_id: int, batch: int) -> list[int]:
        shape = list(self.shapes[tensor_id])
        if shape:
            shape[0] = batch
        return shape

    # -- the graph ------------------------------------------------------------------------------------------
    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.run_graph(*inputs)

    def run_graph(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The graph's outputs (tflite layouts, in the order of ``spec["outputs"]``) for its inputs.

        Without gradients, once :attr:`trace_after` calls have had the same input shapes, dtypes and device, the
        op list is traced for them (``torch.jit.trace``: no compiler) and the trace runs from then on: the
        same operations without Python's cost per op (outputs identical; video tracking on one CPU thread: 18.7
        -> 13.5 ms a frame once traced, for about 0.6 s of tracing, so only inputs of more than ``trace_after``
        (32) calls of one shape are traced). ``trace_after = None`` always runs op by op.
        """
        if len(inputs) != len(self.input_ids):
            raise ValueError(f"expected {len(self.input_ids)} inputs, got {len(inputs)}")
        if self.trace_after is None or torch.is_grad_enabled():
            return self._run_ops(*inputs)
        key = tuple((tuple(x.shape), x.dtype, x.device) for x in inputs)
        traced = self._traced.get(key)
        if traced is None:
            self._calls[key] = self._calls.get(key, 0) + 1
            if self._calls[key] <= self.trace_after:
                return self._run_ops(*inputs)
            for tid, x in zip(self.input_ids, inputs):
                check_shape("input", x, ["B", *self.shapes[tid][1:]])
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.trace: still supported, no compiler
                examples = tuple(x.clone() for x in inputs)
                traced = torch.jit.trace(lambda *xs: self._run_ops(*xs), examples, check_trace=False)
            self._traced[key] = traced
        return traced(*inputs)

    def _run_ops(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env: dict[int, torch.Tensor] = {}
        for tid, x in zip(self.input_ids, inputs):
            check_shape("input", x, ["B", *self.shapes[tid][1:]])
            env[tid] = _nchw(x)
        batch = inputs[0].shape[0]
        for op, release in zip(self.ops, self._release):
            outs = self._run(op, env, batch)
            for tid in release:
                del env[tid]
            for tid, y in zip(op["outputs"], outs):
                env[tid] = y
        return tuple(_nhwc(env[t]) for t in self.output_ids)

    def _run(self, op: dict, env: dict[int, torch.Tensor], batch: int) -> list[torch.Tensor]:
        kind = op["op"]
        ins = op["inputs"]
        x = env[ins[0]] if isinstance(ins[0], int) else None
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = self._param(ins[1]["param"])
            b = self._param(ins[2]["param"]) if len(ins) > 2 and ins[2] is not None else None
            groups = x.shape[1] if kind == "DEPTHWISE_CONV_2D" else 1
            padding = (0, 0)
            if op["padding"] == "same":
                top, bottom = _same_pads(x.shape[2], w.shape[2], op["stride"][0], op["dilation"][0])
                left, right = _same_pads(x.shape[3], w.shape[3], op["stride"][1], op["dilation"][1])
                if top == bottom and left == right:
                    padding = (top, left)  # symmetric: the convolution pads without a padded copy
                else:
                    x = F.pad(x, (left, right, top, bottom))
            y = F.conv2d(x, w, b, stride=op["stride"], padding=padding, dilation=op["dilation"], groups=groups)
            return [_activation(y, op["activation"])]
        if kind == "CUSTOM:Convolution2DTransposeBias":
            w = self._param(ins[1]["param"])
            b = self._param(ins[2]["param"])
            sh, sw = op["stride"]
            y = F.conv_transpose2d(x, w, b, stride=(sh, sw))
            out_h, out_w = self._shape(op["outputs"][0], batch)[1:3]
            if op["padding"] == "same":
                # tflite crops the full transposed convolution to size * stride, the odd pixel off the end.
                top = max((x.shape[2] - 1) * sh + w.shape[2] - out_h, 0) // 2
                left = max((x.shape[3] - 1) * sw + w.shape[3] - out_w, 0) // 2
                y = y[:, :, top:top + out_h, left:left + out_w]
            return [y]
        if kind in ("ADD", "MUL", "SUB"):
            a = self._operand(ins[0], env)
            b = self._operand(ins[1], env, like=a)
            if not isinstance(ins[0], int):
                a = self._operand(ins[0], env, like=b)
            y = a + b if kind == "ADD" else a * b if kind == "MUL" else a - b
            return [_activation(y, op["activation"])]
        if kind == "RELU":
            return [torch.relu(x)]
        if kind == "RELU6":
            return [torch.clamp(x, 0.0, 6.0)]
        if kind == "LOGISTIC":
            return [torch.sigmoid(x)]
        if kind == "TANH":
            return [torch.tanh(x)]
        if kind == "HARD_SWISH":
            return [x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0]
        if kind == "PRELU":
            alpha = self._operand(ins[1], env, like=x)
            if x.ndim == 4 and alpha.numel() == x.shape[1]:
                return [F.prelu(x, alpha.reshape(-1))]  # per-channel slopes: x if x >= 0 else slope * x
            return [torch.where(x >= 0, x, x * alpha)]
        if kind == "MAX_POOL_2D":
            if op["padding"] == "same":
                x = _pad_same(x, op["kernel"], op["stride"], value=-math.inf)
            return [_activation(F.max_pool2d(x, op["kernel"], op["stride"]), op["activation"])]
        if kind == "AVERAGE_POOL_2D":
            if op["padding"] == "same":
                # No shipped graph pads an average pool (they pool globally); tflite's padded average would
                # count only the pixels inside the image, which is unverified here.
                raise NotImplementedError("AVERAGE_POOL_2D with SAME padding")
            return [_activation(F.avg_pool2d(x, op["kernel"], op["stride"]), op["activation"])]
        if kind == "MEAN":
            axes = [a % 4 for a in ins[1]["int"]] if x.ndim == 4 else ins[1]["int"]
            y = _nhwc(x).mean(dim=axes, keepdim=op["keep_dims"])
            return [_nchw(y) if y.ndim == 4 else y]
        if kind == "PAD":
            pads = ins[1]["int"]  # NHWC: (before, after) per dim
            if x.ndim != 4 or pads[0] or pads[1]:
                raise NotImplementedError("PAD: only spatial or channel padding of an NHWC tensor")
            return [F.pad(x, (pads[4], pads[5], pads[2], pads[3], pads[6], pads[7]))]
        if kind == "RESIZE_BILINEAR":
            size = ins[1]["int"]
            if op["align_corners"]:
                y = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
            elif op["half_pixel_centers"]:
                y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            else:
                raise NotImplementedError("RESIZE_BILINEAR without half-pixel centres or aligned corners")
            return [y]
        if kind == "DEPTH_TO_SPACE":
            r = op["block_size"]
            n, c, h, w = x.shape
            # NHWC depth-to-space: channel (i * r + j) * C' + c goes to pixel (h * r + i, w * r + j).
            y = x.reshape(n, r, r, c // (r * r), h, w).permute(0, 3, 4, 1, 5, 2)
            return [y.reshape(n, c // (r * r), h * r, w * r)]
        if kind == "RESHAPE":
            return [_nchw(_nhwc(x).reshape(self._shape(op["outputs"][0], batch)))]
        if kind == "CONCATENATION":
            parts = [self._operand(i, env) for i in ins]
            axis = op["axis"] % len(self.shapes[op["outputs"][0]])
            if parts[0].ndim == 4:
                axis = {0: 0, 1: 2, 2: 3, 3: 1}[axis]
            return [_activation(torch.cat(parts, dim=axis), op["activation"])]
        if kind == "STRIDED_SLICE":
            return [self._strided_slice(op, x)]
        if kind == "CUSTOM:Landmarks2TransformMatrix":
            return [landmarks_to_transform_matrix(x, op)]
        if kind == "CUSTOM:TransformTensorBilinear":
            out = transform_tensor_bilinear(_nhwc(x), env[ins[1]], op["output_height"], op["output_width"])
            return [_nchw(out)]
        if kind == "CUSTOM:TransformLandmarks":
            return [transform_landmarks(x, env[ins[1]])]
        raise NotImplementedError(f"tflite op {kind}")

    def _strided_slice(self, op: dict, x: torch.Tensor) -> torch.Tensor:
        begin, end, strides = (op["inputs"][k]["int"] for k in (1, 2, 3))
        if op["ellipsis_mask"] or op["new_axis_mask"] or op["shrink_axis_mask"]:
            raise NotImplementedError("STRIDED_SLICE with ellipsis, new-axis or shrink masks")
        y = _nhwc(x)
        index = []
        for d in range(y.ndim):
            b = None if op["begin_mask"] >> d & 1 else begin[d]
            e = None if op["end_mask"] >> d & 1 else end[d]
            if d == 0:
                b, e = None, None  # the batch dimension is the caller's
            index.append(slice(b, e, strides[d]))
        return _nchw(y[tuple(index)])


# -- MediaPipe's custom ops (the face mesh with attention) ---------------------------------------------------
def landmarks_to_transform_matrix(landmarks: torch.Tensor, attrs: dict) -> torch.Tensor:
    """MediaPipe's ``Landmarks2TransformMatrix`` (v2): the 4x4 matrix taking a region crop's pixel grid
    (``output_width`` x ``output_height``) into the feature map, from a subset of mesh landmarks.

    The crop is the rotated bounding box of the subset (rotation from the line between two landmarks, so the
    line becomes horizontal), centred on the box, scaled by ``scale_x``/``scale_y``.

    Args:
        landmarks: (B, N, 3) in feature-map pixels.
    Returns:
        (B, 4, 4).
    """
    lm = landmarks[..., :2]
    left, right = lm[:, attrs["left_rotation_idx"]], lm[:, attrs["right_rotation_idx"]]
    rotation = attrs["target_rotation_radians"] - torch.atan2(right[:, 1] - left[:, 1], right[:, 0] - left[:, 0])
    c, s = torch.cos(rotation), torch.sin(rotation)
    pts = lm[:, attrs["subset_idxs"]]  # (B, K, 2)
    # Rotate the subset upright, take its box, rotate the box centre back.
    rx = c[:, None] * pts[..., 0] - s[:, None] * pts[..., 1]
    ry = s[:, None] * pts[..., 0] + c[:, None] * pts[..., 1]
    x0, x1 = rx.min(1).values, rx.max(1).values
    y0, y1 = ry.min(1).values, ry.max(1).values
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    cx = c * mx + s * my
    cy = -s * mx + c * my
    ow, oh = attrs["output_width"], attrs["output_height"]
    sx = attrs["scale_x"] * (x1 - x0) / ow
    sy = attrs["scale_y"] * (y1 - y0) / oh
    # T = shift(centre) @ rotate(-rotation) @ scale @ shift(-output / 2)
    cr, sr = torch.cos(-rotation), torch.sin(-rotation)
    zero, one = torch.zeros_like(sx), torch.ones_like(sx)
    a00, a01 = cr * sx, -sr * sy
    a10, a11 = sr * sx, cr * sy
    t0 = cx + a00 * (-ow / 2.0) + a01 * (-oh / 2.0)
    t1 = cy + a10 * (-ow / 2.0) + a11 * (-oh / 2.0)
    rows = [torch.stack([a00, a01, zero, t0], -1), torch.stack([a10, a11, zero, t1], -1),
            torch.stack([zero, zero, one, zero], -1), torch.stack([zero, zero, zero, one], -1)]
    return torch.stack(rows, -2)


def transform_tensor_bilinear(features: torch.Tensor, matrix: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """MediaPipe's ``TransformTensorBilinear`` (v2): sample an ``out_h`` x ``out_w`` crop of ``features``
    through ``matrix`` (output pixel centres -> input pixel centres), bilinear, zero outside.

    Args:
        features: (B, H, W, C); matrix: (B, 4, 4).
    Returns:
        (B, out_h, out_w, C).
    """
    n, h, w, ch = features.shape
    m = matrix[:, :2, :].clone()
    # Pixel centres at +0.5 on both sides: T' = S(-0.5) T S(+0.5).
    m[:, :, 3] = m[:, :, 3] + 0.5 * m[:, :, 0] + 0.5 * m[:, :, 1] - 0.5
    grid = dict(dtype=features.dtype, device=features.device)
    ys, xs = torch.meshgrid(torch.arange(out_h, **grid), torch.arange(out_w, **grid), indexing="ij")
    tx = m[:, 0, 0, None, None] * xs + m[:, 0, 1, None, None] * ys + m[:, 0, 3, None, None]
    ty = m[:, 1, 0, None, None] * xs + m[:, 1, 1, None, None] * ys + m[:, 1, 3, None, None]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    fx, fy = torch.floor(tx), torch.floor(ty)
    ax, ay = tx - fx, ty - fy
    flat = features.reshape(n, h * w, ch)

    def read(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        ok = (yy >= 0) & (xx >= 0) & (yy < h) & (xx < w)
        idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).long().reshape(n, -1, 1).expand(-1, -1, ch)
        v = torch.gather(flat, 1, idx).reshape(n, out_h, out_w, ch)
        return v * ok[..., None].to(v.dtype)

    q11, q21 = read(fy, fx), read(fy, fx + 1)
    q12, q22 = read(fy + 1, fx), read(fy + 1, fx + 1)
    ax, ay = ax[..., None], ay[..., None]
    upper = (1.0 - ax) * q11 + ax * q21
    lower = (1.0 - ax) * q12 + ax * q22
    out = ay * lower + (1.0 - ay) * upper
    return out * inside[..., None].to(out.dtype)


def transform_landmarks(landmarks: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """MediaPipe's ``TransformLandmarks`` (v2): (B, N, 2 or 3) landmarks through a (B, 4, 4) matrix's first
    two rows (z is kept)."""
    x, y = landmarks[..., 0], landmarks[..., 1]
    m = matrix
    tx = m[:, 0, 0, None] * x + m[:, 0, 1, None] * y + m[:, 0, 3, None]
    ty = m[:, 1, 0, None] * x + m[:, 1, 1, None] * y + m[:, 1, 3, None]
    return torch.cat([torch.stack([tx, ty], -1), landmarks[..., 2:]], -1)


# -- loading ------------------------------------------------------------------------------------------------
def load_spec(name: str, data_dir: Path | None = None) -> dict:
    """The parsed ``<name>.json``."""
    path = (data_dir or DATA) / f"{name}.json"
    if not path.is_file():
        raise InputError(f"{path} is missing: run tools/convert_mediapipe.py")
    spec = json.loads(path.read_text())
    if spec.get("format") != 1 or spec.get("model") != name:
        raise InputError(f"{path}: expected format 1 of {name!r}, got format {spec.get('format')} of "
                         f"{spec.get('model')!r}: re-run tools/convert_mediapipe.py")
    return spec


def read_weights(name: str, data_dir: Path | None = None) -> dict[str, torch.Tensor]:
    """``<name>.safetensors`` as float32 tensors (fp16-stored weights upcast exactly, like tflite's DEQUANTIZE)."""
    path = (data_dir or DATA) / f"{name}.safetensors"
    if not path.is_file():
        raise InputError(f"{path} is missing: run tools/convert_mediapipe.py")
    return {k: v.to(torch.float32) for k, v in read_safetensors(path).items()}


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with one line naming what is missing, unexpected or
    of the wrong shape."""
    own = module.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                shown = ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
                parts.append(f"{label}: {shown}")
        raise WeightsError(f"{what}: weights do not match the network; " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


class ConvertedNetwork(TfliteGraph):
    """A converted MediaPipe network with its weights loaded strictly from ``headsplat/face/data``.

    Args:
        model: the file stem in the data folder (``<model>.json`` / ``<model>.safetensors``).
        data_dir: another folder holding those files (tests, re-conversions); default the shipped one.
        weights: load the weights (False: zero-filled parameters, for shape checks).

    Raises:
        InputError: a file is missing or from another converter format.
        WeightsError: the weights do not match the graph (the message names the keys).
    """

    def __init__(self, model: str, data_dir: Path | None = None, weights: bool = True):
        super().__init__(load_spec(model, data_dir))
        self.model = model
        if weights:
            load_strict(self, read_weights(model, data_dir), f"{model}.safetensors")
        self.requires_grad_(False)
        self.eval()

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the network's input."""
        shape = self.spec["inputs"][0]["shape"]
        return int(shape[1]), int(shape[2])
