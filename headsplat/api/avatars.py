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


def create_from_arrays(images: list[np.ndarray], output: Path, rig: OpenRig, preset: str, seed: int,
                        quiet: bool, provenance: dict, device: str = "cpu"):
    tracking = track_arrays(images, rig, quiet)
    return create_from_tracking(images, list(range(len(images))), tracking, output, rig, preset, seed, quiet,
                                 provenance, device)


def create_from_tracking(images, indices, tracking, output, rig, preset, seed, quiet, provenance, device="cpu",
                         views=None, views_share: float = 0.5):
    """Fit and save an avatar; ``images`` may be an iterable yielding the frames of ``indices`` in order."""
    from headsplat.avatar.animate import render_avatar_frame, retarget
    from headsplat.avatar.avatar import save_avatar
    from headsplat.avatar.create import PRESETS, create_avatar

    if preset not in PRESETS:
        raise HeadsplatError(f"unknown preset {preset!r}; choose {' or '.join(PRESETS)}")
    avatar = create_avatar(images, indices, tracking, rig, PRESETS[preset], seed=seed, quiet=quiet,
                           provenance={**provenance, "preset": preset}, device=check_device(device), views=views,
                           views_share=views_share)
    still = retarget(avatar, avatar.expression[None], avatar.rotation[None], avatar.translation[None], pose="none")
    preview = render_avatar_frame(avatar, rig, still, 0, avatar.camera, background=1.0).rgb
    save_avatar(avatar, output, preview=preview.cpu())
    return avatar


def stream_frames(source, indices: list[int]):
    """The frames ``indices`` (increasing) of a frame source, decoded one at a time; raises when one cannot be
    decoded."""
    if list(indices) != sorted(indices):
        raise ValueError("stream_frames: indices must increase")
    wanted, got = set(indices), set()
    for f in source:
        if f.index in wanted:
            got.add(f.index)
            yield f.rgb
            if len(got) == len(wanted):
                return
    raise HeadsplatError(f"{source.path}: could not decode frame(s) {sorted(wanted - got)}")


def create(inputs, output: str | os.PathLike, rig: str = "open", preset: str = "fast", device: str = "cpu",
           seed: int = 0, face: int = 0, quiet: bool = False, flame_model: str | os.PathLike | None = None,
           flame_embedding: str | os.PathLike | None = None, max_frames: int | None = None,
           views: str | os.PathLike | None = None, views_share: float = 0.5, method: str = "headsplat",
           weights: str | os.PathLike | None = None):
    """Create an avatar from one photo, several photos of one person (same size), or a video, optionally with a
    generator's views of the person.

    Args:
        inputs: a path or a list of paths.
        output: the ``.avatar`` folder to write.
        rig: ``"open"`` (default) or ``"flame"`` (the user's FLAME file: ``flame_model``,
            ``$HEADSPLAT_FLAME_MODEL`` or the per-user config; ``flame_embedding`` overrides its landmarks).
        preset: ``"fast"`` (default) or ``"quality"``.
        device: ``"cpu"`` or ``"cuda"``.
        seed: the same seed gives the same avatar on the same machine.
        face: which face when there are several (0: the largest).
        max_frames: the most frames of a video or photo set used (default: the preset's, 60); they are chosen
            to cover the head poses and expressions (:mod:`headsplat.avatar.frames`).
        views: a view set folder (:mod:`headsplat.avatar.viewset`) whose views are fitted as well.
        views_share: the share of the fitting steps spent on the generated views, in (0, 1) (the real frames
            share the rest: with more views than real frames, each real frame counts more than each view).
        method: ``"headsplat"`` (default: Gaussians fitted to the input, real-time) or ``"gagavatar"`` (the
            released GAGAvatar network from ``weights``, one photo, FLAME; see
            :func:`headsplat.api.learned.create_gagavatar`).

    Returns:
        the :class:`~headsplat.avatar.avatar.Avatar`.
    """
    from headsplat.avatar.create import PRESETS
    from headsplat.avatar.frames import select_frames
    from headsplat.avatar.viewset import read_view_set

    if method == "gagavatar":
        if views is not None or max_frames is not None:
            raise HeadsplatError("--method gagavatar makes its avatar from one photo; drop --views and --max-frames")
        from headsplat.api.learned import create_gagavatar

        return create_gagavatar(inputs, output, weights, device, face, quiet, flame_model, flame_embedding)
    if method != "headsplat":
        raise HeadsplatError(f"unknown method {method!r}; choose headsplat or gagavatar")
    if weights is not None:
        raise HeadsplatError("--weights applies to --method gagavatar")
    check_device(device)
    if preset not in PRESETS:
        raise HeadsplatError(f"unknown preset {preset!r}; choose {' or '.join(PRESETS)}")
    if max_frames is not None and max_frames < 1:
        raise HeadsplatError(f"--max-frames must be at least 1, got {max_frames}")
    if not 0 < views_share < 1:
        raise HeadsplatError(f"--views-share must be between 0 and 1, got {views_share}")
    out = check_output(output, (".avatar",), "an avatar", replaces="avatar.json")
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    r = make_rig(rig, flame_model, flame_embedding)
    view_set = read_view_set(views) if views is not None else None
    if view_set is not None:
        from headsplat.avatar.create import check_views
        check_views(view_set, r)
    source = open_frames(paths if len(paths) > 1 else paths[0])
    tracking = track_source(source, face=face, rig=r, quiet=quiet)
    indices = select_frames(tracking, max_frames or PRESETS[preset].max_frames)
    provenance = {"inputs": [str(p) for p in paths], "face": face}
    return create_from_tracking(stream_frames(source, indices), indices, tracking, out, r, preset, seed, quiet,
                                 provenance, device, views=view_set, views_share=views_share)
