"""Where the face's surface really moved: optical flow against the tracked rig's prediction.

MediaPipe's landmarks stay close to its own learned face shapes: a lip raised on one side, a brow knitted
unevenly, a pucker pushed sideways barely move them (on rendered faces with known deformations of 4-12 px,
their motion correlates 0.08 with the truth). The image does show them. For each frame of a video, the first
frame of its shot is warped through the tracked rig (pose and shapes) onto the frame: a synthetic picture of
the face as the rig explains it. Dense optical flow (OpenCV's DIS) from that picture to the real frame, read at
each face vertex, is what the rig leaves unexplained, relative to the shot's first frame: the data for the
free face offsets (:mod:`headsplat.track.offsets`). It needs the frames again (a second pass over the video),
not the landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np
import torch

from headsplat.core.camera import project_points, world_to_opencv
from headsplat.face.align import warp_to_crop
from headsplat.render.mesh_texture import rasterize_triangles
from headsplat.track.tracking import crop_camera

N_MESH = 468


@dataclass(frozen=True)
class FlowConfig:
    """Settings of the photometric residuals."""

    size: int = 512  # side of the face crops the flow is computed on
    coarse: int = 4  # the warp's map is rasterised at 1/coarse of that and interpolated
    erode: int = 3  # crop pixels of the warped face's edge not trusted
    margin: int = 16  # crop pixels around the face's box the flow is computed on


def _bilinear(field: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(P, C) values of an (H, W, C) field at pixel positions (P, 2) (centres at i + 0.5)."""
    h, w = field.shape[:2]
    x = np.clip(uv[:, 0] - 0.5, 0, w - 1.001)
    y = np.clip(uv[:, 1] - 0.5, 0, h - 1.001)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    return ((1 - fx) * (1 - fy) * field[y0, x0] + fx * (1 - fy) * field[y0, x0 + 1]
            + (1 - fx) * fy * field[y0 + 1, x0] + fx * fy * field[y0 + 1, x0 + 1])


def face_flow_residuals(frames: Iterable[np.ndarray], tracking, points: np.ndarray, triangles: np.ndarray,
                        cfg: FlowConfig = FlowConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, where each face vertex is seen minus where the tracked rig puts it.

    Args:
        frames: the tracked video's frames in order, (H, W, 3) uint8 each.
        tracking: its :class:`~headsplat.track.tracking.Tracking` (open rig, offsets not yet fitted).
        points: (T, 478, 3) the tracked rig's face vertices, world space.
        triangles: (F, 3) the face mesh (the open rig's ``face_mesh_triangles``).
        cfg: settings.

    Returns:
        residuals (T, 478, 2) in frame pixels (0 for the shot's first frame and the iris points) and
        weights (T, 478) in {0, 1}: the vertex is seen in both the shot's first frame and this one.
    """
    T = len(tracking)
    size = cfg.size
    tris = torch.from_numpy(triangles)
    view = world_to_opencv().double()
    verts = torch.as_tensor(points, dtype=torch.float64)
    residuals = np.zeros((T, 478, 2))
    weights = np.zeros((T, 478))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    anchor = None
    kernel = np.ones((2 * cfg.erode + 1, 2 * cfg.erode + 1), np.uint8)
    for t, frame in enumerate(frames):
        if t >= T:
            break
        if t == 0 or tracking.shots[t] != tracking.shots[t - 1]:  # a cut: the new shot gets its own anchor
            anchor = None
        if not tracking.found[t]:
            continue
        camera, transform = crop_camera(tracking, t, size)  # frame t's recorded face crop at ``size`` pixels
        crop = warp_to_crop(frame, transform)
        uv = project_points(verts[t], view, camera.K.double())[0].numpy()
        facing = _front_facing(verts[t], tris)
        if anchor is None:  # the shot's first frame with a face: the reference appearance
            anchor = (crop, uv, facing)
            weights[t, :N_MESH] = 1.0
            continue
        a_crop, a_uv, a_facing = anchor
        seen = facing & a_facing
        # Only the face's box (and a margin) of the crop: the flow there costs a third of the whole crop's.
        x0, y0 = np.clip(np.floor(uv[:N_MESH].min(0)) - cfg.margin, 0, size).astype(int)
        x1, y1 = np.clip(np.ceil(uv[:N_MESH].max(0)) + cfg.margin, 0, size).astype(int)
        if x1 - x0 < 16 or y1 - y0 < 16:
            continue
        box = crop[y0:y1, x0:x1]
        local = uv - np.array([x0, y0])
        synth, cover = warp_through_mesh(a_crop, a_uv, local, verts[t].numpy(), triangles[seen], box, cfg.coarse)
        flow = dis.calc(cv2.cvtColor(synth, cv2.COLOR_RGB2GRAY), cv2.cvtColor(box, cv2.COLOR_RGB2GRAY), None)
        inside = cv2.erode((cover > 0).astype(np.uint8), kernel) > 0
        vis = np.zeros(478, bool)
        vis[np.unique(triangles[seen])] = True
        vis[N_MESH:] = False
        px = np.floor(local).astype(int)
        vis &= (px[:, 0] >= 0) & (px[:, 0] < x1 - x0) & (px[:, 1] >= 0) & (px[:, 1] < y1 - y0)
        vis[vis] &= inside[px[vis, 1], px[vis, 0]]
        scale = np.linalg.norm(transform.matrix[:, 0])  # crop px per frame px
        residuals[t, vis] = _bilinear(flow, local[vis]) / scale
        weights[t, vis] = 1.0
    return residuals, weights


def warp_through_mesh(texture: np.ndarray, tex_uv: np.ndarray, uv: np.ndarray, points: np.ndarray,
                      triangles: np.ndarray, background: np.ndarray, coarse: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``texture`` carried onto a posed mesh: each pixel the mesh covers takes the texture at the point of the
    nearest triangle it sees (affine within a triangle); elsewhere ``background``.

    The map from output pixels to texture positions is rasterised at 1/``coarse`` of the size and interpolated
    (bilinear): within a triangle it is affine anyway, so only triangle edges are softened. (A per-triangle warp,
    :func:`~headsplat.render.mesh_texture.render_textured`, is ~10 times slower.)

    Args:
        texture: (H, W, 3) uint8. tex_uv: (V, 2) the vertices in ``texture``, pixels (centres at i + 0.5).
        uv: (V, 2) the vertices in the output, pixels; points: (V, 3) world space (for depth: camera at the
            origin looking down -z).
        triangles: (F, 3) the triangles to draw (culled by the caller).
        background: (H, W, 3) uint8 output size and what shows outside the mesh.
        coarse: the map's subsampling factor.

    Returns:
        (H, W, 3) uint8 image and (H, W) float32 coverage in {0, 1}.
    """
    h, w = background.shape[:2]
    hc, wc = -(-h // coarse), -(-w // coarse)
    face, bary = rasterize_triangles(uv / coarse, -points[:, 2], triangles, wc, hc)
    covered = face >= 0
    src = np.zeros((hc, wc, 2), np.float32)
    src[covered] = (bary[covered][..., None] * tex_uv[triangles[face[covered]]]).sum(1)
    # Positions are centred at i + 0.5 at both scales: resize the map with that convention.
    full = cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(covered.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.999
    out = background.copy()
    warped = cv2.remap(texture, full[..., 0] - 0.5, full[..., 1] - 0.5, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REFLECT)
    out[mask] = warped[mask]
    return out, mask.astype(np.float32)


def _front_facing(vertices: torch.Tensor, triangles: torch.Tensor) -> np.ndarray:
    """(F,) bool triangles of the posed face (world space, camera at the origin looking down -z) that face the
    camera, with a margin (grazing triangles are smeared in the warp)."""
    v = vertices.numpy()
    tri = triangles.numpy()
    a, b, c = v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]
    n = np.cross(b - a, c - a)
    n /= np.linalg.norm(n, axis=1, keepdims=True).clip(1e-12)
    to_cam = -(a + b + c) / 3
    to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True)
    return (n * to_cam).sum(1) > 0.2
