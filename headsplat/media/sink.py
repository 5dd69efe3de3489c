"""Where rendered frames go: an mp4 or a folder of PNG frames, both written atomically (a failed or interrupted
run leaves no half-written output)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from headsplat.core.errors import HeadsplatError, OutputError
from headsplat.core.fileio import atomic_dir, check_writable
from headsplat.media.image import write_png
from headsplat.media.video import VideoWriter


def check_frames_output(output: str | os.PathLike, transparent: bool = False) -> Path:
    """The checked output of a frame sequence: ``.mp4``, or a path without a suffix (a folder of PNGs, the only
    output that keeps transparency)."""
    out = Path(output)
    if out.suffix.lower() == ".mp4":
        if transparent:
            raise HeadsplatError(f"{out}: a transparent background needs PNG output: give a folder path")
    elif out.suffix:
        raise OutputError(f"{out}: the output must end in .mp4, or be a folder for PNG frames")
    check_writable(out)
    return out


@contextlib.contextmanager
def frame_sink(output: Path, fps: float) -> Iterator[Callable[[np.ndarray], None]]:
    """``write(frame)`` for (H, W, 3) or (H, W, 4) uint8 frames into an mp4 (``output`` ends in .mp4) or a folder
    of numbered PNGs; the output appears complete when the block ends, or not at all."""
    if output.suffix:
        with VideoWriter(output, fps=fps) as w:
            yield w.write
        return
    with atomic_dir(output) as d:
        count = 0

        def write(img: np.ndarray) -> None:
            nonlocal count
            write_png(d / f"{count:05d}.png", img)
            count += 1

        yield write


def write_frames(output: Path, fps: float, frames: Iterable[np.ndarray]) -> int:
    """Write every frame of ``frames`` through :func:`frame_sink`; returns how many."""
    n = 0
    with frame_sink(output, fps) as write:
        for img in frames:
            write(img)
            n += 1
    return n
