"""Paste-back at any resolution: the avatar rendered in the driver frame's own camera, inside a box that grows
to hold the whole projected head, composited over the frame with a soft matte.

The matte is the avatar's alpha, faded out down the neck so the driver's own collar and shoulders stay; the
avatar's neck is colour-matched to the driver's where the two meet; whatever the driver's segmentation calls
head or hair that the avatar does not cover (a smaller hairdo, another identity) is inpainted from its
surroundings first, so no second outline shows. Nothing is clipped by a fixed crop, and memory is one box.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from headsplat.avatar.animate import Motion, straight_rgb8
from headsplat.avatar.avatar import Avatar, avatar_triangles, expressed_gaussians, posed_vertices
from headsplat.core.camera import Camera, project_points
from headsplat.face.indices import CHIN, FACE_OVAL
from headsplat.face.segment import Matter
from headsplat.render.rasterize import render
from headsplat.rig.base import HeadRig
from headsplat.splat.binding import pose_gaussians


@dataclass(frozen=True)
class PasteConfig:
    """Paste-back settings."""
    margin: float = 0.03  # the render box grows by this fraction of the projected Gaussians' extent on each side
    max_render_side: int = 1024  # larger boxes are rendered at this side and upsampled (soft anyway)
    edge_blur: float = 0.004  # blur of the avatar's alpha, as a fraction of the head's size
    neck_fade: tuple = (0.15, 0.6)  # the matte fades from full to none over this span from chin to neck base
    colour_match: bool = True  # match the avatar's neck colour to the driver's where they meet
    inpaint_uncovered: bool = True  # inpaint the driver's own head/hair where the avatar does not cover it


@dataclass(frozen=True)
class RenderBox:
    """A pixel box of a frame and the camera that renders it.
    Attributes:
        x0, y0, x1, y1: the box in frame pixels (x1, y1 exclusive), inside the frame.
        camera: renders the box at ``camera.width`` x ``camera.height`` (the box's size times ``scale``).
        scale: render pixels per frame pixel (below 1 for boxes larger than the render limit).
    """
    x0: int
    y0: int
    x1: int
    y1: int
    camera: Camera
    scale: float

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in frame pixels."""
        return self.x1 - self.x0, self.y1 - self.y0


def head_box(gaussians, camera: Camera, margin: float, max_side: int) -> RenderBox | None:
    """The box of a frame holding every visible Gaussian of a posed head (3 sigma) with a margin, and a camera
    rendering just that box: nothing the avatar draws is cut off at the box's border.

    Args:
        gaussians: the posed :class:`~headsplat.splat.gaussians.GaussianSet` (world).
        camera: the frame's full camera.
        margin: grow the bounds by this fraction of their larger side, on each side.
        max_side: the largest render side; bigger boxes get ``scale < 1``.

    Returns:
        the box, or None when the head is entirely outside the frame or behind the camera.
    """
    keep = gaussians.opacities > 1 / 255
    uv, z = project_points(gaussians.means[keep].double(), camera.viewmat.double(), camera.K.double())
    radius = 3 * gaussians.scales[keep].max(-1).values.double() * camera.K[0, 0].double() / z.clamp_min(1e-6)
    front = z > 1e-6
    if not front.any():
        return None
    uv, radius = uv[front], radius[front, None]
    (lx, ly), (hx, hy) = (uv - radius).min(0).values.tolist(), (uv + radius).max(0).values.tolist()
    pad = margin * max(hx - lx, hy - ly)
    x0, y0 = max(0, int(np.floor(lx - pad))), max(0, int(np.floor(ly - pad)))
    x1, y1 = min(camera.width, int(np.ceil(hx + pad))), min(camera.height, int(np.ceil(hy + pad)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    w, h = x1 - x0, y1 - y0
    scale = min(1.0, max_side / max(w, h))
    rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
    sx, sy = rw / w, rh / h
    K = camera.K.double().clone()
    # Pixel centres at i + 0.5 on both sides: box pixel j is centred at x0 + (j + 0.5) / s.
    K[0] = K[0] * sx
    K[0, 2] = (camera.K[0, 2].double() - x0) * sx
    K[1] = K[1] * sy
    K[1, 2] = (camera.K[1, 2].double() - y0) * sy
    return RenderBox(x0, y0, x1, y1, Camera(camera.viewmat, K.to(camera.K.dtype), rw, rh), min(sx, sy))


def neck_fade(shape: tuple[int, int], chin: np.ndarray, neck: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    """(H, W) float32 weight: 1 above the chin, falling smoothly to 0 towards the neck's base.
    Args:
        shape: (H, W) of the image.
        chin, neck: (2,) the chin and the neck base's centre in that image's pixels.
        span: the fade runs from ``span[0]`` to ``span[1]`` of the chin-to-neck distance.
    """
    h, w = shape
    d = neck - chin
    length = float(np.linalg.norm(d))
    if length < 1e-6:
        return np.ones(shape, np.float32)
    d = d / length
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    s = ((xs - chin[0]) * d[0] + (ys - chin[1]) * d[1]) / length
    a, b = span
    x = np.clip((s - a) / (b - a), 0, 1)
    return (1 - x * x * (3 - 2 * x)).astype(np.float32)


def _inpaint(rgb: np.ndarray, hole: np.ndarray, work_side: int = 256) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 with ``hole`` (H, W) bool filled from its surroundings (Telea's method, run at
    ``work_side`` px and upsampled: the fill is low-frequency anyway)."""
    h, w = hole.shape
    s = min(1.0, work_side / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole.astype(np.uint8), small.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    small_hole = cv2.dilate(small_hole, np.ones((3, 3), np.uint8))
    filled = cv2.inpaint(small, small_hole, 5, cv2.INPAINT_TELEA)
    filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.where(hole[..., None], filled, rgb)


def head_zone(landmarks: np.ndarray, shape: tuple[int, int], hair: float = 0.5, grow: float = 0.12) -> np.ndarray:
    """(H, W) bool: where a tracked person's head and hair can be: the face oval of their (478, 2+)
    ``landmarks`` joined with the same oval raised by ``hair`` of its height, grown by ``grow`` of it."""
    oval = landmarks[FACE_OVAL, :2].astype(np.float32)
    height = float(np.ptp(oval[:, 1]))
    top = oval - np.array([0.0, hair * height], np.float32)
    hull = cv2.convexHull(np.concatenate([oval, top]) - 0.5)[:, 0].astype(np.float64)
    # Grown by moving each corner outwards from the centre (a convex shape stays convex; a dilation with a
    # kernel this large would cost more than the render).
    out = hull - hull.mean(0)
    hull = hull + out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6) * grow * height
    zone = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(zone, np.round(hull).astype(np.int32), 1)
    return zone.astype(bool)


def _border_ramp(shape: tuple[int, int], width: float) -> np.ndarray:
    """(H, W) float32: 0 on the image's border, rising linearly to 1 at ``width`` px inside."""
    h, w = shape
    x = np.minimum(np.arange(w) + 0.5, w - np.arange(w) - 0.5) / width
    y = np.minimum(np.arange(h) + 0.5, h - np.arange(h) - 0.5) / width
    return np.clip(np.minimum(y[:, None], x[None, :]), 0, 1).astype(np.float32)


def composite_head(frame_box: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, fade: np.ndarray,
                   driver_matte: np.ndarray | None, head_px: float, cfg: PasteConfig,
                   driver_head: np.ndarray | None = None) -> np.ndarray:
    """Composite the avatar over one box of the driver frame.
    Args:
        frame_box: (H, W, 3) uint8 the driver frame inside the box.
        rgb: (H, W, 3) float32 the avatar's straight (un-premultiplied) colour in [0, 1].
        alpha: (H, W) float32 its coverage.
        fade: (H, W) float32 the neck fade (1 on the head).
        driver_matte: (H, W) float32 the driver's person segmentation, or None.
        head_px: the head's size in pixels (sets blur radii).
        cfg: paste-back settings.
        driver_head: (H, W) bool where the driver's own head and hair can be (:func:`head_zone`); only
            there is what the avatar leaves bare inpainted (None: nothing is).

    Returns:
        (H, W, 3) uint8.
    """
    base = frame_box
    sigma = max(0.7, cfg.edge_blur * head_px)
    a = cv2.GaussianBlur(alpha, (0, 0), sigma) * fade
    if driver_matte is not None and driver_head is not None and cfg.inpaint_uncovered:
        # The driver's head and hair (person pixels near their face, above the neck) that the avatar leaves bare.
        bare = (driver_matte > 0.5) & driver_head & (fade > 0.5) & (alpha < 0.5)
        bare = cv2.morphologyEx(bare.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
        if bare.any():
            # Feathered into the frame, and faded out towards the box's border so the fill leaves no edge there.
            r = max(1.0, 0.01 * head_px)
            soft = cv2.GaussianBlur(bare.astype(np.float32), (0, 0), r) * _border_ramp(bare.shape, 3 * r)
            base = frame_box * (1 - soft[..., None]) + _inpaint(frame_box, bare) * soft[..., None]
    colour = rgb
    if driver_matte is not None and cfg.colour_match:
        # Where the matte fades (the neck), both show skin: match the avatar's mean colour to the driver's there.
        band = (fade > 0.05) & (fade < 0.95) & (alpha > 0.9) & (driver_matte > 0.5)
        if band.sum() > 20:
            drv = frame_box[band].astype(np.float32).mean(0) / 255
            own = rgb[band].mean(0)
            gain = np.clip((drv + 1e-3) / (own + 1e-3), 0.7, 1.4)
            # No change on the face, the full gain from halfway down the fade, where the neck meets the driver's.
            w = np.clip(2 * (1 - fade), 0, 1)[..., None]
            colour = np.clip(rgb * (1 + w * (gain - 1)), 0, 1)
    out = base.astype(np.float32) * (1 - a[..., None]) + colour * 255 * a[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def clean_plate(image: np.ndarray, head_alpha: np.ndarray, person: np.ndarray, fade: np.ndarray,
                grow: float = 0.03, work_side: int = 128) -> np.ndarray:
    """The background of a portrait with its person's head, hair and neck removed (inpainted), so a head
    that turns in front of it reveals background, not a second head.

    Args:
        image: (H, W, 3) uint8 the portrait.
        head_alpha: (H, W) float32 the avatar's coverage rendered over it at its reference pose.
        person: (H, W) float32 the portrait's person segmentation.
        fade: (H, W) float32 the neck fade at the reference pose (1 on the head, 0 below the neck).
        grow: the removed region grows by this fraction of the image's larger side.
        work_side: the inpainting runs at this size (a smooth fill; detail would read as a ghost).

    Returns:
        (H, W, 3) uint8.
    """
    h, w = image.shape[:2]
    head = (head_alpha > 0.05) | ((person > 0.5) & (fade > 0.02))
    r = max(1, round(grow * max(h, w)))
    head = cv2.dilate(head.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    filled = _inpaint(image, head.astype(bool), work_side)
    # Feather the fill's edge over a few pixels.
    soft = cv2.GaussianBlur(head.astype(np.float32), (0, 0), r / 3)[..., None]
    return np.clip(image * (1 - soft) + filled * soft + 0.5, 0, 255).astype(np.uint8)


def _head_keypoints(avatar: Avatar, rig: HeadRig) -> tuple[torch.Tensor, int]:
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


def background_plate(avatar: Avatar, rig: HeadRig, span: tuple[float, float] = PasteConfig().neck_fade) -> np.ndarray:
    """The avatar's source image with its person's head, hair and neck inpainted away (the ``source``
    background of ``animate``): (H, W, 3) uint8 at the avatar's framing."""
    cam = avatar.camera
    img = cv2.resize(avatar.source, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
    with torch.no_grad():
        verts = posed_vertices(avatar, rig, avatar.expression, avatar.rotation, avatar.translation)
        gs = pose_gaussians(expressed_gaussians(avatar, avatar.expression), verts, avatar_triangles(rig))
        alpha = render(gs, cam).alpha[..., 0].numpy()
    fade = neck_fade(alpha.shape, *chin_and_neck(verts, _head_keypoints(avatar, rig), cam), span)
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
    def __init__(self, avatar: Avatar, rig: HeadRig, tracking, cfg: PasteConfig = PasteConfig()):

        self.avatar, self.rig, self.cfg = avatar, rig, cfg
        self.camera = tracking.camera()
        self.tracking = tracking
        self._keypoints = _head_keypoints(avatar, rig)
        self._matter = Matter() if (cfg.colour_match or cfg.inpaint_uncovered) else None

    def __call__(self, motion: Motion, t: int, frame: np.ndarray) -> np.ndarray:
        """Frame ``t`` of ``motion`` (the driver's absolute pose) over the (H, W, 3) uint8 driver ``frame``."""
        with torch.no_grad():
            verts = posed_vertices(self.avatar, self.rig, **motion.frame(t))
            gs = pose_gaussians(expressed_gaussians(self.avatar, motion.expression[t]), verts,
                                avatar_triangles(self.rig))
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
        chin, neck = chin_and_neck(verts, self._keypoints, self.camera)
        offset = np.array([box.x0, box.y0], np.float64)
        fade = neck_fade((h, w), chin - offset, neck - offset, self.cfg.neck_fade)
        crop = frame[box.y0:box.y1, box.x0:box.x1]
        matte = self._matter(np.ascontiguousarray(crop)) if self._matter is not None else None
        out = frame.copy()
        head_px = 2.5 * float(np.linalg.norm(chin - neck))
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
