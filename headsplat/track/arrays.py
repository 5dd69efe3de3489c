"""Tracking of images held in memory (a portrait from a package, a generated picture): written to temporary PNGs
and tracked like files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from headsplat.media.frames import open_frames
from headsplat.media.image import write_png
from headsplat.rig.base import HeadRig
from headsplat.track.tracker import track_source
from headsplat.track.tracking import Tracking


def track_images(images: list[np.ndarray], rig: HeadRig, quiet: bool = True) -> Tracking:
    """Track (H, W, 3) uint8 images (one, or several of one size: one camera) with ``rig``."""
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, img in enumerate(images):
            files.append(Path(d) / f"{i:04d}.png")
            write_png(files[-1], img)
        return track_source(open_frames(files if len(files) > 1 else files[0]), rig=rig, quiet=quiet)
