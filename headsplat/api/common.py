"""Helpers shared by the command groups: output checks, the device, avatar loading, in-memory tracking."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from headsplat.core.errors import HeadsplatError, OutputError
from headsplat.core.fileio import check_writable
from headsplat.media.frames import open_frames
from headsplat.rig.factory import make_rig
from headsplat.rig.open_rig import OpenRig
from headsplat.track.tracker import track_source
from headsplat.track.tracking import Tracking


def check_output(path: str | os.PathLike, suffixes: tuple[str, ...], what: str, replaces: str | None = None
                 ) -> Path:
    """The output path, checked: its suffix, a writable folder to go in. ``replaces``: for outputs that are
    folders, the file that marks one of their kind (``avatar.json``): an existing folder with it is replaced
    (atomically, by the writer), any other existing folder is refused."""
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise OutputError(f"{p}: {what} must end in {' or '.join(suffixes)}")
    if replaces is not None and p.is_dir():
        if not (p / replaces).is_file():
            raise OutputError(f"{p}: exists and is not {what} (no {replaces}); choose another name")
        check_writable(p.parent / f"{p.name}.new")
        return p
    check_writable(p)
    return p


def track_arrays(images: list[np.ndarray], rig: OpenRig, quiet: bool) -> Tracking:
    """Track in-memory images (one image, or several of one size) through temporary PNGs."""
    import tempfile

    from headsplat.media.image import write_png

    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, img in enumerate(images):
            files.append(Path(d) / f"{i:04d}.png")
            write_png(files[-1], img)
        return track_source(open_frames(files if len(files) > 1 else files[0]), rig=rig, quiet=quiet)


def track_array(img: np.ndarray, rig: OpenRig, quiet: bool) -> Tracking:
    return track_arrays([img], rig, quiet)


def sample_portrait() -> np.ndarray:
    """The built-in portrait: NASA's public-domain astronaut photo shipped with scikit-image."""
    try:
        from skimage import data
    except ImportError as e:
        raise HeadsplatError(f"the built-in sample needs scikit-image ({e}): pip install scikit-image") from None
    return data.astronaut()


def check_device(device: str) -> torch.device:
    if device not in ("cpu", "cuda"):
        raise HeadsplatError(f"device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise HeadsplatError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    return torch.device(device)


def load_checked(path, flame_model=None):
    """The avatar and its rig (FLAME: the user's file, which must be the one it was made with)."""
    from headsplat.avatar.avatar import check_rig_compatible, load_avatar

    avatar = load_avatar(path)
    rig = make_rig(avatar.rig, flame_model)
    check_rig_compatible(avatar, rig, path)
    return avatar, rig
