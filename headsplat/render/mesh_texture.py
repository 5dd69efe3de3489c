"""Render a mesh textured with a photo (per-triangle affine warps, painter's algorithm, OpenCV), and a
vectorised triangle rasteriser for coarse attribute maps.

Re-posing a photo through a fitted rig gives test videos with known parameters and a 2D-warp baseline; it
is not the Gaussian renderer.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from headsplat.core.camera import project_points


def render_textured(texture: np.ndarray, tex_uv: np.ndarray, vertices: torch.Tensor, triangles: torch.Tensor,
                    viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int,
                    background: np.ndarray | None = None, triangle_mask: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Render a textured mesh.

    Args:
        texture: (Ht, Wt, 3) uint8 source image.
        tex_uv: (V, 2) each vertex's pixel position in ``texture`` (pixel centres at i + 0.5).
        vertices: (V, 3) world-space vertices; triangles: (F, 3).
        viewmat: (4, 4); K: (3, 3); width, height: output size.
        background: (height, width, 3) uint8 (default black).
        triangle_mask: (F,) bool, triangles to draw (default all).

    Returns:
        rgb (height, width, 3) uint8 and coverage (height, width) float32 in {0, 1}.
    """
    out = np.zeros((height, width, 3), np.uint8) if background is None else background.copy()
    cover = np.zeros((height, width), np.uint8)
    v = vertices.detach().double().cpu()
    uv, z = project_points(v, viewmat.double().cpu(), K.double().cpu())
    uv, z = uv.numpy() - 0.5, z.numpy()  # to cv2's integer pixel centres
    src = np.asarray(tex_uv, np.float64) - 0.5
    tri = triangles.cpu().numpy()
    vc = (v @ viewmat[:3, :3].double().T + viewmat[:3, 3].double()).numpy()
    n = np.cross(vc[tri[:, 1]] - vc[tri[:, 0]], vc[tri[:, 2]] - vc[tri[:, 0]])
    keep = ((n * vc[tri].mean(1)).sum(1) < 0) & (z[tri] > 1e-3).all(1)
    if triangle_mask is not None:
        keep &= triangle_mask
    order = np.argsort(-z[tri].mean(1))
    for i in order[keep[order]]:
        d = uv[tri[i]].astype(np.float32)
        s = src[tri[i]].astype(np.float32)
        x0, y0 = np.floor(d.min(0)).astype(int)
        x1, y1 = np.ceil(d.max(0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x1 <= x0 or y1 <= y0:
            continue
        m = cv2.getAffineTransform(s, d - np.array([x0, y0], np.float32))
        patch = cv2.warpAffine(texture, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round((d - [x0, y0]) * 16).astype(np.int32), 1, shift=4)
        region = out[y0:y1, x0:x1]
        region[mask > 0] = patch[mask > 0]
        cover[y0:y1, x0:x1] |= mask
    return out, cover.astype(np.float32)


def rasterize_triangles(uv: np.ndarray, z: np.ndarray, triangles: np.ndarray, width: int, height: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Which triangle is nearest at each pixel centre, and where in it (vectorised over triangles' boxes).

    Args:
        uv: (V, 2) projected vertices in pixels (centres at i + 0.5); z: (V,) camera depth.
        triangles: (F, 3) int.
        width, height: image size.

    Returns:
        face (height, width) int64 index into ``triangles`` (-1: none) and bary (height, width, 3) float64
        barycentric coordinates of the pixel centre in it.
    """
    face = np.full((height, width), -1, np.int64)
    bary = np.zeros((height, width, 3))
    if len(triangles) == 0:
        return face, bary
    p = uv[triangles]  # (F, 3, 2)
    lo = np.clip(np.floor(p.min(1) - 0.5), 0, [width, height]).astype(np.int64)
    hi = np.clip(np.ceil(p.max(1) - 0.5) + 1, 0, [width, height]).astype(np.int64)
    size = np.maximum(hi - lo, 0)
    count = size[:, 0] * size[:, 1]
    f = np.repeat(np.arange(len(triangles)), count)
    if len(f) == 0:
        return face, bary
    local = np.arange(len(f)) - np.repeat(np.cumsum(count) - count, count)
    x = lo[f, 0] + local % size[f, 0]
    y = lo[f, 1] + local // size[f, 0]
    q = np.stack([x + 0.5, y + 0.5], -1)
    a, b, c = p[f, 0], p[f, 1], p[f, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    ok = np.abs(area) > 1e-12
    safe = np.where(ok, area, 1.0)
    w0 = ((b[:, 0] - q[:, 0]) * (c[:, 1] - q[:, 1]) - (b[:, 1] - q[:, 1]) * (c[:, 0] - q[:, 0])) / safe
    w1 = ((c[:, 0] - q[:, 0]) * (a[:, 1] - q[:, 1]) - (c[:, 1] - q[:, 1]) * (a[:, 0] - q[:, 0])) / safe
    w2 = 1 - w0 - w1
    eps = -1e-9
    inside = ok & (w0 >= eps) & (w1 >= eps) & (w2 >= eps)
    f, x, y, w = f[inside], x[inside], y[inside], np.stack([w0, w1, w2], -1)[inside]
    depth = (w * z[triangles[f]]).sum(1)
    pix = y * width + x
    order = np.lexsort((depth, pix))  # nearest first within each pixel
    first = order[np.r_[True, pix[order][1:] != pix[order][:-1]]]
    face.reshape(-1)[pix[first]] = f[first]
    bary.reshape(-1, 3)[pix[first]] = w[first]
    return face, bary
