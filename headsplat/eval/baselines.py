"""Baselines every reenactment figure is read against: the source frame shown unchanged, and a 2D warp of
the source face onto each frame's landmarks (no 3D, no learning)."""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay

N_MESH = 468  # the face-mesh points; the 10 iris points would fold the eye triangles


def warp_face(source: np.ndarray, source_points: np.ndarray, target_points: np.ndarray,
              size: tuple[int, int] | None = None) -> np.ndarray:
    """Warp ``source`` so its face lands on ``target_points``: piecewise affine over the Delaunay triangles of
    the target landmarks inside the face, one similarity transform (fitted on all landmarks) outside it.

    Args:
        source: (H, W, 3) uint8 source image.
        source_points, target_points: (478, 2+) landmarks in pixels in the source and in the target frame.
        size: output (width, height); default the source's size.

    Returns:
        (h, w, 3) uint8 warped image.
    """
    w, h = size or (source.shape[1], source.shape[0])
    src = np.asarray(source_points, np.float64)[:N_MESH, :2]
    dst = np.asarray(target_points, np.float64)[:N_MESH, :2]
    # Outside the face: the similarity transform target -> source (where each output pixel samples from).
    m, _ = cv2.estimateAffinePartial2D(dst.astype(np.float32), src.astype(np.float32), method=cv2.LMEDS)
    if m is None:
        m = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    pix = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], -1)  # pixel centres
    mapped = pix @ m[:, :2].T + m[:, 2]
    # Inside: barycentric coordinates in the target triangle, the same weights on the source triangle.
    tri = Delaunay(dst)
    simplex = tri.find_simplex(pix)
    inside = np.flatnonzero(simplex >= 0)
    s = simplex[inside]
    t = tri.transform[s]  # (n, 3, 2): affine to barycentric
    b = np.einsum("nij,nj->ni", t[:, :2], pix[inside] - t[:, 2])
    bary = np.concatenate([b, 1 - b.sum(1, keepdims=True)], 1)
    mapped[inside] = np.einsum("ni,nij->nj", bary, src[tri.simplices[s]])
    map_xy = (mapped - 0.5).reshape(h, w, 2).astype(np.float32)
    return cv2.remap(source, map_xy[..., 0], map_xy[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
