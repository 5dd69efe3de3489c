"""The evaluation runs behind ``headsplat eval``: an avatar method's avatar built or loaded, driven by a video
(its own: self-reenactment; another person's: cross-reenactment), measured by :mod:`headsplat.eval.protocol`,
and written as a report folder."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Mapping

import torch

from headsplat.avatar.methods import AvatarMethod
from headsplat.avatar.posed_photo import render_posed_photo, sample_portrait
from headsplat.core.errors import InputError, OutputError
from headsplat.core.fileio import atomic_dir, check_writable
from headsplat.eval.identity import IdentityEncoder
from headsplat.eval.protocol import cross_reenactment, self_reenactment
from headsplat.eval.report import heat_map, report_dict, side_by_side, write_report
from headsplat.face.landmarks import face_points
from headsplat.media.frames import open_frames
from headsplat.media.video import VideoWriter

NOTES = [
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


def environment(encoder: IdentityEncoder) -> dict:
    """The software and machine a report was made on."""
    return {"headsplat": importlib.metadata.version("headsplat"), "python": sys.version.split()[0],
            "torch": torch.__version__, "identity model": f"{encoder.name} (dlib {encoder.version})",
            "machine": platform.machine(), "cpus": os.cpu_count()}


def report_folder(output_dir) -> tuple[IdentityEncoder, Path]:
    """(identity encoder, report folder) once the identity model and the folder are checked."""
    encoder = IdentityEncoder()
    out = Path(output_dir)
    if out.suffix:
        raise OutputError(f"{out}: the report is a folder; give a path without a suffix")
    if not out.is_dir():
        check_writable(out)
    return encoder, out


def _writers(folder: Path, fps: float):
    """(side-by-side writer, output writer) mp4 writers inside the report folder."""
    return VideoWriter(folder / "side_by_side.mp4", fps=fps), VideoWriter(folder / "output.mp4", fps=fps)


def reenact(method: type[AvatarMethod], video, output_dir, source_frames, max_frames: int | None, face: int,
            quiet: bool, opts: Mapping[str, Any]) -> dict:
    """Self-reenactment of ``video`` (None: the built-in sample) by ``method`` with its options ``opts``; see
    :func:`headsplat.api.eval_reenact`."""
    encoder, out = report_folder(output_dir)
    if video is None:
        with tempfile.TemporaryDirectory() as d:
            sample = Path(d) / "sample_talk.mp4"
            render_posed_photo(sample_portrait(), sample, quiet=quiet)
            return reenact(method, sample, output_dir, source_frames, max_frames, face, quiet, opts)
    source = open_frames(video)
    if source.kind == "image":
        raise InputError(f"{video}: self-reenactment needs a video or a folder of frames, not one image")
    t0 = time.perf_counter()
    tracking, rig = method.track_video(source, face, quiet, opts)
    timing = {"track": round(time.perf_counter() - t0, 1)}
    with atomic_dir(out) as tmp:
        t1 = time.perf_counter()
        setup = method.reenactment(source, tracking, rig, list(source_frames), tmp, quiet, opts)
        timing["create"] = round(time.perf_counter() - t1, 1)
        sbs, plain = _writers(tmp, tracking.fps)
        first = next(iter(setup.renderers))

        def on_frame(t, gt, img):
            sbs.write(side_by_side([gt, img, heat_map(img, gt)]))
            plain.write(img)

        t2 = time.perf_counter()
        with ExitStack() as stack, sbs, plain:
            renderers = {name: stack.enter_context(r) for name, r in setup.renderers.items()}
            result = self_reenactment(rig, tracking, source, setup.reference, setup.source_image,
                                      setup.source_landmarks, set(setup.exclude), encoder, renderers,
                                      max_frames=max_frames, on_frame=on_frame, quiet=quiet)
        timing["evaluate"] = round(time.perf_counter() - t2, 1)
        timing["total"] = round(time.perf_counter() - t0, 1)
        settings = {"video": str(video), "avatar from": setup.made_from, "method": method.name, "rig": rig.kind,
                    "preset": opts.get("preset", "fast"), "paste-back": True,
                    "size": f"{source.size[0]}x{source.size[1]}", "fps": round(tracking.fps, 3),
                    "max frames": max_frames, "seed": opts.get("seed", 0),
                    "side by side": f"ground truth | {first} | mean absolute error (inferno, 0 to 0.25)"}
        report = report_dict(result, settings, environment(encoder), timing)
        report["notes"] = NOTES
        write_report(report, tmp)
    return report


def cross(method: type[AvatarMethod], sources: list[Path], driver, output_dir, max_frames: int | None, face: int,
          quiet: bool, opts: Mapping[str, Any]) -> dict:
    """Cross-reenactment: ``method``'s avatar of ``sources`` driven by another person's ``driver`` video; see
    :func:`headsplat.api.eval_cross`."""
    encoder, out = report_folder(output_dir)
    drv = open_frames(driver)
    if drv.kind == "image":
        raise InputError(f"{driver}: the driver must be a video or a folder of frames")
    t0 = time.perf_counter()
    timing = {}
    with atomic_dir(out) as tmp:
        loaded = method.cross_source(sources, tmp, face, quiet, opts)
        timing["create"] = round(time.perf_counter() - t0, 1)
        src = loaded.source_image
        source_desc = encoder(src, face_points(src, f"{sources[0]}: the avatar's source image"))
        t1 = time.perf_counter()
        tracking, driver_frames = loaded.track_driver(Path(driver), face, quiet, opts)
        timing["track driver"] = round(time.perf_counter() - t1, 1)
        n_eval = min(len(tracking), max_frames or len(tracking))
        render_frame = loaded.cross_renderer(tracking, driver_frames, n_eval, opts)
        sbs, plain = _writers(tmp, tracking.fps)

        def on_frame(t, d, img):
            sbs.write(side_by_side([src, d, img] if d is not None else [src, img]))
            plain.write(img)

        t2 = time.perf_counter()
        with sbs, plain:
            result = cross_reenactment(loaded.avatar, loaded.rig, tracking, drv, render_frame, source_desc, encoder,
                                       max_frames=max_frames, on_frame=on_frame, quiet=quiet)
        timing["evaluate"] = round(time.perf_counter() - t2, 1)
        timing["total"] = round(time.perf_counter() - t0, 1)
        settings = {"source": str(sources[0] if len(sources) == 1 else [str(s) for s in sources]),
                    "driver": str(driver), "method": method.name, "rig": loaded.rig.kind,
                    "preset": opts.get("preset", "fast"), "pose": method.cross_pose, "fps": round(tracking.fps, 3),
                    "max frames": max_frames, "seed": opts.get("seed", 0),
                    "side by side": "source | driver | headsplat"}
        report = report_dict(result, settings, environment(encoder), timing)
        report["notes"] = NOTES[1:2] + NOTES[3:] + [
            "The 'driver frames' row is the driver's own face measured against the source: the identity a "
            "method would score by copying the driver."]
        write_report(report, tmp)
    return report

