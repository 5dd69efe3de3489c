"""A driver made ready for an avatar's rig: a video or images tracked with it, or a ``.track`` file used as
it is (re-fitted from its stored landmarks when it was made with another rig)."""

from __future__ import annotations

import os
from pathlib import Path

from headsplat.core.errors import NoFaceError
from headsplat.media.frames import FrameSource, open_frames
from headsplat.rig.base import HeadRig
from headsplat.track.tracker import refit_tracking, track_source
from headsplat.track.tracking import Tracking

TRACK_SUFFIXES = (".track", ".npz")


def is_track_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in TRACK_SUFFIXES


def load_driver_track(path: str | os.PathLike, rig: HeadRig, quiet: bool) -> Tracking:
    """A ``.track`` driver for ``rig``: re-fitted from its stored landmarks when made with another rig (or an
    older version of this one, with another expression set).

    Raises:
        NoFaceError: the track has no face in any frame.
    """
    p = Path(path)
    tracking = Tracking.load(p)
    if not tracking.found.any():
        raise NoFaceError(f"{p}: the driver has no face in any frame")
    if tracking.rig != rig.kind or tuple(tracking.expression_names) != tuple(rig.expression_names):
        tracking = refit_tracking(tracking, rig, quiet=quiet, path=p)
    return tracking


def driver_tracking(driver: str | os.PathLike, face: int, quiet: bool, rig: HeadRig, device: str = "cpu"
                    ) -> tuple[Tracking, FrameSource | None]:
    """The driver tracked with the avatar's rig (face networks on ``device``), and its frames (None for a
    ``.track`` file)."""
    if is_track_file(driver):
        return load_driver_track(driver, rig, quiet), None
    source = open_frames(Path(driver))
    return track_source(source, face=face, rig=rig, quiet=quiet, device=device), source
