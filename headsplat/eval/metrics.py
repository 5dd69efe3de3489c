"""Reenactment metrics as plain functions: images or landmarks or parameters in, numbers out.

Images are (H, W, 3) uint8 or float in [0, 1]; masks (H, W) bool or weights in [0, 1]; landmarks (..., 478, 2+)
MediaPipe face-mesh points in pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from headsplat.avatar.losses import psnr as _psnr
from headsplat.avatar.losses import ssim_map
from headsplat.core.rotation import axis_angle_to_matrix, matrix_to_axis_angle
from headsplat.face.indices import LIPS_INNER_LOWER, LIPS_INNER_UPPER, MOUTH_CORNERS, eye_apertures, interocular


def _float_image(img: np.ndarray) -> torch.Tensor:
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {a.shape}")
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.float() / 255.0 if a.dtype == np.uint8 else t.float()


def _image_pair(a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    ta, tb = _float_image(a), _float_image(b)
    if ta.shape != tb.shape:
        raise ValueError(f"images differ in shape: {tuple(ta.shape)} vs {tuple(tb.shape)}")
    return ta, tb


def _mask(mask: np.ndarray | None, shape) -> torch.Tensor | None:
    if mask is None:
        return None
    m = np.asarray(mask, np.float32)
    if m.shape != tuple(shape[:2]):
        raise ValueError(f"mask shape {m.shape} does not match the image's {tuple(shape[:2])}")
    return torch.from_numpy(m)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB between two images (peak 1.0, or 255 for uint8), over ``mask`` when given.
    Identical images give 120 dB (the MSE is floored at 1e-12)."""
    ta, tb = _image_pair(a, b)
    return _psnr(ta, tb, _mask(mask, ta.shape))


def ssim_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) float32 per-pixel SSIM (11 px Gaussian window, sigma 1.5, the usual constants), channel mean."""
    return ssim_map(*_image_pair(a, b)).numpy()


def masked_mean(values: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean of (H, W) ``values`` over ``mask`` (bool or weights), or over all pixels."""
    if mask is None:
        return float(values.mean())
    m = np.asarray(mask, np.float64)
    if m.shape != values.shape:
        raise ValueError(f"mask shape {m.shape} does not match the image's {values.shape}")
    return float((values * m).sum() / max(m.sum(), 1.0))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """SSIM averaged over the image or over ``mask``."""
    return masked_mean(ssim_image(a, b), mask)


def error_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) float32 mean absolute error per pixel, in [0, 1]."""
    ta, tb = _image_pair(a, b)
    return (ta - tb).abs().mean(-1).numpy()


def landmark_errors(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame landmark distances of (T, 478, 2+) point sets.

    Returns:
        (akd, nme): (T,) mean point distance in pixels, and the same divided by the ground truth's
        inter-ocular distance (eye-corner centres). NaN where either has no face.
    """
    p, g = np.asarray(pred, np.float64)[..., :2], np.asarray(gt, np.float64)[..., :2]
    akd = np.linalg.norm(p - g, axis=-1).mean(-1)
    return akd, akd / np.maximum(interocular(g), 1e-9)


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """(T,) inner-lip gap relative to the mouth width, from (T, 478, 2+) landmarks (0 when closed)."""
    p = np.asarray(points, np.float64)[..., :2]
    gap = np.linalg.norm(p[..., LIPS_INNER_UPPER[1:-1], :] - p[..., LIPS_INNER_LOWER[1:-1], :], axis=-1).mean(-1)
    width = np.linalg.norm(p[..., MOUTH_CORNERS[0], :] - p[..., MOUTH_CORNERS[1], :], axis=-1)
    return gap / np.maximum(width, 1e-9)


def eye_opening(points: np.ndarray) -> np.ndarray:
    """(T,) eyelid gap relative to the eye width, mean of both eyes (the eye aspect ratio; low = blink)."""
    return eye_apertures(points).mean(-1)


def correlation(output: np.ndarray, reference: np.ndarray, min_std: float = 1e-6) -> float:
    """Pearson correlation of an output's (T,) series with the reference's, over the frames where both are
    finite. NaN when the reference hardly moves (std below ``min_std``: nothing to follow) or fewer than 3
    frames remain; 0 when the reference moves and the output does not."""
    a, b = np.asarray(output, np.float64), np.asarray(reference, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    a, b = a[ok], b[ok]
    if b.std() < min_std:
        return float("nan")
    if a.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def expression_distance(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(T,) mean absolute difference of (T, E) expression coefficients (the AED of the papers, on the rig's
    own coefficients)."""
    return np.abs(np.asarray(pred, np.float64) - np.asarray(gt, np.float64)).mean(-1)


def rotation_angle_deg(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(T,) geodesic angle in degrees between (T, 3) axis-angle head rotations (the APD, as an angle)."""
    rp = axis_angle_to_matrix(torch.as_tensor(np.asarray(pred), dtype=torch.float64))
    rg = axis_angle_to_matrix(torch.as_tensor(np.asarray(gt), dtype=torch.float64))
    # The relative rotation's angle through its quaternion (arccos of the trace loses precision near 0).
    return torch.rad2deg(matrix_to_axis_angle(rp.transpose(-1, -2) @ rg).norm(dim=-1)).numpy()


def yaw_pitch_deg(rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Head yaw and pitch in degrees from (T, 3) axis-angle rotations, read off where the face's +z axis
    points in world space (+y up): yaw > 0 when it points towards +x, pitch > 0 when it points down (-y)."""
    r = axis_angle_to_matrix(torch.as_tensor(np.asarray(rotation), dtype=torch.float64)).numpy()
    fwd = r[..., :, 2]  # where the face's +z points
    yaw = np.degrees(np.arctan2(fwd[..., 0], fwd[..., 2]))
    pitch = np.degrees(np.arcsin(np.clip(-fwd[..., 1], -1, 1)))
    return yaw, pitch


def seam_excess(image: np.ndarray, reference: np.ndarray) -> float:
    """How much stronger the strongest straight seam is in ``image`` than in ``reference`` at the same place:
    the largest increase of the mean absolute step across one whole pixel column or row, in grey levels
    (0..255) of (H, W, 3) uint8 images. A crop border pasted into a frame shows as a line of steps."""
    def lines(x):
        g = cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY).astype(np.float32)
        return np.abs(np.diff(g, axis=1)).mean(0), np.abs(np.diff(g, axis=0)).mean(1)

    (c1, r1), (c0, r0) = lines(image), lines(reference)
    return float(max((c1 - c0).max(), (r1 - r0).max()))


def speckles(image: np.ndarray, mask: np.ndarray | None = None, threshold: float = 0.2, size: int = 5) -> float:
    """Share of pixels (inside ``mask``) that are isolated outliers: further than ``threshold`` (0..1, in
    luminance) from the median of their ``size`` x ``size`` neighbourhood. Clean skin and hair score near 0;
    dark or bright specks on them raise it. ``image``: (H, W, 3) uint8; ``mask``: (H, W) bool."""
    g = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    med = cv2.medianBlur(g, size)
    out = np.abs(g.astype(np.float32) - med.astype(np.float32)) / 255 > threshold
    if mask is None:
        return float(out.mean())
    return float(out[mask].mean()) if mask.any() else float("nan")
