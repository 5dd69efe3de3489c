"""Draw a posed mesh over an image (wireframe or flat-shaded, painter's algorithm with OpenCV).

Used for tracking overlays and quick looks; the Gaussian rasterizer is elsewhere in this package.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from headsplat.core.camera import project_points
from headsplat.core.validate import check_choice


def draw_mesh(image: np.ndarray, vertices: torch.Tensor, triangles: torch.Tensor, viewmat: torch.Tensor,
              K: torch.Tensor, style: str = "shaded", alpha: float = 0.55, color=(120, 200, 255),
              landmarks: np.ndarray | None = None) -> np.ndarray:
    """Draw a mesh over an image.

    Args:
        image: (H, W, 3) uint8, not modified.
        vertices: (V, 3) world-space vertices.
        triangles: (F, 3) indices.
        viewmat: (4, 4) world-to-camera; K: (3, 3) intrinsics.
        style: ``"shaded"`` (Lambert-shaded, blended with ``alpha``) or ``"wireframe"``.
        color: RGB of the mesh.
        landmarks: optional (N, 2) pixel points drawn as small dots (the detected landmarks).

    Returns:
        (H, W, 3) uint8 image.
    """
    check_choice("style", style, ("shaded", "wireframe"))
    out = image.copy()
    v = vertices.detach().double().cpu()
    uv, z = project_points(v, viewmat.double().cpu(), K.double().cpu())
    uv, z = uv.numpy(), z.numpy()
    tri = triangles.cpu().numpy()
    vc = (v @ viewmat[:3, :3].double().T + viewmat[:3, 3].double()).numpy()
    n = np.cross(vc[tri[:, 1]] - vc[tri[:, 0]], vc[tri[:, 2]] - vc[tri[:, 0]])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    centre = vc[tri].mean(1)
    facing = (n * centre).sum(1) < 0  # normal points towards the camera
    visible = facing & (z[tri] > 1e-3).all(1)
    order = np.argsort(-z[tri].mean(1))
    order = order[visible[order]]
    shift = 4  # sub-pixel precision for cv2 drawing
    pts = np.round((uv[tri] - 0.5) * (1 << shift)).astype(np.int32)
    if style == "shaded":
        layer = out.copy()
        mask = np.zeros(out.shape[:2], np.uint8)
        light = np.array([0.3, -0.4, -1.0])
        light /= np.linalg.norm(light)
        shade = np.clip(n @ light, 0.15, 1.0)
        base = np.asarray(color, float)
        for i in order:
            c = tuple(int(x) for x in base * shade[i])
            cv2.fillConvexPoly(layer, pts[i], c, lineType=cv2.LINE_AA, shift=shift)
            cv2.fillConvexPoly(mask, pts[i], 255, shift=shift)
        m = (mask[..., None] > 0)
        out = np.where(m, (out * (1 - alpha) + layer * alpha).astype(np.uint8), out)
    else:
        for i in order:
            cv2.polylines(out, [pts[i]], True, color, 1, lineType=cv2.LINE_AA, shift=shift)
    if landmarks is not None:
        for x, y in np.round((landmarks[:, :2] - 0.5) * (1 << shift)).astype(np.int32):
            cv2.circle(out, (int(x), int(y)), 1 << shift, (255, 60, 60), -1, lineType=cv2.LINE_AA, shift=shift)
    return out
