"""``headsplat animate``, ``render`` and ``export``: an avatar driven, turned or written as Gaussians."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from headsplat.api.common import check_output, load_checked
from headsplat.avatar.animate import driver_motion, straight_rgb8
from headsplat.avatar.composite import PasteBack
from headsplat.core.errors import HeadsplatError, OutputError
from headsplat.core.fileio import check_writable
from headsplat.media.frames import FrameSource, open_frames
from headsplat.media.video import VideoWriter
from headsplat.track.tracker import refit_tracking, track_source
from headsplat.track.tracking import Tracking

# --- avatars ---------------------------------------------------------------------------------------------------

BACKGROUNDS = ("source", "white", "black", "transparent")
FRAMINGS = ("avatar", "driver")


def _cover(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` scaled to cover (width, height) and cropped at its centre."""
    h, w = img.shape[:2]
    s = max(size[0] / w, size[1] / h)
    big = cv2.resize(img, (max(size[0], round(w * s)), max(size[1], round(h * s))),
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y0, x0 = (big.shape[0] - size[1]) // 2, (big.shape[1] - size[0]) // 2
    return np.ascontiguousarray(big[y0:y0 + size[1], x0:x0 + size[0]])


def background_image(avatar, rig, background: str, size: tuple[int, int]) -> np.ndarray | None:
    """The (height, width, 3) uint8 background of ``background`` at ``size``; None for transparent.
    ``source``: the avatar's photo with its person's head removed (:func:`background_plate`), so a turning
    head never shows a second, ghost head behind it."""
    if background == "source":
        from headsplat.avatar.composite import background_plate

        return _cover(background_plate(avatar, rig), size)
    if background == "white":
        return np.full((size[1], size[0], 3), 255, np.uint8)
    if background == "black":
        return np.zeros((size[1], size[0], 3), np.uint8)
    return None


def _check_animation_output(output, background: str) -> Path:
    out = Path(output)
    if background not in BACKGROUNDS:
        raise HeadsplatError(f"unknown background {background!r}; choose {', '.join(BACKGROUNDS)}")
    if out.suffix.lower() == ".mp4":
        if background == "transparent":
            raise HeadsplatError(f"{out}: a transparent background needs PNG output: give a folder path")
        check_writable(out)
    elif out.suffix:
        raise OutputError(f"{out}: the output must end in .mp4, or be a folder for PNG frames")
    else:
        check_writable(out)
    return out


def _frame_sink(out: Path, fps: float):
    """(write(rgba_or_rgb uint8), close/abort) for an mp4 or a folder of PNGs, both atomic."""
    import contextlib

    from headsplat.core.fileio import atomic_dir
    from headsplat.media.image import write_png

    @contextlib.contextmanager
    def sink():
        if out.suffix:
            with VideoWriter(out, fps=fps) as w:
                yield w.write
        else:
            with atomic_dir(out) as d:
                count = [0]

                def write(img):
                    write_png(d / f"{count[0]:05d}.png", img)
                    count[0] += 1
                yield write
    return sink()


def compose(rgb: torch.Tensor, alpha: torch.Tensor, bg: np.ndarray | None) -> np.ndarray:
    rgb8 = (rgb.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    a = alpha.clamp(0, 1).cpu().numpy()
    if bg is None:  # transparent: premultiplied render -> straight RGBA
        return np.concatenate([straight_rgb8(rgb, alpha.clamp(0, 1)), (a * 255 + 0.5).astype(np.uint8)], -1)
    return (rgb8 + (1 - a) * bg + 0.5).clip(0, 255).astype(np.uint8)


def write_animation(avatar, rig, motion, output: Path, fps: float, background: str, quiet: bool,
                    size: int | None = None, camera=None) -> None:
    """Render ``motion`` through ``camera`` (default: the avatar's reference framing, at ``size`` px if given)
    over ``background``."""
    from headsplat.avatar.animate import render_avatar_frame

    cam = camera or avatar.camera
    w = size or cam.width
    h = size or cam.height
    bg = background_image(avatar, rig, background, (w, h))
    with _frame_sink(output, fps) as write:
        for t in tqdm(range(len(motion)), desc="rendering", unit="frame", disable=quiet, leave=False):
            out = render_avatar_frame(avatar, rig, motion, t, cam, width=w, height=h)
            write(compose(out.rgb, out.alpha, bg))


def driver_tracking(driver, face: int, quiet: bool, rig) -> tuple[Tracking, FrameSource | None]:
    """The driver tracked with the avatar's rig: a video or images are tracked; a ``.track`` of another rig
    (or of an older open rig) is re-fitted from its stored landmarks."""
    p = Path(driver)
    if p.suffix.lower() in (".track", ".npz"):
        tracking = Tracking.load(p)
        if not tracking.found.any():
            from headsplat.core.errors import NoFaceError
            raise NoFaceError(f"{p}: the driver has no face in any frame")
        if tracking.rig != rig.kind or tuple(tracking.expression_names) != tuple(rig.expression_names):
            # another rig, or an older version of this one (another expression set): fit again from the
            # stored landmarks
            tracking = refit_tracking(tracking, rig, quiet=quiet, path=p)
        return tracking, None
    source = open_frames(p)
    return track_source(source, face=face, rig=rig, quiet=quiet), source


def animate(avatar: str | os.PathLike, driver: str | os.PathLike, output: str | os.PathLike,
            pose: str = "relative", expression_scale: float = 1.0, background: str = "source",
            paste_back: bool = False, face: int = 0, quiet: bool = False, framing: str = "avatar",
            flame_model: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
            device: str = "cpu", refiner: bool = True, max_frames: int | None = None) -> dict:
    """Drive an avatar with a video, an image, a folder of images or a ``.track`` file.

    Args:
        avatar: the ``.avatar`` folder.
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
        weights, device, refiner, max_frames: for avatars made with ``--method gagavatar`` (see
            :func:`headsplat.api.learned.animate_gagavatar`); they render in the driver's head crop on black,
            so ``pose``, ``background``, ``paste_back`` and ``framing`` keep their defaults there.

    Returns:
        ``frames`` written, ``fps``, ``output``, ``shots`` found in the driver.
    """
    from headsplat.avatar.animate import POSE_MODES
    from headsplat.avatar.gagavatar import avatar_method

    if avatar_method(avatar) == "gagavatar":
        if pose != "relative" or background != "source" or paste_back or framing != "avatar" or \
                expression_scale != 1.0:
            raise HeadsplatError(f"{avatar}: a GAGAvatar avatar follows the driver's own pose and expression in its "
                                 "head crop, on black; drop --pose, --expression-scale, --background, "
                                 "--paste-back and --framing")
        from headsplat.api.learned import animate_gagavatar

        return animate_gagavatar(avatar, driver, output, weights, device, refiner, max_frames, face, quiet,
                                 flame_model)
    if max_frames is not None or not refiner or weights is not None:
        raise HeadsplatError("--max-frames, --no-refiner and --weights apply to avatars made with --method "
                             "gagavatar")

    if pose not in POSE_MODES:
        raise HeadsplatError(f"unknown pose mode {pose!r}; choose {', '.join(POSE_MODES)}")
    if framing not in FRAMINGS:
        raise HeadsplatError(f"unknown framing {framing!r}; choose {' or '.join(FRAMINGS)}")
    out = _check_animation_output(output, background)
    av, rig = load_checked(avatar, flame_model)
    tracking, source = driver_tracking(driver, face, quiet, rig)
    if paste_back and source is None:
        raise HeadsplatError(f"{driver}: --paste-back needs the driver's frames: pass the video or images, "
                             "not a .track file")
    motion = driver_motion(av, tracking, "absolute" if paste_back else pose, expression_scale)
    if paste_back:
        _write_paste_back(av, rig, motion, tracking, source, out, quiet)
    elif framing == "driver":
        # The head where the driver's is, as large: the driver's camera and head position.
        motion = replace(motion, translation=torch.from_numpy(tracking.translation).float())
        write_animation(av, rig, motion, out, tracking.fps, background, quiet, camera=tracking.camera())
    else:
        write_animation(av, rig, motion, out, tracking.fps, background, quiet)
    return {"frames": len(motion), "fps": tracking.fps, "output": out, "shots": tracking.n_shots}


def _write_paste_back(avatar, rig, motion, tracking: Tracking, source: FrameSource, out: Path, quiet: bool) -> None:
    with _frame_sink(out, tracking.fps) as write, PasteBack(avatar, rig, tracking) as paste:
        for frame in tqdm(source, total=len(tracking), desc="rendering", unit="frame", disable=quiet, leave=False):
            t = min(frame.index, len(tracking) - 1)
            write(paste(motion, t, frame.rgb))


def render(avatar: str | os.PathLike, output: str | os.PathLike, orbit: bool = True, frames: int = 90,
           size: int = 512, yaw: float = 0.0, pitch: float = 0.0, background: str = "white",
           fps: float = 30.0, quiet: bool = False, flame_model: str | os.PathLike | None = None,
           weights: str | os.PathLike | None = None, device: str = "cpu", refiner: bool = True) -> Path:
    """Turntable video (``orbit``) or a still from a given yaw/pitch (degrees, a .png output). ``weights``,
    ``device``, ``refiner``: for avatars made with ``--method gagavatar`` (rendered on black)."""
    from headsplat.avatar.animate import (
        orbit_motion,
        render_avatar_frame,
        turned_motion,
    )
    from headsplat.avatar.gagavatar import avatar_method
    from headsplat.media.image import write_png

    if avatar_method(avatar) == "gagavatar":
        from headsplat.api.learned import render_gagavatar

        return render_gagavatar(avatar, output, orbit and Path(output).suffix.lower() != ".png", frames, size, yaw,
                                pitch, fps, weights, device, refiner, quiet, flame_model)
    if not refiner or weights is not None:
        raise HeadsplatError("--no-refiner and --weights apply to avatars made with --method gagavatar")

    av, rig = load_checked(avatar, flame_model)
    out = Path(output)
    if orbit and out.suffix.lower() != ".png":
        out = _check_animation_output(out, background)
        write_animation(av, rig, orbit_motion(av, frames), out, fps, background, quiet, size=size)
        return out
    out = check_output(out, (".png",), "a still")
    motion = turned_motion(av, torch.tensor([math.radians(yaw)]), torch.tensor([math.radians(pitch)]))
    r = render_avatar_frame(av, rig, motion, 0, av.camera, width=size, height=size)
    write_png(out, compose(r.rgb, r.alpha, background_image(av, rig, background, (size, size))))
    return out


def export(avatar: str | os.PathLike, ply: str | os.PathLike | None = None, driver: str | os.PathLike | None = None,
           frame: int = 0, ply_sequence: str | os.PathLike | None = None, face: int = 0, quiet: bool = False,
           flame_model: str | os.PathLike | None = None) -> list:
    """Posed Gaussians in the standard 3DGS PLY layout: the reference frame, frame ``frame`` of a driver,
    or (``ply_sequence``) every frame of a driver into a folder. Returns the paths written."""
    from headsplat.avatar.animate import retarget
    from headsplat.avatar.avatar import pose_avatar
    from headsplat.core.fileio import atomic_dir
    from headsplat.splat.ply import write_ply

    if (ply is None) == (ply_sequence is None):
        raise HeadsplatError("export: give exactly one of --ply FILE or --ply-sequence DIR")
    if ply_sequence is not None and driver is None:
        raise HeadsplatError("export: --ply-sequence needs --driver")
    av, rig = load_checked(avatar, flame_model)
    if driver is not None:
        tracking, _ = driver_tracking(driver, face, quiet, rig)
        motion = driver_motion(av, tracking)
    else:
        motion = retarget(av, av.expression[None], av.rotation[None], av.translation[None], pose="none")
    if ply is not None:
        out = check_output(ply, (".ply",), "the PLY export")
        if not 0 <= frame < len(motion):
            raise HeadsplatError(f"--frame {frame} is out of range: the driver has {len(motion)} frames")
        with torch.no_grad():
            write_ply(out, pose_avatar(av, rig, **motion.frame(frame)))
        return [out]
    folder = Path(ply_sequence)
    written = []
    with atomic_dir(folder) as d:
        for t in tqdm(range(len(motion)), desc="exporting", unit="frame", disable=quiet, leave=False):
            with torch.no_grad():
                write_ply(d / f"{t:05d}.ply", pose_avatar(av, rig, **motion.frame(t)))
            written.append(folder / f"{t:05d}.ply")
    return written
