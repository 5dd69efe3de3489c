"""Avatars made by GAGAvatar (``create --method gagavatar``): the source's Gaussians from one forward pass,
driven by FLAME tracking, splatted as features and refined to RGB at every frame.

    NAME.avatar/
      avatar.json             format, version, "method": "gagavatar", the network config, the weights' SHA-256
                              (never the weights), the FLAME record, provenance
      source.safetensors      the source Gaussians (cached, so driving never runs the encoder again), the
                              source's FLAME shape and expression and its camera [R|T]
      source.png              the matted source crop the network saw
      preview.png             the avatar rendered from the source view
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from headsplat.avatar.model_files import read_model_avatar, write_model_avatar
from headsplat.core.camera import Camera, project_points
from headsplat.core.errors import InputError
from headsplat.face.segment import Matter
from headsplat.models.gagavatar.conventions import FLAME_SCALE, FOCAL, render_camera
from headsplat.models.gagavatar.inputs import (
    CROP_SCALE,
    cut_crop,
    fit_view,
    head_box,
    posed_to_opencv,
    smooth_boxes,
    square_crop,
)
from headsplat.models.gagavatar.model import GagaConfig, GAGAvatar, SourceGaussians, render_features
from headsplat.models.weights import sha256_file
from headsplat.track.tracker import track_source
from headsplat.track.tracking import Tracking

METHOD = "gagavatar"
WEIGHTS_ENV = "HEADSPLAT_GAGAVATAR_WEIGHTS"
CONFIG_KEY = "gagavatar_weights"
_SOURCE_TENSORS = ("colors", "opacities", "scales", "rotations", "xyz")

if TYPE_CHECKING:
    from headsplat.rig.flame.head import FlameHead


@dataclass
class GagaAvatar:
    """A GAGAvatar avatar.
    Attributes:
        config: the network's sizes (the released model's, or a test's tiny one).
        weights_sha256: SHA-256 of the weights file it was made with (driving checks it).
        rig_record: {"flame": ...} the FLAME file's record (version, sha1, coefficient counts).
        identity: (S,) FLAME shape of the source. expression: (E,) its expression (headsplat's FLAME order).
        expression_names: names of those coefficients.
        transform: (3, 4) the source view ``[R|T]`` (reference conventions).
        source: (R, R, 3) uint8 the matted source crop.
        gaussians: the source Gaussians, batch 1.
        info: provenance and figures.
    """
    config: GagaConfig
    weights_sha256: str
    rig_record: dict
    identity: torch.Tensor
    expression: torch.Tensor
    expression_names: tuple
    transform: torch.Tensor
    source: np.ndarray
    gaussians: SourceGaussians
    info: dict = field(default_factory=dict)
    method: str = METHOD

    @property
    def camera(self) -> Camera:
        """The source view as a headsplat camera (the framing of every output)."""
        return render_camera(self.transform, self.config.render_size, self.config.focal)


# -- inputs from tracking -------------------------------------------------------------------------------------------
def face_box(head: FlameHead, tracking: Tracking, t: int) -> np.ndarray:
    """(4,) x0, y0, x1, y1 in frame pixels of the tracked face (the rig's reprojected landmarks)."""
    p = tracking.params([t])
    lms = head.landmarks(p["identity"], p["scale"], p["expression"], p["rotation"], p["translation"])[0]
    cam = tracking.camera(torch.float64)
    uv, _ = project_points(lms[head.fit_points].double(), cam.viewmat, cam.K)
    uv = uv.numpy()
    return np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])


def frame_view(head: FlameHead, tracking: Tracking, t: int, size: int, focal: float, box: np.ndarray | None = None):
    """The crop of frame ``t`` and the reference camera of its view.
    Args:
        box: the head box (4,) in frame px (default: :func:`head_box` of this frame's tracked face).

    Returns:
        (CropTransform, transform (3, 4), reprojection error of the camera fit in px at ``size``).
    """
    crop = square_crop(head_box(face_box(head, tracking, t)) if box is None else box, size)
    p = tracking.params([t])
    verts = head.flame_vertices(p["identity"], p["expression"])[0]
    cam_pts = posed_to_opencv(verts, p["scale"], p["rotation"][0], p["translation"][0]).double()
    uv, _ = project_points(cam_pts, torch.eye(4, dtype=torch.float64), tracking.camera(torch.float64).K)
    pixels = torch.from_numpy(crop.apply(uv.numpy()))
    transform, err = fit_view(verts, p["rotation"][0], pixels, size, focal)
    return crop, transform, err


def video_boxes(head: FlameHead, tracking: Tracking, frames: list[int]) -> np.ndarray:
    """(F, 4) head boxes of ``frames`` of a video, smoothed within shots (the reference's box smoothing)."""
    boxes = np.stack([head_box(face_box(head, tracking, t)) for t in frames])
    return smooth_boxes(boxes, tracking.shots[frames])


def matched_fov(head: FlameHead, tracking: Tracking) -> float:
    """The horizontal field of view (degrees) at which the frames' head crops have the reference's focal
    length (12 half-crops): from the median crop side over the frames with a face."""
    frames = np.flatnonzero(tracking.found) if tracking.found.any() else np.arange(len(tracking))
    boxes = np.stack([head_box(face_box(head, tracking, int(t))) for t in frames])
    side = CROP_SCALE * float(np.median(np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))))
    return float(np.degrees(2 * np.arctan(tracking.width / (FOCAL * side))))


def track_for_model(source, head: FlameHead, face: int = 0, quiet: bool = False, device: str = "cpu") -> Tracking:
    """Track ``source`` with FLAME at the field of view that gives its head crops the reference's focal length
    (a first pass finds the crops, a second tracks at that field of view): the reference's camera then
    reproduces headsplat's to a fraction of a pixel, where a free field of view can leave several pixels at
    512 (a 112 px face crop: 9.4 px, tracked again 0.04 px)."""
    tracking = track_source(source, face=face, rig=head, quiet=quiet, device=device)
    fov = matched_fov(head, tracking)
    if abs(fov - tracking.camera().fov_x_deg) < 0.5:
        return tracking
    return track_source(source, face=face, rig=head, quiet=quiet, fov_deg=fov, device=device)


def driven_vertices(head: FlameHead, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
    """(F, V, 3) FLAME vertices of the source's shape with the frames' expressions (F, E), reference units."""
    return head.flame_vertices(identity.expand(expression.shape[0], -1), expression) * FLAME_SCALE


def prepare_source(img: np.ndarray, head: FlameHead, tracking: Tracking, t: int, cfg: GagaConfig,
                   matte: np.ndarray | None = None):
    """The network's source input from frame ``t`` of ``tracking``.
    Args:
        img: (H, W, 3) uint8 the frame.
        matte: (H, W) float32 foreground matte of the frame (default: MediaPipe's selfie segmentation of the
            crop).

    Returns:
        (source crop (R, R, 3) uint8 matted onto black, transform (3, 4), camera-fit error px)
    """
    crop, transform, err = frame_view(head, tracking, t, cfg.render_size, cfg.focal)
    rgb = cut_crop(img, crop)
    if matte is None:
        with Matter() as m:
            alpha = m(rgb)
    else:
        alpha = cut_crop(matte.astype(np.float32), crop)
    src = np.clip(rgb.astype(np.float32) * alpha[..., None] + 0.5, 0, 255).astype(np.uint8)
    return src, transform, err


def source_tensor(src: np.ndarray, cfg: GagaConfig) -> torch.Tensor:
    """(1, 3, S, S) the encoder's input: the crop in [0, 1] resized to ``cfg.source_size`` (bilinear,
    antialiased, as the reference's torchvision resize)."""
    x = torch.from_numpy(src).permute(2, 0, 1)[None].float() / 255
    return torch.nn.functional.interpolate(x, size=(cfg.source_size, cfg.source_size), mode="bilinear",
                                           align_corners=False, antialias=True)


# -- making and driving -------------------------------------------------------------------------------------------
@torch.no_grad()
def make_avatar(model: GAGAvatar, weights_sha256: str, img: np.ndarray, head: FlameHead, tracking: Tracking, t: int,
                device: torch.device, info: dict | None = None) -> GagaAvatar:
    """One forward pass of the encoder and generators on frame ``t``."""
    src, transform, err = prepare_source(img, head, tracking, t, model.cfg)
    gs = model.reconstruct(source_tensor(src, model.cfg).to(device), transform[None].to(device)).to("cpu")
    p = tracking.params([t])
    info = {**(info or {}), "camera_fit_px": round(err, 3), "frame": int(t),
            "identity_scale": float(tracking.identity_scale)}
    return GagaAvatar(model.cfg, weights_sha256, {"flame": head.describe()}, p["identity"], p["expression"][0],
                      tuple(tracking.expression_names), transform, src, gs, info)


@torch.no_grad()
def render_views(avatar: GagaAvatar, head: FlameHead, expressions: torch.Tensor, transforms: torch.Tensor,
                 device: torch.device, model: GAGAvatar | None = None, batch: int = 4, noise: str = "random",
                 seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Render the avatar with each expression (F, E) through each view (F, 3, 4), ``batch`` frames at a time
    through the refiner of ``model`` (None: no refiner, the raw first three feature channels). The refiner's
    noise: fresh per frame (``"random"``, as the reference) from a generator seeded with ``seed``, so a run is
    reproducible, or the checkpoint's stored noise (``"stored"``).

    Yields:
        per frame: RGB (R, R, 3) uint8, and the splatting's coverage (R, R) float32 (where the head is).
    """
    gs = avatar.gaussians.to(device)
    cfg = avatar.config
    generator = torch.Generator(device=device).manual_seed(seed)
    for i in range(0, len(expressions), batch):
        verts = driven_vertices(head, avatar.identity, expressions[i:i + batch]).to(device)
        feats, alphas = render_features(gs, verts, transforms[i:i + batch].to(device), cfg.render_size, cfg.focal,
                                        with_alpha=True)
        rgb = model.refine(feats, noise=noise, generator=generator) if model is not None else feats[:, :3]
        rgb = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        for k in range(len(rgb)):
            yield rgb[k], alphas[k].cpu().numpy()


def load_model(weights: str | os.PathLike, avatar: GagaAvatar | None, device: torch.device) -> tuple[GAGAvatar, str]:
    """The network from ``weights`` (checked against the avatar's recorded SHA-256) and the file's SHA-256."""
    sha = sha256_file(weights)
    if avatar is not None and avatar.weights_sha256 and sha != avatar.weights_sha256:
        raise InputError(f"{weights}: not the weights this avatar was made with (SHA-256 {sha[:12]}…, the avatar "
                         f"records {avatar.weights_sha256[:12]}…); pass the same file with --weights")
    return GAGAvatar.from_pretrained(weights, device=device, cfg=avatar.config if avatar is not None else None), sha


# -- files ------------------------------------------------------------------------------------------------------------
_WIDTHS = {"colors": 32, "opacities": 1, "scales": 3, "rotations": 4, "xyz": 3}


def save_gagavatar(avatar: GagaAvatar, path: str | os.PathLike, preview: np.ndarray | None = None) -> Path:
    """Write the avatar folder atomically."""
    meta = {"method": METHOD, "rig": "flame", "config": avatar.config.to_dict(),
            "weights_sha256": avatar.weights_sha256, "rig_record": avatar.rig_record,
            "expression_names": list(avatar.expression_names), "n_gaussians": int(avatar.gaussians.xyz.shape[1]),
            "n_vertices": avatar.gaussians.n_vertices, "info": avatar.info}
    tensors = {k: v[0] for k, v in avatar.gaussians.tensors().items()}
    tensors.update(identity=avatar.identity, expression=avatar.expression, transform=avatar.transform)
    return write_model_avatar(path, meta, tensors, avatar.source, preview)


def load_gagavatar(path: str | os.PathLike) -> GagaAvatar:
    """Read a GAGAvatar avatar folder.
    Raises:
        InputError: missing or incomplete files, wrong shapes, another method, or a newer format.
    """
    p = Path(path)
    meta, t, source = read_model_avatar(p, METHOD, "GAGAvatar", (*_WIDTHS, "identity", "expression", "transform"))
    try:
        cfg = GagaConfig.from_dict(meta["config"])
        n = int(meta["n_gaussians"])
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{p / 'avatar.json'}: invalid GAGAvatar settings ({type(e).__name__}: {e})") from None
    for k, w in _WIDTHS.items():
        if tuple(t[k].shape) != (n, w):
            raise InputError(f"{p / 'source.safetensors'}: {k} has shape {tuple(t[k].shape)}, expected {(n, w)}")
    names = tuple(meta.get("expression_names", ()))
    if len(names) != t["expression"].shape[0] or tuple(t["transform"].shape) != (3, 4):
        raise InputError(f"{p / 'source.safetensors'}: expression or transform of the wrong size")
    gs = SourceGaussians(**{k: t[k][None] for k in _SOURCE_TENSORS}, n_vertices=cfg.n_vertices)
    return GagaAvatar(cfg, str(meta.get("weights_sha256", "")), meta.get("rig_record", {}), t["identity"],
                      t["expression"], names, t["transform"], source, gs, meta.get("info", {}))
