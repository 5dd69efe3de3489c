"""The tracked rig drawn over the frames it was tracked in (``track --overlay``): a video, or an image for one
frame."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from headsplat.core.errors import OutputError
from headsplat.core.fileio import atomic_path
from headsplat.media.frames import FrameSource
from headsplat.media.image import IMAGE_SUFFIXES
from headsplat.media.video import VideoWriter
from headsplat.render.mesh_overlay import draw_mesh
from headsplat.rig.base import HeadRig
from headsplat.rig.open_rig import OpenRig
from headsplat.track.tracking import Tracking


def write_overlay(source: FrameSource, tracking: Tracking, path: str | os.PathLike, rig: HeadRig | None = None,
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
        with atomic_path(p) as tmp:
            Image.fromarray(draw(next(iter(frames)))).save(tmp)
        return
    with VideoWriter(p, fps=tracking.fps) as writer:
        for frame in frames:
            writer.write(draw(frame))
