"""``headsplat generate``: views of a person made by a generator (:mod:`headsplat.avatar.generators`: ``oracle``,
``gagavatar``, ``cap4d``, or any registered one), written as a view set for ``create --views``."""

from __future__ import annotations

import os
from pathlib import Path

from headsplat.api.common import as_paths
from headsplat.avatar.generators import PITCHES, YAWS, get_generator
from headsplat.core.errors import ArgumentError, OutputError
from headsplat.core.fileio import check_writable


def generate(source=None, output: str | os.PathLike | None = None, model: str = "oracle", yaws=YAWS.default,
             pitches=PITCHES.default, size: int | None = None, quiet: bool = False,
             flame_model: str | os.PathLike | None = None,
             weights: str | os.PathLike | None = None, device: str = "cpu", face: int = 0, assets=None,
             preset: str | None = None, dtype: str | None = None, n_views: int | None = None,
             steps: int | None = None, seed: int | None = None, count: int = 1,
             motion_weights: str | os.PathLike | None = None, neural_resolution: int = 128,
             driver: str | os.PathLike | None = None, driver_frames: int = 4,
             labels: str | os.PathLike | None = None, identity_seed: int | None = None, **options) -> Path:
    """Write a view set of ``source`` made by ``model``.

    Args:
        source: for ``oracle``, the known ``.avatar``; for ``gagavatar`` and ``portrait4d``, a photo (or an
            ``.avatar`` of that method); for ``cap4d``, one or more photos (a path or a list); ``omniavatar``
            takes none (None).
        output: the view set folder to write (replaced when it is one); required.
        model: the generator.
        yaws, pitches: head angles in degrees (every combination, with each of the oracle's expressions:
            neutral, jaw open, smile, blink, brows up).
        size: side of the views in pixels (default: the avatar's framing; GAGAvatar: 512).
        weights, device, face: for the learned generators.
        assets, preset, dtype, n_views, steps, seed: for ``cap4d`` only (see
            :func:`headsplat.avatar.generators.cap4d.generate_cap4d`; None: its defaults); ``size`` is not (its
            views are the model's resolution). count, labels, identity_seed: for ``omniavatar``, how many view
            sets (``seed`` seeds them), the label pool their shapes and expressions are drawn from, and one
            identity for all of them (``flame_model``: the FLAME the views are labelled in).
            motion_weights, neural_resolution, driver, driver_frames: for ``portrait4d`` (PD-FGC's
            motion_model.pth; the volume render's side; a video or image folder whose first ``driver_frames``
            frames' expressions every camera sees). options: other registered generators' options.

    Returns:
        the folder.

    Raises:
        ArgumentError: an option the generator does not take (named).
    """
    cls = get_generator(model)
    opts = cls.accept(dict(yaws=tuple(yaws), pitches=tuple(pitches), size=size, flame_model=flame_model,
                           weights=weights, device=device, assets=assets, preset=preset, dtype=dtype,
                           n_views=n_views, steps=steps, seed=seed, count=count,
                           motion_weights=motion_weights, neural_resolution=neural_resolution, driver=driver,
                           driver_frames=driver_frames, labels=labels, identity_seed=identity_seed, **options))
    if output is None:
        raise ArgumentError("output", "the view set folder to write is required")
    out = Path(output)
    if out.suffix:
        raise OutputError(f"{out}: a view set is a folder; give a path without a suffix")
    if out.exists() and not (out / "views.json").is_file():
        raise OutputError(f"{out}: exists and is not a view set (no views.json); choose another name")
    check_writable(out)
    sources = as_paths(source)
    cls.check_sources(sources)
    return cls.generate(sources, out, face, quiet, opts)
