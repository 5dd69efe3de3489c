"""``headsplat generate``: views of a person made by a generator, written as a view set for ``create --views``.

Generators: ``oracle`` (renders of a known avatar at many head poses and expressions; the truth for tests and
benchmarks of many-view fitting), ``gagavatar`` (:mod:`headsplat.api.learned`) and ``cap4d``
(:mod:`headsplat.api.cap4d`), all writing the same format.
"""

from __future__ import annotations

import os
from pathlib import Path

from headsplat.api.common import load_checked
from headsplat.core.errors import HeadsplatError, OutputError
from headsplat.core.fileio import check_writable

MODELS = ("oracle", "gagavatar", "cap4d")


def generate(source, output: str | os.PathLike, model: str = "oracle",
             yaws=(-60, -45, -30, -15, 0, 15, 30, 45, 60), pitches=(-20, 0, 20), size: int | None = None,
             quiet: bool = False, flame_model: str | os.PathLike | None = None,
             weights: str | os.PathLike | None = None, device: str = "cpu", face: int = 0, assets=None,
             preset: str | None = None, dtype: str | None = None, n_views: int | None = None,
             steps: int | None = None, seed: int | None = None) -> Path:
    """Write a view set of ``source`` made by ``model``.

    Args:
        source: for ``oracle``, the known ``.avatar``; for ``gagavatar``, a photo (or a GAGAvatar ``.avatar``);
            for ``cap4d``, one or more photos (a path or a list).
        output: the view set folder to write (replaced when it is one).
        model: the generator.
        yaws, pitches: head angles in degrees (every combination, with each of the oracle's expressions:
            neutral, jaw open, smile, blink, brows up).
        size: side of the views in pixels (default: the avatar's framing; GAGAvatar: 512).
        weights, device, face: for the learned generators.
        assets, preset, dtype, n_views, steps, seed: for ``cap4d`` only (see
            :func:`headsplat.api.cap4d.generate_cap4d`; None: its defaults); ``size`` is not (its views are
            the model's resolution).

    Returns:
        the folder.
    """
    from headsplat.avatar.oracle import oracle_views
    from headsplat.avatar.viewset import write_view_set

    if model not in MODELS:
        raise HeadsplatError(f"unknown generator {model!r}; available: {', '.join(MODELS)}")
    out = Path(output)
    if out.suffix:
        raise OutputError(f"{out}: a view set is a folder; give a path without a suffix")
    if out.exists() and not (out / "views.json").is_file():
        raise OutputError(f"{out}: exists and is not a view set (no views.json); choose another name")
    check_writable(out)
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    cap4d_only = {"--cap4d-assets": assets, "--preset": preset, "--dtype": dtype, "--views": n_views,
                  "--steps": steps, "--seed": seed}
    if model == "cap4d":
        from headsplat.api.cap4d import SEED, generate_cap4d

        if size is not None:
            raise HeadsplatError("--size: CAP4D's views are the model's resolution (512); resize them afterwards")
        return generate_cap4d(sources, out, weights, flame_model, assets, preset or "debug", device, dtype or "fp32",
                              SEED if seed is None else seed, face, quiet, n_views, steps)
    given = [flag for flag, value in cap4d_only.items() if value is not None]
    if given:
        raise HeadsplatError(f"{', '.join(given)}: only for --model cap4d")
    if len(sources) != 1:
        raise HeadsplatError(f"the {model} generator takes one source, got {len(sources)}")
    source = sources[0]
    if model == "gagavatar":
        from headsplat.api.learned import generate_gagavatar

        return generate_gagavatar(source, out, tuple(yaws), tuple(pitches), weights, device, face, quiet,
                                  flame_model, size)
    if Path(source).suffix.lower() != ".avatar":
        raise HeadsplatError(f"{source}: the oracle generator renders a known avatar; give a .avatar folder")
    avatar, rig = load_checked(source, flame_model)
    images, tracking = oracle_views(avatar, rig, yaws, pitches, size=size)
    return write_view_set(out, images, tracking, ["generated"] * len(images),
                          {"name": "oracle", "avatar": str(source), "yaws": list(yaws), "pitches": list(pitches)})
