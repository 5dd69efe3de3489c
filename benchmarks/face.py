"""Speed of headsplat's face front end (headsplat.face: MediaPipe's networks and graphs in PyTorch) against
MediaPipe 0.10.14 itself in the same run, one JSON line per measurement:

    python benchmarks/face.py [--frames 60] [--device cpu|cuda] [--batch 8]

For a 512x512 portrait and a 1920x1080 frame with the same face at 1080 px: ``video`` (landmarks of one face
followed from frame to frame: the tracking path of ``headsplat track``), ``image`` (each frame on its own:
detection, then landmarks), ``matte`` (the selfie segmenter), and batched (``landmarks_batched``: ``--batch``
ROIs through the mesh at once, as several faces or frames; ``matte_batched``: ``--batch`` frames at once).
``fps`` is frames per second; ``mediapipe_fps`` the same work in MediaPipe's solutions (absent when mediapipe is
not installed: ``make reference``), and ``ratio`` = fps / mediapipe_fps (above 1: headsplat is faster).
MediaPipe has no batched mode: its figure there is its one-at-a-time rate.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
import warnings

import cv2
import numpy as np
import torch

from headsplat.avatar.posed_photo import sample_portrait
from headsplat.face import FaceNets, LandmarkDetector, Matter
from headsplat.face.roi import rect_from_landmarks


def _rate(fn, frames: list, repeats: int = 1) -> float:
    fn(frames[0])  # warm-up: weights, kernel selection
    t0 = time.perf_counter()
    for _ in range(repeats):
        for f in frames:
            fn(f)
    return repeats * len(frames) / (time.perf_counter() - t0)


def _frames(n: int) -> dict[str, list[np.ndarray]]:
    """Slightly moving copies of the portrait (a small shift per frame), at 512 and in a 1080p frame."""
    img = sample_portrait()
    big = np.zeros((1080, 1920, 3), np.uint8)
    big[:, 420:1500] = cv2.resize(img, (1080, 1080), interpolation=cv2.INTER_LINEAR)
    out = {}
    for name, base in (("512", img), ("1080p", big)):
        h, w = base.shape[:2]
        out[name] = [cv2.warpAffine(base, np.float32([[1, 0, 2 * np.sin(t / 5)], [0, 1, np.cos(t / 7)]]), (w, h))
                     for t in range(n)]
    return out


def _mediapipe():
    if importlib.util.find_spec("mediapipe") is None:
        return None
    os.environ.setdefault("GLOG_minloglevel", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mediapipe.python.solutions import face_mesh, selfie_segmentation
    return face_mesh, selfie_segmentation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    mp = _mediapipe()
    base = {"device": args.device, "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None}
    for size, frames in _frames(args.frames).items():
        h, w = frames[0].shape[:2]
        video = LandmarkDetector(mode="video", device=args.device)
        image = LandmarkDetector(mode="image", device=args.device)
        matter = Matter(device=args.device)
        ours = {"video": _rate(video, frames), "image": _rate(image, frames[: max(4, len(frames) // 4)]),
                "matte": _rate(matter, frames)}
        # Batched: the mesh on B ROIs of B frames at once; the matte on B frames at once.
        nets = FaceNets(device=args.device, batch_size=args.batch)
        rect = rect_from_landmarks(image(frames[0]).points[:, :2] / [w, h], w, h)
        chunks = [frames[i:i + args.batch] for i in range(0, len(frames) - args.batch + 1, args.batch)]
        t0 = time.perf_counter()
        nets.landmarks(chunks[0], [rect] * len(chunks[0]))
        t0 = time.perf_counter()
        for c in chunks:
            nets.landmarks(c, [rect] * len(c))
        ours["landmarks_batched"] = sum(map(len, chunks)) / (time.perf_counter() - t0)
        matter.batch(chunks[0])
        t0 = time.perf_counter()
        for c in chunks:
            matter.batch(c)
        ours["matte_batched"] = sum(map(len, chunks)) / (time.perf_counter() - t0)
        ref = {}
        if mp is not None:
            face_mesh, selfie = mp
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                vm = face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True)
                im = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
                sm = selfie.SelfieSegmentation(model_selection=0)
                ref["video"] = _rate(vm.process, frames)
                ref["image"] = _rate(im.process, frames[: max(4, len(frames) // 4)])
                ref["matte"] = _rate(sm.process, frames)
            ref["landmarks_batched"], ref["matte_batched"] = ref["video"], ref["matte"]
        for what, fps in ours.items():
            row = {**base, "size": f"{w}x{h}", "what": what, "fps": round(fps, 1)}
            if what in ref:
                row["mediapipe_fps"] = round(ref[what], 1)
                row["ratio"] = round(fps / ref[what], 2)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
