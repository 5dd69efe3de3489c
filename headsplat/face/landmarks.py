"""The 478 MediaPipe face-mesh landmarks for images and videos, from the face models bundled with headsplat
(``headsplat/face/data``, converted from MediaPipe's, Apache-2.0) run by headsplat's own PyTorch code."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from headsplat.core.errors import NoFaceError
from headsplat.core.validate import check_choice
from headsplat.face.frontend import PRESENCE_THRESHOLD, Detection, FaceNets
from headsplat.face.indices import FACE_OVAL
from headsplat.face.roi import NormRect, rect_from_detection, rect_from_landmarks
from headsplat.face.warp import warp_perspective

N_LANDMARKS = 478


@dataclass(frozen=True)
class FaceLandmarks:
    """One face's landmarks in one image.
    Attributes:
        points: (478, 3) float32: x, y in pixels (pixel centres at i + 0.5), z in pixels, relative depth
            (MediaPipe's sign: smaller is nearer the camera).
        box: (4,) float32 x0, y0, x1, y1 of the landmarks in pixels.
    """
    points: np.ndarray
    box: np.ndarray

    @property
    def size(self) -> float:
        """The box's diagonal in pixels."""
        return float(np.hypot(self.box[2] - self.box[0], self.box[3] - self.box[1]))


PROPOSAL_CROP = 320  # side of the crop the mesh graph runs in around a proposed box


def _square_crop_matrix(cx: float, cy: float, side: float, out: int) -> np.ndarray:
    """(2, 3) affine mapping a square of ``side`` px centred at (cx, cy) to an ``out`` x ``out`` image."""
    s = out / side
    return np.array([[s, 0, out / 2 - s * cx], [0, s, out / 2 - s * cy]], dtype=np.float64)


def _warp(rgb: np.ndarray, m: np.ndarray, out: int) -> np.ndarray:
    """(out, out, 3) uint8 crop through the (2, 3) affine ``m`` (headsplat's pixel centres at i + 0.5)."""
    # The warp maps pixel centres at integer coordinates; ours are at i + 0.5, hence the half-pixel shifts.
    shift = np.eye(3)
    shift[:2] = m
    shift[:2, 2] += m[:, :2].sum(1) * 0.5 - 0.5
    return warp_perspective(torch.from_numpy(np.require(rgb, np.uint8, ['C', 'W'])), shift[None], out, out,
                            border_zero=True)[0].numpy()


def _to_face(norm: np.ndarray, width: int, height: int) -> FaceLandmarks:
    """FaceLandmarks in pixels from (478, 3) normalised landmarks."""
    a = (norm * np.array([width, height, width], np.float32)).astype(np.float32)
    box = np.array([a[:, 0].min(), a[:, 1].min(), a[:, 0].max(), a[:, 1].max()], dtype=np.float32)
    return FaceLandmarks(a, box)


class LandmarkDetector:
    """Find faces and their 478 landmarks (MediaPipe's face detectors and attention face mesh, run by
    :class:`headsplat.face.frontend.FaceNets`).

    Image mode: MediaPipe's FaceMesh graph on the whole image (short-range detector, ROI from each detection,
    landmarks in it); where it misses faces (small faces, group photos), the short- and full-range detectors
    (on overlapping tiles of a large frame when the whole frame gives nothing) propose more, and the mesh graph
    runs again in a 320 px crop around each. Video mode: the followed face's ROI comes from the previous frame's
    landmarks (MediaPipe's tracking rule); when the face-presence score drops, the face is searched for on the
    whole frame again.

    Args:
        mode: ``"image"`` (every call independent) or ``"video"`` (calls are consecutive frames).
        face: which face to follow when several are present: 0 is the largest, 1 the next, ...
        min_confidence: detection confidence threshold.
        max_lost: video mode: after this many frames without the followed person, take the ``face``-th largest
            face again.
        min_similarity: video mode: appearance similarity (0..1) a face needs to be taken for the followed
            person when it is found again.
        device: where the networks run (``"cpu"`` or ``"cuda"``).

    Use as a context manager, or call :meth:`close`.
    """
    def __init__(self, mode: str = "image", face: int = 0, min_confidence: float = 0.5, max_lost: int = 75,
                 min_similarity: float = 0.5, device: str = "cpu"):
        check_choice("mode", mode, ("image", "video"))
        if face < 0:
            raise ValueError(f"face: expected >= 0, got {face}")
        self.mode = mode
        self.face = face
        self.min_confidence = float(min_confidence)
        self.max_faces = max(4, face + 1)  # the whole-image mesh's max_num_faces
        self.nets = FaceNets(device=device)
        self._previous: FaceLandmarks | None = None
        self._previous_norm: np.ndarray | None = None
        # Video mode follows one person: their appearance, and how many frames they have been out of sight.
        self._appearance: np.ndarray | None = None
        self._subject: np.ndarray | None = None  # the person chosen at the start, kept across cuts
        self._missed = 0
        self._new_shot = False
        self.max_lost = max_lost
        self.min_similarity = min_similarity

    # -- detection on a whole image ---------------------------------------------------------------------------
    def _detections(self, rgb: np.ndarray) -> tuple[list[Detection], list[Detection]]:
        """The mesh graph's own detections (short range at ``min_confidence``), and the proposals of both
        detectors at their graphs' thresholds relative to it (short range ``min_confidence``, full range 1.2x:
        0.5 and 0.6 by default, MediaPipe's), on tiles of a large frame when the whole frame gives none."""
        own = self.nets.detect([rgb], min_scores=(self.min_confidence,))[0][0]
        full_score = min(1.0, self.min_confidence * 1.2)
        full = self.nets.detect([rgb], full_range=True, min_scores=(full_score,))[0][0]
        proposals = own + full
        h, w = rgb.shape[:2]
        tile = 480
        if not proposals and max(h, w) > 2 * tile:
            # The detectors see the frame at 128-192 px: a 60 px face in an HD frame is a few pixels to them.
            # Overlapping tiles of the frame bring small faces back into their range.
            step = tile * 3 // 4
            origins = [(x0, y0) for y0 in range(0, max(1, h - tile // 4), step)
                       for x0 in range(0, max(1, w - tile // 4), step)]
            tiles = [np.ascontiguousarray(rgb[y0:y0 + tile, x0:x0 + tile]) for x0, y0 in origins]
            for full_range, score in ((False, self.min_confidence), (True, full_score)):
                for (x0, y0), t, found in zip(origins, tiles,
                                              self.nets.detect(tiles, full_range=full_range, min_scores=(score,))):
                    th, tw = t.shape[:2]
                    for d in found[0]:
                        scale = np.array([tw / w, th / h], np.float32)
                        shift = np.array([x0 / w, y0 / h], np.float32)
                        proposals.append(Detection(np.concatenate([d.box[:2] * scale + shift,
                                                                   d.box[2:] * scale + shift]),
                                                   d.keypoints * scale + shift, d.score))
        return own, proposals

    def _mesh(self, rgb: np.ndarray, rects: list[NormRect]) -> list[tuple[FaceLandmarks, np.ndarray]]:
        """Landmarks in each ROI where the face-presence score passes, with their normalised points."""
        h, w = rgb.shape[:2]
        res = self.nets.landmarks([rgb] * len(rects), rects)
        return [(_to_face(p, w, h), p) for p, s in zip(res.points, res.presence) if s >= PRESENCE_THRESHOLD]

    def _mesh_in_boxes(self, rgb: np.ndarray, boxes: list[np.ndarray]) -> list[tuple[FaceLandmarks, np.ndarray]]:
        """The mesh graph (detection, ROI, landmarks) in a square crop of twice each proposed box, at
        :data:`PROPOSAL_CROP` px: a small face is re-detected at the detector's resolution, so its ROI sits as
        MediaPipe places it; the landmarks are mapped back to the frame."""
        if not boxes:
            return []
        h, w = rgb.shape[:2]
        size = PROPOSAL_CROP
        mats = [_square_crop_matrix((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, 2.0 * max(b[2] - b[0], b[3] - b[1]), size)
                for b in boxes]
        crops = [_warp(rgb, m, size) for m in mats]
        found = self.nets.detect(crops, min_scores=(self.min_confidence,))
        chosen = [(c, m, f[0][0]) for c, m, f in zip(crops, mats, found) if f[0]]
        if not chosen:
            return []
        res = self.nets.landmarks([c for c, _, _ in chosen],
                                  [rect_from_detection(d.box, d.keypoints, size, size) for _, _, d in chosen])
        out = []
        for (_, m, _), p, score in zip(chosen, res.points, res.presence):
            if score < PRESENCE_THRESHOLD:
                continue
            s = m[0, 0]
            px = p.astype(np.float64) * size
            px[:, 0] = (px[:, 0] - m[0, 2]) / s
            px[:, 1] = (px[:, 1] - m[1, 2]) / s
            px[:, 2] = px[:, 2] / s
            norm = (px / [w, h, w]).astype(np.float32)
            out.append((_to_face(norm, w, h), norm))
        return out

    def _detect_all(self, rgb: np.ndarray) -> list[tuple[FaceLandmarks, np.ndarray]]:
        h, w = rgb.shape[:2]
        own, proposals = self._detections(rgb)
        faces = self._mesh(rgb, [rect_from_detection(d.box, d.keypoints, w, h) for d in own[:self.max_faces]])
        # The mesh graph's detector often reports one face of several: every proposal gets the mesh too.
        kept: list[Detection] = []
        scale = np.array([w, h, w, h], np.float32)
        for d in sorted(proposals, key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1])):
            box = d.box * scale
            if all(_iou(box, k.box * scale) < 0.3 for k in kept) and all(_iou(box, f.box) <= 0.3 for f, _ in faces):
                kept.append(d)
        for lm, norm in self._mesh_in_boxes(rgb, [d.box * scale for d in kept]):
            if all(_iou(lm.box, f.box) < 0.3 for f, _ in faces):
                faces.append((lm, norm))
        return sorted(faces, key=lambda f: -f[0].size)

    def detect_all(self, rgb: np.ndarray) -> list[FaceLandmarks]:
        """Every face found in one image, largest first.
        Args:
            rgb: (H, W, 3) uint8.
        """
        return [f for f, _ in self._detect_all(np.ascontiguousarray(rgb))]

    # -- the public call --------------------------------------------------------------------------------------
    def __call__(self, rgb: np.ndarray) -> FaceLandmarks | None:
        """The chosen face's landmarks in this image (or video frame), or None when there is none.
        In video mode one person is followed: their face is tracked through an ROI that follows their last
        landmarks; when it is lost (turned away, occluded, out of frame) it is searched for on the whole frame
        and only a face that looks like them is taken, so a second person in the frame is never switched to.
        After :meth:`new_shot` (a cut) the person chosen at the start is looked for first; when they are not
        there, or after ``max_lost`` frames without the followed person, the ``face``-th largest face is taken,
        as at the start (a cut to another person).

        Args:
            rgb: (H, W, 3) uint8.
        """
        rgb = np.ascontiguousarray(rgb)
        if self.mode == "image":
            faces = self.detect_all(rgb)
            return faces[self.face] if len(faces) > self.face else None
        h, w = rgb.shape[:2]
        if self._previous_norm is not None and self._missed == 0 and not self._new_shot:
            found = self._mesh(rgb, [rect_from_landmarks(self._previous_norm, w, h)])
            # Tracking through the last landmarks' ROI stays on one face unless the mesh jumps.
            if found and _centre_distance(found[0][0].box, self._previous.box) <= 1.0:
                return self._follow(rgb, *found[0])
        candidates = self._detect_all(rgb)
        faces = [f for f, _ in candidates]
        norm_of = {id(f): n for f, n in candidates}
        if self._new_shot and self._subject is not None:
            # After a cut, the person chosen at the start comes first, wherever they are now.
            back = [f for f in faces if self._similarity(rgb, f, self._subject) >= self.min_similarity]
            if back:
                self._appearance = self._subject.copy()
                best = max(back, key=lambda f: self._similarity(rgb, f, self._subject))
                return self._follow(rgb, best, norm_of[id(best)])
        match = [f for f in faces if self._same_person(rgb, f)] if self._appearance is not None else []
        if match:
            last = self._previous.box if self._previous is not None else None
            key = (lambda f: _centre_distance(f.box, last)) if last is not None and not self._new_shot \
                else (lambda f: -self._similarity(rgb, f))
            best = min(match, key=key)
            return self._follow(rgb, best, norm_of[id(best)])
        if (self._appearance is None or self._new_shot or self._missed >= self.max_lost) and len(faces) > self.face:
            self._appearance = None
            chosen = faces[self.face]
            return self._follow(rgb, chosen, norm_of[id(chosen)])
        self._missed += 1
        return None

    def new_shot(self) -> None:
        """The next frame follows a cut: the followed person may be elsewhere, or another person may be the
        subject now (video mode)."""
        self._new_shot = True

    def _follow(self, rgb: np.ndarray, lm: FaceLandmarks, norm: np.ndarray) -> FaceLandmarks:
        sig = appearance(rgb, lm)
        if sig is not None:
            # A slow running mean: lighting drifts within a shot, a person's colours do not jump.
            self._appearance = sig if self._appearance is None else 0.9 * self._appearance + 0.1 * sig
            if self._subject is None:
                self._subject = self._appearance.copy()
            elif self._similarity(rgb, lm, self._subject) >= self.min_similarity:
                self._subject = 0.9 * self._subject + 0.1 * sig
        self._previous, self._previous_norm, self._missed, self._new_shot = lm, norm, 0, False
        return lm

    def _similarity(self, rgb: np.ndarray, lm: FaceLandmarks, reference: np.ndarray | None = None) -> float:
        """Appearance similarity (0..1) of a face to ``reference`` (default: the person followed now)."""
        ref = self._appearance if reference is None else reference
        sig = appearance(rgb, lm)
        if sig is None or ref is None:
            return 0.0
        return 1.0 - float(cv2.compareHist(sig, ref.astype(np.float32), cv2.HISTCMP_BHATTACHARYYA))

    def _same_person(self, rgb: np.ndarray, lm: FaceLandmarks) -> bool:
        return self._appearance is None or self._similarity(rgb, lm) >= self.min_similarity

    def close(self) -> None:
        """Release the networks (they are rebuilt on the next call)."""
        self.nets = FaceNets(device=str(self.nets.device))

    def __enter__(self) -> "LandmarkDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _centre_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two boxes' centres in units of the second box's diagonal."""
    ca, cb = (a[:2] + a[2:]) / 2, (b[:2] + b[2:]) / 2
    return float(np.linalg.norm(ca - cb) / max(np.linalg.norm(b[2:] - b[:2]), 1e-6))


def appearance(rgb: np.ndarray, lm: FaceLandmarks) -> np.ndarray | None:
    """(16, 8) float32 normalised hue-saturation histogram of a face and the hair above it (the face oval,
    extended upwards by 40% of its height): a cheap signature that tells people apart within one clip."""
    oval = lm.points[FACE_OVAL, :2]
    top = oval.copy()
    top[:, 1] -= 0.4 * (oval[:, 1].max() - oval[:, 1].min())
    hull = cv2.convexHull(np.concatenate([oval, top]).astype(np.float32))
    x0, y0, w, h = cv2.boundingRect(hull)
    H, W = rgb.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    patch = rgb[y0:y1, x0:x1]
    mask = np.zeros(patch.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.round(hull[:, 0] - [x0, y0]).astype(np.int32), 1)
    hsv = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2HSV_FULL)
    hist = cv2.calcHist([hsv], [0, 1], mask, [16, 8], [0, 256, 0, 256])
    total = hist.sum()
    return (hist / total).astype(np.float32) if total > 0 else None


def face_points(img: np.ndarray, what: str) -> np.ndarray:
    """(478, 3) landmarks of the (largest) face in one (H, W, 3) uint8 image.
    Raises:
        NoFaceError: no face in it; the message names ``what``.
    """
    with LandmarkDetector(mode="image") as det:
        lm = det(img)
    if lm is None:
        raise NoFaceError(f"no face found in {what}")
    return lm.points
