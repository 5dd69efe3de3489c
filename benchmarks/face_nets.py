"""Speed of headsplat.face.nets (MediaPipe's face networks in PyTorch) against the .tflite graphs in LiteRT,
one JSON line per network:

    python benchmarks/face_nets.py [--threads 1] [--batch 1 8] [--repeats 10]

torch_ms: forward time per image (no grad), the best of ``repeats`` runs, for each batch size. litert_ms:
the same graph in LiteRT with XNNPACK at batch 1 (absent when ai-edge-litert or mediapipe is not installed;
the face mesh's custom ops are not in LiteRT, so it has none).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

FILES = {
    "selfie_segmentation": "selfie_segmentation/selfie_segmentation.tflite",
    "selfie_segmentation_landscape": "selfie_segmentation/selfie_segmentation_landscape.tflite",
    "face_detection_short_range": "face_detection/face_detection_short_range.tflite",
    "face_detection_full_range": "face_detection/face_detection_full_range_sparse.tflite",
    "face_landmark_with_attention": None,
}


def _best(fn, repeats: int) -> float:
    fn()  # warm-up: kernel selection, allocations
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()

    import numpy as np
    import torch

    from headsplat.face.nets import BlazeFace, FaceMeshNet, SelfieSegmenter

    torch.set_num_threads(args.threads)
    nets = {"selfie_segmentation": SelfieSegmenter(), "selfie_segmentation_landscape": SelfieSegmenter(True),
            "face_detection_short_range": BlazeFace(), "face_detection_full_range": BlazeFace(full_range=True),
            "face_landmark_with_attention": FaceMeshNet()}
    mp = importlib.util.find_spec("mediapipe")
    litert = importlib.util.find_spec("ai_edge_litert") is not None
    for name, net in nets.items():
        h, w = net.input_size
        row = {"model": name, "input": [h, w], "threads": args.threads, "torch_ms": {}}
        for b in args.batch:
            x = torch.rand(b, h, w, 3)
            with torch.no_grad():
                row["torch_ms"][str(b)] = round(1000 * _best(lambda: net(x), args.repeats) / b, 2)  # noqa: B023
        if mp is not None and litert and FILES[name]:
            from ai_edge_litert.interpreter import Interpreter

            path = Path(list(mp.submodule_search_locations)[0]) / "modules" / FILES[name]
            interpreter = Interpreter(str(path), num_threads=args.threads)
            interpreter.allocate_tensors()
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                                   np.random.rand(1, h, w, 3).astype(np.float32))
            row["litert_ms"] = round(1000 * _best(interpreter.invoke, args.repeats), 2)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
