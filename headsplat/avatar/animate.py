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

from headsplat.avatar.avatar import Avatar, avatar_triangles, pose_avatar, posed_vertices
from headsplat.avatar.composite import PasteConfig, clean_plate, composite_head, head_box, head_zone, neck_fade
from headsplat.core.camera import Camera, project_points
from headsplat.core.rotation import axis_angle_to_matrix, matrix_to_axis_angle
from headsplat.face.indices import CHIN
from headsplat.render.rasterize import RenderOutput, render
from headsplat.splat.binding import pose_gaussians

POSE_MODES = ("relative", "absolute", "none")


@dataclass(frozen=True)
class Motion:
    """Per-frame rig parameters for the avatar: expression (T, E), rotation (T, 3), translation (T, 3)."""

    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor

    def __len__(self) -> int:
        return self.expression.shape[0]


@dataclass(frozen=True)
class FramingConfig:
    """How a driver's head position moves the avatar in its own framing (``pose="relative"``)."""

    max_offset: float = 0.04  # metres: the soft bound of the avatar's sideways/vertical offset (tanh)
    smooth_s: float = 0.08  # seconds: centred Gaussian smoothing of that offset within each shot (no lag)


def shot_anchors(shots: np.ndarray, reference: int = 0) -> np.ndarray:
    """(T,) the frame each frame's motion is measured from: its shot's first frame (``reference`` for the
    shot that holds it)."""
    shots = np.asarray(shots)
    first = np.searchsorted(shots, shots, side="left") if np.all(np.diff(shots) >= 0) else None
    if first is None:
        raise ValueError("shots must be non-decreasing shot indices")
    anchors = first.astype(np.int64)
    anchors[shots == shots[reference]] = reference
    return anchors


def _smooth_within(x: np.ndarray, shots: np.ndarray, sigma: float) -> np.ndarray:
    """(T, D) series smoothed by a centred Gaussian of ``sigma`` frames, never across a change of shot."""
    if sigma <= 0:
        return x
    from scipy.ndimage import gaussian_filter1d

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
             shots: np.ndarray | None = None, fps: float = 25.0, framing: FramingConfig = FramingConfig()) -> Motion:
    """Map a driver's parameters onto the avatar.

    Expression and head rotation are taken relative to each shot's first frame (re-anchored at every cut);
    in ``relative`` mode the head position follows :func:`framed_offset` (bounded, smoothed, no zoom).

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
    """
    if pose not in POSE_MODES:
        raise ValueError(f"pose must be one of {', '.join(POSE_MODES)}, got {pose!r}")
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


def driver_motion(avatar: Avatar, tracking, pose: str = "relative", expression_scale: float = 1.0) -> Motion:
    """:func:`retarget` of a driver's whole :class:`~headsplat.track.tracking.Tracking` (its shots, its fps)."""
    p = tracking.params()
    return retarget(avatar, p["expression"], p["rotation"], p["translation"], pose=pose,
                    expression_scale=expression_scale, shots=tracking.shots, fps=tracking.fps)


def _head_keypoints(avatar: Avatar, rig) -> tuple[torch.Tensor, int]:
    """Vertex indices of the neck's base (the lowest vertices of the head at rest) and of the chin."""
    n = len(avatar.expression)
    with torch.no_grad():
        rest = posed_vertices(avatar, rig, torch.zeros(n), torch.zeros(3), torch.zeros(3))
        lm = rig.landmarks(avatar.identity, torch.tensor(avatar.identity_scale), torch.zeros(n),
                           torch.zeros(3), torch.zeros(3))
    y = rest[:, 1]
    neck = torch.nonzero(y < y.min() + 0.04 * (y.max() - y.min())).ravel()
    return neck, int((rest - lm[CHIN]).norm(dim=-1).argmin())


def chin_and_neck(vertices: torch.Tensor, keypoints: tuple[torch.Tensor, int], camera: Camera
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(2,) pixel positions of the chin and of the neck's base for posed ``vertices`` (V, 3)."""
    neck, chin = keypoints
    key, _ = project_points(vertices[torch.cat([neck, torch.tensor([chin])])].double(), camera.viewmat.double(),
                            camera.K.double())
    return key[-1].numpy(), key[:-1].mean(0).numpy()


def fade_for(vertices: torch.Tensor, keypoints: tuple[torch.Tensor, int], camera: Camera,
             offset: tuple[int, int], shape: tuple[int, int], span: tuple[float, float]) -> np.ndarray:
    """:func:`~headsplat.avatar.composite.neck_fade` of posed ``vertices`` (V, 3) seen through ``camera``, for
    an image of ``shape`` (H, W) whose pixel (0, 0) is the camera's pixel ``offset`` (x, y)."""
    chin, neck = chin_and_neck(vertices, keypoints, camera)
    o = np.asarray(offset, np.float64)
    return neck_fade(shape, chin - o, neck - o, span)


def background_plate(avatar: Avatar, rig, span: tuple[float, float] = PasteConfig().neck_fade) -> np.ndarray:
    """The avatar's source image with its person's head, hair and neck inpainted away (the ``source``
    background of ``animate``): (H, W, 3) uint8 at the avatar's framing."""
    from headsplat.face.segment import Matter

    cam = avatar.camera
    img = cv2.resize(avatar.source, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
    with torch.no_grad():
        verts = posed_vertices(avatar, rig, avatar.expression, avatar.rotation, avatar.translation)
        alpha = render(pose_gaussians(avatar.gaussians, verts, avatar_triangles(rig)), cam).alpha[..., 0].numpy()
    fade = fade_for(verts, _head_keypoints(avatar, rig), cam, (0, 0), alpha.shape, span)
    with Matter() as matter:
        person = matter(img)
    return clean_plate(img, alpha, person, fade)


class PasteBack:
    """Paste-back of an avatar into a driver's frames (``animate --paste-back``, ``eval reenact``): each frame
    rendered in its own full-resolution camera, in a box holding the whole head, and composited with
    :func:`~headsplat.avatar.composite.composite_head`. Use as a context manager (it holds the segmenter).

    Args:
        avatar, rig: the avatar and its rig.
        tracking: the driver's tracking (its camera is the frames' camera).
        cfg: paste-back settings.
    """

    def __init__(self, avatar: Avatar, rig, tracking, cfg: PasteConfig = PasteConfig()):
        from headsplat.face.segment import Matter

        self.avatar, self.rig, self.cfg = avatar, rig, cfg
        self.camera = tracking.camera()
        self.tracking = tracking
        self._keypoints = _head_keypoints(avatar, rig)
        self._matter = Matter() if (cfg.colour_match or cfg.inpaint_uncovered) else None

    def __call__(self, motion: Motion, t: int, frame: np.ndarray) -> np.ndarray:
        """Frame ``t`` of ``motion`` (the driver's absolute pose) over the (H, W, 3) uint8 driver ``frame``."""
        with torch.no_grad():
            verts = posed_vertices(self.avatar, self.rig, motion.expression[t], motion.rotation[t],
                                   motion.translation[t])
            gs = pose_gaussians(self.avatar.gaussians, verts, avatar_triangles(self.rig))
        box = head_box(gs, self.camera, self.cfg.margin, self.cfg.max_render_side)
        if box is None:
            return frame.copy()
        with torch.no_grad():
            r = render(gs, box.camera, background=0.0)
        w, h = box.size
        rgb = straight_rgb8(r.rgb, r.alpha).astype(np.float32) / 255
        alpha = r.alpha[..., 0].cpu().numpy()
        if (r.alpha.shape[1], r.alpha.shape[0]) != (w, h):
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
            alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        fade = fade_for(verts, self._keypoints, self.camera, (box.x0, box.y0), (h, w), self.cfg.neck_fade)
        crop = frame[box.y0:box.y1, box.x0:box.x1]
        matte = self._matter(np.ascontiguousarray(crop)) if self._matter is not None else None
        out = frame.copy()
        head_px = 2.5 * float(np.linalg.norm(np.subtract(*chin_and_neck(verts, self._keypoints, self.camera))))
        zone = None
        if t < len(self.tracking) and self.tracking.found[t]:
            zone = head_zone(self.tracking.landmarks[t] - np.array([box.x0, box.y0, 0.0]), (h, w))
        out[box.y0:box.y1, box.x0:box.x1] = composite_head(crop, rgb, alpha, fade, matte, head_px, self.cfg, zone)
        return out

    def close(self) -> None:
        if self._matter is not None:
            self._matter.close()

    def __enter__(self) -> "PasteBack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
