"""``headsplat track``: tracking files and overlays."""

from __future__ import annotations

import os

from headsplat.api.common import check_output
from headsplat.core.validate import check_device, check_fov
from headsplat.media.frames import open_frames
from headsplat.media.image import IMAGE_SUFFIXES
from headsplat.rig.factory import make_rig
from headsplat.track.overlay import write_overlay
from headsplat.track.tracker import track_source
from headsplat.track.tracking import Tracking


def track(input: str | os.PathLike, output: str | os.PathLike, overlay: str | os.PathLike | None = None,
          face: int = 0, fov: float | None = None, style: str = "shaded", quiet: bool = False, rig: str = "open",
          flame_model: str | os.PathLike | None = None, flame_embedding: str | os.PathLike | None = None,
          device: str = "cpu") -> Tracking:
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
        device: where the face networks run (``"cpu"`` or ``"cuda"``).
    """
    out = check_output(output, (".track", ".npz"), "the tracking output")
    if overlay is not None:
        check_output(overlay, (".mp4",) + IMAGE_SUFFIXES, "the overlay")
    check_device(device)
    check_fov(fov)
    head = make_rig(rig, flame_model, flame_embedding)
    source = open_frames(input)
    tracking = track_source(source, face=face, fov_deg=fov, rig=head, quiet=quiet, device=device)
    tracking.save(out)
    if overlay is not None:
        write_overlay(source, tracking, overlay, rig=head, style=style, quiet=quiet)
    return tracking
