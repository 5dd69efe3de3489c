"""MediaPipe's regions of interest: from a detection or the last frame's landmarks to a rotated square, the crop
a network sees through it, and its outputs mapped back to the image.

Each function is one of MediaPipe's calculators as its CPU path computes it (``DetectionsToRectsCalculator``,
``RectTransformationCalculator``, ``ImageToTensorCalculator`` with its OpenCV converter,
``LandmarkProjectionCalculator``, ``DetectionProjectionCalculator``), in float32 as there. Rectangles are
MediaPipe's ``NormalizedRect``: centre and size as fractions of the image's width and height, rotation in
radians (positive turns the crop clockwise on screen).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# FaceDetectionFrontDetectionToRoi / FaceLandmarkLandmarksToRoi: the rotation vector's end points and the
# enlargement of the square around the face.
DETECTION_EYES = (0, 1)  # BlazeFace keypoints: right eye, left eye (the person's), left to right on screen
LANDMARK_EYES = (33, 263)  # face-mesh points: outer corners of the right and left eye
ROI_SCALE = 1.5


@dataclass(frozen=True)
class NormRect:
    """A rotated rectangle in normalised image coordinates (MediaPipe's ``NormalizedRect``).

    Attributes:
        x_center, y_center: centre as fractions of the image width and height.
        width, height: size as fractions of the image width and height (a square in pixels has
            ``width * W == height * H``).
        rotation: radians; positive turns the rectangle clockwise on screen (y down).
    """

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: float = 0.0

    @classmethod
    def whole(cls) -> "NormRect":
        """The whole image."""
        return cls(0.5, 0.5, 1.0, 1.0, 0.0)


def normalize_radians(angle: float) -> float:
    """An angle in [-pi, pi) (MediaPipe's ``NormalizeRadians``)."""
    angle = np.float32(angle)
    two_pi = np.float32(2 * np.pi)
    return float(angle - two_pi * np.floor((angle + np.float32(np.pi)) / two_pi))


def rect_from_keypoints_box(box: np.ndarray, start: np.ndarray, end: np.ndarray, width: int, height: int,
                            scale: float = ROI_SCALE) -> NormRect:
    """The landmark model's square ROI around a face: the box's centre, rotated so that ``start -> end`` is
    horizontal, the longer side in pixels made square, enlarged by ``scale``.

    Args:
        box: (4,) xmin, ymin, xmax, ymax, normalised.
        start, end: (2,) normalised x, y of the rotation vector's end points (the eyes).
        width, height: the image size in pixels.
    """
    f = np.float32
    xmin, ymin, xmax, ymax = (f(v) for v in box)
    bw, bh = xmax - xmin, ymax - ymin
    cx, cy = xmin + bw / f(2), ymin + bh / f(2)
    x0, y0 = f(start[0]) * f(width), f(start[1]) * f(height)
    x1, y1 = f(end[0]) * f(width), f(end[1]) * f(height)
    rotation = normalize_radians(0.0 - np.arctan2(-(y1 - y0), x1 - x0, dtype=np.float32))
    long_side = max(bw * f(width), bh * f(height))
    return NormRect(float(cx), float(cy), float(long_side / f(width) * f(scale)),
                    float(long_side / f(height) * f(scale)), rotation)


def rect_from_detection(box: np.ndarray, keypoints: np.ndarray, width: int, height: int) -> NormRect:
    """FaceDetectionFrontDetectionToRoi: a detection's box and eye keypoints to the landmark model's ROI.

    Args:
        box: (4,) normalised xmin, ymin, xmax, ymax; keypoints: (6, 2) normalised.
    """
    return rect_from_keypoints_box(box, keypoints[DETECTION_EYES[0]], keypoints[DETECTION_EYES[1]], width, height)


def rect_from_landmarks(points: np.ndarray, width: int, height: int) -> NormRect:
    """FaceLandmarkLandmarksToRoi: the next frame's ROI from this frame's landmarks (their bounding box,
    rotated by the outer eye corners).

    Args:
        points: (478, 2+) normalised x, y (MediaPipe's ``NormalizedLandmarkList``).
    """
    xy = points[:, :2].astype(np.float32)
    box = np.concatenate([xy.min(0), xy.max(0)])
    return rect_from_keypoints_box(box, xy[LANDMARK_EYES[0]], xy[LANDMARK_EYES[1]], width, height)


def pixel_roi(rect: NormRect, width: int, height: int) -> np.ndarray:
    """(5,) float32 centre x, y, width, height in pixels and rotation (ImageToTensor's ``GetRoi``)."""
    f = np.float32
    return np.array([f(rect.x_center) * f(width), f(rect.y_center) * f(height), f(rect.width) * f(width),
                     f(rect.height) * f(height), rect.rotation], np.float32)


def pad_rect(rect: NormRect, width: int, height: int, out_w: int, out_h: int) -> np.ndarray:
    """ImageToTensor's ROI in pixels, enlarged to the tensor's aspect ratio when ``keep_aspect_ratio`` (``PadRoi``:
    the image is letterboxed, centred).

    Returns:
        (5,) float32 centre x, y, width, height in pixels, rotation in radians.
    """
    roi = pixel_roi(rect, width, height)
    tensor_aspect = np.float32(out_h) / np.float32(out_w)
    if tensor_aspect > roi[3] / roi[2]:
        roi[3] = roi[2] * tensor_aspect
    else:
        roi[2] = roi[3] / tensor_aspect
    return roi


def crop_matrix(roi: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """(3, 3) float64 perspective (here affine) matrix from image pixels to tensor pixels, OpenCV's pixel
    convention (centres at integers): the rotated ROI's corners (``cv2.boxPoints``) to the tensor's corners, as
    the OpenCV converter builds it.

    Args:
        roi: (5,) from :func:`pixel_roi` or :func:`pad_rect`.
    """
    box = ((float(roi[0]), float(roi[1])), (float(roi[2]), float(roi[3])), float(roi[4]) * 180.0 / np.pi)
    src = cv2.boxPoints(box).astype(np.float32)
    dst = np.array([[0, out_h], [0, 0], [out_w, 0], [out_w, out_h]], np.float32)
    return cv2.getPerspectiveTransform(src, dst)


def tensor_to_image_matrix(roi: np.ndarray, width: int, height: int) -> np.ndarray:
    """(2, 3) float32 affine from normalised tensor coordinates to normalised image coordinates
    (``GetRotatedSubRectToRectTransformMatrix`` without flip): what ``DetectionProjectionCalculator`` applies.

    Args:
        roi: (5,) the (padded) ROI in pixels.
    """
    f = np.float32
    a, b, e, g = roi[2], roi[3], roi[0], roi[1]
    c, d = f(np.cos(roi[4])), f(np.sin(roi[4]))
    sx, sy = f(1) / f(width), f(1) / f(height)
    return np.array([[a * c * sx, -b * d * sx, (f(-0.5) * a * c + f(0.5) * b * d + e) * sx],
                     [a * d * sy, b * c * sy, (f(-0.5) * b * c - f(0.5) * a * d + g) * sy]], np.float32)


def project_detection(box: np.ndarray, keypoints: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DetectionProjectionCalculator: a detection in tensor coordinates to image coordinates (the box's four
    corners projected, their bounding box taken).

    Args:
        box: (4,) xmin, ymin, xmax, ymax; keypoints: (K, 2); matrix: (2, 3) from :func:`tensor_to_image_matrix`.
    """
    box = box.astype(np.float32)
    corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]], np.float32)
    project = lambda p: p @ matrix[:, :2].T + matrix[:, 2]  # noqa: E731
    c = project(corners)
    return np.concatenate([c.min(0), c.max(0)]).astype(np.float32), project(keypoints.astype(np.float32))


def project_landmarks(points: np.ndarray, rect: NormRect) -> np.ndarray:
    """LandmarkProjectionCalculator (ROI given as a rect): landmarks normalised to the crop to normalised image
    coordinates; z is scaled like x (by the ROI's width).

    Args:
        points: (..., N, 3) float32 x, y, z as fractions of the crop's side.
    Returns:
        (..., N, 3) float32 normalised to the image (z relative to the image width).
    """
    f = np.float32
    x, y = points[..., 0] - f(0.5), points[..., 1] - f(0.5)
    c, s = f(np.cos(rect.rotation)), f(np.sin(rect.rotation))
    out = np.empty_like(points, dtype=np.float32)
    out[..., 0] = (c * x - s * y) * f(rect.width) + f(rect.x_center)
    out[..., 1] = (s * x + c * y) * f(rect.height) + f(rect.y_center)
    out[..., 2] = points[..., 2] * f(rect.width)
    return out
