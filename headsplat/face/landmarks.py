"""The 478 MediaPipe face-mesh landmarks for images and videos, from the models bundled in the wheel.

Images: the face mesh on the whole frame; when it finds nothing (small faces, group photos) the bundled
short- and full-range detectors propose boxes and the mesh runs on each box's crop. Videos: the chosen face
is followed with a crop that moves with it (MediaPipe's own tracking runs inside the crop) and is re-detected
on the whole frame when lost.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from headsplat.core.errors import NoFaceError
from headsplat.core.validate import check_choice
from headsplat.face.assets import import_solutions
from headsplat.face.indices import FACE_OVAL

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


def _from_mediapipe(mp_landmarks, width: int, height: int) -> FaceLandmarks:
    a = np.array([[p.x * width, p.y * height, p.z * width] for p in mp_landmarks.landmark], dtype=np.float32)
    box = np.array([a[:, 0].min(), a[:, 1].min(), a[:, 0].max(), a[:, 1].max()], dtype=np.float32)
    return FaceLandmarks(a, box)


def _square_crop_matrix(cx: float, cy: float, side: float, out: int) -> np.ndarray:
    """(2, 3) affine mapping a square of ``side`` px centred at (cx, cy) to an ``out`` x ``out`` image."""
    s = out / side
    return np.array([[s, 0, out / 2 - s * cx], [0, s, out / 2 - s * cy]], dtype=np.float64)


def _map_back(lm: FaceLandmarks, m: np.ndarray) -> FaceLandmarks:
    s = m[0, 0]
    pts = lm.points.astype(np.float64).copy()
    pts[:, 0] = (pts[:, 0] - m[0, 2]) / s
    pts[:, 1] = (pts[:, 1] - m[1, 2]) / s
    pts[:, 2] = pts[:, 2] / s
    pts = pts.astype(np.float32)
    box = np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()], dtype=np.float32)
    return FaceLandmarks(pts, box)


def _warp(rgb: np.ndarray, m: np.ndarray, out: int) -> np.ndarray:
    # cv2 maps pixel centres at integer coordinates; ours are at i + 0.5, hence the half-pixel shifts.
    shift = m.copy()
    shift[:, 2] += m[:, :2].sum(1) * 0.5 - 0.5
    return cv2.warpAffine(rgb, shift, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


class LandmarkDetector:
    """Find faces and their 478 landmarks.
    Args:
        mode: ``"image"`` (every call independent) or ``"video"`` (calls are consecutive frames).
        face: which face to follow when several are present: 0 is the largest, 1 the next, ...
        min_confidence: detection confidence threshold.
        crop_size: side of the crop the mesh runs on when following a face in video mode.
        max_lost: video mode: after this many frames without the followed person, take the ``face``-th largest
            face again.
        min_similarity: video mode: appearance similarity (0..1) a face needs to be taken for the followed
            person when it is found again.

    Use as a context manager, or call :meth:`close`.
    """
    def __init__(self, mode: str = "image", face: int = 0, min_confidence: float = 0.5, crop_size: int = 320,
                 max_lost: int = 75, min_similarity: float = 0.5):
        check_choice("mode", mode, ("image", "video"))
        if face < 0:
            raise ValueError(f"face: expected >= 0, got {face}")
        face_mesh, face_detection, _ = import_solutions()
        self.mode = mode
        self.face = face
        self.crop_size = crop_size
        self._mesh_full = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max(4, face + 1),
                                             refine_landmarks=True, min_detection_confidence=min_confidence)
        self._mesh_crop_static = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                                    min_detection_confidence=min_confidence)
        self._mesh_crop_video = face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True,
                                                   min_detection_confidence=min_confidence,
                                                   min_tracking_confidence=0.5) if mode == "video" else None
        self._detectors = [face_detection.FaceDetection(model_selection=k,
                                                        min_detection_confidence=min_confidence * 0.8)
                           for k in (0, 1)]
        self._previous: FaceLandmarks | None = None
        # Video mode follows one person: their appearance, and how many frames they have been out of sight.
        self._appearance: np.ndarray | None = None
        self._subject: np.ndarray | None = None  # the person chosen at the start, kept across cuts
        self._missed = 0
        self._new_shot = False
        self.max_lost = max_lost
        self.min_similarity = min_similarity

    # -- detection on a whole image ---------------------------------------------------------------------------
    def _process(self, mesh, rgb: np.ndarray):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # protobuf deprecation chatter inside mediapipe
            return mesh.process(rgb)

    def _boxes_in(self, rgb: np.ndarray, x0: int = 0, y0: int = 0) -> list[np.ndarray]:
        h, w = rgb.shape[:2]
        boxes = []
        for det in self._detectors:
            res = self._process(det, np.ascontiguousarray(rgb))
            for d in res.detections or []:
                b = d.location_data.relative_bounding_box
                boxes.append(np.array([x0 + b.xmin * w, y0 + b.ymin * h, x0 + (b.xmin + b.width) * w,
                                       y0 + (b.ymin + b.height) * h]))
        return boxes

    def _detect_boxes(self, rgb: np.ndarray, tile: int = 480) -> list[np.ndarray]:
        h, w = rgb.shape[:2]
        boxes = self._boxes_in(rgb)
        if not boxes and max(h, w) > 2 * tile:
            # The detectors see the frame at 128-192 px: a 60 px face in an HD frame is a few pixels to them.
            # Overlapping tiles of the frame bring small faces back into their range.
            step = tile * 3 // 4
            for y0 in range(0, max(1, h - tile // 4), step):
                for x0 in range(0, max(1, w - tile // 4), step):
                    boxes += self._boxes_in(rgb[y0:y0 + tile, x0:x0 + tile], x0, y0)
        kept: list[np.ndarray] = []
        for b in sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])):
            if all(_iou(b, k) < 0.3 for k in kept):
                kept.append(b)
        return kept

    def _mesh_in_box(self, rgb: np.ndarray, box: np.ndarray, mesh) -> FaceLandmarks | None:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = 2.0 * max(box[2] - box[0], box[3] - box[1])
        m = _square_crop_matrix(cx, cy, side, self.crop_size)
        res = self._process(mesh, _warp(rgb, m, self.crop_size))
        if not res.multi_face_landmarks:
            return None
        return _map_back(_from_mediapipe(res.multi_face_landmarks[0], self.crop_size, self.crop_size), m)

    def detect_all(self, rgb: np.ndarray) -> list[FaceLandmarks]:
        """Every face found in one image, largest first.
        Args:
            rgb: (H, W, 3) uint8.
        """
        rgb = np.ascontiguousarray(rgb)
        h, w = rgb.shape[:2]
        res = self._process(self._mesh_full, rgb)
        faces = [_from_mediapipe(f, w, h) for f in (res.multi_face_landmarks or [])]
        # The whole-frame mesh often reports one face of several: every detected box gets the mesh too.
        for box in self._detect_boxes(rgb):
            if any(_iou(box, f.box) > 0.3 for f in faces):
                continue
            lm = self._mesh_in_box(rgb, box, self._mesh_crop_static)
            if lm is not None and all(_iou(lm.box, f.box) < 0.3 for f in faces):
                faces.append(lm)
        return sorted(faces, key=lambda f: -f.size)

    # -- the public call --------------------------------------------------------------------------------------
    def __call__(self, rgb: np.ndarray) -> FaceLandmarks | None:
        """The chosen face's landmarks in this image (or video frame), or None when there is none.
        In video mode one person is followed: their face is tracked inside a crop that moves with it; when it is
        lost (turned away, occluded, out of frame) it is searched for on the whole frame and only a face that
        looks like them is taken, so a second person in the frame is never switched to. After :meth:`new_shot`
        (a cut) the person chosen at the start is looked for first; when they are not there, or after
        ``max_lost`` frames without the followed person, the ``face``-th largest face is taken, as at the start
        (a cut to another person).

        Args:
            rgb: (H, W, 3) uint8.
        """
        rgb = np.ascontiguousarray(rgb)
        if self.mode == "image":
            faces = self.detect_all(rgb)
            return faces[self.face] if len(faces) > self.face else None
        if self._previous is not None and self._missed == 0 and not self._new_shot:
            lm = self._mesh_in_box(rgb, self._previous.box, self._mesh_crop_video)
            # MediaPipe's own tracking inside the moving crop stays on one face unless the mesh jumps.
            if lm is not None and _centre_distance(lm.box, self._previous.box) <= 1.0:
                return self._follow(rgb, lm)
        faces = self.detect_all(rgb)
        if self._new_shot and self._subject is not None:
            # After a cut, the person chosen at the start comes first, wherever they are now.
            back = [f for f in faces if self._similarity(rgb, f, self._subject) >= self.min_similarity]
            if back:
                self._appearance = self._subject.copy()
                return self._follow(rgb, max(back, key=lambda f: self._similarity(rgb, f, self._subject)))
        match = [f for f in faces if self._same_person(rgb, f)] if self._appearance is not None else []
        if match:
            last = self._previous.box if self._previous is not None else None
            key = (lambda f: _centre_distance(f.box, last)) if last is not None and not self._new_shot \
                else (lambda f: -self._similarity(rgb, f))
            return self._follow(rgb, min(match, key=key))
        if (self._appearance is None or self._new_shot or self._missed >= self.max_lost) and len(faces) > self.face:
            self._appearance = None
            return self._follow(rgb, faces[self.face])
        self._missed += 1
        return None

    def new_shot(self) -> None:
        """The next frame follows a cut: the followed person may be elsewhere, or another person may be the
        subject now (video mode)."""
        self._new_shot = True

    def _follow(self, rgb: np.ndarray, lm: FaceLandmarks) -> FaceLandmarks:
        sig = appearance(rgb, lm)
        if sig is not None:
            # A slow running mean: lighting drifts within a shot, a person's colours do not jump.
            self._appearance = sig if self._appearance is None else 0.9 * self._appearance + 0.1 * sig
            if self._subject is None:
                self._subject = self._appearance.copy()
            elif self._similarity(rgb, lm, self._subject) >= self.min_similarity:
                self._subject = 0.9 * self._subject + 0.1 * sig
        self._previous, self._missed, self._new_shot = lm, 0, False
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
        for m in (self._mesh_full, self._mesh_crop_static, self._mesh_crop_video, *self._detectors):
            if m is not None:
                m.close()

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
