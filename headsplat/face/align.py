"""Square face crops whose transform is recorded, so results can be pasted back into the original frame."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from headsplat.face.indices import CHIN, eye_centres


@dataclass(frozen=True)
class CropTransform:
    """A similarity transform from original-frame pixels to a ``size`` x ``size`` crop.

    Attributes:
        matrix: (2, 3) float64 affine, crop = matrix @ [x, y, 1] (pixel centres at i + 0.5 on both sides).
        size: crop side in pixels.
    """

    matrix: np.ndarray
    size: int

    def inverse(self) -> np.ndarray:
        """(2, 3) affine from crop pixels back to the original frame."""
        return cv2.invertAffineTransform(self.matrix)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) original-frame points into the crop."""
        return points @ self.matrix[:, :2].T + self.matrix[:, 2]


def crop_from_landmarks(points: np.ndarray, size: int = 512, scale: float = 2.6, rotate: bool = False) -> CropTransform:
    """A square crop centred between the eyes and the mouth, ``scale`` times the eye-to-chin distance.

    Args:
        points: (478, 2+) landmarks in pixels.
        size: output side in pixels.
        scale: crop side relative to the eye-centre-to-chin distance (2.6 frames the whole head and some hair).
        rotate: also rotate so the eyes are level (default keeps the frame upright).
    """
    p = points[:, :2].astype(np.float64)
    right, left = eye_centres(p)
    eyes = (right + left) / 2
    chin = p[CHIN]
    centre = eyes + (chin - eyes) * 0.25
    side = scale * float(np.linalg.norm(chin - eyes))
    s = size / max(side, 1e-6)
    angle = np.arctan2(left[1] - right[1], left[0] - right[0]) if rotate else 0.0
    c, sn = np.cos(-angle) * s, np.sin(-angle) * s
    rot = np.array([[c, -sn], [sn, c]])
    t = np.array([size / 2, size / 2]) - rot @ centre
    return CropTransform(np.concatenate([rot, t[:, None]], 1), size)


def _cv_matrix(m: np.ndarray) -> np.ndarray:
    # cv2 puts pixel centres at integers; convert our i + 0.5 convention on both sides.
    out = m.copy()
    out[:, 2] += m[:, :2].sum(1) * 0.5 - 0.5
    return out


def warp_to_crop(rgb: np.ndarray, crop: CropTransform, border: str = "replicate") -> np.ndarray:
    """Cut the crop out of a (H, W, C) image; outside the frame is filled by ``border``
    (``"replicate"`` or ``"constant"`` black)."""
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    return cv2.warpAffine(rgb, _cv_matrix(crop.matrix), (crop.size, crop.size), flags=cv2.INTER_LINEAR,
                          borderMode=mode)


def paste_back(frame: np.ndarray, crop_rgb: np.ndarray, crop_alpha: np.ndarray, crop: CropTransform,
               feather: float = 0.02) -> np.ndarray:
    """Composite a crop back into its frame with a soft mask.

    Args:
        frame: (H, W, 3) uint8 or float32 original frame.
        crop_rgb: (S, S, 3) same dtype as ``frame``.
        crop_alpha: (S, S) float32 in [0, 1], the crop's coverage.
        crop: the transform that produced the crop.
        feather: Gaussian blur of the mask, as a fraction of the crop size.

    Returns:
        (H, W, 3) the composited frame, the dtype of ``frame``.
    """
    h, w = frame.shape[:2]
    inv = _cv_matrix(crop.inverse())
    alpha = crop_alpha.astype(np.float32)
    if feather > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), feather * crop.size)
    a = cv2.warpAffine(alpha, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
    src = cv2.warpAffine(crop_rgb.astype(np.float32), inv, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT)
    out = frame.astype(np.float32) * (1 - a) + src * a
    if frame.dtype == np.uint8:
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return out.astype(frame.dtype)
