"""``headsplat eval``: self- and cross-reenactment reports (:mod:`headsplat.eval.run`)."""

from __future__ import annotations

import os

from headsplat.api.common import as_paths
from headsplat.avatar.methods import get_method
from headsplat.eval import run


def eval_reenact(video: str | os.PathLike | None, output_dir: str | os.PathLike, source_frames=(0,),
                 avatar_from=None, rig: str = "open", preset: str = "fast", max_frames: int | None = None,
                 seed: int = 0, face: int = 0, device: str = "cpu", quiet: bool = False,
                 flame_model: str | os.PathLike | None = None, flame_embedding: str | os.PathLike | None = None,
                 train: tuple[int, int] | str | None = None, train_frames: int | None = None,
                 method: str = "headsplat", weights: str | os.PathLike | None = None, **options) -> dict:
    """Self-reenactment (``headsplat eval reenact``): build the avatar from frame(s) of ``video`` (or from
    ``avatar_from``), drive it with the same video using paste-back, and compare every other frame with the
    real one, beside two baselines (the source frame unchanged; a 2D warp of the source face).

    Args:
        video: a video or a folder of frames; None: the built-in sample (the built-in portrait re-posed through
            its fitted rig with the demo's performance, 120 frames at 25 fps, 512 px).
        output_dir: the report folder (report.json, report.md, plot.png, side_by_side.mp4, output.mp4, and the
            avatar that was built); written atomically.
        source_frames: the frame(s) the avatar is made from (excluded from the figures).
        avatar_from: a photo, several photos or a ``.avatar`` to use instead of the video's frames.
        train: ``(A, B)`` or ``"A:B"``: the protocol of per-subject video avatars: the avatar is built from
            frames A..B-1 (up to ``train_frames`` of them, chosen to cover their poses and expressions) and
            evaluated on the other frames, beside the one-shot avatar from frame A (row "one-shot (frame A)").
        rig, preset, seed, device, flame_model, flame_embedding: as for :func:`create`.
        max_frames: evaluate at most this many frames.
        method, weights: the avatar method (``"gagavatar"``: the GAGAvatar avatar of the one source frame,
            rendered in each frame's head crop and pasted back; its row keeps the name "headsplat" and
            ``settings.method`` says which method made it). options: other registered methods' options.

    Returns:
        the report (what report.json holds).
    """
    cls = get_method(method)
    opts = cls.accept("reenact", dict(rig=rig, preset=preset, seed=seed, device=device, flame_model=flame_model,
                                      flame_embedding=flame_embedding, avatar_from=avatar_from, train=train,
                                      train_frames=train_frames, weights=weights, **options))
    return run.reenact(cls, video, output_dir, list(source_frames), max_frames, face, quiet, opts)


def eval_cross(source, driver: str | os.PathLike, output_dir: str | os.PathLike, rig: str = "open",
               preset: str = "fast", max_frames: int | None = None, seed: int = 0, face: int = 0,
               device: str = "cpu", quiet: bool = False, flame_model: str | os.PathLike | None = None,
               flame_embedding: str | os.PathLike | None = None, method: str = "headsplat",
               weights: str | os.PathLike | None = None, **options) -> dict:
    """Cross-reenactment (``headsplat eval cross``): an avatar of ``source`` (a photo or photos, or a
    ``.avatar``) driven by another person's ``driver`` video (relative pose, in the avatar's framing); measures
    identity against the source and how closely expression and pose follow the driver. ``method="gagavatar"``:
    a GAGAvatar avatar (of one photo, or a GAGAvatar ``.avatar``) in the driver's head crop, absolute pose.

    Returns:
        the report (what report.json holds).
    """
    cls = get_method(method)
    opts = cls.accept("cross", dict(rig=rig, preset=preset, seed=seed, device=device, flame_model=flame_model,
                                    flame_embedding=flame_embedding, weights=weights, **options))
    return run.cross(cls, as_paths(source), driver, output_dir, max_frames, face, quiet, opts)
