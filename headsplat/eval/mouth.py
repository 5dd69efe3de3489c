"""Checks of an avatar's mouth interior at an open jaw: is the opening between the lips filled, and are the
teeth rows continuous."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import torch

from headsplat.avatar.animate import offset_motion, render_avatar_frame
from headsplat.avatar.avatar import posed_vertices
from headsplat.core.camera import Camera, project_points
from headsplat.core.rotation import euler_yxz_to_matrix
from headsplat.face import indices as ix
from headsplat.rig.base import HeadRig
from headsplat.rig.open_rig import TEETH
from headsplat.splat.gaussians import select


def _polygon_mask(points: np.ndarray, width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(points - 0.5).astype(np.int32)], 1)
    return mask.astype(bool)


def mouth_opening_mask(vertices: torch.Tensor, camera: Camera, erode: int = 2) -> np.ndarray:
    """(H, W) bool: the pixels between the inner lip contours of posed rig vertices (V, 3) (the MediaPipe face
    vertices first), shrunk by ``erode`` px so that the lips' own soft edge is not counted."""
    loop = np.concatenate([ix.LIPS_INNER_UPPER, ix.LIPS_INNER_LOWER[::-1][1:-1]])
    uv, _ = project_points(vertices[loop].double(), camera.viewmat.double(), camera.K.double())
    mask = _polygon_mask(uv.numpy(), camera.width, camera.height).astype(np.uint8)
    if erode > 0:
        mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    return mask.astype(bool)


def row_gaps(rgb: np.ndarray, points: np.ndarray, dark: float = 0.3) -> float:
    """Share of samples along a polyline (K, 2) pixel points (e.g. the middle of a row of teeth) that are dark
    (luminance below ``dark`` of an (H, W, 3) uint8 image): 0 for a continuous bright row, large for the dark
    gaps between scattered teeth."""
    seg = np.linspace(0, 1, 8, endpoint=False)
    pts = np.concatenate([a + (b - a) * seg[:, None] for a, b in zip(points[:-1], points[1:])] + [points[-1:]])
    x = np.clip(np.round(pts[:, 0] - 0.5).astype(int), 0, rgb.shape[1] - 1)
    y = np.clip(np.round(pts[:, 1] - 0.5).astype(int), 0, rgb.shape[0] - 1)
    lum = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)[y, x] / 255.0
    return float((lum < dark).mean())


def teeth_row_line(rig: HeadRig, vertices: torch.Tensor, camera: Camera, upper: bool = True) -> np.ndarray:
    """(K, 2) pixel points along the middle of a row of teeth of the open rig (upper or lower row), in order
    from one end to the other, for :func:`row_gaps`."""
    rows = (rig.mouth_material == TEETH) & (rig.mouth_upper == upper)
    tris = rig.mouth_triangles[rows]
    ids = tris.unique()
    pts = vertices[ids].double()
    # the row's vertices come as a top and a bottom edge: the middle line averages them column by column
    order = torch.argsort(pts[:, 0])
    pts = pts[order].reshape(-1, 2, 3).mean(1)
    uv, _ = project_points(pts, camera.viewmat.double(), camera.K.double())
    return uv.numpy()


def interior_leak(with_interior: np.ndarray, without_interior: np.ndarray, opening: np.ndarray, head: np.ndarray,
                  margin: int = 6, threshold: float = 0.1) -> float:
    """Share of the head's pixels outside the lips where the mouth interior shows through the skin: renders of
    the avatar with and without its mouth Gaussians, (H, W, 3) float in [0, 1]; ``opening`` (H, W) bool the
    pixels between the lips (:func:`mouth_opening_mask`), grown by ``margin`` px (the lips' soft edge);
    ``head`` (H, W) bool the head's pixels. A pixel leaks where the two renders differ by more than
    ``threshold`` (largest channel)."""
    grown = cv2.dilate(opening.astype(np.uint8), np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)).astype(bool)
    outside = head & ~grown
    if not outside.any():
        return 0.0
    diff = np.abs(with_interior.astype(np.float64) - without_interior).max(-1)
    return float((diff[outside] > threshold).mean())


def open_mouth_views(avatar, rig: HeadRig, yaw_deg: float, jaw: float = 1.0) -> dict:
    """An open-rig avatar at its reference pose turned by ``yaw_deg`` with the jaw opened by ``jaw``, rendered
    in its own camera with and without its mouth interior: ``render`` and ``bare`` (render results),
    ``vertices`` (V, 3) posed rig vertices and ``opening`` (H, W) bool (:func:`mouth_opening_mask`)."""
    e = torch.zeros(1, len(rig.expression_names))
    e[0, rig.expression_names.index("jaw_open")] = jaw
    turn = euler_yxz_to_matrix(torch.tensor([math.radians(yaw_deg)]), torch.zeros(1), torch.zeros(1))
    m = offset_motion(avatar, e, turn)
    part = rig.triangle_parts()[avatar.gaussians.parent]
    bare_avatar = replace(avatar, gaussians=select(avatar.gaussians, torch.nonzero(part != 2)[:, 0]))
    cam = avatar.camera
    out = {k: render_avatar_frame(a, rig, m, 0, cam, width=cam.width, height=cam.height)
           for k, a in (("render", avatar), ("bare", bare_avatar))}
    out["vertices"] = posed_vertices(avatar, rig, m.expression[0], m.rotation[0], m.translation[0])
    out["opening"] = mouth_opening_mask(out["vertices"], cam)
    return out


def interior_leak_at(views: dict) -> float:
    """:func:`interior_leak` of :func:`open_mouth_views`' renders (the head: alpha above 0.5)."""
    r, b = views["render"], views["bare"]
    return interior_leak(r.rgb.numpy(), b.rgb.numpy(), views["opening"], r.alpha[..., 0].numpy() > 0.5)
