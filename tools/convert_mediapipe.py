"""Convert MediaPipe's face models (``.tflite`` flatbuffers in the mediapipe wheel) into safetensors + JSON.

Run by developers, never at run time: ``python tools/convert_mediapipe.py [--out headsplat/face/data]``.
Reads the flatbuffers with the ``tflite`` schema package (no TensorFlow), folds every constant-producing
op (DEQUANTIZE of fp16 weights, DENSIFY of sparse weights, int8 dequantisation) into plain float32 tensors
in PyTorch layout, and writes per model:

- ``<model>.safetensors``: the weights, keyed exactly as ``headsplat.face.nets``' modules name them;
- ``<model>.json``: the graph the modules execute (ops in order, their options, tensor shapes), the input
  size, output names and where the file came from.

The output is a pure function of the ``.tflite`` bytes (sorted keys, no timestamps), so re-running on the
same wheel gives the same files byte for byte (a test checks this).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1

# headsplat name -> path inside the mediapipe package.
MODELS = {
    "selfie_segmentation": "modules/selfie_segmentation/selfie_segmentation.tflite",
    "selfie_segmentation_landscape": "modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
    "face_detection_short_range": "modules/face_detection/face_detection_short_range.tflite",
    "face_detection_full_range": "modules/face_detection/face_detection_full_range_sparse.tflite",
    "face_landmark_with_attention": "modules/face_landmark/face_landmark_with_attention.tflite",
}

# tflite TensorType -> numpy dtype (only the ones these models can carry).
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8, 7: np.int16}
_ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}
_PADDING = {0: "same", 1: "valid"}
# Ops whose output is folded into a constant when all their inputs are constant.
_FOLDABLE = ("DEQUANTIZE", "DENSIFY")
# Short prefixes for the modules that hold each op's constants.
_PREFIX = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dwconv", "PRELU": "prelu", "ADD": "add", "MUL": "mul",
           "CUSTOM:Convolution2DTransposeBias": "tconv", "CONCATENATION": "concat", "SUB": "sub"}


def _op_names():
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def _options(op, cls):
    import tflite

    table = op.BuiltinOptions()
    opt = getattr(tflite, cls)()
    opt.Init(table.Bytes, table.Pos)
    return opt


def _raw_tensor(model, graph, index: int) -> np.ndarray | None:
    """The constant data of tensor ``index`` in its stored dtype and shape, or None for an activation."""
    t = graph.Tensors(index)
    buf = model.Buffers(t.Buffer())
    if buf is None or buf.DataLength() == 0:
        return None
    dtype = _DTYPES[t.Type()]
    data = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype)
    if t.Sparsity() is not None:
        return data  # the values of a sparse tensor: DENSIFY turns them into the dense tensor
    shape = [int(s) for s in t.ShapeAsNumpy()] if t.ShapeLength() else []
    return data.reshape(shape)


def _dequantize_int(t, q: np.ndarray) -> np.ndarray:
    """int8/uint8 -> float32 exactly as tflite's DEQUANTIZE: (q - zero_point) * scale, per tensor or per axis."""
    qp = t.Quantization()
    scale = qp.ScaleAsNumpy().astype(np.float32)
    zero = qp.ZeroPointAsNumpy().astype(np.int64)
    if scale.size > 1:
        shape = [1] * q.ndim
        shape[qp.QuantizedDimension()] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q.astype(np.int64) - zero).astype(np.float32) * scale).astype(np.float32)


def _densify(t, values: np.ndarray) -> np.ndarray:
    """The dense tensor of a tflite sparse tensor (TACO-style dim metadata, optional block dimensions)."""
    sp = t.Sparsity()
    shape = [int(s) for s in t.ShapeAsNumpy()]
    order = [int(i) for i in sp.TraversalOrderAsNumpy()]
    block_map = [int(i) for i in sp.BlockMapAsNumpy()] if sp.BlockMapLength() else []
    n = len(shape)
    levels = []
    for k in range(sp.DimMetadataLength()):
        dm = sp.DimMetadata(k)
        if dm.Format() == 0:
            levels.append(("dense", int(dm.DenseSize())))
        else:
            levels.append(("csr", _index_vector(dm.ArraySegments(), dm.ArraySegmentsType()),
                           _index_vector(dm.ArrayIndices(), dm.ArrayIndicesType())))
    # Expanded coordinates: the n original dims (in blocks where blocked), then one dim per block.
    block_sizes = {}
    for j, d in enumerate(block_map):
        level = levels[order.index(n + j)]
        block_sizes[d] = level[1] if level[0] == "dense" else None
    dense = np.zeros(shape, dtype=values.dtype)
    coords = np.zeros(len(order), dtype=np.int64)
    counter = [0]

    def walk(level: int, parent: int) -> None:
        if level == len(order):
            orig = []
            for d in range(n):
                c = coords[d]
                if d in block_sizes:
                    c = c * block_sizes[d] + coords[n + block_map.index(d)]
                orig.append(c)
            dense[tuple(orig)] = values[counter[0]]
            counter[0] += 1
            return
        kind = levels[level]
        dim = order[level]
        if kind[0] == "dense":
            for i in range(kind[1]):
                coords[dim] = i
                walk(level + 1, parent * kind[1] + i)
        else:
            seg, idx = kind[1], kind[2]
            for j in range(int(seg[parent]), int(seg[parent + 1])):
                coords[dim] = int(idx[j])
                walk(level + 1, j)

    walk(0, 0)
    if counter[0] != values.size:
        raise ValueError(f"sparse tensor {t.Name().decode()}: {counter[0]} positions for {values.size} values")
    return dense


def _index_vector(table, kind: int) -> np.ndarray:
    import tflite

    cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]
    v = cls()
    v.Init(table.Bytes, table.Pos)
    return v.ValuesAsNumpy()


def _custom_options(op) -> dict:
    from flatbuffers import flexbuffers

    raw = op.CustomOptionsAsNumpy()
    if isinstance(raw, int) or raw.size == 0:
        return {}
    return flexbuffers.Loads(bytes(raw))


def _builtin_attrs(name: str, op) -> dict:
    """The options of one builtin op that the PyTorch executor needs."""
    if name == "CONV_2D":
        o = _options(op, "Conv2DOptions")
        return {"padding": _PADDING[o.Padding()], "stride": [o.StrideH(), o.StrideW()],
                "dilation": [o.DilationHFactor(), o.DilationWFactor()],
                "activation": _ACTIVATIONS[o.FusedActivationFunction()]}
    if name == "DEPTHWISE_CONV_2D":
        o = _options(op, "DepthwiseConv2DOptions")
        return {"padding": _PADDING[o.Padding()], "stride": [o.StrideH(), o.StrideW()],
                "dilation": [o.DilationHFactor(), o.DilationWFactor()], "depth_multiplier": o.DepthMultiplier(),
                "activation": _ACTIVATIONS[o.FusedActivationFunction()]}
    if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        o = _options(op, "Pool2DOptions")
        return {"padding": _PADDING[o.Padding()], "stride": [o.StrideH(), o.StrideW()],
                "kernel": [o.FilterHeight(), o.FilterWidth()],
                "activation": _ACTIVATIONS[o.FusedActivationFunction()]}
    if name in ("ADD", "MUL", "SUB"):
        o = _options(op, {"ADD": "AddOptions", "MUL": "MulOptions", "SUB": "SubOptions"}[name])
        return {"activation": _ACTIVATIONS[o.FusedActivationFunction()]}
    if name == "CONCATENATION":
        o = _options(op, "ConcatenationOptions")
        return {"axis": o.Axis(), "activation": _ACTIVATIONS[o.FusedActivationFunction()]}
    if name == "RESIZE_BILINEAR":
        o = _options(op, "ResizeBilinearOptions")
        return {"align_corners": bool(o.AlignCorners()), "half_pixel_centers": bool(o.HalfPixelCenters())}
    if name == "DEPTH_TO_SPACE":
        return {"block_size": _options(op, "DepthToSpaceOptions").BlockSize()}
    if name == "MEAN":
        return {"keep_dims": bool(_options(op, "ReducerOptions").KeepDims())}
    if name == "STRIDED_SLICE":
        o = _options(op, "StridedSliceOptions")
        return {"begin_mask": o.BeginMask(), "end_mask": o.EndMask(), "ellipsis_mask": o.EllipsisMask(),
                "new_axis_mask": o.NewAxisMask(), "shrink_axis_mask": o.ShrinkAxisMask()}
    return {}


def _torch_layout(op: str, role: str, a: np.ndarray) -> np.ndarray:
    """tflite weight layouts -> PyTorch's (conv OHWI -> OIHW, depthwise 1HWC -> C1HW, transposed OHWI -> IOHW)."""
    if role == "weight" and op == "CONV_2D":
        return a.transpose(0, 3, 1, 2)
    if role == "weight" and op == "DEPTHWISE_CONV_2D":
        return a.transpose(3, 0, 1, 2)
    if role == "weight" and op == "CUSTOM:Convolution2DTransposeBias":
        return a.transpose(3, 0, 1, 2)
    return a


def convert_model(path: Path) -> tuple[dict, dict]:
    """Read one ``.tflite`` file; return (graph description for JSON, weights name -> float32 array)."""
    import tflite

    data = Path(path).read_bytes()
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise ValueError(f"{path}: expected one subgraph, found {model.SubgraphsLength()}")
    graph = model.Subgraphs(0)
    names = _op_names()

    def shape_of(i: int) -> list[int]:
        t = graph.Tensors(i)
        return [int(s) for s in t.ShapeAsNumpy()] if t.ShapeLength() else []

    consts: dict[int, np.ndarray] = {}
    for i in range(graph.TensorsLength()):
        raw = _raw_tensor(model, graph, i)
        if raw is not None:
            consts[i] = raw

    op_counts: dict[str, int] = {}
    ops: list[dict] = []
    weights: dict[str, np.ndarray] = {}
    per_prefix: dict[str, int] = {}
    used_tensors: set[int] = set()
    from_half: set[int] = set()  # constants that were stored as float16 in the flatbuffer
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = names[builtin]
        if name == "CUSTOM":
            name = "CUSTOM:" + code.CustomCode().decode()
        op_counts[name] = op_counts.get(name, 0) + 1
        ins = [int(i) for i in op.InputsAsNumpy()]
        outs = [int(i) for i in op.OutputsAsNumpy()]
        if name in _FOLDABLE and all(i in consts for i in ins):
            src = graph.Tensors(ins[0])
            value = consts[ins[0]]
            if name == "DENSIFY":
                value = _densify(src, value)
            elif value.dtype in (np.int8, np.uint8, np.int16):
                value = _dequantize_int(src, value)
            if name == "DEQUANTIZE":
                if value.dtype == np.float16:
                    from_half.add(outs[0])
                value = value.astype(np.float32)
            consts[outs[0]] = value
            continue
        entry = {"op": name, "inputs": [], "outputs": outs}
        params: dict[str, str] = {}
        prefix = _PREFIX.get(name, name.lower())
        module = None
        for pos, i in enumerate(ins):
            if i < 0:
                entry["inputs"].append(None)
                continue
            if i not in consts:
                entry["inputs"].append(i)
                used_tensors.add(i)
                continue
            c = consts[i]
            if np.issubdtype(c.dtype, np.integer):
                entry["inputs"].append({"int": c.astype(np.int64).reshape(-1).tolist(), "shape": list(c.shape)})
                continue
            if module is None:
                module = f"{prefix}{per_prefix.get(prefix, 0)}"
                per_prefix[prefix] = per_prefix.get(prefix, 0) + 1
            role = _role(name, pos)
            key = f"{module}.{role}"
            w = np.ascontiguousarray(_torch_layout(name, role, c.astype(np.float32)))
            # fp16 weights keep their fp16 bytes (exact: every fp16 value is a float32 value); the modules
            # load them into float32 parameters, which is what tflite's DEQUANTIZE computes.
            weights[key] = w.astype(np.float16) if i in from_half else w
            params[role] = key
            entry["inputs"].append({"param": key})
        if module is not None:
            entry["module"] = module
        if name == "CUSTOM:Convolution2DTransposeBias":
            # Its options are a raw TfLiteTransposeConvParams struct, not a flexbuffer.
            raw = op.CustomOptionsAsNumpy()
            padding, stride_w, stride_h = np.frombuffer(raw.tobytes(), dtype=np.int32)[:3].tolist()
            entry.update({"padding": {1: "same", 2: "valid"}[padding], "stride": [stride_h, stride_w]})
        elif name.startswith("CUSTOM:"):
            entry.update(_custom_options(op))
        else:
            entry.update(_builtin_attrs(name, op))
        ops.append(entry)
        used_tensors.update(outs)
    inputs = [int(i) for i in graph.InputsAsNumpy()]
    outputs = [int(i) for i in graph.OutputsAsNumpy()]
    used_tensors.update(inputs)
    desc = {
        "inputs": [{"id": i, "name": graph.Tensors(i).Name().decode(), "shape": shape_of(i)} for i in inputs],
        "outputs": [{"id": i, "name": graph.Tensors(i).Name().decode(), "shape": shape_of(i)} for i in outputs],
        "tflite_op_counts": op_counts,
        "ops": ops,
        "shapes": {str(i): shape_of(i) for i in sorted(used_tensors)},
        "parameters": {k: list(w.shape) for k, w in sorted(weights.items())},
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return desc, weights


def _role(op: str, pos: int) -> str:
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return ("input", "weight", "bias")[pos]
    if op == "CUSTOM:Convolution2DTransposeBias":
        return ("input", "weight", "bias")[pos]
    if op == "PRELU":
        return "weight" if pos == 1 else f"input{pos}"
    return f"operand{pos}"


def mediapipe_root() -> tuple[Path, str]:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("mediapipe is not installed: pip install --no-deps 'mediapipe==0.10.14'")
    return Path(list(spec.submodule_search_locations)[0]), importlib.metadata.version("mediapipe")


def _safetensors_bytes(weights: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """A safetensors file written by hand so the bytes depend on nothing but the tensors (sorted keys)."""
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    offset = 0
    blobs = []
    for key in sorted(weights):
        w = weights[key]
        half = w.dtype == np.float16
        a = np.ascontiguousarray(w, dtype="<f2" if half else "<f4")
        b = a.tobytes()
        header[key] = {"dtype": "F16" if half else "F32", "shape": list(a.shape),
                       "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the data starts 8-byte aligned
    return len(head).to_bytes(8, "little") + head + b"".join(blobs)


def convert_all(out: Path, root: Path | None = None, version: str | None = None,
                models: list[str] | None = None) -> dict[str, dict]:
    """Convert every model of :data:`MODELS` (or ``models``) into ``out``; returns name -> summary."""
    if root is None:
        root, version = mediapipe_root()
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name in models or sorted(MODELS):
        rel = MODELS[name]
        desc, weights = convert_model(root / rel)
        desc = {"format": FORMAT_VERSION, "model": name,
                "source": {"package": "mediapipe", "version": version, "file": rel, "sha256": desc.pop("sha256")},
                **desc}
        meta = {"format": str(FORMAT_VERSION), "source": f"mediapipe {version} {rel}"}
        _write(out / f"{name}.safetensors", _safetensors_bytes(weights, meta))
        _write(out / f"{name}.json", _json_bytes(desc))
        summary[name] = {"tensors": len(weights), "values": int(sum(w.size for w in weights.values())),
                         "bytes": (out / f"{name}.safetensors").stat().st_size, "ops": len(desc["ops"])}
    return summary


def _json_bytes(desc: dict) -> bytes:
    """Sorted keys, one top-level entry (and one op, one tensor) a line: small, stable, readable diffs."""
    def one(v) -> str:
        return json.dumps(v, sort_keys=True, separators=(",", ":"))

    parts = []
    for key in sorted(desc):
        value = desc[key]
        if isinstance(value, list) and value and isinstance(value[0], dict):
            body = "[\n  " + ",\n  ".join(one(v) for v in value) + "\n ]"
        elif isinstance(value, dict) and len(value) > 8:
            body = "{\n  " + ",\n  ".join(f"{json.dumps(k)}:{one(value[k])}" for k in sorted(value)) + "\n }"
        else:
            body = one(value)
        parts.append(f" {json.dumps(key)}: {body}")
    text = "{\n" + ",\n".join(parts) + "\n}\n"
    json.loads(text)  # the hand-made layout must still be JSON
    return text.encode()


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "headsplat/face/data")
    ap.add_argument("--models", nargs="*", choices=sorted(MODELS))
    args = ap.parse_args(argv)
    summary = convert_all(args.out, models=args.models)
    json.dump(summary, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
