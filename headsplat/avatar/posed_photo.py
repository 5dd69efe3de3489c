"""Footage with known head parameters: a portrait tracked, its rig textured with it and re-posed by named controls
(the built-in sample's talking video, the round-trip tests' drivers); and the built-in portrait itself."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from headsplat.core.camera import intrinsics_from_fov, project_points, world_to_opencv
from headsplat.media.image import read_image_uint8, write_png
from headsplat.media.video import VideoWriter
from headsplat.render.mesh_texture import render_textured
from headsplat.rig.controls import controls_to_params, demo_performance
from headsplat.rig.open_rig import OpenRig
from headsplat.track.arrays import track_images


def sample_portrait() -> np.ndarray:
    """(512, 512, 3) uint8: the built-in portrait, NASA's public-domain astronaut photo (the pixels of
    scikit-image's ``data.astronaut()``), shipped with headsplat (``headsplat/avatar/data/astronaut.png``)."""
    with resources.files("headsplat.avatar").joinpath("data/astronaut.png").open("rb") as f:
        return np.asarray(Image.open(f).convert("RGB"))


@dataclass(frozen=True)
class PosedPhotoVideo:
    """Ground truth of a video made by re-posing a photo through its fitted rig.

    Attributes:
        expression: (T, E), rotation: (T, 3), translation: (T, 3) rig parameters per frame.
        identity: (478, 3), identity_scale: the photo's fitted identity.
        focal: focal length in pixels; size: frame side in pixels; fps: frame rate.
    """

    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    identity: np.ndarray
    identity_scale: float
    focal: float
    size: int
    fps: float


def render_posed_photo(photo: str | os.PathLike | np.ndarray, output: str | os.PathLike,
                       controls: dict | None = None, n_frames: int = 120, fps: float = 25.0, size: int = 512,
                       fov: float = 30.0, distance: float = 0.75, quiet: bool = False,
                       rig: OpenRig | None = None, offsets: np.ndarray | None = None) -> PosedPhotoVideo:
    """Make a video with known head parameters: track a portrait, texture the rig with it and render it
    with named controls (default: the demo performance). Writes an mp4, or PNG frames into a folder when
    ``output`` has no suffix. ``offsets`` (T, 478, 3): free face offsets of the open rig added to every
    frame (template units; see :meth:`OpenRig.forward`)."""
    rig = rig or OpenRig()
    img = photo if isinstance(photo, np.ndarray) else read_image_uint8(photo)
    src = track_images([img], rig, quiet)
    with torch.no_grad():
        ref = rig(**src.params())
        src_cam = src.camera()
        tex_uv = project_points(ref.vertices[0].double(), src_cam.viewmat.double(), src_cam.K.double())[0].numpy()
    controls = controls if controls is not None else demo_performance(n_frames, fps)
    n_frames = len(next(iter(controls.values())))
    exp, rot = controls_to_params(controls, rig.expression_names, n_frames)
    trans = torch.tensor([0.0, 0.0, -distance]).expand(n_frames, 3)
    K = intrinsics_from_fov(fov, size, size)
    view = world_to_opencv()
    bg = cv2.GaussianBlur(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA), (0, 0), size / 40)
    bg = (bg * 0.6).astype(np.uint8)
    extra = {} if offsets is None else {"offsets": torch.as_tensor(offsets, dtype=torch.float32)}
    with torch.no_grad():
        verts = rig(torch.from_numpy(src.identity), torch.tensor(src.identity_scale), exp, rot, trans,
                    **extra).vertices
    out = Path(output)
    frames = (render_textured(img, tex_uv, verts[t], rig.triangles, view, K, size, size, background=bg)[0]
              for t in range(n_frames))
    frames = tqdm(frames, total=n_frames, desc="rendering", unit="frame", disable=quiet, leave=False)
    if out.suffix:
        with VideoWriter(out, fps=fps) as w:
            for f in frames:
                w.write(f)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for t, f in enumerate(frames):
            write_png(out / f"{t:05d}.png", f)
    return PosedPhotoVideo(exp.numpy(), rot.numpy(), trans.numpy().copy(), src.identity,
                           src.identity_scale, float(K[0, 0]), size, fps)
