"""Named groups of MediaPipe face-mesh landmark indices (the 468-point mesh plus 10 iris points).

Left/right are the person's: ``right_eye`` appears on the image's left in a frontal photo.
"""

import numpy as np

RIGHT_EYE_UPPER = np.array([246, 161, 160, 159, 158, 157, 173])
RIGHT_EYE_LOWER = np.array([7, 163, 144, 145, 153, 154, 155])
RIGHT_EYE_CORNERS = np.array([33, 133])
LEFT_EYE_UPPER = np.array([466, 388, 387, 386, 385, 384, 398])
LEFT_EYE_LOWER = np.array([249, 390, 373, 374, 380, 381, 382])
LEFT_EYE_CORNERS = np.array([263, 362])
RIGHT_BROW = np.array([70, 63, 105, 66, 107, 55, 65, 52, 53, 46])
LEFT_BROW = np.array([300, 293, 334, 296, 336, 285, 295, 282, 283, 276])
LIPS_OUTER = np.array([61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185])
LIPS_INNER_UPPER = np.array([78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308])
LIPS_INNER_LOWER = np.array([78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308])
MOUTH_CORNERS = np.array([61, 291])
UPPER_LIP_CENTRE = 13
LOWER_LIP_CENTRE = 14
NOSE_TIP = 1
CHIN = 152
FOREHEAD = 10
RIGHT_IRIS = np.arange(468, 473)  # centre first, then 4 points on the iris ring
LEFT_IRIS = np.arange(473, 478)
FACE_OVAL = np.array([10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                      152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109])


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right, left) eye centres as the mean of each eye's corners: points (..., 478|468, D) -> (..., D) each."""
    return points[..., RIGHT_EYE_CORNERS, :].mean(-2), points[..., LEFT_EYE_CORNERS, :].mean(-2)


def interocular(points: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (outer+inner corner means): (..., N, D) -> (...)."""
    right, left = eye_centres(points)
    return np.linalg.norm(right - left, axis=-1)


#: Each eye's (upper lid, lower lid, corners), by the person's side.
EYE_LIDS = {"right": (RIGHT_EYE_UPPER, RIGHT_EYE_LOWER, RIGHT_EYE_CORNERS),
            "left": (LEFT_EYE_UPPER, LEFT_EYE_LOWER, LEFT_EYE_CORNERS)}


def eye_apertures(points: np.ndarray) -> np.ndarray:
    """(..., 2) lid gap of the right and the left eye relative to its width (the eye aspect ratio; low = closed):
    points (..., 478|468, 2+). The gap is the mean distance of the lid points between the corners."""
    p = np.asarray(points, np.float64)[..., :2]
    out = []
    for upper, lower, corners in EYE_LIDS.values():
        gap = np.linalg.norm(p[..., upper[1:-1], :] - p[..., lower[1:-1], :], axis=-1).mean(-1)
        out.append(gap / np.maximum(np.linalg.norm(p[..., corners[0], :] - p[..., corners[1], :], axis=-1), 1e-9))
    return np.stack(out, -1)
