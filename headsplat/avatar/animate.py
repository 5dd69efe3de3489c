"""Animate an avatar: retarget a driver's tracked expression and head pose onto it, and render frames.

Expression is retargeted relative to the first frame of each of the driver's shots (a driver who starts smiling
does not leave the avatar smiling; a cut re-anchors). Pose is ``relative`` (the driver's rotation since the shot's
first frame applied to the avatar's reference pose, and a bounded, smoothed offset for its position),
``absolute`` (the driver's own pose, for rendering in the driver's camera) or ``none``. Paste-back into the
driver's frames is :mod:`headsplat.avatar.composite`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from headsplat.avatar.avatar import Avatar, pose_avatar
from headsplat.core.camera import Camera
from headsplat.core.chunks import chunks
from headsplat.core.rotation import axis_angle_to_matrix, euler_yxz_to_matrix, matrix_to_axis_angle
from headsplat.core.validate import check_choice
from headsplat.render.rasterize import RenderOutput, render
from headsplat.rig.base import HeadRig
from headsplat.rig.transfer import transfer_offsets

POSE_MODES = ("relative", "absolute", "none")


@dataclass(frozen=True)
class Motion:
    """Per-frame rig parameters for the avatar: expression (T, E), rotation (T, 3), translation (T, 3), and
    for open-rig avatars driven by a tracked video the free face offsets (T, 478, 3) (None: none)."""
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    offsets: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.expression.shape[0]

    def frame(self, t: int) -> dict:
        """Frame ``t``'s parameters as keyword arguments of :func:`pose_avatar` / :func:`posed_vertices`."""
        return dict(expression=self.expression[t], rotation=self.rotation[t], translation=self.translation[t],
                    offsets=None if self.offsets is None else self.offsets[t])


@dataclass(frozen=True)
class FramingConfig:
    """How a driver's head position moves the avatar in its own framing (``pose="relative"``)."""
    max_offset: float = 0.04  # metres: the soft bound of the avatar's sideways/vertical offset (tanh)
    smooth_s: float = 0.08  # seconds: centred Gaussian smoothing of that offset within each shot (no lag)


def shot_anchors(shots: np.ndarray, reference: int = 0) -> np.ndarray:
    """(T,) the frame each frame's motion is measured from: its shot's first frame (``reference`` for the
    shot that holds it)."""
    shots = np.asarray(shots)
    if np.any(np.diff(shots) < 0):
        raise ValueError("shots must be non-decreasing shot indices")
    anchors = np.searchsorted(shots, shots, side="left").astype(np.int64)
    anchors[shots == shots[reference]] = reference
    return anchors


def _smooth_within(x: np.ndarray, shots: np.ndarray, sigma: float) -> np.ndarray:
    """(T, D) series smoothed by a centred Gaussian of ``sigma`` frames, never across a change of shot."""
    if sigma <= 0:
        return x

    out = x.copy()
    for s in np.unique(shots):
        idx = np.flatnonzero(shots == s)
        out[idx] = gaussian_filter1d(x[idx], sigma, axis=0, mode="nearest")
    return out


def framed_offset(translation: torch.Tensor, anchors: np.ndarray, shots: np.ndarray, fps: float,
                  cfg: FramingConfig = FramingConfig()) -> torch.Tensor:
    """(T, 3) the avatar's offset from its reference position for a driver's (T, 3) head positions.
    The rule: the driver's head moves across the picture by ``(p_t - p_a) * d_t`` metres, where ``p`` is its
    position divided by its distance (the direction it is seen in), ``a`` the shot's anchor frame and ``d_t``
    its current distance; a zoom or dolly changes the distance, never the avatar's. That sideways/vertical
    offset is smoothed within the shot (a centred Gaussian of ``cfg.smooth_s``) and softly bounded to
    ``cfg.max_offset`` (``m * tanh(x / m)``); the depth offset is 0: the avatar keeps its size.
    """
    t = translation.double()
    dist = (-t[:, 2]).clamp_min(1e-6)
    p = t[:, :2] / dist[:, None]
    lateral = ((p - p[torch.from_numpy(anchors)]) * dist[:, None]).numpy()
    lateral = _smooth_within(lateral, np.asarray(shots), cfg.smooth_s * fps)
    m = cfg.max_offset
    lateral = m * np.tanh(lateral / m)
    return torch.cat([torch.from_numpy(lateral), torch.zeros(len(t), 1, dtype=torch.float64)], 1)


def retarget(avatar: Avatar, expression: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
             pose: str = "relative", expression_scale: float = 1.0, reference: int = 0,
             shots: np.ndarray | None = None, fps: float = 25.0, framing: FramingConfig = FramingConfig(),
             offsets: torch.Tensor | None = None, driver_identity: torch.Tensor | None = None) -> Motion:
    """Map a driver's parameters onto the avatar.
    Expression and head rotation are taken relative to each shot's first frame (re-anchored at every cut);
    in ``relative`` mode the head position follows :func:`framed_offset` (bounded, smoothed, no zoom). The
    open rig's free face offsets are taken relative to the same anchors and carried from the driver's neutral
    face onto the avatar's (:func:`~headsplat.rig.transfer.transfer_offsets`); other rigs ignore them.

    Args:
        avatar: the avatar (its reference expression and pose are the starting point).
        expression: (T, E) driver expression; each shot's anchor frame is matched to the avatar's own.
        rotation: (T, 3) driver head rotation, axis-angle.
        translation: (T, 3) driver head position, metres.
        pose: "relative", "absolute" (the driver's own pose, for rendering in the driver's camera) or "none".
        expression_scale: multiplies the driver's expression change.
        reference: the driver frame whose expression the avatar's reference expression stands for (0: the
            first; self-reenactment passes the frame the avatar was made from); the anchor of its shot.
        shots: (T,) shot index per frame (default: one shot).
        fps: the driver's frame rate (for the smoothing of the head's position).
        framing: the bound and smoothing of the head's position.
        offsets: (T, 478, 3) the driver's free face offsets (open rig), or None.
        driver_identity: the driver's identity: with ``offsets`` (an open-rig driver), its (478, 3) identity
            offsets, the neutral the offsets are measured on; None: the avatar's own (self-reenactment).
    """
    check_choice("pose", pose, POSE_MODES)
    if expression.shape[-1] != avatar.expression.shape[0]:
        raise ValueError(f"driver has {expression.shape[-1]} expression coefficients, the avatar "
                         f"{avatar.expression.shape[0]}")
    n = expression.shape[0]
    shots = np.zeros(n, np.int64) if shots is None else np.asarray(shots)
    anchors = shot_anchors(shots, reference)
    a = torch.from_numpy(anchors)
    exp = avatar.expression + expression_scale * (expression - expression[a])
    if pose == "absolute":
        rot, trans = rotation.clone(), translation.clone()
    elif pose == "none":
        rot, trans = avatar.rotation.expand(n, 3).clone(), avatar.translation.expand(n, 3).clone()
    else:
        r_d = axis_angle_to_matrix(rotation)
        delta = r_d @ r_d[a].transpose(-1, -2)
        rot = matrix_to_axis_angle(delta @ axis_angle_to_matrix(avatar.rotation))
        trans = avatar.translation + framed_offset(translation, anchors, shots, fps, framing).to(avatar.translation)
    face = None
    if offsets is not None and avatar.rig == "open":
        source = avatar.identity if driver_identity is None else driver_identity
        # a chunk of frames at a time: the float64 working copies of a long driver's offsets stay small
        face = torch.cat([transfer_offsets((expression_scale * (offsets[f] - offsets[a[f]])).double(),
                                           source.double(), avatar.identity.double()).float()
                          for f in chunks(n)]) if n else offsets.float()
    return Motion(exp.float(), rot.float(), trans.float(), face)


def render_avatar_frame(avatar: Avatar, rig: HeadRig, motion: Motion, t: int, camera: Camera,
                        background: torch.Tensor | float | None = None, backend: str = "auto",
                        width: int | None = None, height: int | None = None) -> RenderOutput:
    """Render frame ``t`` of ``motion`` through ``camera`` (premultiplied over ``background``, black when None)."""
    with torch.no_grad():
        gs = pose_avatar(avatar, rig, **motion.frame(t))
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
    turn = euler_yxz_to_matrix(yaw, pitch, torch.zeros_like(yaw))
    return offset_motion(avatar, torch.zeros(yaw.shape[0], avatar.expression.shape[0]), turn)


def straight_rgb8(rgb: torch.Tensor, alpha: torch.Tensor) -> np.ndarray:
    """(H, W, 3) uint8 straight (un-premultiplied) colour of a render over black with alpha (H, W, 1)."""
    a = alpha.cpu().numpy()
    straight = np.where(a > 1e-6, rgb.cpu().numpy() / np.maximum(a, 1e-6), 0)
    return (np.clip(straight, 0, 1) * 255 + 0.5).astype(np.uint8)


def driver_motion(avatar: Avatar, tracking, pose: str = "relative", expression_scale: float = 1.0) -> Motion:
    """:func:`retarget` of a driver's whole :class:`~headsplat.track.tracking.Tracking` (its shots, its fps)."""
    p = tracking.params(with_offsets=True)
    return retarget(avatar, p["expression"], p["rotation"], p["translation"], pose=pose,
                    expression_scale=expression_scale, shots=tracking.shots, fps=tracking.fps,
                    offsets=p.get("offsets"), driver_identity=p["identity"])
