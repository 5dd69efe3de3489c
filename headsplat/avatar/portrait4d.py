"""Avatars made by Portrait4D-v2 (``create --method portrait4d``): the source's aligned crop and motion code,
kept so that every driven frame is one synthesis of the released network (:mod:`headsplat.models.portrait4d`)
at the driver's motion code and FLAME pose.

    NAME.avatar/
      avatar.json             format, version, "method": "portrait4d", the network config, the two weight files'
                              SHA-256 (never the weights), the FLAME record, provenance
      source.safetensors      the source's motion code, FLAME shape, expression and head rotation
      source.png              the 512² aligned crop the network sees
      preview.png             the avatar from the front at the source's expression

Per frame, as the reference's inference script: the driver's aligned crop (:class:`~headsplat.models.portrait4d.
inputs.AlignedCrop`) gives its motion code (PD-FGC); headsplat's FLAME tracking gives the expression, jaw, eyes
and the head rotation as the neck's; the camera is fixed. The network's jitter and importance samples are drawn
from a generator seeded with the same seed every frame (so a still head renders the same twice).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from headsplat.avatar.model_files import read_model_avatar, write_model_avatar
from headsplat.core.camera import Camera
from headsplat.core.errors import InputError
from headsplat.face.align import CropTransform
from headsplat.models.portrait4d.crop import motion_crop_at, points_transform
from headsplat.models.portrait4d.flame import FLAME_PREFIX
from headsplat.models.portrait4d.inputs import (
    CROP_SIZE,
    AlignedCrop,
    five_points,
    flame_parameters,
    intrinsics,
    motion_points,
    orbit_camera,
)
from headsplat.models.portrait4d.model import Portrait4D, Portrait4DConfig, SourceFeatures
from headsplat.models.portrait4d.motion import FanEncoder
from headsplat.models.weights import resolve_weights, sha256_file
from headsplat.track.tracking import Tracking

if TYPE_CHECKING:
    from headsplat.rig.flame.head import FlameHead

METHOD = "portrait4d"
WEIGHTS_ENV, CONFIG_KEY = "HEADSPLAT_PORTRAIT4D_WEIGHTS", "portrait4d_weights"
MOTION_ENV, MOTION_CONFIG_KEY = "HEADSPLAT_PDFGC_WEIGHTS", "pdfgc_weights"
#: the released inference script's neural rendering resolution
NEURAL_RESOLUTION = 128


@dataclass
class P4DAvatar:
    """A Portrait4D-v2 avatar.

    Attributes:
        config: the network's configuration (from the pickle it was made with).
        weights_sha256, motion_sha256: SHA-256 of the network pickle and of PD-FGC's ``motion_model.pth``.
        rig_record: {"flame": ...} the FLAME file's record.
        identity: (S,) FLAME shape. expression: (E,) the source's expression (headsplat's FLAME order), named by
            ``expression_names``. rotation: (3,) the source's head rotation (axis-angle).
        motion: (548,) the source's motion code.
        source: (512, 512, 3) uint8 the aligned source crop.
        info: provenance and figures.
    """
    config: Portrait4DConfig
    weights_sha256: str
    motion_sha256: str
    rig_record: dict
    identity: torch.Tensor
    expression: torch.Tensor
    expression_names: tuple
    rotation: torch.Tensor
    motion: torch.Tensor
    source: np.ndarray
    info: dict = field(default_factory=dict)
    method: str = METHOD

    @property
    def camera(self) -> Camera:
        """The output framing as a headsplat camera (at the origin, as tracking's): 512², the reference's 12° field
        of view."""
        K = intrinsics() * torch.tensor([[CROP_SIZE], [CROP_SIZE], [1.0]])
        return Camera(torch.eye(4), K, CROP_SIZE, CROP_SIZE)


@dataclass(frozen=True)
class DriverFrame:
    """One frame as the network takes it. crop: the aligned crop's geometry; image: (512, 512, 3) uint8 the
    crop; points: (3, 2) the motion crop's points in it (y down)."""
    crop: AlignedCrop
    image: np.ndarray
    points: np.ndarray

    @property
    def transform(self) -> CropTransform:
        """Frame pixels -> crop pixels (for pasting a render back into the frame)."""
        return CropTransform(self.crop.matrix(), self.crop.size)


# -- weights ------------------------------------------------------------------------------------------------------
def portrait4d_weights(weights=None) -> Path:
    """The network pickle: ``weights``, ``$HEADSPLAT_PORTRAIT4D_WEIGHTS`` or ``"portrait4d_weights"``."""
    return resolve_weights(weights, WEIGHTS_ENV, CONFIG_KEY, "Portrait4D-v2")


def motion_weights(weights=None) -> Path:
    """PD-FGC's ``motion_model.pth``: ``weights``, ``$HEADSPLAT_PDFGC_WEIGHTS`` or ``"pdfgc_weights"``."""
    return resolve_weights(weights, MOTION_ENV, MOTION_CONFIG_KEY, "PD-FGC motion encoder", "--motion-weights")


def load_networks(weights, motion, device: torch.device, avatar: P4DAvatar | None = None
                  ) -> tuple[Portrait4D, FanEncoder, str, str]:
    """The reconstructor and the motion encoder (checked against the avatar's recorded SHA-256s), and the
    files' SHA-256s."""
    w, m = portrait4d_weights(weights), motion_weights(motion)
    sha, msha = sha256_file(w), sha256_file(m)
    if avatar is not None:
        for got, made, path, flag in ((sha, avatar.weights_sha256, w, "--weights"),
                                      (msha, avatar.motion_sha256, m, "--motion-weights")):
            if made and got != made:
                raise InputError(f"{path}: not the weights this avatar was made with (SHA-256 {got[:12]}…, the "
                                 f"avatar records {made[:12]}…); pass the same file with {flag}")
    return Portrait4D.from_pretrained(w, device), FanEncoder.from_pretrained(m, device), sha, msha


def check_flame(head: FlameHead, model: Portrait4D, weights) -> torch.Tensor:
    """The FLAME file's template and shape directions are the checkpoint's own FLAME (x3, re-centred), so the
    tracked coefficients mean to the network what they mean to headsplat. Returns the re-centring (3,): a
    point ``x`` of headsplat's FLAME (metres) is ``3 x - offset`` in the network's world.

    Raises:
        InputError: another FLAME (topology or template), or a checkpoint without its FLAME buffers.
    """
    vt = model.deformer_state.get(FLAME_PREFIX + "v_template")
    if vt is None:
        raise InputError(f"{weights}: the network has no FLAME buffers (deformer.{FLAME_PREFIX}v_template); "
                         "not Portrait4D-v2's released network")
    vt = vt.detach().cpu()
    mine = head.flame.v_template.detach().cpu().to(vt.dtype) * 3
    if mine.shape != vt.shape:
        raise InputError(f"{head.path}: {mine.shape[0]} vertices, the network's FLAME has {vt.shape[0]}: pass "
                         "FLAME 2020's generic_model.pkl with --flame-model")
    offset = (mine - vt).mean(0)
    err = float((mine - offset - vt).abs().max())
    dirs = model.deformer_state.get(FLAME_PREFIX + "shapedirs")
    if dirs is not None:
        dirs = dirs.detach().cpu()
        n = min(head.n_shape, dirs.shape[-1])
        err = max(err, float((head.flame.shapedirs[..., :n].cpu().to(dirs.dtype) * 3 - dirs[..., :n]).abs().max()))
    if err > 1e-4:
        raise InputError(f"{head.path}: not the FLAME model the network was trained with (the templates differ "
                         f"by {err / 3 * 1000:.2f} mm): pass FLAME 2020's generic_model.pkl with --flame-model")
    return offset.float().cpu()


# -- inputs -------------------------------------------------------------------------------------------------------
def filled_landmarks(tracking: Tracking) -> np.ndarray:
    """(T, 478, 2) the detected landmarks, frames without a face taking the nearest earlier (else later) found
    frame's (the crop then holds still)."""
    lms = np.asarray(tracking.landmarks[..., :2], np.float64).copy()
    found = np.asarray(tracking.found, bool) & np.isfinite(lms).all((1, 2))
    if not found.any():
        raise InputError("no face was found in any frame")
    idx = np.where(found, np.arange(len(found)), -1)
    idx = np.maximum.accumulate(idx)
    first = int(np.flatnonzero(found)[0])
    idx[idx < 0] = first
    return lms[idx]


def driver_frame(image: np.ndarray, landmarks: np.ndarray) -> DriverFrame:
    """(H, W, 3) uint8 frame and its (478, 2+) landmarks -> the network's view of it."""
    h, w = image.shape[:2]
    crop = AlignedCrop(five_points(landmarks), w, h)
    return DriverFrame(crop, crop.cut(image), crop.points(motion_points(landmarks)))


def image_tensor(images: np.ndarray | list[np.ndarray], device) -> torch.Tensor:
    """(B, 512, 512, 3) uint8 -> (B, 3, 512, 512) in [-1, 1] (the reference's ``/127.5 - 1``)."""
    x = torch.from_numpy(np.ascontiguousarray(np.stack(list(images)))).to(device)
    return (x.float() / 127.5 - 1).permute(0, 3, 1, 2)


@torch.no_grad()
def motion_codes(encoder: FanEncoder, frames: list[DriverFrame], device) -> torch.Tensor:
    """(B, 548) the frames' motion codes."""
    imgs = image_tensor([f.image for f in frames], device)
    M = points_transform(torch.tensor(np.stack([f.points for f in frames]), dtype=torch.float32), CROP_SIZE)
    return encoder.motion_code(motion_crop_at(imgs, M.to(device)))


def tracked_flame(avatar_identity: torch.Tensor, tracking: Tracking, frames: list[int]) -> dict[str, torch.Tensor]:
    """The reference's FLAME inputs for ``frames`` of ``tracking``: the avatar's shape, the frames' expression,
    jaw, eyes, and head rotation as the neck's."""
    return flame_parameters(avatar_identity, torch.as_tensor(tracking.expression[frames]),
                            torch.as_tensor(tracking.rotation[frames]), tuple(tracking.expression_names))


def own_flame(avatar: P4DAvatar, n: int = 1) -> dict[str, torch.Tensor]:
    """The source's expression with the head facing the camera (neck rotation zero), ``n`` times."""
    expr = avatar.expression[None].expand(n, -1)
    return flame_parameters(avatar.identity, expr, torch.zeros(n, 3), tuple(avatar.expression_names))


# -- synthesis ----------------------------------------------------------------------------------------------------
class Synthesizer:
    """A loaded avatar's renders: the source encoded once, then one synthesis per (motion, FLAME, camera)."""

    def __init__(self, model: Portrait4D, avatar: P4DAvatar, device: torch.device,
                 neural_resolution: int = NEURAL_RESOLUTION, seed: int = 0):
        self.model, self.avatar, self.device = model, avatar, device
        self.neural_resolution, self.seed = int(neural_resolution), int(seed)
        with torch.no_grad():
            self.features: SourceFeatures = model.encode_source(image_tensor([avatar.source], device))
        self.motion_source = avatar.motion[None].to(device)

    @torch.no_grad()
    def render(self, motion: torch.Tensor, flame: dict[str, torch.Tensor], cameras: torch.Tensor
               ) -> tuple[np.ndarray, np.ndarray]:
        """(B, 548) motion codes, FLAME inputs of batch B (:func:`flame_parameters`), (B, 25) cameras ->
        (B, 512, 512, 3) uint8 images and (B, 512, 512) float32 foreground (1 - the background's share)."""
        dev = self.device
        f = {k: v.to(dev) for k, v in flame.items()}
        deformer = self.model.head_pose_field(f["shape"], f["expression"], f["pose"], f["eye_pose"])
        gen = torch.Generator(device=dev).manual_seed(self.seed)
        out = self.model.synthesis(self.features, self.motion_source, motion.to(dev), cameras.to(dev),
                                   deformer=deformer, neural_rendering_resolution=self.neural_resolution,
                                   generator=gen)
        img = (out.image.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()
        fg = 1 - F.interpolate(out.transmittance, size=img.shape[1:3], mode="bilinear", align_corners=False)
        return img, fg[:, 0].clamp(0, 1).float().cpu().numpy()


def driven_frame(synth: Synthesizer, encoder: FanEncoder, tracking: Tracking, landmarks: np.ndarray, t: int,
                 image: np.ndarray) -> tuple[np.ndarray, np.ndarray, DriverFrame]:
    """The avatar driven by frame ``t`` (``image``) of ``tracking``, whose landmarks are ``landmarks`` (478, 2+)
    -> (512, 512, 3) uint8 render, (512, 512) foreground, the frame's :class:`DriverFrame`."""
    frame = driver_frame(image, landmarks)
    imgs, fgs = synth.render(motion_codes(encoder, [frame], synth.device),
                             tracked_flame(synth.avatar.identity, tracking, [t]), orbit_camera()[None])
    return imgs[0], fgs[0], frame


def driven_frames(synth: Synthesizer, encoder: FanEncoder, tracking: Tracking, images: Iterable[np.ndarray],
                  n: int) -> Iterator[tuple[np.ndarray, np.ndarray, DriverFrame]]:
    """The avatar driven by the first ``n`` of ``images`` (tracked by ``tracking``; frames without a face hold
    the last crop), as :func:`driven_frame` gives each."""
    lms = filled_landmarks(tracking)
    for t, image in enumerate(images):
        if t >= n:
            break
        yield driven_frame(synth, encoder, tracking, lms[t], t, image)


def views(synth: Synthesizer, yaws: list[float], pitch: float, batch: int = 1, motion: torch.Tensor | None = None,
          flame: dict[str, torch.Tensor] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The avatar seen from cameras turned by ``yaws`` (degrees) and ``pitch``, with the head facing the fixed
    camera: at the source's expression and motion, or at ``motion`` (1, 548) and ``flame`` (batch 1, its neck
    rotation ignored)."""
    motion = synth.motion_source if motion is None else motion
    for i in range(0, len(yaws), batch):
        ys = yaws[i:i + batch]
        cams = torch.stack([orbit_camera(y, pitch) for y in ys])
        if flame is None:
            f = own_flame(synth.avatar, len(ys))
        else:
            f = {k: v.expand(len(ys), -1).clone() for k, v in flame.items()}
            f["pose"][:, :3] = 0
        imgs, fgs = synth.render(motion.expand(len(ys), -1), f, cams)
        yield from zip(imgs, fgs)


def make_avatar(model: Portrait4D, encoder: FanEncoder, shas: tuple[str, str], image: np.ndarray,
                head: FlameHead, tracking: Tracking, t: int, device: torch.device, offset: torch.Tensor,
                info: dict | None = None) -> P4DAvatar:
    """The avatar of frame ``t`` (``image``) of ``tracking``; ``offset``: FLAME's re-centring in the network's
    world (:func:`check_flame`), recorded with the tracked identity scale for the generator's cameras."""
    if not tracking.found[t]:
        raise InputError(f"no face found in frame {t}")
    frame = driver_frame(image, tracking.landmarks[t])
    motion = motion_codes(encoder, [frame], device)[0].cpu()
    p = tracking.params([t])
    info = {**(info or {}), "frame": int(t), "crop_scale": round(float(frame.crop.s), 4),
            "identity_scale": float(tracking.identity_scale), "flame_offset": [round(float(v), 6) for v in offset]}
    return P4DAvatar(model.cfg, shas[0], shas[1], {"flame": head.describe()}, p["identity"].float(),
                     p["expression"][0].float(), tuple(tracking.expression_names), p["rotation"][0].float(), motion,
                     frame.image, info)


# -- files ------------------------------------------------------------------------------------------------------
def save_portrait4d(avatar: P4DAvatar, path: str | os.PathLike, preview: np.ndarray | None = None) -> Path:
    """Write the avatar folder atomically."""
    meta = {"method": METHOD, "rig": "flame", "config": avatar.config.to_dict(),
            "weights_sha256": avatar.weights_sha256, "motion_sha256": avatar.motion_sha256,
            "rig_record": avatar.rig_record, "expression_names": list(avatar.expression_names), "info": avatar.info}
    tensors = {"identity": avatar.identity, "expression": avatar.expression, "rotation": avatar.rotation,
               "motion": avatar.motion}
    return write_model_avatar(path, meta, tensors, avatar.source, preview)


def load_portrait4d(path: str | os.PathLike) -> P4DAvatar:
    """Read a Portrait4D avatar folder.

    Raises:
        InputError: missing or incomplete files, wrong shapes, another method, or a newer format.
    """
    p = Path(path)
    meta, t, source = read_model_avatar(p, METHOD, "Portrait4D", ("identity", "expression", "rotation", "motion"))
    try:
        cfg = Portrait4DConfig.from_init_kwargs(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{p / 'avatar.json'}: invalid Portrait4D settings ({type(e).__name__}: {e})") from None
    names = tuple(meta.get("expression_names", ()))
    if len(names) != t["expression"].shape[0] or tuple(t["rotation"].shape) != (3,) or \
            tuple(t["motion"].shape) != (cfg.mot_dims,):
        raise InputError(f"{p / 'source.safetensors'}: expression, rotation or motion of the wrong size")
    if source.shape[:2] != (CROP_SIZE, CROP_SIZE):
        raise InputError(f"{p / 'source.png'}: {source.shape[1]}x{source.shape[0]}, expected the 512² aligned crop")
    return P4DAvatar(cfg, str(meta.get("weights_sha256", "")), str(meta.get("motion_sha256", "")),
                     meta.get("rig_record", {}), t["identity"], t["expression"], names, t["rotation"], t["motion"],
                     source, meta.get("info", {}))
