"""``headsplat eval``: self- and cross-reenactment reports."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from headsplat.api.avatars import create, create_from_tracking, stream_frames
from headsplat.api.common import check_device, load_checked, sample_portrait
from headsplat.api.face_tracking import render_posed_photo
from headsplat.api.playback import background_image, compose
from headsplat.core.errors import HeadsplatError, OutputError
from headsplat.core.fileio import check_writable
from headsplat.media.frames import open_frames
from headsplat.media.video import VideoWriter
from headsplat.rig.factory import make_rig
from headsplat.track.tracker import track_source


def _eval_environment(encoder) -> dict:
    import sys

    env = {"headsplat": importlib.metadata.version("headsplat"), "python": sys.version.split()[0],
           "torch": torch.__version__, "identity model": f"{encoder.name} (dlib {encoder.version})",
           "machine": platform.machine(), "cpus": os.cpu_count()}
    return env


_EVAL_NOTES = [
    "PSNR/SSIM 'face' are measured inside the convex hull of the tracked rig's landmarks in each ground-truth "
    "frame (the face from brows to chin); 'full' over the whole frame.",
    "Identity: dlib's ResNet face descriptor (face-recognition-models); CSIM is the cosine similarity of those "
    "descriptors and ID dist their Euclidean distance (one person when < 0.6). The papers' CSIM uses ArcFace "
    "embeddings, so the values are not comparable with theirs number for number.",
    "NME: mean landmark distance over the 478 MediaPipe points divided by the inter-ocular distance; AKD the "
    "same in pixels. AED: mean absolute difference of the rig's expression coefficients, tracked on output and "
    "ground truth with the same rig and camera; APD: head-rotation angle between them.",
    "Correlations (Pearson, over the evaluated frames): mouth opening and eye opening (blinks) from landmarks, "
    "yaw and pitch and expression coefficients from the tracked rig; n/a where the reference hardly moves (std of "
    "an opening below 1% of the mouth or eye width, of a head angle below 1 degree, of a coefficient below 0.01).",
    "LPIPS: not computed. Its backbone weights (torchvision's ImageNet AlexNet/VGG) are not shipped with any "
    "package headsplat installs, and nothing is downloaded at run time.",
]


def _eval_checks(preset: str, device: str, output_dir) -> tuple:
    """(identity encoder, report folder) once the model, the preset, the device and the folder are checked."""
    from headsplat.avatar.create import PRESETS
    from headsplat.eval.identity import IdentityEncoder

    encoder = IdentityEncoder()
    if preset not in PRESETS:
        raise HeadsplatError(f"unknown preset {preset!r}; choose {' or '.join(PRESETS)}")
    check_device(device)
    out = Path(output_dir)
    if out.suffix:
        raise OutputError(f"{out}: the report is a folder; give a path without a suffix")
    if not out.is_dir():
        check_writable(out)
    return encoder, out


def _eval_writers(folder: Path, fps: float):
    """(side-by-side writer, output writer) mp4 writers inside the report folder."""
    return VideoWriter(folder / "side_by_side.mp4", fps=fps), VideoWriter(folder / "output.mp4", fps=fps)


def eval_reenact(video: str | os.PathLike, output_dir: str | os.PathLike, source_frames=(0,),
                 avatar_from=None, rig: str = "open", preset: str = "fast", max_frames: int | None = None,
                 seed: int = 0, face: int = 0, device: str = "cpu", quiet: bool = False,
                 flame_model: str | os.PathLike | None = None, flame_embedding: str | os.PathLike | None = None,
                 train: tuple[int, int] | None = None, train_frames: int | None = None, method: str = "headsplat",
                 weights: str | os.PathLike | None = None) -> dict:
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
        train: ``(A, B)``: the protocol of per-subject video avatars: the avatar is built from frames A..B-1
            (up to ``train_frames`` of them, chosen to cover their poses and expressions) and evaluated on the
            other frames, beside the one-shot avatar from frame A (row "one-shot (frame A)").
        rig, preset, seed, device, flame_model, flame_embedding: as for :func:`create`.
        max_frames: evaluate at most this many frames.
        method, weights: ``"gagavatar"``: the GAGAvatar avatar of the (one) source frame, rendered in each
            frame's head crop and pasted back (its row keeps the name "headsplat"; ``settings.method`` says
            which method made it).

    Returns:
        the report (what report.json holds).
    """
    from headsplat.core.errors import InputError
    from headsplat.core.fileio import atomic_dir
    from headsplat.eval.protocol import self_reenactment
    from headsplat.eval.report import heat_map, report_dict, side_by_side, write_report

    encoder, out = _eval_checks(preset, device, output_dir)
    if video is None:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            sample = Path(d) / "sample_talk.mp4"
            render_posed_photo(sample_portrait(), sample, quiet=quiet)
            return eval_reenact(sample, output_dir, source_frames, avatar_from, rig, preset, max_frames, seed,
                                face, device, quiet, flame_model, flame_embedding, train, train_frames, method,
                                weights)
    source = open_frames(video)
    if source.kind == "image":
        raise InputError(f"{video}: self-reenactment needs a video or a folder of frames, not one image")
    src_avatar = Path(avatar_from[0] if isinstance(avatar_from, (list, tuple)) else avatar_from) \
        if avatar_from is not None else None
    av = None
    if method not in ("headsplat", "gagavatar"):
        raise HeadsplatError(f"unknown method {method!r}; choose headsplat or gagavatar")
    if method == "gagavatar":
        if train is not None or avatar_from is not None or len(source_frames) != 1:
            raise HeadsplatError("eval reenact --method gagavatar: the avatar is made from one --source-frame; drop "
                                 "--train and --avatar-from")
        r = make_rig("flame", flame_model, flame_embedding)
    elif src_avatar is not None and src_avatar.suffix.lower() == ".avatar":
        av, r = load_checked(src_avatar, flame_model)
    else:
        r = make_rig(rig, flame_model, flame_embedding)
    t0 = time.perf_counter()
    timing = {}
    if method == "gagavatar":
        from headsplat.avatar.gagavatar import track_for_model

        tracking = track_for_model(source, r, face, quiet)
    else:
        tracking = track_source(source, face=face, rig=r, quiet=quiet)
    timing["track"] = round(time.perf_counter() - t0, 1)
    frames = [int(k) for k in source_frames]
    if train is not None:
        if avatar_from is not None:
            raise HeadsplatError("eval reenact: --train builds the avatar from the video; drop --avatar-from")
        a, b = int(train[0]), int(train[1])
        if not 0 <= a < b <= len(tracking):
            raise HeadsplatError(f"{video}: --train {a}:{b} is not a range of the video's {len(tracking)} frames")
        if not tracking.found[a]:
            raise HeadsplatError(f"{video}: frame {a} (the start of --train) has no face; start elsewhere")
        if b == len(tracking) and a == 0:
            raise HeadsplatError(f"{video}: --train {a}:{b} leaves no frame to evaluate")
        from headsplat.avatar.create import PRESETS
        from headsplat.avatar.frames import select_frames

        frames = select_frames(tracking, train_frames or PRESETS[preset].max_frames, within=range(a, b))
    if avatar_from is None:
        for k in frames:
            if not 0 <= k < len(tracking):
                raise HeadsplatError(f"{video}: --source-frame {k} is outside the video's {len(tracking)} frames")
            if not tracking.found[k]:
                raise HeadsplatError(f"{video}: frame {k} has no face; choose another --source-frame")
    with atomic_dir(out) as tmp:
        t1 = time.perf_counter()
        others, renderers = {}, None
        if method == "gagavatar":
            from headsplat.api.learned import gagavatar_for_eval, self_renderer

            k = frames[0]
            src_img = next(stream_frames(source, [k]))
            av, model, r = gagavatar_for_eval(None, src_img, tracking, k, tmp / "avatar.avatar", weights, device, face,
                                              quiet, flame_model, head=r)
            renderers = {"headsplat": self_renderer(av, model, r, tracking, check_device(device))}
            src_lms = tracking.landmarks[k]
            reference, exclude = k, {k}
        elif train is not None:
            av = create_from_tracking(stream_frames(source, frames), frames, tracking, tmp / "avatar.avatar", r,
                                       preset, seed, quiet, {"inputs": [str(video)], "train": [a, b]}, device)
            src_img = next(stream_frames(source, [a]))
            one_shot = create_from_tracking([src_img], [a], tracking, tmp / "one_shot.avatar", r, preset, seed,
                                            quiet, {"inputs": [str(video)], "frames": [a]}, device)
            others[f"one-shot (frame {a})"] = one_shot
            src_lms = tracking.landmarks[a]
            reference, exclude = a, set(range(a, b))
        elif avatar_from is None:
            wanted = set(frames)
            images = {f.index: f.rgb for f in source if f.index in wanted}
            av = create_from_tracking([images[k] for k in frames], frames, tracking, tmp / "avatar.avatar", r,
                                       preset, seed, quiet, {"inputs": [str(video)], "frames": frames}, device)
            src_img, src_lms = images[frames[0]], tracking.landmarks[frames[0]]
            reference, exclude = frames[0], wanted
        else:
            if av is None:
                av = create(avatar_from, tmp / "avatar.avatar", rig=rig, preset=preset, device=device, seed=seed,
                            quiet=quiet, flame_model=flame_model, flame_embedding=flame_embedding)
            src_img, src_lms = _source_for_baselines(av, source.size)
            reference, exclude = 0, set()
        timing["create"] = round(time.perf_counter() - t1, 1)
        sbs, plain = _eval_writers(tmp, tracking.fps)

        def on_frame(t, gt, img):
            sbs.write(side_by_side([gt, img, heat_map(img, gt)]))
            plain.write(img)

        t2 = time.perf_counter()
        with sbs, plain:
            result = self_reenactment(av, r, tracking, source, reference, src_img, src_lms, exclude, encoder,
                                      max_frames=max_frames, on_frame=on_frame, quiet=quiet, other_avatars=others,
                                      renderers=renderers)
        timing["evaluate"] = round(time.perf_counter() - t2, 1)
        timing["total"] = round(time.perf_counter() - t0, 1)
        made_from = str(avatar_from) if avatar_from else f"frames {frames}"
        if train is not None:
            made_from = f"{len(frames)} of frames {a}..{b - 1} (--train {a}:{b}): {frames}"
        settings = {"video": str(video), "avatar from": made_from, "method": method,
                    "rig": r.kind, "preset": preset, "paste-back": True, "size": f"{source.size[0]}x{source.size[1]}",
                    "fps": round(tracking.fps, 3), "max frames": max_frames, "seed": seed,
                    "side by side": "ground truth | headsplat | mean absolute error (inferno, 0 to 0.25)"}
        report = report_dict(result, settings, _eval_environment(encoder), timing)
        report["notes"] = _EVAL_NOTES
        write_report(report, tmp)
    return report


def _face_points(img: np.ndarray, what: str) -> np.ndarray:
    """(478, 3) landmarks of the face in one (H, W, 3) uint8 image; :class:`NoFaceError` naming ``what``."""
    from headsplat.core.errors import NoFaceError
    from headsplat.face.landmarks import LandmarkDetector

    with LandmarkDetector(mode="image") as det:
        lm = det(img)
    if lm is None:
        raise NoFaceError(f"no face found in {what}")
    return lm.points


def _source_for_baselines(avatar, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The avatar's source image resized to the video's ``size`` and its landmarks, for the baselines."""
    img = cv2.resize(avatar.source, size, interpolation=cv2.INTER_AREA)
    return img, _face_points(img, "the avatar's source image for the baselines")


def eval_cross(source, driver: str | os.PathLike, output_dir: str | os.PathLike, rig: str = "open",
               preset: str = "fast", max_frames: int | None = None, seed: int = 0, face: int = 0,
               device: str = "cpu", quiet: bool = False, flame_model: str | os.PathLike | None = None,
               flame_embedding: str | os.PathLike | None = None, method: str = "headsplat",
               weights: str | os.PathLike | None = None) -> dict:
    """Cross-reenactment (``headsplat eval cross``): an avatar of ``source`` (a photo or photos, or a
    ``.avatar``) driven by another person's ``driver`` video (relative pose, in the avatar's framing); measures
    identity against the source and how closely expression and pose follow the driver. ``method="gagavatar"``:
    a GAGAvatar avatar (of one photo, or a GAGAvatar ``.avatar``) in the driver's head crop, absolute pose.

    Returns:
        the report (what report.json holds).
    """
    from headsplat.avatar.animate import driver_motion, render_avatar_frame
    from headsplat.core.errors import InputError
    from headsplat.core.fileio import atomic_dir
    from headsplat.eval.protocol import cross_reenactment
    from headsplat.eval.report import report_dict, side_by_side, write_report

    encoder, out = _eval_checks(preset, device, output_dir)
    drv = open_frames(driver)
    if drv.kind == "image":
        raise InputError(f"{driver}: the driver must be a video or a folder of frames")
    first = Path(source[0] if isinstance(source, (list, tuple)) else source)
    t0 = time.perf_counter()
    timing = {}
    if method not in ("headsplat", "gagavatar"):
        raise HeadsplatError(f"unknown method {method!r}; choose headsplat or gagavatar")
    with atomic_dir(out) as tmp:
        if method == "gagavatar":
            from headsplat.api.learned import cross_frames, gagavatar_for_eval

            av, model, r = gagavatar_for_eval(first, None, None, 0, tmp / "avatar.avatar", weights, device, face,
                                              quiet, flame_model)
        elif first.suffix.lower() == ".avatar":
            av, r = load_checked(first, flame_model)
        else:
            r = make_rig(rig, flame_model, flame_embedding)
            av = create(source, tmp / "avatar.avatar", rig=rig, preset=preset, device=device, seed=seed,
                        quiet=quiet, flame_model=flame_model, flame_embedding=flame_embedding)
        timing["create"] = round(time.perf_counter() - t0, 1)
        source_desc = encoder(av.source, _face_points(av.source, f"{first}: the avatar's source image"))
        t1 = time.perf_counter()
        if method == "gagavatar":
            from headsplat.avatar.gagavatar import track_for_model

            tracking = track_for_model(drv, r, face, quiet)
        else:
            tracking = track_source(drv, face=face, rig=r, quiet=quiet)
        timing["track driver"] = round(time.perf_counter() - t1, 1)
        n_eval = min(len(tracking), max_frames or len(tracking))
        if method == "gagavatar":
            render_frame = cross_frames(av, model, r, tracking, n_eval, check_device(device))
        else:
            motion = driver_motion(av, tracking)
            bg = background_image(av, r, "source", (av.camera.width, av.camera.height))

            def render_frame(t):
                o = render_avatar_frame(av, r, motion, t, av.camera)
                return compose(o.rgb, o.alpha, bg)

        sbs, plain = _eval_writers(tmp, tracking.fps)

        def on_frame(t, d, img):
            sbs.write(side_by_side([av.source, d, img] if d is not None else [av.source, img]))
            plain.write(img)

        t2 = time.perf_counter()
        with sbs, plain:
            result = cross_reenactment(av, r, tracking, drv, render_frame, source_desc, encoder,
                                       max_frames=max_frames, on_frame=on_frame, quiet=quiet)
        timing["evaluate"] = round(time.perf_counter() - t2, 1)
        timing["total"] = round(time.perf_counter() - t0, 1)
        settings = {"source": str(source), "driver": str(driver), "method": method, "rig": r.kind,
                    "preset": preset, "pose": "absolute (driver crop)" if method == "gagavatar" else "relative", "fps": round(tracking.fps, 3), "max frames": max_frames, "seed": seed,
                    "side by side": "source | driver | headsplat"}
        report = report_dict(result, settings, _eval_environment(encoder), timing)
        report["notes"] = _EVAL_NOTES[1:2] + _EVAL_NOTES[3:] + [
            "The 'driver frames' row is the driver's own face measured against the source: the identity a "
            "method would score by copying the driver."]
        write_report(report, tmp)
    return report
