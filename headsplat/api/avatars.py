"""``headsplat create`` and ``headsplat demo``: avatars from photos or a video."""

from __future__ import annotations

import os

from headsplat.api.common import as_paths, check_output
from headsplat.avatar.demo import run_demo
from headsplat.avatar.methods import get_method
from headsplat.avatar.methods.fitted import PRESET
from headsplat.core.errors import InputError


def demo(output_dir: str | os.PathLike = "headsplat-demo", quiet: bool = False, preset: str = "fast",
         n_frames: int = 120) -> dict:
    """The whole job on the built-in sample: create an avatar from the built-in portrait and animate it with
    a procedural performance (talking, smile, blinks, brows, head turns).

    Returns:
        ``avatar`` and ``video`` paths, ``frames`` written, and the creation ``info``.
    """
    return run_demo(output_dir, quiet, PRESET.check(preset), n_frames)


def create(inputs, output: str | os.PathLike, rig: str = "open", preset: str = "fast", device: str = "cpu",
           seed: int = 0, face: int = 0, quiet: bool = False, flame_model: str | os.PathLike | None = None,
           flame_embedding: str | os.PathLike | None = None, max_frames: int | None = None,
           views: str | os.PathLike | None = None, views_share: float = 0.5, method: str = "headsplat",
           weights: str | os.PathLike | None = None, fov: float | None = None, **options):
    """Create an avatar from one photo, several photos of one person (same size), or a video, optionally with a
    generator's views of the person (or from those views alone).

    Args:
        inputs: a path or a list of paths; None or [] with ``views``: the view set alone.
        output: the ``.avatar`` folder to write.
        rig: ``"open"`` (default) or ``"flame"`` (the user's FLAME file: ``flame_model``,
            ``$HEADSPLAT_FLAME_MODEL`` or the per-user config; ``flame_embedding`` overrides its landmarks).
        preset: ``"fast"`` (default) or ``"quality"``.
        device: ``"cpu"`` or ``"cuda"``.
        seed: the same seed gives the same avatar on the same machine.
        face: which face when there are several (0: the largest).
        max_frames: the most frames of a video or photo set used (default: the preset's, 60); they are chosen
            to cover the head poses and expressions (:mod:`headsplat.avatar.frames`).
        fov: the inputs' horizontal field of view in degrees, for a known camera (default: estimated; the
            ``headsplat`` method).
        views: a view set folder (:mod:`headsplat.avatar.viewset`) whose views are fitted as well.
        views_share: the share of the fitting steps spent on the generated views, in (0, 1) (the real frames
            share the rest: with more views than real frames, each real frame counts more than each view).
        method: the avatar method (:mod:`headsplat.avatar.methods`): ``"headsplat"`` (default: Gaussians fitted
            to the input, real-time), ``"gagavatar"`` (the released GAGAvatar network from ``weights``, one photo,
            FLAME), or any registered one.
        options: options of other registered methods.

    Returns:
        the method's avatar (:class:`~headsplat.avatar.avatar.Avatar` for ``headsplat``), also written to
        ``output``.

    Raises:
        ArgumentError: an option the method does not take (named), or a value outside an option's choices.
    """
    cls = get_method(method)
    opts = cls.accept("create", dict(rig=rig, preset=preset, device=device, seed=seed, flame_model=flame_model,
                                     flame_embedding=flame_embedding, max_frames=max_frames, views=views,
                                     views_share=views_share, weights=weights, fov=fov, **options))
    paths = as_paths(inputs)
    if not paths and views is None:
        raise InputError("create: give a photo, several photos or a video (or a view set alone: --views VIEWS)")
    out = check_output(output, (".avatar",), "an avatar", replaces="avatar.json")
    return cls.create(paths, out, face, quiet, opts)
