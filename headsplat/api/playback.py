"""``headsplat animate``, ``render`` and ``export``: an avatar driven, turned or written as Gaussians."""

from __future__ import annotations

import os
from pathlib import Path

from headsplat.api.common import check_output
from headsplat.avatar.animate import driver_motion, retarget
from headsplat.avatar.backgrounds import BACKGROUNDS
from headsplat.avatar.export import export_frame, export_sequence
from headsplat.avatar.methods import load_avatar
from headsplat.core.errors import HeadsplatError
from headsplat.media.image import write_png
from headsplat.media.sink import check_frames_output, write_frames

__all__ = ["BACKGROUNDS", "animate", "export", "render"]


def animate(avatar: str | os.PathLike, driver: str | os.PathLike, output: str | os.PathLike,
            pose: str = "relative", expression_scale: float = 1.0, background: str = "source",
            paste_back: bool = False, face: int = 0, quiet: bool = False, framing: str = "avatar",
            flame_model: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
            device: str = "cpu", refiner: bool = True, max_frames: int | None = None, **options) -> dict:
    """Drive an avatar with a video, an image, a folder of images or a ``.track`` file.

    Args:
        avatar: the ``.avatar`` folder (its method, from ``avatar.json``, does the work).
        driver: what drives it; it is tracked (a ``.track`` is used as is). Cuts in it are found and motion is
            re-anchored at each (see :func:`headsplat.avatar.animate.retarget`).
        output: ``.mp4``, or a folder for PNG frames.
        pose: ``relative`` (default), ``absolute`` or ``none`` (head rotation and, in the avatar's framing,
            position); paste-back always uses the driver's pose.
        expression_scale: multiplies the driver's expression change.
        background: ``source`` (the avatar's photo with its person removed), ``white``, ``black`` or
            ``transparent`` (PNG folder only).
        paste_back: render in each driver frame's own camera and composite the head over the driver frame.
        face: which face of the driver when there are several.
        framing: ``avatar`` (default: the avatar photo's framing, the head's position bounded and smoothed) or
            ``driver`` (the driver's frame size, with the head where the driver's is and as large).
        flame_model: for a FLAME avatar, its FLAME file (default: the configured one).
        weights, device, refiner, max_frames: for avatars made with ``--method gagavatar``; they render in the
            driver's head crop on black, so ``pose``, ``background``, ``paste_back`` and ``framing`` are not
            theirs.
        options: options of other registered methods.

    Returns:
        ``frames`` written, ``fps``, ``output``, ``shots`` found in the driver, and the method's own figures.

    Raises:
        ArgumentError: an option the avatar's method does not take (named).
    """
    loaded, opts = load_avatar(avatar, "animate", dict(
        pose=pose, expression_scale=expression_scale, background=background, paste_back=paste_back,
        framing=framing, flame_model=flame_model, weights=weights, device=device, refiner=refiner,
        max_frames=max_frames, **options))
    out = check_frames_output(output, transparent=opts.get("background") == "transparent")
    tracking, source = loaded.track_driver(Path(driver), face, quiet, opts)
    anim = loaded.animation(tracking, source, quiet, opts)
    write_frames(out, anim.fps, anim.frames)
    return {"frames": anim.n_frames, "fps": anim.fps, "output": out, "shots": anim.shots, **anim.info}


def render(avatar: str | os.PathLike, output: str | os.PathLike, orbit: bool = True, frames: int = 90,
           size: int = 512, yaw: float = 0.0, pitch: float = 0.0, background: str = "white",
           fps: float = 30.0, quiet: bool = False, flame_model: str | os.PathLike | None = None,
           weights: str | os.PathLike | None = None, device: str = "cpu", refiner: bool = True, **options) -> Path:
    """Turntable video (``orbit``: one turn in ``frames`` frames, tilted by ``pitch``) or a still from a given
    yaw/pitch (degrees, a .png output). ``weights``, ``device``, ``refiner``: for avatars made with
    ``--method gagavatar`` (rendered on black); ``options``: other registered methods'."""
    loaded, opts = load_avatar(avatar, "render", dict(background=background, flame_model=flame_model,
                                                      weights=weights, device=device, refiner=refiner, **options))
    out = Path(output)
    if orbit and out.suffix.lower() != ".png":
        out = check_frames_output(out, transparent=opts.get("background") == "transparent")
        write_frames(out, fps, loaded.turntable(frames, pitch, size, quiet, opts))
        return out
    out = check_output(out, (".png",), "a still")
    write_png(out, loaded.still(yaw, pitch, size, opts))
    return out


def export(avatar: str | os.PathLike, ply: str | os.PathLike | None = None, driver: str | os.PathLike | None = None,
           frame: int = 0, ply_sequence: str | os.PathLike | None = None, face: int = 0, quiet: bool = False,
           flame_model: str | os.PathLike | None = None, **options) -> list:
    """Posed Gaussians in the standard 3DGS PLY layout: the reference frame, frame ``frame`` of a driver,
    or (``ply_sequence``) every frame of a driver into a folder. Returns the paths written."""
    if (ply is None) == (ply_sequence is None):
        raise HeadsplatError("export: give exactly one of --ply FILE or --ply-sequence DIR")
    if ply_sequence is not None and driver is None:
        raise HeadsplatError("export: --ply-sequence needs --driver")
    loaded, opts = load_avatar(avatar, "export", dict(flame_model=flame_model, **options))
    av, rig = loaded.posable()
    if driver is not None:
        tracking, _ = loaded.track_driver(Path(driver), face, quiet, opts)
        motion = driver_motion(av, tracking)
    else:
        motion = retarget(av, av.expression[None], av.rotation[None], av.translation[None], pose="none")
    if ply is not None:
        return [export_frame(av, rig, motion, frame, check_output(ply, (".ply",), "the PLY export"))]
    return export_sequence(av, rig, motion, Path(ply_sequence), quiet)
