"""GAGAvatar's inputs from headsplat's FLAME tracking: the head crop, the camera of each view, the driven vertices.

The reference tracks every image in its own crop (a square of 1.65 × the face box, at 512 px) with a fixed
focal length of 12 (half-image units) and carries the head pose by the camera (FLAME's global rotation is
zero). headsplat tracks whole frames with their own focal length and moves the head. For a frame we therefore:
1. take the square crop of 1.65 × the head box (estimated from the tracked face: the rig's reprojected
   landmarks, defined where the detector missed a frame; over a video smoothed as the reference smooths its
   boxes, restarted at cuts);
2. solve the camera pose that lays the FLAME vertices (× 5) seen through the reference's intrinsics onto where
   headsplat's camera sees them in that crop (from the tracked rotation and a linear least-squares position,
   refined by PnP). Where the tracked focal length differs from the reference's, the fit is not exact; the
   residual (px at 512) is returned and reported.
"""

from __future__ import annotations

import numpy as np
import torch

from headsplat.core.camera import world_to_opencv
from headsplat.core.rotation import axis_angle_to_matrix, matrix_to_axis_angle
from headsplat.face.align import CropTransform, warp_to_crop
from headsplat.models.gagavatar.conventions import FLAME_SCALE, FOCAL, intrinsics, opencv_viewmat, pytorch3d_transform

CROP_SCALE = 1.65  # crop side / face box side
# (3,) float64 headsplat's tracking world (camera at the origin, looking down -z) -> OpenCV axes
_CV_FROM_WORLD = world_to_opencv().diagonal()[:3].double()


def head_box(face_box: np.ndarray) -> np.ndarray:
    """(4,) an estimate of a head detector's box (the reference uses VGGHead's: hair to chin, ear to ear) from
    the face-mesh landmarks' box (4,) x0, y0, x1, y1: raised by 30 % of its height (the skull above the
    forehead landmarks) and widened by 5 % on each side (the ears)."""
    x0, y0, x1, y1 = face_box
    w, h = x1 - x0, y1 - y0
    return np.array([x0 - 0.05 * w, y0 - 0.3 * h, x1 + 0.05 * w, y1])


def smooth_boxes(boxes: np.ndarray, shots: np.ndarray, alpha: float = 0.03) -> np.ndarray:
    """(T, 4) boxes of a video smoothed as the reference's tracker does (exponential moving average, weight
    ``alpha`` on the new frame), restarted at each cut (``shots`` (T,): shot index per frame)."""
    out = boxes.astype(np.float64).copy()
    for t in range(1, len(out)):
        if shots[t] == shots[t - 1]:
            out[t] = alpha * boxes[t] + (1 - alpha) * out[t - 1]
    return out


def square_crop(box: np.ndarray, size: int, scale: float = CROP_SCALE) -> CropTransform:
    """The ``size`` px square crop centred on ``box`` (4,) x0, y0, x1, y1 (frame px), of side ``scale`` × the
    geometric mean of its width and height (the reference's ``expand_bbox``)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = scale * float(np.sqrt(max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6)))
    s = size / side
    return CropTransform(np.array([[s, 0.0, size / 2 - s * cx], [0.0, s, size / 2 - s * cy]]), size)


def cut_crop(img: np.ndarray, crop: CropTransform) -> np.ndarray:
    """The crop of ``img`` (H, W, C): black beyond the frame, area-averaged when shrinking."""
    import cv2

    s = crop.matrix[0, 0]
    if s < 0.75:  # bilinear sampling alone would alias
        h, w = img.shape[:2]
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        m = crop.matrix.copy()
        m[0, 0], m[1, 1] = s * w / nw, s * h / nh
        crop = CropTransform(m, crop.size)
    return warp_to_crop(img, crop, border="constant")


def posed_to_opencv(vertices: torch.Tensor, scale: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor
                    ) -> torch.Tensor:
    """(..., V, 3) head-space vertices posed by headsplat's tracking, in OpenCV camera coordinates.
    Args:
        vertices: (..., V, 3) metres. scale: (...). rotation: (..., 3) axis-angle. translation: (..., 3).
    """
    R = axis_angle_to_matrix(rotation)
    x = (vertices * scale[..., None, None]) @ R.transpose(-1, -2) + translation[..., None, :]
    return x * _CV_FROM_WORLD.to(x)


def fit_view(vertices: torch.Tensor, rotation: torch.Tensor, pixels: torch.Tensor, size: int,
             focal: float = FOCAL) -> tuple[torch.Tensor, float]:
    """The reference camera ``[R|T]`` (3, 4) that shows head-space ``vertices`` where ``pixels`` are.
    The head's tracked rotation and a linear least-squares position start a Levenberg-Marquardt refinement of
    the full pose (``cv2.solvePnP``): the crop moves the principal point off the reference's image centre, which
    only a slightly different rotation can absorb.

    Args:
        vertices: (V, 3) unposed FLAME vertices, metres (× 5 inside).
        rotation: (3,) axis-angle head rotation in headsplat's tracking world.
        pixels: (V, 2) where they should land in the ``size`` px crop (pixel centres at i + 0.5).

    Returns:
        the transform, and the mean reprojection error in pixels.
    """
    import cv2

    dt = torch.float64
    flip = _CV_FROM_WORLD.to(dt)
    R = flip[:, None] * axis_angle_to_matrix(rotation.to(dt))  # head space -> OpenCV camera
    P = FLAME_SCALE * vertices.to(dt)
    X = P @ R.T
    K = intrinsics(size, focal, dt)
    f, c = K[0, 0], K[0, 2]
    du, dv = pixels[:, 0].to(dt) - c, pixels[:, 1].to(dt) - c
    zero, one = torch.zeros_like(du), torch.ones_like(du)
    # u - c = f (X + tx) / (Z + tz)  <=>  f tx - (u - c) tz = (u - c) Z - f X   (and the same for v)
    A = torch.cat([torch.stack([f * one, zero, -du], -1), torch.stack([zero, f * one, -dv], -1)])
    b = torch.cat([du * X[:, 2] - f * X[:, 0], dv * X[:, 2] - f * X[:, 1]])
    t = torch.linalg.lstsq(A, b[:, None]).solution[:, 0]
    # cv2 puts pixel centres at integers: shift the principal point by half a pixel
    K_cv = K.numpy().copy()
    K_cv[:2, 2] -= 0.5
    rvec, _ = cv2.Rodrigues(R.numpy())
    ok, rvec, tvec = cv2.solvePnP(P.numpy(), (pixels.to(dt).numpy() - 0.5), K_cv, None, rvec, t.numpy()[:, None],
                                  useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    if ok:
        R = torch.from_numpy(cv2.Rodrigues(rvec)[0])
        t = torch.from_numpy(tvec[:, 0])
    cam = P @ R.T + t
    proj = torch.stack([f * cam[:, 0] / cam[:, 2] + c, f * cam[:, 1] / cam[:, 2] + c], -1)
    err = float((proj - pixels.to(dt)).norm(dim=-1).mean())
    viewmat = torch.eye(4, dtype=dt)
    viewmat[:3, :3], viewmat[:3, 3] = R, t
    return pytorch3d_transform(viewmat).float(), err


def view_to_tracking(transform: torch.Tensor, identity_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """headsplat's head rotation (3,) axis-angle and translation (3,) metres of a reference view ``[R|T]``
    rendered with the reference's intrinsics: the exact inverse of the camera model (projection is unchanged
    when the scene is scaled by ``identity_scale / 5``)."""
    v = opencv_viewmat(transform.double())
    flip = _CV_FROM_WORLD
    R_head = flip[:, None] * v[:3, :3]
    t = flip * v[:3, 3] * (identity_scale / FLAME_SCALE)
    return matrix_to_axis_angle(R_head).float(), t.float()
