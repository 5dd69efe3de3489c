"""Record MediaPipe 0.10.14's face landmarks on real images and a real video, so that tests/face/test_frontend.py
can check headsplat's own front end (headsplat.face.LandmarkDetector) against them where mediapipe is not
installed.

Run by developers (needs mediapipe 0.10.14, installed with ``make reference``):

    python tools/record_face_frontend_reference.py   # writes tests/face/data/frontend_reference.npz

Images (skimage's astronaut and the insightface wheel's samples, extracted by ``make test``): MediaPipe's
FaceMesh solution (static, up to 4 faces, refined landmarks) on the whole image; for the faces it misses, the
same solution on a 320 px square crop (headsplat.face.warp: OpenCV 4's arithmetic) of twice the box of each
face its FaceDetection solutions propose (short and full range, at their own thresholds), landmarks mapped
back: the rule headsplat's detector follows. Video: the first 40 frames of the opencv-doc clip
``Megamind.avi`` (``make test`` extracts it) through FaceMesh in video mode (one face, tracking from the last
landmarks). Each input's sha256 is stored beside its landmarks: a test whose input decodes differently skips
instead of comparing unlike things.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from headsplat.face.warp import warp_perspective

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "face" / "data" / "frontend_reference.npz"
IMAGES = ROOT / ".test-assets" / "insightface"
CLIP = ROOT / ".test-assets" / "opencv-doc" / "Megamind.avi"
VIDEO_FRAMES = 40
CROP = 320


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def images() -> dict[str, np.ndarray]:
    from headsplat.avatar.posed_photo import sample_portrait

    out = {"astronaut": sample_portrait()}
    for p in sorted(IMAGES.glob("*.*")):
        out[p.name] = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
    return out


def clip_frames(n: int) -> list[np.ndarray]:
    from headsplat.media.video import VideoReader

    frames = []
    for _, rgb in VideoReader(CLIP):
        frames.append(rgb)
        if len(frames) == n:
            break
    return frames


def _points(face, w: int, h: int) -> np.ndarray:
    return np.array([[p.x * w, p.y * h, p.z * w] for p in face.landmark], np.float32)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def image_faces(rgb: np.ndarray, mesh_full, mesh_crop, detectors) -> list[np.ndarray]:
    h, w = rgb.shape[:2]
    res = mesh_full.process(rgb)
    faces = [_points(f, w, h) for f in res.multi_face_landmarks or []]
    box_of = lambda p: np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()])  # noqa: E731
    boxes = []
    for det in detectors:
        for d in det.process(rgb).detections or []:
            b = d.location_data.relative_bounding_box
            boxes.append(np.array([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h]))
    kept = []
    for b in sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])):
        if all(_iou(b, k) < 0.3 for k in kept) and all(_iou(b, box_of(f)) <= 0.3 for f in faces):
            kept.append(b)
    for b in kept:
        side = 2.0 * max(b[2] - b[0], b[3] - b[1])
        s = CROP / side
        m = np.array([[s, 0, CROP / 2 - s * (b[0] + b[2]) / 2], [0, s, CROP / 2 - s * (b[1] + b[3]) / 2]])
        shift = np.eye(3)
        shift[:2] = m
        shift[:2, 2] += m[:, :2].sum(1) * 0.5 - 0.5
        crop = warp_perspective(torch.from_numpy(rgb), shift[None], CROP, CROP, border_zero=True)[0].numpy()
        res = mesh_crop.process(crop)
        if not res.multi_face_landmarks:
            continue
        p = _points(res.multi_face_landmarks[0], CROP, CROP).astype(np.float64)
        p[:, 0] = (p[:, 0] - m[0, 2]) / s
        p[:, 1] = (p[:, 1] - m[1, 2]) / s
        p[:, 2] /= s
        if all(_iou(box_of(p), box_of(f)) < 0.3 for f in faces):
            faces.append(p.astype(np.float32))
    return sorted(faces, key=lambda p: -np.hypot(*(box_of(p)[2:] - box_of(p)[:2])))


def main() -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    warnings.simplefilter("ignore")
    import importlib.metadata

    from mediapipe.python.solutions import face_detection, face_mesh

    version = importlib.metadata.version("mediapipe")
    arrays, meta = {}, {"mediapipe": version, "images": {}, "video": None}
    mesh_full = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=4, refine_landmarks=True)
    mesh_crop = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
    detectors = [face_detection.FaceDetection(model_selection=k) for k in (0, 1)]
    for name, rgb in images().items():
        faces = image_faces(rgb, mesh_full, mesh_crop, detectors)
        meta["images"][name] = {"sha256": sha256(rgb), "faces": len(faces)}
        for i, f in enumerate(faces):
            arrays[f"image/{name}/{i}"] = f
    if CLIP.is_file():
        frames = clip_frames(VIDEO_FRAMES)
        video = face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True)
        pts = np.full((len(frames), 478, 2), np.nan, np.float32)
        for t, rgb in enumerate(frames):
            res = video.process(rgb)
            if res.multi_face_landmarks:
                pts[t] = _points(res.multi_face_landmarks[0], rgb.shape[1], rgb.shape[0])[:, :2]
        arrays["video/points"] = pts
        meta["video"] = {"clip": CLIP.name, "frames": len(frames), "sha256": [sha256(f) for f in frames]}
    else:
        print(f"{CLIP}: not found (make test extracts it); no video reference recorded", file=sys.stderr)
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"{OUT}: {len(meta['images'])} images, video {meta['video'] is not None}, mediapipe {version}, "
          f"{OUT.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
