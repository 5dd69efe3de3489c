"""Animate an avatar: retarget a driver's tracked expression and head pose onto it, and render frames.

Expression is retargeted relative to the driver's first frame (a driver who starts smiling does not leave the
avatar smiling). Pose is ``relative`` (the driver's motion since its first frame, applied to the avatar's
reference pose), ``absolute`` (the driver's own pose, for paste-back into the driver's frames) or ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from headsplat.avatar.avatar import Avatar, pose_avatar
from headsplat.avatar.create import crop_camera
from headsplat.core.camera import Camera
from headsplat.core.rotation import axis_angle_to_matrix, matrix_to_axis_angle
from headsplat.face.align import paste_back
from headsplat.render.rasterize import RenderOutput, render

POSE_MODES = ("relative", "absolute", "none")


@dataclass(frozen=True)
class Motion:
    """Per-frame rig parameters for the avatar: expression (T, E), rotation (T, 3), translation (T, 3)."""

    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor

    def __len__(self) -> int:
        return self.expression.shape[0]


def retarget(avatar: Avatar, expression: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
             pose: str = "relative", expression_scale: float = 1.0, reference: int = 0) -> Motion:
    """Map a driver's parameters onto the avatar.

    Args:
        avatar: the avatar (its reference expression and pose are the starting point).
        expression: (T, E) driver expression; frame ``reference`` is matched to the avatar's own expression.
        rotation: (T, 3) driver head rotation, axis-angle.
        translation: (T, 3) driver head position, metres.
        pose: "relative", "absolute" or "none".
        expression_scale: multiplies the driver's expression change.
        reference: the driver frame whose expression the avatar's reference expression stands for (0: the
            first; self-reenactment passes the frame the avatar was made from).
    """
    if pose not in POSE_MODES:
        raise ValueError(f"pose must be one of {', '.join(POSE_MODES)}, got {pose!r}")
    if expression.shape[-1] != avatar.expression.shape[0]:
        raise ValueError(f"driver has {expression.shape[-1]} expression coefficients, the avatar "
                         f"{avatar.expression.shape[0]}")
    n = expression.shape[0]
    exp = avatar.expression + expression_scale * (expression - expression[reference:reference + 1])
    if pose == "absolute":
        rot, trans = rotation.clone(), translation.clone()
    elif pose == "none":
        rot, trans = avatar.rotation.expand(n, 3).clone(), avatar.translation.expand(n, 3).clone()
    else:
        r_d = axis_angle_to_matrix(rotation)
        delta = r_d @ r_d[:1].transpose(-1, -2)
        rot = matrix_to_axis_angle(delta @ axis_angle_to_matrix(avatar.rotation))
        # The driver's head motion, scaled from its distance to the avatar's.
        ratio = avatar.translation[2] / translation[0, 2]
        trans = avatar.translation + (translation - translation[:1]) * ratio
    return Motion(exp.float(), rot.float(), trans.float())


def render_avatar_frame(avatar: Avatar, rig, motion: Motion, t: int, camera: Camera,
                        background: torch.Tensor | float | None = None, backend: str = "auto",
                        width: int | None = None, height: int | None = None) -> RenderOutput:
    """Render frame ``t`` of ``motion`` through ``camera`` (premultiplied over ``background``, black when None)."""
    with torch.no_grad():
        gs = pose_avatar(avatar, rig, motion.expression[t], motion.rotation[t], motion.translation[t])
        return render(gs, camera, width, height, background=background, backend=backend)


def orbit_motion(avatar: Avatar, n_frames: int, yaw_range: float = 360.0, pitch: float = 0.0) -> Motion:
    """A turntable: the avatar's reference frame with the head turned about its own vertical axis.

    Yaw runs over ``yaw_range`` degrees (360: a full turn; smaller: a swing back and forth)."""
    if yaw_range >= 360:
        yaw = torch.linspace(0, 2 * np.pi, n_frames + 1)[:-1]
    else:
        yaw = np.radians(yaw_range / 2) * torch.sin(torch.linspace(0, 2 * np.pi, n_frames + 1)[:-1])
    return turned_motion(avatar, yaw, torch.full_like(yaw, np.radians(pitch)))


def offset_motion(avatar: Avatar, expression: torch.Tensor, turn: torch.Tensor) -> Motion:
    """The reference frame plus expression offsets (T, E) and head turns (T, 3, 3) rotation matrices, the
    latter applied in the head's own frame; the head stays where it was."""
    rot = matrix_to_axis_angle(axis_angle_to_matrix(avatar.rotation) @ turn)
    n = turn.shape[0]
    return Motion(avatar.expression + expression, rot, avatar.translation.expand(n, 3).clone())


def turned_motion(avatar: Avatar, yaw: torch.Tensor, pitch: torch.Tensor) -> Motion:
    """The reference frame with extra head yaw/pitch (radians, (T,)) applied in the head's own frame."""
    from headsplat.core.rotation import euler_yxz_to_matrix

    turn = euler_yxz_to_matrix(yaw, pitch, torch.zeros_like(yaw))
    return offset_motion(avatar, torch.zeros(yaw.shape[0], avatar.expression.shape[0]), turn)


def straight_rgb8(rgb: torch.Tensor, alpha: torch.Tensor) -> np.ndarray:
    """(H, W, 3) uint8 straight (un-premultiplied) colour of a render over black with alpha (H, W, 1)."""
    a = alpha.cpu().numpy()
    straight = np.where(a > 1e-6, rgb.cpu().numpy() / np.maximum(a, 1e-6), 0)
    return (np.clip(straight, 0, 1) * 255 + 0.5).astype(np.uint8)


def paste_back_frame(avatar: Avatar, rig, motion: Motion, tracking, t: int, frame: np.ndarray,
                     crop_size: int = 512) -> np.ndarray:
    """Frame ``t`` of ``motion`` rendered in the driver frame's own tracked crop and composited over the
    (H, W, 3) uint8 driver ``frame`` -> (H, W, 3) uint8 (``motion`` should carry the driver's absolute pose)."""
    cam, crop = crop_camera(tracking, t, crop_size)
    r = render_avatar_frame(avatar, rig, motion, t, cam, background=0.0)
    a = r.alpha[..., 0].cpu().numpy()
    # Soften the edge: pull the mask in a little so the driver's own hairline and neck frame the head.
    soft = cv2.GaussianBlur(cv2.erode(a, np.ones((5, 5), np.uint8)), (0, 0), 2.0)
    return paste_back(frame, straight_rgb8(r.rgb, r.alpha), soft, crop, feather=0.0)
