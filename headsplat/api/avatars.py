"""``headsplat create`` and ``headsplat demo``: avatars from photos or a video."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from headsplat.api.common import (
    check_device,
    check_output,
    sample_portrait,
    track_arrays,
)
from headsplat.api.playback import write_animation
from headsplat.avatar.animate import offset_motion
from headsplat.core.errors import HeadsplatError
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.media.frames import open_frames
from headsplat.rig.controls import controls_to_params, demo_performance
from headsplat.rig.factory import make_rig
from headsplat.rig.open_rig import OpenRig
from headsplat.track.tracker import track_source
from headsplat.track.tracking import Tracking


def demo(output_dir: str | os.PathLike = "headsplat-demo", quiet: bool = False, preset: str = "fast",
         n_frames: int = 120) -> dict:
    """The whole job on the built-in sample: create an avatar from the built-in portrait and animate it with
    a procedural performance (talking, smile, blinks, brows, head turns).

    Returns:
        ``avatar`` and ``video`` paths, ``frames`` written, and the creation ``info``.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rig = OpenRig()
    paths = {"avatar": out / "sample.avatar", "video": out / "sample.mp4"}
    avatar = create_from_arrays([sample_portrait()], paths["avatar"], rig, preset, seed=0, quiet=quiet,
                                 provenance={"inputs": ["skimage.data.astronaut()"]})
    perf = demo_performance(n_frames)
    exp, rot = controls_to_params(perf, rig.expression_names, n_frames)
    motion = offset_motion(avatar, exp, axis_angle_to_matrix(rot))
    write_animation(avatar, rig, motion, paths["video"], fps=25.0, background="source", quiet=quiet)
    paths["frames"] = n_frames
    paths["info"] = avatar.info
    return paths


def _select_frames(tracking: Tracking, max_frames: int) -> list[int]:
    found = np.flatnonzero(tracking.found)
    if len(found) <= max_frames:
        return [int(i) for i in found]
    return [int(found[round(i)]) for i in np.linspace(0, len(found) - 1, max_frames)]


def create_from_arrays(images: list[np.ndarray], output: Path, rig: OpenRig, preset: str, seed: int,
                        quiet: bool, provenance: dict, device: str = "cpu"):
    tracking = track_arrays(images, rig, quiet)
    return create_from_tracking(images, list(range(len(images))), tracking, output, rig, preset, seed, quiet,
                                 provenance, device)


def create_from_tracking(images, indices, tracking, output, rig, preset, seed, quiet, provenance, device="cpu"):
    from headsplat.avatar.animate import render_avatar_frame, retarget
    from headsplat.avatar.avatar import save_avatar
    from headsplat.avatar.create import PRESETS, create_avatar

    if preset not in PRESETS:
        raise HeadsplatError(f"unknown preset {preset!r}; choose {' or '.join(PRESETS)}")
    avatar = create_avatar(images, indices, tracking, rig, PRESETS[preset], seed=seed, quiet=quiet,
                           provenance={**provenance, "preset": preset}, device=check_device(device))
    still = retarget(avatar, avatar.expression[None], avatar.rotation[None], avatar.translation[None], pose="none")
    preview = render_avatar_frame(avatar, rig, still, 0, avatar.camera, background=1.0).rgb
    save_avatar(avatar, output, preview=preview.cpu())
    return avatar


def create(inputs, output: str | os.PathLike, rig: str = "open", preset: str = "fast", device: str = "cpu",
           seed: int = 0, face: int = 0, quiet: bool = False, flame_model: str | os.PathLike | None = None,
           flame_embedding: str | os.PathLike | None = None):
    """Create an avatar from one photo, several photos of one person (same size), or a video.

    Args:
        inputs: a path or a list of paths.
        output: the ``.avatar`` folder to write.
        rig: ``"open"`` (default) or ``"flame"`` (the user's FLAME file: ``flame_model``,
            ``$HEADSPLAT_FLAME_MODEL`` or the per-user config; ``flame_embedding`` overrides its landmarks).
        preset: ``"fast"`` (default) or ``"quality"``.
        device: ``"cpu"`` or ``"cuda"``.
        seed: the same seed gives the same avatar on the same machine.
        face: which face when there are several (0: the largest).

    Returns:
        the :class:`~headsplat.avatar.avatar.Avatar`.
    """
    from headsplat.avatar.create import PRESETS

    check_device(device)
    if preset not in PRESETS:
        raise HeadsplatError(f"unknown preset {preset!r}; choose {' or '.join(PRESETS)}")
    out = check_output(output, (".avatar",), "an avatar", replaces="avatar.json")
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    r = make_rig(rig, flame_model, flame_embedding)
    source = open_frames(paths if len(paths) > 1 else paths[0])
    tracking = track_source(source, face=face, rig=r, quiet=quiet)
    indices = _select_frames(tracking, PRESETS[preset].max_frames)
    wanted = set(indices)
    images = {f.index: f.rgb for f in source if f.index in wanted}
    missing = wanted - set(images)
    if missing:
        raise HeadsplatError(f"{source.path}: could not decode frame(s) {sorted(missing)}")
    return create_from_tracking([images[i] for i in indices], indices, tracking, out, r, preset, seed, quiet,
                                 {"inputs": [str(p) for p in paths], "face": face}, device)
