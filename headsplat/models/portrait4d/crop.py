"""The face crop Portrait4D feeds PD-FGC's motion encoder: a similarity transform taking three points of the 68
landmarks (the eye centres and the inner-mouth centre) to fixed positions in 224², the warp, a 192² window and
a resize back to 224².

As the reference computes it: skimage's least-squares similarity (Umeyama), kornia's ``warp_affine`` (bilinear,
zero padding, pixel centres at integer coordinates), rows 0:192 and columns 16:208, bilinear resize, clamp to
[-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from headsplat.core.validate import check_shape

#: where the left-eye, right-eye and mouth centres go in the 224² crop
TEMPLATE = np.array([[87, 59], [137, 59], [112, 120]], dtype=np.float32)
CROP_SIZE, CROP_LEN = 224, 16


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, translation) taking ``src`` (N, 2) to ``dst``
    (N, 2), as a 3x3 float64 matrix (Umeyama 1991, as skimage's ``SimilarityTransform.estimate``: the inputs'
    own dtypes are kept, float32 in the reference); NaNs when ``src`` is degenerate (all points equal)."""
    src, dst = np.asarray(src), np.asarray(dst)
    n, dim = src.shape
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_d, dst_d = src - src_mean, dst - dst_mean
    A = dst_d.T @ src_d / n
    d = np.ones(dim)
    if np.linalg.det(A) < 0:
        d[dim - 1] = -1
    T = np.eye(dim + 1)
    U, S, V = np.linalg.svd(A)
    rank = np.count_nonzero(S > S.max() * max(A.shape) * np.finfo(float).eps)
    if rank == 0:
        return np.full_like(T, np.nan)
    if rank == dim - 1:
        if np.linalg.det(U) * np.linalg.det(V) > 0:
            T[:dim, :dim] = U @ V
        else:
            d2 = d.copy()
            d2[dim - 1] = -1
            T[:dim, :dim] = U @ np.diag(d2) @ V
    else:
        T[:dim, :dim] = U @ np.diag(d) @ V
    scale = 1.0 / src_d.var(axis=0).sum() * (S @ d)
    T[:dim, dim] = dst_mean - scale * (T[:dim, :dim] @ src_mean)
    T[:dim, :dim] *= scale
    return T


def three_points(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) landmarks -> (3, 2): the means of the right eye (36:42), left eye (42:48) and inner mouth
    (60:68)."""
    return np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[60:68].mean(0)])


def crop_transform(landmarks: torch.Tensor, height: int, reverse_y: bool = False) -> torch.Tensor:
    """(B, 68, 2) pixel landmarks (x right, y down; ``reverse_y``: y up) -> (B, 2, 3) image-to-crop affine
    maps (identity where the fit is singular, as the reference; also where it is NaN, which the reference would
    pass on)."""
    check_shape("landmarks", landmarks, ("B", 68, 2))
    lms = landmarks.detach().cpu().numpy().astype(np.float32)
    return points_transform(torch.from_numpy(np.stack([three_points(lm) for lm in lms])).to(landmarks.device),
                            height, reverse_y)


def points_transform(points: torch.Tensor, height: int, reverse_y: bool = False) -> torch.Tensor:
    """(B, 3, 2) right-eye, left-eye and inner-mouth centres in pixels -> (B, 2, 3) image-to-crop affine maps
    (see :func:`crop_transform`)."""
    check_shape("points", points, ("B", 3, 2))
    out = []
    for p in points.detach().cpu().numpy().astype(np.float32):
        if reverse_y:
            p[:, -1] = height - 1 - p[:, -1]
        M = umeyama(p, TEMPLATE)
        if np.linalg.det(M) == 0 or not np.isfinite(M).all():
            M = np.eye(3)
        out.append(M[:2])
    return torch.tensor(np.array(out), dtype=torch.float32, device=points.device)


def _pixel_to_unit(h: int, w: int) -> torch.Tensor:
    """3x3: pixel coordinates (centres at integers) -> [-1, 1] with the corner pixels' centres at ±1."""
    return torch.tensor([[2.0 / (w - 1), 0.0, -1.0], [0.0, 2.0 / (h - 1), -1.0], [0.0, 0.0, 1.0]])


def warp_affine(images: torch.Tensor, M: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Each output pixel (x, y) takes the bilinear value of the input at ``M^-1 (x, y, 1)`` (pixel centres at
    integers, zeros outside), composed in normalised coordinates as kornia's ``warp_affine`` does (its order of
    float32 operations): (B, C, H, W), (B, 2, 3) -> (B, C, size[0], size[1])."""
    b, c, h, w = images.shape
    M3 = torch.cat([M, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=M.dtype, device=M.device).expand(b, -1, -1)], 1)
    src_unit = _pixel_to_unit(h, w).to(M)[None]
    dst_unit = _pixel_to_unit(*size).to(M)[None]
    unit = dst_unit @ (M3 @ torch.inverse(src_unit))
    theta = torch.inverse(unit)[:, :2, :]
    grid = F.affine_grid(theta, [b, c, size[0], size[1]], align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def motion_crop(images: torch.Tensor, landmarks: torch.Tensor, reverse_y: bool = False) -> torch.Tensor:
    """PD-FGC's input for Portrait4D: (B, 3, H, W) images in [-1, 1] and their (B, 68, 2) landmarks ->
    (B, 3, 224, 224) crops in [-1, 1]."""
    return motion_crop_at(images, crop_transform(landmarks, images.shape[-1], reverse_y))


def motion_crop_at(images: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) images in [-1, 1] and their (B, 2, 3) crop maps (:func:`crop_transform`,
    :func:`points_transform`) -> (B, 3, 224, 224) crops."""
    warped = warp_affine(images, M, (CROP_SIZE, CROP_SIZE))
    warped = warped[:, :, :CROP_SIZE - CROP_LEN * 2, CROP_LEN:CROP_SIZE - CROP_LEN]
    return torch.clamp(F.interpolate(warped, size=[CROP_SIZE, CROP_SIZE], mode="bilinear"), -1, 1)
