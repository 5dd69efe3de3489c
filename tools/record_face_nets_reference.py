"""Record the .tflite graphs' own outputs on fixed inputs, so that tests/face/test_nets.py can check
headsplat.face.nets against them where neither mediapipe nor LiteRT is installed.

Run by developers (needs mediapipe 0.10.14 and ``pip install ai-edge-litert``):

    python tools/record_face_nets_reference.py   # writes tests/face/data/nets_reference.npz

Inputs: skimage's astronaut, resized (cv2 INTER_AREA) to each network's input; the face mesh gets a square
crop around the face. Their sha256 is stored beside the outputs: a test whose inputs come out different
(another OpenCV or scikit-image) skips instead of comparing unlike things. Outputs: the selfie masks every
4th pixel; the detectors' logits for every anchor and the regressors of the 16 best; the face mesh's 478
refined landmarks from MediaPipe's FaceLandmarkCpu graph (its custom ops are not in LiteRT).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "face" / "data" / "nets_reference.npz"
# model -> (input height, width, value range of the graph's input, mediapipe file or None)
MODELS = {
    "selfie_segmentation": (256, 256, (0.0, 1.0), "selfie_segmentation/selfie_segmentation.tflite"),
    "selfie_segmentation_landscape": (144, 256, (0.0, 1.0),
                                      "selfie_segmentation/selfie_segmentation_landscape.tflite"),
    "face_detection_short_range": (128, 128, (-1.0, 1.0), "face_detection/face_detection_short_range.tflite"),
    "face_detection_full_range": (192, 192, (-1.0, 1.0), "face_detection/face_detection_full_range_sparse.tflite"),
    "face_landmark_with_attention": (192, 192, (0.0, 1.0), None),
}
# The astronaut's face lies in x 170..290, y 40..200: a square crop around it, as the face mesh sees a face.
FACE_CROP = (slice(15, 235), slice(120, 340))
TOP_ANCHORS = 16


def reference_input(model: str) -> np.ndarray:
    """(H, W, 3) uint8: the fixed input of ``model``."""
    import cv2
    from skimage import data

    h, w = MODELS[model][:2]
    img = data.astronaut()
    if model == "face_landmark_with_attention":
        img = img[FACE_CROP]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def to_float(rgb: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """(1, H, W, 3) float32 in ``value_range`` from uint8, as MediaPipe's image-to-tensor step scales."""
    lo, hi = value_range
    return (rgb.astype(np.float32) / 255.0 * (hi - lo) + lo)[None].astype(np.float32)


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _modules() -> Path:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None:
        raise SystemExit("mediapipe is not installed: pip install --no-deps 'mediapipe==0.10.14'")
    return Path(list(spec.submodule_search_locations)[0]) / "modules"


def _litert(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(path))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}


def mediapipe_face_landmarks(rgb: np.ndarray) -> np.ndarray | None:
    """MediaPipe's FaceLandmarkCpu (the attention model and its refinement) with the whole image as the ROI:
    (478, 3) in input pixels, or None when it finds no face."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mediapipe as mp
        from google.protobuf import text_format
        from mediapipe.framework import calculator_pb2
        from mediapipe.framework.formats import rect_pb2
        from mediapipe.python._framework_bindings import resource_util

    resource_util.set_resource_dir(str(Path(mp.__file__).resolve().parents[1]))
    config = text_format.Parse(
        'input_stream: "image" input_stream: "roi" output_stream: "landmarks" '
        'node { calculator: "FaceLandmarkCpu" input_stream: "IMAGE:image" input_stream: "ROI:roi" '
        'output_stream: "LANDMARKS:landmarks" input_side_packet: "WITH_ATTENTION:with_attention" }',
        calculator_pb2.CalculatorGraphConfig())
    found = []
    graph = mp.CalculatorGraph(graph_config=config)
    graph.observe_output_stream("landmarks", lambda _, p: found.append(mp.packet_getter.get_proto(p)))
    graph.start_run(input_side_packets={"with_attention": mp.packet_creator.create_bool(True)})
    graph.add_packet_to_input_stream("image", mp.packet_creator.create_image_frame(
        image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)).at(0))
    # The ROI is the whole image: MediaPipe's crop-to-tensor is then the identity.
    roi = rect_pb2.NormalizedRect(x_center=0.5, y_center=0.5, width=1.0, height=1.0, rotation=0.0)
    graph.add_packet_to_input_stream("roi", mp.packet_creator.create_proto(roi).at(0))
    graph.close()
    if not found:
        return None
    return np.array([[p.x, p.y, p.z] for p in found[0].landmark], np.float32) * rgb.shape[1]


def record() -> dict[str, np.ndarray]:
    modules = _modules()
    out: dict[str, np.ndarray] = {}
    for model, (_, _, value_range, rel) in MODELS.items():
        rgb = reference_input(model)
        out[f"{model}/input_sha256"] = np.array(sha256(rgb))
        if rel is None:
            landmarks = mediapipe_face_landmarks(rgb)
            if landmarks is None:
                raise SystemExit("MediaPipe found no face in the astronaut crop")
            out[f"{model}/landmarks"] = landmarks
            continue
        ref = _litert(modules / rel, to_float(rgb, value_range))
        if model.startswith("selfie"):
            (mask,) = ref.values()
            out[f"{model}/mask_every_4th"] = np.ascontiguousarray(mask[0, ::4, ::4, 0])
        else:
            regressors, logits = (v[0] for v in ref.values())  # (A, 16), (A, 1): the graph's output order
            top = np.argsort(-logits[:, 0], kind="stable")[:TOP_ANCHORS]
            out[f"{model}/logits"] = logits[:, 0].copy()
            out[f"{model}/top_anchors"] = top.astype(np.int64)
            out[f"{model}/top_regressors"] = regressors[top].copy()
    return out


def main() -> int:
    arrays = record()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **dict(sorted(arrays.items())))
    tmp = OUT.with_name(OUT.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(OUT)
    print(f"{OUT}: {len(arrays)} arrays, {OUT.stat().st_size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
