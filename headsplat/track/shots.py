"""Shot boundaries in a driver video: hard cuts found from a jump in the frame's colour content, confirmed or
completed by a jump of the tracked face (position, size, or a different face after a gap).

Motion is re-anchored and temporal smoothing restarts at each boundary: a cut to a close-up, to another camera
angle or to another person is not a head moving.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from headsplat.face.indices import interocular

#: Side of the thumbnail frames are compared at (width; the height follows the aspect ratio).
THUMB_WIDTH = 64


@dataclass(frozen=True)
class ShotConfig:
    """Cut detection settings (defaults suit broadcast and phone footage at 24-60 fps)."""

    content_cut: float = 0.10  # colour change (0..1) that is a cut on its own
    content_ratio: float = 4.0  # ... and that stands this many times above the clip's usual change around it
    content_support: float = 0.03  # weaker colour change that is a cut when the face jumps at the same frame
    face_jump: float = 1.0  # face centre moving this many inter-ocular distances in one frame
    face_zoom: float = 1.35  # face size changing by this factor in one frame
    min_shot: int = 3  # a shot is at least this many frames (closer boundaries are merged)
    window: int = 12  # frames each side for the usual change


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """(h, 64, 3) float32 HSV thumbnail of an (H, W, 3) uint8 frame, every channel in [0, 1]."""
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV_FULL).astype(np.float32) / 255
    return hsv


def content_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two HSV thumbnails, in [0, 1]: the measure of PySceneDetect's content
    detector, normalised, with the hue difference taken round its circle and weighted by saturation (the hue
    of a grey pixel is noise)."""
    if a.shape != b.shape:
        return 1.0
    d = np.abs(a - b)
    d[..., 0] = np.minimum(d[..., 0], 1 - d[..., 0]) * 2 * np.minimum(a[..., 1], b[..., 1])
    return float(d.mean())


def _face_geometry(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) face centres and (T,) inter-ocular distances from (T, 478, 2+) landmarks."""
    return landmarks[:, :, :2].mean(1), interocular(landmarks[:, :, :2])


def detect_shots(changes: np.ndarray, landmarks: np.ndarray, found: np.ndarray,
                 cfg: ShotConfig = ShotConfig()) -> np.ndarray:
    """Shot index of every frame.

    Args:
        changes: (T,) content change from the previous frame (:func:`content_change`; frame 0's is ignored).
        landmarks: (T, 478, 2+) the followed face's landmarks (NaN where none).
        found: (T,) bool.
        cfg: settings.

    Returns:
        (T,) int32, 0 for the first shot, increasing by one at each cut.
    """
    T = len(changes)
    if T == 0:
        return np.zeros(0, np.int32)
    changes = np.asarray(changes, np.float64).copy()
    changes[0] = 0.0
    usual = np.array([np.median(np.delete(changes[max(1, t - cfg.window):t + cfg.window + 1],
                                          min(cfg.window, t - 1)) if t > 1 else [0.0]) for t in range(T)])
    # Faces: between consecutive found frames (across gaps: a face that reappears elsewhere after a gap).
    centre, iod = _face_geometry(landmarks)
    idx = np.flatnonzero(found)
    face_cut = np.zeros(T, bool)
    for a, b in zip(idx[:-1], idx[1:]):
        scale = max(iod[a], 1e-6)
        moved = np.linalg.norm(centre[b] - centre[a]) / scale
        zoom = max(iod[b], 1e-6) / scale
        if moved > cfg.face_jump * (b - a) ** 0.5 or max(zoom, 1 / zoom) > cfg.face_zoom:
            # The cut is where the picture changed most between the two sightings.
            face_cut[a + 1 + int(np.argmax(changes[a + 1:b + 1]))] = True
    strong = (changes > cfg.content_cut) & (changes > cfg.content_ratio * usual)
    supported = face_cut & (changes > cfg.content_support)
    cuts = np.flatnonzero(strong | supported)
    kept: list[int] = []
    for c in cuts:
        if c < cfg.min_shot or c > T - 1:
            continue
        if kept and c - kept[-1] < cfg.min_shot:
            if changes[c] > changes[kept[-1]]:
                kept[-1] = int(c)
            continue
        kept.append(int(c))
    shots = np.zeros(T, np.int32)
    for c in kept:
        shots[c:] += 1
    return shots


def shot_ranges(shots: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop)] frame ranges of each shot, from (T,) shot indices."""
    if len(shots) == 0:
        return []
    cuts = np.flatnonzero(np.diff(shots) != 0) + 1
    bounds = [0, *cuts.tolist(), len(shots)]
    return list(zip(bounds[:-1], bounds[1:]))
