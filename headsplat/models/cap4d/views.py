"""The frames CAP4D's MMDM sees: FLAME parameters and cameras in its tracker's conventions, the generated views'
cameras, headsplat's tracking converted to and from them, and each frame's conditioning maps and reference crop.

Conventions (CAP4D's, read from its code): the world is headsplat's (x right, y up, the camera looks down −z; a
head with rotation 0 faces it), seen through OpenCV's axes by ``diag(1, −1, −1)`` and then a world-to-camera
``extr``; the head is FLAME posed by :class:`~headsplat.models.cap4d.flame.CAP4DFlame` and moved rigidly by
``rotation`` (axis-angle) and ``translation``, without a scale. headsplat's head is ``identity_scale`` times
larger, so its tracking maps exactly with ``translation / identity_scale`` (projection and CAP4D's
mean-normalised depth do not change when the whole scene is scaled about the camera).

Generated cameras (CAP4D's generation data): the first reference's camera pivots about the first reference's
head position by a yaw and a pitch drawn uniformly inside an ellipse of ±``yaw_range``, ±``pitch_range`` degrees
(rejection sampling on NumPy's Mersenne Twister, as the reference with its seed), centred on the head's facing
direction. Quirks kept: that direction is minus the third *row* of the head's rotation matrix with its y and z
negated, and the centre pitch is subtracted, not added.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from headsplat.core.camera import world_to_opencv
from headsplat.core.rotation import axis_angle_to_matrix, matrix_to_axis_angle
from headsplat.models.cap4d.assets import Cap4dAssets
from headsplat.models.cap4d.conditioning import (
    conditioning_maps,
    crop_mask,
    head_crop_box,
    pose_and_offsets,
    project,
    ray_map,
    to_ndc,
)
from headsplat.models.cap4d.flame import CAP4DFlame

if TYPE_CHECKING:
    from headsplat.rig.flame.head import FlameHead

OPENCV = world_to_opencv()[:3, :3].double().numpy()  # (3, 3) world -> OpenCV axes (CAP4D's OPENCV2PYTORCH3D)
N_SHAPE, N_EXPR = 150, 65  # CAP4D's FLAME coefficients
YAW_RANGE, PITCH_RANGE = 55.0, 20.0


@dataclass
class Cap4dFrames:
    """T frames in CAP4D's parameters.

    Attributes:
        shape: (150,) FLAME shape. expression: (T, 65) (the last slot: blink). eye_rotation: (T, 3) both eyes.
        rotation: (T, 3) axis-angle and translation: (T, 3) the head, CAP4D units.
        K: (3, 3) float64 intrinsics of the (width, height) frame ``frame_size``. extr: (T, 4, 4) float64.
    """

    shape: torch.Tensor
    expression: torch.Tensor
    eye_rotation: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    K: np.ndarray
    extr: np.ndarray
    frame_size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.expression.shape[0])


# -- generation cameras -----------------------------------------------------------------------------------------------
def _ry(deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([[math.cos(t), 0.0, math.sin(t)], [0.0, 1.0, 0.0], [-math.sin(t), 0.0, math.cos(t)]])


def _rx(deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([[1.0, 0.0, 0.0], [0.0, math.cos(t), -math.sin(t)], [0.0, math.sin(t), math.cos(t)]])


def facing_direction(rotation: np.ndarray) -> np.ndarray:
    """(3,) the direction CAP4D centres its generated cameras on, from a head rotation (3,) axis-angle: minus the
    third row of the rotation matrix, y and z negated (the reference's indexing, kept)."""
    m = axis_angle_to_matrix(torch.as_tensor(rotation, dtype=torch.float64)).numpy()
    d = -m[2, :].copy()
    d[1:] = -d[1:]
    return d


def centre_yaw_pitch(extr: np.ndarray, direction: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) degrees that turn the camera of ``extr`` (4, 4) towards ``direction`` (3,)."""
    d = direction / np.linalg.norm(direction)
    dx, dy, dz = extr[:3, :3].T @ d
    return math.degrees(math.atan2(dx, dz)), math.degrees(math.asin(float(np.clip(-dy, -1.0, 1.0))))


def pivot_camera(extr: np.ndarray, target: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """(4, 4) world-to-camera ``extr`` turned about ``target`` (3,) by yaw then pitch (degrees, intrinsic Y then
    X of the camera's own axes), at the same distance."""
    c2w = np.linalg.inv(extr)
    Rc, tc = c2w[:3, :3], c2w[:3, 3]
    Rd = _ry(yaw) @ _rx(pitch)
    out = np.eye(4)
    out[:3, :3] = Rc @ Rd
    out[:3, 3] = target + Rc @ Rd @ np.linalg.inv(Rc) @ (tc - target)
    return np.linalg.inv(out)


def ellipse_angles(n: int, yaw_range: float, pitch_range: float, rng: np.random.RandomState) -> np.ndarray:
    """(n, 2) yaw, pitch drawn uniformly inside the ellipse (rejection sampling, the reference's draw order)."""
    out = np.zeros((n, 2))
    if yaw_range == 0.0 or pitch_range == 0.0:
        return out
    for i in range(n):
        dist = 1.0
        while dist >= 1.0:
            yaw = rng.uniform(-yaw_range, yaw_range)
            pitch = rng.uniform(-pitch_range, pitch_range)
            dist = math.sqrt((yaw / yaw_range) ** 2 + (pitch / pitch_range) ** 2)
        out[i] = yaw, pitch
    return out


def generation_cameras(extr: np.ndarray, rotation: np.ndarray, translation: np.ndarray, n: int,
                       yaw_range: float = YAW_RANGE, pitch_range: float = PITCH_RANGE, seed: int = 124
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(n, 4, 4) the generated views' world-to-camera matrices and their (n, 2) sampled yaw, pitch (before
    centring), from the first reference's ``extr`` (4, 4), head ``rotation`` and ``translation`` (3,)."""
    centre_yaw, centre_pitch = centre_yaw_pitch(extr, facing_direction(rotation))
    target = np.asarray(translation, np.float64).copy()
    target[1:] = -target[1:]
    angles = ellipse_angles(n, yaw_range, pitch_range, np.random.RandomState(seed))
    cams = np.stack([pivot_camera(extr, target, y + centre_yaw, p - centre_pitch) for y, p in angles])
    return cams, angles


# -- headsplat tracking <-> CAP4D parameters ---------------------------------------------------------------------------
def _affine_basis(flame: CAP4DFlame, eye_rotation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CAP4D's FLAME vertices (before the head's pose) are affine in (shape, expression) once the eyes are
    fixed: (offset (V·3,), shape columns (V·3, S), expression columns (V·3, E)), float64."""
    nv = flame.template.shape[0]
    f = flame  # a float64 copy (see fit_cap4d_parameters)
    S, E = f.shapedirs.shape[-1], f.exprdirs.shape[-1]
    z3 = torch.zeros(1, 3, dtype=torch.float64)
    eye = eye_rotation.double().reshape(1, 3)

    def canon(shape, expr):
        t = expr.shape[0]
        v, _ = f(shape, expr, z3.expand(t, 3), z3.expand(t, 3), eye.expand(t, 3))
        return v[:, :nv].reshape(t, -1)

    zero_s = torch.zeros(S, dtype=torch.float64)
    base = canon(zero_s, torch.zeros(1, E, dtype=torch.float64))[0]
    expr_cols = (canon(zero_s, torch.eye(E, dtype=torch.float64)) - base).T
    shape_cols = torch.stack([canon(torch.eye(S, dtype=torch.float64)[i], torch.zeros(1, E, dtype=torch.float64))[0]
                              for i in range(S)], 1) - base[:, None]
    return base, shape_cols, expr_cols


def fit_cap4d_parameters(flame: CAP4DFlame, targets: torch.Tensor, eye_rotation: torch.Tensor,
                         ridge: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CAP4D's shape (shared) and expressions that reproduce given head-space FLAME vertices: one linear least
    squares over all frames (the model is affine in them with the eyes fixed), a small ridge on the coefficients.

    Args:
        flame: CAP4D's FLAME (on the user's file). targets: (N, V, 3) vertices before the head's rotation and
            translation (metres, no scale). eye_rotation: (N, 3) each frame's eye rotation (kept as it is).

    Returns:
        shape (S,), expression (N, E), per-frame RMS vertex error (N,) in metres.
    """
    n, nv = targets.shape[0], flame.template.shape[0]
    if targets.shape[1] != nv:
        raise ValueError(f"targets have {targets.shape[1]} vertices, CAP4D's FLAME {nv}")
    S, E = flame.shapedirs.shape[-1], flame.exprdirs.shape[-1]
    flame = copy.deepcopy(flame).double()
    size = S + n * E
    A = torch.zeros(size, size, dtype=torch.float64)
    b = torch.zeros(size, dtype=torch.float64)
    bases = []
    for i in range(n):
        base, Js, Je = _affine_basis(flame, eye_rotation[i])
        bases.append((base, Js, Je))
        r = targets[i].double().reshape(-1) - base
        e = slice(S + i * E, S + (i + 1) * E)
        A[:S, :S] += Js.T @ Js
        A[:S, e] += Js.T @ Je
        A[e, :S] += Je.T @ Js
        A[e, e] += Je.T @ Je
        b[:S] += Js.T @ r
        b[e] += Je.T @ r
    A += ridge * torch.eye(size, dtype=torch.float64) * A.diagonal().mean()
    x = torch.linalg.solve(A, b)
    shape, expr = x[:S], x[S:].reshape(n, E)
    err = torch.stack([((base + Js @ shape + Je @ expr[i]) - targets[i].double().reshape(-1)).reshape(-1, 3)
                       .norm(dim=-1).pow(2).mean().sqrt() for i, (base, Js, Je) in enumerate(bases)])
    return shape.float(), expr.float(), err.float()


def fit_headsplat_expressions(head: FlameHead, identity: torch.Tensor, targets: torch.Tensor, init: torch.Tensor,
                              iterations: int = 60, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """headsplat FLAME expressions (its coefficients, jaw and eyes) whose head-space vertices match ``targets``
    (N, V, 3) for the shape ``identity``: L-BFGS from ``init`` (E,), ``chunk`` frames at a time.

    Returns:
        expressions (N, E) and per-frame RMS vertex error (N,) in metres.
    """
    out, errs = [], []
    for s in range(0, targets.shape[0], chunk):
        tgt = targets[s:s + chunk].float()
        x = init.float().expand(tgt.shape[0], -1).clone().requires_grad_(True)
        opt = torch.optim.LBFGS([x], max_iter=iterations, history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-12, tolerance_change=1e-14)

        def closure():
            opt.zero_grad()
            v = head.flame_vertices(identity.expand(x.shape[0], -1), x)
            loss = (v - tgt).pow(2).sum(-1).mean() * 1e4 + 1e-6 * x.pow(2).sum(-1).mean()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            v = head.flame_vertices(identity.expand(x.shape[0], -1), x)
            errs.append((v - tgt).norm(dim=-1).pow(2).mean(-1).sqrt())
        out.append(x.detach())
    return torch.cat(out), torch.cat(errs)


def camera_as_head_motion(extr: np.ndarray, rotation: np.ndarray, translation_hs: np.ndarray, scale: float
                          ) -> tuple[np.ndarray, np.ndarray]:
    """headsplat's head rotation and translation (3,) (camera fixed at the origin) that look through the
    unmoved camera as the head (``rotation``, headsplat ``translation_hs``) looks through ``extr``."""
    W = OPENCV @ extr[:3, :3] @ OPENCV
    w = OPENCV @ extr[:3, 3]
    R = torch.from_numpy(W) @ axis_angle_to_matrix(torch.as_tensor(rotation, dtype=torch.float64))
    return matrix_to_axis_angle(R).numpy(), W @ translation_hs + scale * w


# -- one frame's inputs to the MMDM ------------------------------------------------------------------------------------
def pose_frames(flame: CAP4DFlame, frames: Cap4dFrames) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, V + 200, 3) posed vertices in the world and their offsets from the shape-only head."""
    return flame(frames.shape, frames.expression, frames.rotation, frames.translation, frames.eye_rotation)


def frame_conditioning(verts: torch.Tensor, offsets: torch.Tensor, K: np.ndarray, extr: np.ndarray,
                       frame_size: tuple[int, int], reference: bool, reference_extr: np.ndarray,
                       assets: Cap4dAssets, size: int = 64, face_mask: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, np.ndarray]:
    """One frame's (size, size, 50) conditioning maps and its (4,) crop box in frame pixels.

    Args:
        verts, offsets: (V + 200, 3) the posed mesh (world) and its expression offsets.
        K: (3, 3) intrinsics of the frame, (width, height) ``frame_size``. extr: (4, 4) world-to-camera after the
            world's OpenCV flip. reference: a reference frame (its crop mask is where the crop lies inside the
            frame; generated frames' is all ones, as the reference code).
        reference_extr: (4, 4) the first reference's extr (the ray maps are expressed in its frame).
    """
    dev = verts.device
    world_cv = verts.double() @ torch.as_tensor(OPENCV, device=dev).T
    pix = project(world_cv, torch.as_tensor(K, device=dev), torch.as_tensor(extr, device=dev))
    box = head_crop_box(pix.cpu().numpy(), assets.head_vertices)
    ndc = to_ndc(pix, box).float()
    mask = assets.face_mask().to(dev) if face_mask is None else face_mask
    pose = pose_and_offsets(ndc, assets.faces.to(dev), mask, assets.template.to(dev), offsets.float(), size)
    rays = torch.from_numpy(ray_map(box, K, extr[:3, :3], size, reference_extr[:3, :3])).to(dev)
    if reference:
        crop = torch.from_numpy(crop_mask(frame_size, box, size)).to(dev)
    else:
        crop = torch.ones(size, size, device=dev)
    return conditioning_maps(pose, rays, reference, crop.float()), box


def reference_crop(img: np.ndarray, matte: np.ndarray | None, box: np.ndarray, size: int = 512) -> np.ndarray:
    """(size, size, 3) float32 in [−1, 1]: the frame on white (through its matte (H, W) in [0, 1]), cropped to
    ``box`` (white where the box leaves the frame) and resized as CAP4D's reference loader does."""
    x = img.astype(np.float64)
    if matte is not None:
        a = np.clip(matte, 0.0, 1.0)[..., None].astype(np.float64)
        x = 255.0 * (1.0 - a) + x * a
    h, w = x.shape[:2]
    x0, y0, x1, y1 = (int(c) for c in box)
    out = np.full((y1 - y0, x1 - x0, 3), 255.0)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = x[sy0:sy1, sx0:sx1]
    interp = cv2.INTER_AREA if size < out.shape[0] else cv2.INTER_LINEAR
    out = cv2.resize(out, (size, size), interpolation=interp)
    return (out / 127.5 - 1.0).astype(np.float32)
