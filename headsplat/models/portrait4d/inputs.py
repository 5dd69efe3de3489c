"""What Portrait4D-v2's network takes, computed from headsplat's face front end and FLAME tracking by the
reference's own rules (its ``data_preprocess`` and ``gen_images_portrait4d.py``), each convention named here
once.

- **The aligned crop** (``align_img_bfm`` with ``target_size`` 512, ``rescale_factor`` 180): a 3D template's
  five points (eye centres, nose tip, mouth corners) fitted to the image's five points by ``POS`` (an affine
  camera, least squares; image y pointing up, ``y' = H - 1 - y``), giving a translation ``t`` and scale ``s``;
  the whole image resized by ``s`` (PIL, Lanczos, sizes truncated to integers), edge-padded where the crop
  leaves it, and a 512² window cut. The reference's five points are WFLW's pupils (96, 97), nose tip (54) and
  mouth corners (76, 82); here MediaPipe's iris centres (468, 473), the midpoint of its nose points 1 and 4 (point
  1 alone sits 6 px below WFLW's 54 at 512², point 4 10 px above, on the reference's 32 examples) and mouth
  corners (61, 291).
- **Landmarks in the crop**, for the motion encoder's crop: the reference's 68 "3D" landmarks mapped by the
  unrounded formula of ``resize_n_crop_img`` (y flipped with ``512 - y``, not ``511 - y``); here the three
  points that crop uses (the means of the 68-point eye contours and of the inner mouth), from the MediaPipe
  points at those 68 positions.
- **The camera**: with the neck rotation on (the released script's default), every view is the fixed
  camera-to-world ``[I | (0, 0.01, 4.2)]`` with the intrinsics of a 12° field of view (normalised, centre 0.5);
  the head's rotation is FLAME's neck joint. Cameras look down -z with y up (OpenGL).
- **FLAME**: DECA's FLAME 2020 (300 shape, 100 expression), pose = neck (3) + jaw (3), eyes (6); headsplat's
  tracked head rotation (about FLAME's origin, in a frame looking down -z with y up: the same axes) is the
  neck's, its shape, expression, jaw and eyes are FLAME 2020's coefficients (the ones it does not fit zero).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from headsplat.core.validate import check_shape

CROP_SIZE = 512
RESCALE_FACTOR = 180.0
FOV_DEG = 12.0
#: the fixed camera's position (camera-to-world translation) with the neck rotation on
CAMERA_POSITION = (0.0, 0.01, 4.2)
#: the reference's 3D five-point template (BFM units), shifted as ``align_img_bfm`` shifts it
TEMPLATE_3D = np.array([[-0.31148657, 0.09036078, 0.13377953], [0.30979887, 0.08972035, 0.13179526],
                        [0.0032535, -0.24617933, 0.55244243], [-0.25216928, -0.5813392, 0.22405732],
                        [0.2484662, -0.5812824, 0.22235769]]) + np.array([0.0, 0.1, 0.4])

# MediaPipe landmarks standing in for the reference's points: right iris, left iris, nose tip (the mean of two
# points), mouth corners (image left first)
FIVE_POINTS = (468, 473, (1, 4), 61, 291)
#: MediaPipe points at the 68-point eye contours (36-41, 42-47) and inner mouth (60-67)
RIGHT_EYE_68 = np.array([33, 160, 158, 133, 153, 144])
LEFT_EYE_68 = np.array([362, 385, 387, 263, 373, 380])
INNER_MOUTH_68 = np.array([78, 82, 13, 312, 308, 317, 14, 87])
#: DECA FLAME's coefficient counts
N_SHAPE, N_EXPR = 300, 100


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """(478, 2+) MediaPipe landmarks in pixels -> (5, 2) the alignment's points (y down)."""
    lm = np.asarray(landmarks)[:, :2].astype(np.float64)
    return np.stack([lm[list(np.atleast_1d(i))].mean(0) for i in FIVE_POINTS])


def motion_points(landmarks: np.ndarray) -> np.ndarray:
    """(478, 2+) MediaPipe landmarks -> (3, 2) the motion crop's points: right-eye, left-eye and inner-mouth
    centres (the means the reference takes of the 68-point contours)."""
    lm = np.asarray(landmarks)[:, :2].astype(np.float64)
    return np.stack([lm[RIGHT_EYE_68].mean(0), lm[LEFT_EYE_68].mean(0), lm[INNER_MOUTH_68].mean(0)])


def pos(xp: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """The reference's ``POS``: the affine camera taking 3D points ``x`` (N, 3) to image points ``xp`` (N, 2, y
    up) in least squares -> (translation (2,), scale) (the mean norm of the camera's two rows)."""
    n = len(xp)
    A = np.zeros([2 * n, 8])
    A[0:2 * n - 1:2, 0:3] = x
    A[0:2 * n - 1:2, 3] = 1
    A[1:2 * n:2, 4:7] = x
    A[1:2 * n:2, 7] = 1
    k = np.linalg.lstsq(A, np.reshape(xp, [2 * n, 1]), rcond=None)[0]
    r1, r2 = k[0:3].squeeze(), k[4:7].squeeze()
    return np.array([k[3, 0], k[7, 0]]), float(0.5 * np.linalg.norm(r1) + 0.5 * np.linalg.norm(r2))


class AlignedCrop:
    """The reference's 512² crop of one image of ``width`` x ``height`` from its five points (y down).

    Attributes:
        t: (2,) the template origin in image pixels, y up. s: the image's resize factor.
        resized: (w, h) the resized image's size. left, up: the crop's corner in the resized image.
    """

    def __init__(self, points5: np.ndarray, width: int, height: int, size: int = CROP_SIZE,
                 rescale_factor: float = RESCALE_FACTOR):
        check_shape("points5", np.asarray(points5), (5, 2))
        p = np.array(points5, np.float64)
        p[:, 1] = height - 1 - p[:, 1]
        t, s = pos(p, TEMPLATE_3D)
        self.width, self.height, self.size = int(width), int(height), int(size)
        self.t, self.s = t, rescale_factor / s
        w, h = int(width * self.s), int(height * self.s)
        self.resized = (w, h)
        self.left = int(w / 2 - size / 2 + float((t[0] - width / 2) * self.s))
        self.up = int(h / 2 - size / 2 + float((height / 2 - t[1]) * self.s))

    def cut(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (size, size, 3) uint8, as ``resize_n_crop_img`` (Lanczos, edge padding)."""
        w, h = self.resized
        img = Image.fromarray(np.ascontiguousarray(image)).resize((w, h), resample=Image.LANCZOS)
        left, up, right, below = self.left, self.up, self.left + self.size, self.up + self.size
        pad = max(abs(min(0, left)), abs(min(0, up)), max(right - w, 0), max(below - h, 0))
        arr = np.asarray(img)
        if pad > 0:
            arr = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        return np.array(arr[up + pad:below + pad, left + pad:right + pad])  # a writable copy

    def points(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) image pixels (y down) -> crop pixels (y down), by the reference's landmark formula."""
        xy = np.asarray(xy, np.float64)
        y_up = self.height - 1 - xy[:, 1]
        w, h = self.resized
        x = (xy[:, 0] - self.t[0] + self.width / 2) * self.s - (w / 2 - self.size / 2)
        y = (y_up - self.t[1] + self.height / 2) * self.s - (h / 2 - self.size / 2)
        return np.stack([x, self.size - y], 1)

    def matrix(self) -> np.ndarray:
        """(2, 3) image -> crop in headsplat's pixel coordinates (centres at i + 0.5), as the resize and cut move
        the pixels (each axis scaled by the resized over the original size)."""
        w, h = self.resized
        return np.array([[w / self.width, 0.0, -self.left], [0.0, h / self.height, -self.up]])


def intrinsics(fov_deg: float = FOV_DEG) -> torch.Tensor:
    """(3, 3) normalised intrinsics (focal in image widths, centre 0.5) of the reference's camera."""
    f = 1.0 / (2 * math.tan(math.radians(fov_deg) / 2))
    return torch.tensor([[f, 0.0, 0.5], [0.0, f, 0.5], [0.0, 0.0, 1.0]])


def orbit_camera(yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> torch.Tensor:
    """(25,) the fixed camera (camera-to-world, 16, then intrinsics, 9) turned about the head by ``yaw`` (the
    head seen from its left for positive yaw, as a head turned to its right) and ``pitch`` (from above for
    positive), keeping the same distance and looking at the point below it on the head's axis."""
    x0, y0, z0 = CAMERA_POSITION
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    # rotation: first pitch about x, then yaw about y (both moving the camera, not the head)
    ry = torch.tensor([[math.cos(yaw), 0.0, math.sin(yaw)], [0.0, 1.0, 0.0], [-math.sin(yaw), 0.0, math.cos(yaw)]],
                      dtype=torch.float64)
    rx = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(pitch), -math.sin(pitch)],
                       [0.0, math.sin(pitch), math.cos(pitch)]], dtype=torch.float64)
    rot = ry @ rx.T  # pitch > 0 lifts the camera (rotation about x by -pitch)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = rot
    c2w[:3, 3] = rot @ torch.tensor([x0, 0.0, z0], dtype=torch.float64) + torch.tensor([0.0, y0, 0.0],
                                                                                       dtype=torch.float64)
    return torch.cat([c2w.float().reshape(-1), intrinsics().reshape(-1)])


def flame_parameters(identity: torch.Tensor, expression: torch.Tensor, rotation: torch.Tensor,
                     expression_names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """headsplat's FLAME tracking -> the reference's FLAME inputs.

    Args:
        identity: (S,) or (B, S) FLAME shape (S <= 300). expression: (B, E) headsplat's FLAME expression
            (``expr_000``..., then ``jaw_r*``, ``eye_l_r*``, ``eye_r_r*``). rotation: (B, 3) axis-angle head
            rotation. expression_names: the names of ``expression``'s columns.

    Returns:
        ``shape`` (B, 300), ``expression`` (B, 100), ``pose`` (B, 6) neck + jaw, ``eye_pose`` (B, 6).
    """
    names = list(expression_names)
    expression = torch.as_tensor(expression, dtype=torch.float32)
    b = expression.shape[0]
    n_expr = sum(1 for n in names if n.startswith("expr_"))

    def cols(prefix):
        return expression[:, [names.index(f"{prefix}_r{a}") for a in "xyz"]]

    shape = torch.as_tensor(identity, dtype=torch.float32).reshape(-1, identity.shape[-1]).expand(b, -1)
    shape = torch.nn.functional.pad(shape, (0, N_SHAPE - shape.shape[-1]))
    expr = torch.nn.functional.pad(expression[:, :n_expr], (0, N_EXPR - n_expr))
    pose = torch.cat([torch.as_tensor(rotation, dtype=torch.float32).reshape(b, 3), cols("jaw")], -1)
    return {"shape": shape, "expression": expr, "pose": pose,
            "eye_pose": torch.cat([cols("eye_l"), cols("eye_r")], -1)}
