"""headsplat's own face front end (headsplat.face: ROIs, crops, the bundled networks) against MediaPipe 0.10.14.

Without mediapipe: against its landmarks recorded on the real test images and the film clip
(tools/record_face_frontend_reference.py). With mediapipe installed (``make reference``, Python <= 3.12):
also live, on a rendered video in MediaPipe's video mode and on mattes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from headsplat.avatar.posed_photo import sample_portrait
from headsplat.face import FaceNets, LandmarkDetector, Matter
from headsplat.face.roi import (
    NormRect,
    crop_matrix,
    pixel_roi,
    project_landmarks,
    rect_from_detection,
    rect_from_landmarks,
)
from headsplat.face.warp import warp_perspective

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).parent / "data" / "frontend_reference.npz"
CLIP = ROOT / ".test-assets" / "opencv-doc" / "Megamind.avi"
# The tolerances for the pipeline: median and 99th percentile of the landmark distance, in pixels.
MEDIAN_PX, P99_PX = 0.3, 1.5


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def reference():
    ref = np.load(REFERENCE)
    return ref, json.loads(bytes(ref["meta"]).decode())


@pytest.fixture(scope="module")
def detector():
    with LandmarkDetector() as d:
        yield d


def _images(insightface_dir) -> dict[str, np.ndarray]:
    out = {"astronaut": sample_portrait()}
    for p in sorted(Path(insightface_dir).glob("*.*")):
        out[p.name] = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
    return out


def _distances(ours: list[np.ndarray], ref: list[np.ndarray]) -> list[np.ndarray]:
    """Per reference face, the distance of each landmark to the nearest face of ours (by mean distance)."""
    out = []
    for r in ref:
        d = [np.linalg.norm(o[:, :2] - r[:, :2], axis=1) for o in ours]
        out.append(d[int(np.argmin([x.mean() for x in d]))])
    return out


def _mediapipe():
    if importlib.util.find_spec("mediapipe") is None:
        pytest.skip("mediapipe 0.10.14 is not installed (make reference): the recorded reference tests cover this")
    os.environ.setdefault("GLOG_minloglevel", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mediapipe.python.solutions import face_mesh, selfie_segmentation
    return face_mesh, selfie_segmentation


# -- the ROI rules and the warp -------------------------------------------------------------------------------
def test_rect_from_landmarks_is_rotated_by_the_eye_corners_and_square_in_pixels():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0.3, 0.5, (478, 2)).astype(np.float32)
    pts[33], pts[263] = (0.3, 0.40), (0.5, 0.45)  # the left end lower on screen by 0.05 (of the image height)
    w, h = 640, 480
    r = rect_from_landmarks(pts, w, h)
    expected = -np.arctan2(-(0.05 * h), 0.2 * w)  # MediaPipe: target 0 minus the vector's angle (y up)
    assert r.rotation == pytest.approx(expected, abs=1e-6) and r.rotation > 0
    assert r.width * w == pytest.approx(r.height * h, rel=1e-6)  # square in pixels
    side = max(np.ptp(pts[:, 0]) * w, np.ptp(pts[:, 1]) * h) * 1.5
    assert r.width * w == pytest.approx(side, rel=1e-5)


def test_projection_undoes_the_crop():
    """A point cropped through an ROI (the warp's matrix) and projected back (LandmarkProjection) lands where
    it was, whatever the rotation and the image's aspect ratio."""
    w, h = 720, 528
    for rot in (0.0, 0.4, -2.5):
        rect = NormRect(0.45, 0.55, 300 / w, 300 / h, rot)
        m = crop_matrix(pixel_roi(rect, w, h), 192, 192)
        pts = np.array([[200.0, 250.0], [400.0, 320.0], [330.0, 290.0]])
        uv = cv2.perspectiveTransform(pts[None], m)[0] / 192
        back = project_landmarks(np.concatenate([uv, np.zeros((3, 1))], 1).astype(np.float32), rect)
        np.testing.assert_allclose(back[:, :2] * [w, h], pts, atol=1e-3)


def test_warp_is_opencv_4_bilinear_on_exact_cases():
    """Where bilinear weights are exact (integer and half-pixel positions) the warp equals direct averaging;
    BORDER_CONSTANT blacks out what lies outside, BORDER_REPLICATE repeats the edge."""
    img = np.random.default_rng(1).integers(0, 256, (8, 10, 3)).astype(np.uint8)
    shift = np.array([[1.0, 0, -0.5], [0, 1.0, 0], [0, 0, 1.0]])  # output x samples input x + 0.5
    out = warp_perspective(torch.from_numpy(img), shift[None], 10, 8, border_zero=True)[0].numpy().astype(int)
    mid = (img[:, :-1].astype(int) + img[:, 1:] + 1) // 2
    np.testing.assert_array_equal(out[:, :-1], mid)
    np.testing.assert_array_equal(out[:, -1], (img[:, -1].astype(int) + 1) // 2)  # half of it is outside
    rep = warp_perspective(torch.from_numpy(img), shift[None], 10, 8, border_zero=False)[0].numpy()
    np.testing.assert_array_equal(rep[:, -1], img[:, -1])


# -- against MediaPipe's recorded landmarks ---------------------------------------------------------------------
def test_images_match_mediapipe(reference, detector, insightface_dir):
    ref, meta = reference
    distances, report = [], []
    for name, rgb in _images(insightface_dir).items():
        if name not in meta["images"] or meta["images"][name]["sha256"] != _sha(rgb):
            continue  # recorded from other pixels (another decoder): nothing to compare
        expected = [ref[f"image/{name}/{i}"] for i in range(meta["images"][name]["faces"])]
        ours = [f.points for f in detector.detect_all(rgb)]
        assert len(ours) == len(expected), f"{name}: {len(ours)} faces, MediaPipe {len(expected)}"
        if expected:
            d = np.concatenate(_distances(ours, expected))
            distances.append(d)
            report.append(f"{name}: {len(expected)} faces, median {np.median(d):.3f} px, p99 "
                          f"{np.percentile(d, 99):.3f} px")
    assert len(distances) >= 2, "the recorded images were not found (make test extracts them)"
    d = np.concatenate(distances)
    print("\nvs MediaPipe (recorded): " + "; ".join(report))
    assert np.median(d) < MEDIAN_PX and np.percentile(d, 99) < P99_PX


def test_video_mode_matches_mediapipe_on_the_film_clip(reference):
    ref, meta = reference
    if not CLIP.is_file() or meta["video"] is None:
        pytest.skip(f"{CLIP} is not here (make test fetches it from Debian's opencv-doc)")
    from headsplat.media.video import VideoReader

    expected = ref["video/points"]
    det = LandmarkDetector(mode="video")
    d, found = [], []
    for t, (_, rgb) in enumerate(VideoReader(CLIP)):
        if t == len(expected):
            break
        if _sha(rgb) != meta["video"]["sha256"][t]:
            pytest.skip("the clip decodes to other pixels here than where the reference was recorded")
        lm = det(rgb)
        found.append(lm is not None)
        if lm is not None and not np.isnan(expected[t]).any():
            d.append(np.linalg.norm(lm.points[:, :2] - expected[t], axis=1))
    assert found == [not np.isnan(e).any() for e in expected]
    d = np.concatenate(d)
    print(f"\nfilm clip, {len(expected)} frames: median {np.median(d):.3f} px, p99 {np.percentile(d, 99):.3f} px")
    assert np.median(d) < MEDIAN_PX and np.percentile(d, 99) < P99_PX


# -- batches and devices ------------------------------------------------------------------------------------
def test_batched_landmarks_and_mattes_equal_one_at_a_time():
    img = sample_portrait()
    h, w = img.shape[:2]
    nets = FaceNets(batch_size=2)
    det = nets.detect([img])[0][0][0]
    rects = [rect_from_detection(det.box, det.keypoints, w, h),
             NormRect(0.45, 0.3, 0.5, 0.5, 0.3), NormRect(0.5, 0.35, 0.4, 0.4, -0.2)]
    batched = nets.landmarks([img] * 3, rects)
    for i, r in enumerate(rects):
        one = nets.landmarks([img], [r])
        np.testing.assert_allclose(batched.points[i], one.points[0], atol=2e-5)
        assert batched.presence[i] == pytest.approx(one.presence[0], abs=1e-5)
    assert batched.presence[0] > 0.9
    flipped = np.ascontiguousarray(img[:, ::-1])
    with Matter() as m:
        both = m.batch([img, flipped])
        np.testing.assert_allclose(both[0], m(img), atol=1e-4)
        np.testing.assert_allclose(both[1], m(flipped), atol=1e-4)


@pytest.mark.cuda
def test_cuda_front_end_equals_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    img = sample_portrait()
    cpu = LandmarkDetector(device="cpu")(img)
    gpu = LandmarkDetector(device="cuda")(img)
    assert np.abs(cpu.points - gpu.points).max() < 0.05
    assert np.abs(Matter(device="cuda")(img) - Matter()(img)).max() < 1e-3


# -- live, with mediapipe installed -------------------------------------------------------------------------
def test_video_mode_matches_mediapipe_live(posed_video):
    face_mesh, _ = _mediapipe()
    from headsplat.media.video import VideoReader

    mesh = face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True)
    det = LandmarkDetector(mode="video")
    d = []
    for _, rgb in VideoReader(posed_video[0]):
        res = mesh.process(rgb)
        lm = det(rgb)
        assert (lm is None) == (not res.multi_face_landmarks)
        if lm is not None:
            h, w = rgb.shape[:2]
            ref = np.array([[p.x * w, p.y * h] for p in res.multi_face_landmarks[0].landmark])
            d.append(np.linalg.norm(lm.points[:, :2] - ref, axis=1))
    d = np.concatenate(d)
    print(f"\nrendered video vs MediaPipe's video mode: median {np.median(d):.4f} px, p99 "
          f"{np.percentile(d, 99):.4f} px")
    assert np.median(d) < MEDIAN_PX and np.percentile(d, 99) < P99_PX


def test_mattes_match_mediapipe_live(insightface_dir):
    _, selfie_segmentation = _mediapipe()
    images = [sample_portrait(), cv2.cvtColor(cv2.imread(str(Path(insightface_dir) / "t1.jpg")), cv2.COLOR_BGR2RGB)]
    report = []
    for landscape in (False, True):
        ref = selfie_segmentation.SelfieSegmentation(model_selection=int(landscape))
        with Matter(landscape=landscape) as m:
            for img in images:
                err = np.abs(m(img) - np.clip(ref.process(img).segmentation_mask, 0, 1))
                report.append(f"{'landscape' if landscape else 'general'} {img.shape[1]}x{img.shape[0]}: "
                              f"max {err.max():.1e}, mean {err.mean():.1e}")
                assert err.mean() < 1e-4 and err.max() < 1e-3, report[-1]
    print("\nmattes vs MediaPipe: " + "; ".join(report))
