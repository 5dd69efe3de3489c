"""``headsplat track``: tracking files and overlays; videos of a re-posed photo with known parameters."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from headsplat.api.common import check_output, track_array
from headsplat.core.camera import intrinsics_from_fov, project_points, world_to_opencv
from headsplat.core.errors import OutputError
from headsplat.core.fileio import atomic_path
from headsplat.media.frames import FrameSource, open_frames
from headsplat.media.image import IMAGE_SUFFIXES, read_image_uint8
from headsplat.media.video import VideoWriter
from headsplat.render.mesh_overlay import draw_mesh
from headsplat.render.mesh_texture import render_textured
from headsplat.rig.controls import controls_to_params, demo_performance
from headsplat.rig.factory import make_rig
from headsplat.rig.open_rig import OpenRig
from headsplat.track.tracker import track_source
from headsplat.track.tracking import Tracking


def track(input: str | os.PathLike, output: str | os.PathLike, overlay: str | os.PathLike | None = None,
          face: int = 0, fov: float | None = None, style: str = "shaded", quiet: bool = False, rig: str = "open",
          flame_model: str | os.PathLike | None = None, flame_embedding: str | os.PathLike | None = None
          ) -> Tracking:
    """Track a face in an image, a folder of images or a video and save a ``.track`` file.

    Args:
        input: image, folder of images, or video.
        output: the ``.track`` file to write.
        overlay: optionally also draw the fitted rig over the frames (``.mp4``, or ``.png``/``.jpg`` for a
            single image).
        face: which face when there are several (0: the largest).
        fov: fix the horizontal field of view in degrees instead of estimating it.
        style: overlay style, ``"shaded"`` or ``"wireframe"``.
        quiet: no progress bars.
        rig: ``"open"`` (default) or ``"flame"`` (needs the user's FLAME file: ``flame_model``,
            ``$HEADSPLAT_FLAME_MODEL`` or the per-user config).
        flame_model: the FLAME file. flame_embedding: a landmark embedding .npz overriding the computed one.
    """
    out = check_output(output, (".track", ".npz"), "the tracking output")
    if overlay is not None:
        check_output(overlay, (".mp4",) + IMAGE_SUFFIXES, "the overlay")
    head = make_rig(rig, flame_model, flame_embedding)
    source = open_frames(input)
    tracking = track_source(source, face=face, fov_deg=fov, rig=head, quiet=quiet)
    tracking.save(out)
    if overlay is not None:
        write_overlay(source, tracking, overlay, rig=head, style=style, quiet=quiet)
    return tracking


def write_overlay(source: FrameSource, tracking: Tracking, path: str | os.PathLike, rig=None,
                  style: str = "shaded", quiet: bool = False) -> None:
    """Draw the tracked rig over each frame of ``source`` into a video, or an image for one frame."""
    rig = rig or OpenRig()
    cam = tracking.camera()
    p = Path(path)
    with torch.no_grad():
        verts = rig(**tracking.params(with_offsets=True)).vertices
    frames = tqdm(source, total=len(tracking), desc="overlay", unit="frame", disable=quiet, leave=False)

    def draw(frame):
        lm = tracking.landmarks[frame.index] if tracking.found[frame.index] else None
        return draw_mesh(frame.rgb, verts[frame.index], rig.triangles, cam.viewmat, cam.K, style=style, landmarks=lm)

    if p.suffix.lower() in IMAGE_SUFFIXES:
        if len(tracking) != 1:
            raise OutputError(f"{p}: an image overlay needs a single-image input; use .mp4")
        from PIL import Image

        with atomic_path(p) as tmp:
            Image.fromarray(draw(next(iter(frames)))).save(tmp)
        return
    with VideoWriter(p, fps=tracking.fps) as writer:
        for frame in frames:
            writer.write(draw(frame))


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
    src = track_array(img, rig, quiet)
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
        from headsplat.media.image import write_png

        out.mkdir(parents=True, exist_ok=True)
        for t, f in enumerate(frames):
            write_png(out / f"{t:05d}.png", f)
    return PosedPhotoVideo(exp.numpy(), rot.numpy(), trans.numpy().copy(), src.identity,
                           src.identity_scale, float(K[0, 0]), size, fps)
