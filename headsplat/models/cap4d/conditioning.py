"""The MMDM's 50 conditioning channels at 64², from a posed mesh and a camera, without PyTorch3D.

Channels, in order: the pose map (the canonical template position of the surface seen at each pixel, sin/cos at
7 frequencies: 42), the expression offsets seen there (3), the ray map (3), the reference mask (1), the crop mask
(1). The pose map and offsets are rasterised at 2 × 64² and area-averaged to 64², masked to the head and mouth.

The rasteriser reproduces PyTorch3D's ``rasterize_meshes`` as CAP4D calls it (one face per pixel, no blur, no
perspective correction, back faces culled): vertices in PyTorch3D's NDC (+x left, +y up, z the view depth);
pixel (row i, column j) samples x = 1 − (2j + 1)/S, y = 1 − (2i + 1)/S; a face is a back face when
(x₀ − x₁)(y₂ − y₁) − (y₀ − y₁)(x₂ − x₁) < 0 and skipped when that area is within 1e-8 of 0; a pixel is inside when
its three barycentric coordinates are strictly positive; they are then clipped (renormalised to sum 1, as
``clip_barycentric_coords``) and the nearest non-negative interpolated depth wins. Against PyTorch3D's own naive
CPU rasteriser (built from its source, outside the repository): the same face at every pixel of random triangle
soups and of posed CAP4D heads, barycentrics and the pose and offset maps bitwise equal.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

EPS = 1e-8  # PyTorch3D's kEpsilon
POSITIONAL_FREQUENCIES = 7
OFFSET_STD = 0.0104  # expression offsets are divided by this


def pixel_ndc(size: int, dtype=torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, S) NDC x and y of every pixel centre, PyTorch3D's convention (+x left, +y up, row 0 at the top),
    computed in PyTorch3D's order of operations: −1 + (2 (S − 1 − j) + 1) / S."""
    c = -1.0 + (2.0 * (size - 1 - torch.arange(size, device=device)).to(dtype) + 1.0) / size
    y, x = torch.meshgrid(c, c, indexing="ij")
    return x, y


def _edge(px, py, ax, ay, bx, by):
    return (px - ax) * (by - ay) - (py - ay) * (bx - ax)


def rasterize(verts: torch.Tensor, faces: torch.Tensor, size: int, chunk: int = 256
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Which face each pixel sees and where.

    Args:
        verts: (V, 3) NDC x, y and view depth z.
        faces: (F, 3) int64 vertex indices.
        size: S, the square image's side.

    Returns:
        face index (S, S) int64 (−1: none) and barycentric coordinates (S, S, 3).
    """
    px, py = (t.reshape(-1) for t in pixel_ndc(size, verts.dtype, verts.device))
    tri = verts[faces]  # (F, 3, 3)
    x0, y0, z0 = tri[:, 0].unbind(-1)
    x1, y1, z1 = tri[:, 1].unbind(-1)
    x2, y2, z2 = tri[:, 2].unbind(-1)
    face_area = _edge(x0, y0, x1, y1, x2, y2)
    keep = (face_area >= 0) & (face_area.abs() > EPS)  # back faces and degenerate faces are skipped
    best_z = torch.full((px.shape[0],), float("inf"), dtype=verts.dtype, device=verts.device)
    best_f = torch.full((px.shape[0],), -1, dtype=torch.int64, device=verts.device)
    best_b = torch.zeros(px.shape[0], 3, dtype=verts.dtype, device=verts.device)
    ids = torch.nonzero(keep)[:, 0]
    rows = torch.arange(len(px), device=px.device)
    for s in range(0, len(ids), chunk):
        f = ids[s:s + chunk]
        area = _edge(x2[f], y2[f], x0[f], y0[f], x1[f], y1[f]) + EPS
        w0 = _edge(px[:, None], py[:, None], x1[f], y1[f], x2[f], y2[f]) / area
        w1 = _edge(px[:, None], py[:, None], x2[f], y2[f], x0[f], y0[f]) / area
        w2 = _edge(px[:, None], py[:, None], x0[f], y0[f], x1[f], y1[f]) / area
        inside = (w0 > 0) & (w1 > 0) & (w2 > 0)
        # clipped barycentrics (PyTorch3D's clip_barycentric_coords, as CAP4D asks): ≥ 0, renormalised to sum 1
        w0, w1, w2 = w0.clamp_min(0), w1.clamp_min(0), w2.clamp_min(0)
        total = (w0 + w1 + w2).clamp_min(1e-5)
        w0, w1, w2 = w0 / total, w1 / total, w2 / total
        z = w0 * z0[f] + w1 * z1[f] + w2 * z2[f]
        ok = inside & (z >= 0)
        z = torch.where(ok, z, torch.full_like(z, float("inf")))
        zmin, k = z.min(1)
        better = zmin < best_z
        best_z = torch.where(better, zmin, best_z)
        best_f = torch.where(better, f[k], best_f)
        b = torch.stack([w0[rows, k], w1[rows, k], w2[rows, k]], -1)
        best_b = torch.where(better[:, None], b, best_b)
    return best_f.reshape(size, size), best_b.reshape(size, size, 3)


def interpolate(face_index: torch.Tensor, bary: torch.Tensor, faces: torch.Tensor, values: torch.Tensor
                ) -> torch.Tensor:
    """(S, S, C) per-vertex ``values`` (V, C) interpolated where faces were drawn, 0 elsewhere."""
    f = face_index.clamp_min(0)
    corner = values[faces[f]]  # (S, S, 3, C)
    out = (bary[..., None] * corner).sum(-2)
    return out * (face_index >= 0)[..., None].to(out.dtype)


def positional_encoding(p: torch.Tensor, n_freq: int = POSITIONAL_FREQUENCIES) -> torch.Tensor:
    """(..., 3) -> (..., 3 · 2 · n_freq): per coordinate, sin at 2⁰…2^(n−1), then cos at the same."""
    freqs = 2.0 ** torch.linspace(0.0, n_freq - 1, n_freq, dtype=p.dtype, device=p.device)
    a = p[..., None] * freqs
    return torch.cat([a.sin(), a.cos()], -1).flatten(-2)


def normalised_template(template: torch.Tensor) -> torch.Tensor:
    """(V, 3) the canonical positions the pose map shows: the template centred on its mean and divided by its
    largest coordinate (one scalar for all axes)."""
    t = template - template.mean(0, keepdim=True)
    return t / t.max()


def pose_and_offsets(verts_ndc: torch.Tensor, faces: torch.Tensor, face_mask: torch.Tensor, template: torch.Tensor,
                     offsets: torch.Tensor, size: int = 64, super_resolution: int = 2) -> torch.Tensor:
    """(size, size, 45) the encoded pose map and the scaled expression offsets, masked to the faces of
    ``face_mask`` (F,) bool, rasterised at ``super_resolution`` × ``size`` and area-averaged.

    Args:
        verts_ndc: (V, 3) the posed mesh in NDC with view depth. offsets: (V, 3) posed minus shape-only vertices.
    """
    big = size * super_resolution
    face_index, bary = rasterize(verts_ndc, faces, big)
    pose = interpolate(face_index, bary, faces, normalised_template(template))
    offs = interpolate(face_index, bary, faces, offsets / OFFSET_STD)
    mask = (face_index >= 0) & face_mask[face_index.clamp_min(0)]
    enc = torch.cat([positional_encoding(pose), offs], -1) * mask[..., None].to(pose.dtype)
    return F.interpolate(enc.permute(2, 0, 1)[None], (size, size), mode="area")[0].permute(1, 2, 0)


def ray_map(crop_box: np.ndarray, K: np.ndarray, rotation: np.ndarray, size: int = 64,
            reference_rotation: np.ndarray | None = None) -> np.ndarray:
    """(3, size, size) unit viewing directions of the crop's pixels, in world space rotated into the first
    reference camera's frame (CAP4D's: pixel (i, j) at its corner j, i — no half-pixel offset).

    Args:
        crop_box: (4,) x0, y0, x1, y1 of the square crop in frame pixels.
        K: (3, 3) the frame's intrinsics. rotation: (3, 3) the camera's world-to-camera rotation.
        reference_rotation: (3, 3) the first reference camera's world-to-camera rotation (default: identity).
    """
    s = size / (crop_box[2] - crop_box[0])
    fx, fy = K[0, 0] * s, K[1, 1] * s
    cx, cy = (K[0, 2] - crop_box[0]) * s, (K[1, 2] - crop_box[1]) * s
    u, v = np.meshgrid(np.arange(size), np.arange(size))
    d = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u, dtype=np.float64)])
    d = d / (np.linalg.norm(d, axis=0, keepdims=True) + 1e-8)
    world = np.linalg.inv(rotation) @ d.reshape(3, -1)
    ref = np.eye(3) if reference_rotation is None else reference_rotation
    return (ref @ world).reshape(3, size, size)


def conditioning_maps(pose_offsets: torch.Tensor, rays: torch.Tensor, reference: bool,
                      crop_mask: torch.Tensor) -> torch.Tensor:
    """(S, S, 50) one frame's channels: pose map and offsets (S, S, 45), ray map (3, S, S), the reference mask
    (all ones for a reference frame), the crop mask (S, S) (where the crop lies inside the frame)."""
    ref = torch.full_like(crop_mask, float(reference))
    return torch.cat([pose_offsets, rays.permute(1, 2, 0).to(pose_offsets), ref[..., None], crop_mask[..., None]], -1)


# -- from a posed mesh and a camera to one frame's channels ----------------------------------------------------------
CROP_MARGIN = 0.2


def project(verts: torch.Tensor, K: torch.Tensor, extr: torch.Tensor) -> torch.Tensor:
    """(..., V, 3) pixel x, y and CAP4D's depth of OpenCV-world vertices (..., V, 3) seen by a camera with
    intrinsics K (3, 3) and world-to-camera ``extr`` (4, 4): the depth is z divided by the mean z of the frame's
    vertices, times (fx + fy) / 2."""
    cam = verts @ extr[:3, :3].T + extr[:3, 3]
    z = cam[..., 2]
    u = cam[..., 0] / z * K[0, 0] + K[0, 2]
    v = cam[..., 1] / z * K[1, 1] + K[1, 2]
    depth = z / z.mean(-1, keepdim=True) * (K[0, 0] + K[1, 1]) / 2
    return torch.stack([u, v, depth], -1)


def head_crop_box(pixels: np.ndarray, head_vertices: np.ndarray, margin: float = CROP_MARGIN) -> np.ndarray:
    """(4,) int x0, y0, x1, y1: CAP4D's square crop around the head vertices' box (V, 2+) in pixels: the box's
    corners truncated to integers, its centre by integer halving, half-side ⌊max side / 2⌋ · (1 + margin)
    truncated."""
    h = pixels[head_vertices, :2]
    box = np.array([h[:, 0].min(), h[:, 1].min(), h[:, 0].max(), h[:, 1].max()]).astype(int)
    cx, cy = (box[2] + box[0]) // 2, (box[3] + box[1]) // 2
    half = int(max(box[3] - box[1], box[2] - box[0]) // 2.0 * (1.0 + margin))
    return np.array([cx - half, cy - half, cx + half, cy + half])


def to_ndc(pixels: torch.Tensor, crop_box: np.ndarray) -> torch.Tensor:
    """(..., 3) pixel x, y (and depth, kept) -> PyTorch3D NDC of the crop: x = −(2 (x − x0) / w − 1), likewise y."""
    x0, y0, x1, y1 = (float(c) for c in crop_box)
    x = -((pixels[..., 0] - x0) / (x1 - x0) * 2.0 - 1.0)
    y = -((pixels[..., 1] - y0) / (y1 - y0) * 2.0 - 1.0)
    return torch.stack([x, y, pixels[..., 2]], -1)


def crop_mask(frame_size: tuple[int, int], crop_box: np.ndarray, size: int = 64) -> np.ndarray:
    """(size, size) float32: where CAP4D's crop of a (width, height) frame lies inside the frame, resized as the
    reference does it: on an 8-bit image (its frame's dtype), so the resized mask is rounded to 0 or 1."""
    import cv2

    w, h = frame_size
    x0, y0, x1, y1 = (int(c) for c in crop_box)
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    m[max(0, -y0):min(y1, h) - y0, max(0, -x0):min(x1, w) - x0] = 1
    interp = cv2.INTER_AREA if size < m.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(m, (size, size), interpolation=interp).astype(np.float32)
