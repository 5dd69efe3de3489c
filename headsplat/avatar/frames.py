"""Reference frames for fitting an avatar: which frames of a video are used, and each one cropped, matted and
with its rig parameters (a real frame from a tracked source, or a view from a generator's view set).

Frames are chosen to cover the clip's range of head poses and expressions: farthest-point sampling in a space
where 6 degrees of head rotation and 0.2 of an expression coefficient are one unit, starting from the first
frame with a face, until every frame lies within one unit of a chosen one (or ``max_frames`` are chosen).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from headsplat.core.camera import Camera, project_points
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.face.align import CropTransform, warp_to_crop
from headsplat.rig.base import HeadRig
from headsplat.track.tracking import Tracking, crop_camera

ROTATION_UNIT = np.radians(6.0)  # radians of head rotation that count as one unit of difference
EXPRESSION_UNIT = 0.2  # expression coefficient change that counts as one unit


@dataclass(frozen=True)
class FitFrame:
    """One reference frame prepared for fitting.

    Attributes:
        image: (S, S, 3) float32 crop. matte: (S, S) foreground. mask: (S, S) head region where losses apply.
        camera: the crop's camera. vertices: (V, 3) posed rig vertices.
        identity, scale: the rig identity the frame's parameters belong to (the view set's for generated views).
        expression, rotation, translation: the frame's rig parameters. index: frame index in its source.
        weight: how much the frame counts (real 1; generated views less). kind: "real" or "generated".
    """

    image: torch.Tensor
    matte: torch.Tensor
    mask: torch.Tensor
    camera: Camera
    vertices: torch.Tensor
    identity: torch.Tensor
    scale: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    index: int
    weight: float = 1.0
    kind: str = "real"

    def to(self, device) -> "FitFrame":
        from dataclasses import replace

        return replace(self, image=self.image.to(device), matte=self.matte.to(device), mask=self.mask.to(device),
                       camera=self.camera.to(device), vertices=self.vertices.to(device),
                       identity=self.identity.to(device), scale=self.scale.to(device),
                       expression=self.expression.to(device), rotation=self.rotation.to(device),
                       translation=self.translation.to(device))


def _hull_mask(pts: np.ndarray, camera: Camera, grow: float) -> np.ndarray:
    mask = np.zeros((camera.height, camera.width), np.uint8)
    if len(pts) >= 3:
        hull = cv2.convexHull((pts - 0.5).astype(np.float32))
        cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
    r = max(1, int(grow * camera.width))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))


def head_region(vertices: torch.Tensor, camera: Camera, grow: float = 0.06, neck: torch.Tensor | None = None,
                neck_grow: float = 0.02) -> np.ndarray:
    """(S, S) float32 mask: the convex hull of the projected head, grown by ``grow`` × the image size; with
    ``neck`` (V,) bool (the vertices below the chin, :func:`below_chin`), the head's hull is that of the other
    vertices and the neck adds only its own hull grown by ``neck_grow``: the shoulders and collar beside the neck,
    which the hull of head and neck together takes in, are not the head's to paint."""
    uv, z = project_points(vertices.double(), camera.viewmat.double(), camera.K.double())
    front = (z > 0).numpy()
    pts = uv.numpy()
    if neck is None or not bool(neck.any()) or bool(neck.all()):
        return _hull_mask(pts[front], camera, grow).astype(np.float32)
    below = neck.numpy()
    mask = _hull_mask(pts[front & ~below], camera, grow) | _hull_mask(pts[front & below], camera, neck_grow)
    return mask.astype(np.float32)


def below_chin(vertices: torch.Tensor, landmarks: torch.Tensor, rotation: torch.Tensor, margin: float = 0.01
               ) -> torch.Tensor:
    """(V,) bool: the posed vertices more than ``margin`` metres below the chin along the head's own up axis
    (the neck), the chin being the lowest of the posed ``landmarks`` (L, 3) (the rig's fitted points)."""
    up = axis_angle_to_matrix(rotation.double())[:, 1]
    return vertices.double() @ up < (landmarks.double() @ up).min() - margin


def prepare_frame(img: np.ndarray, t: int, tracking: Tracking, rig: HeadRig, size: int, matter=None,
                  matte: np.ndarray | None = None, weight: float = 1.0, kind: str = "real",
                  cropped: bool = False) -> FitFrame:
    """Crop frame ``t`` (an (H, W, 3) uint8 image; ``cropped``: already its recorded crop, ``crop_size``
    square), matte it (``matter``, or the given ``matte`` of the image's size) and pose the rig with its
    tracked parameters."""
    cam, crop = crop_camera(tracking, t, size)
    if cropped:
        k = size / tracking.crop_size
        crop = CropTransform(np.array([[k, 0.0, 0.0], [0.0, k, 0.0]]), size)
    crop_rgb = warp_to_crop(img, crop)
    if matte is not None:
        crop_matte = warp_to_crop((matte * 255 + 0.5).astype(np.uint8)[..., None].repeat(3, 2), crop)[..., 0]
        crop_matte = crop_matte.astype(np.float32) / 255
    else:
        crop_matte = matter(crop_rgb)
    p = tracking.params([t])
    identity, scale = p["identity"], p["scale"]
    pose = (identity, scale, p["expression"][0], p["rotation"][0], p["translation"][0])
    with torch.no_grad():
        verts = rig(*pose).vertices
        neck = below_chin(verts, rig.landmarks(*pose)[rig.fit_points], p["rotation"][0])
    return FitFrame(image=torch.from_numpy(crop_rgb).float() / 255, matte=torch.from_numpy(crop_matte),
                    mask=torch.from_numpy(head_region(verts, cam, neck=neck)), camera=cam, vertices=verts,
                    identity=identity, scale=scale, expression=p["expression"][0], rotation=p["rotation"][0],
                    translation=p["translation"][0], index=t, weight=weight, kind=kind)


def frame_features(tracking: Tracking) -> np.ndarray:
    """(T, 3 + E) each frame's head rotation and expression in units of :data:`ROTATION_UNIT` and
    :data:`EXPRESSION_UNIT`."""
    return np.concatenate([tracking.rotation / ROTATION_UNIT, tracking.expression / EXPRESSION_UNIT], 1)


def select_frames(tracking: Tracking, max_frames: int, cover: float = 1.0, within: range | None = None
                  ) -> list[int]:
    """Frames that cover the sequence's head poses and expressions (module docstring): the first frame with a
    face, then the rest in time order.

    Args:
        max_frames: the most frames chosen.
        cover: stop once every frame lies within this distance (in units) of a chosen one.
        within: choose only among these frames (default: all).
    """
    found = np.flatnonzero(tracking.found)
    if within is not None:
        found = found[(found >= within.start) & (found < within.stop)]
    if len(found) == 0 or max_frames < 1:
        return []
    x = frame_features(tracking)[found]
    chosen = [0]
    dist = np.linalg.norm(x - x[0], axis=1)
    while len(chosen) < min(max_frames, len(found)):
        k = int(np.argmax(dist))
        if dist[k] <= cover:
            break
        chosen.append(k)
        dist = np.minimum(dist, np.linalg.norm(x - x[k], axis=1))
    return [int(found[0])] + sorted(int(found[k]) for k in chosen[1:])
