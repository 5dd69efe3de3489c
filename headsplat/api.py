"""The public functions behind every CLI command (same arguments); the CLI only parses and prints."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from headsplat.core.camera import intrinsics_from_fov, world_to_opencv, project_points
from headsplat.core.errors import HeadsplatError, OutputError
from headsplat.core.fileio import atomic_path, check_writable
from headsplat.media.frames import FrameSource, open_frames
from headsplat.media.image import IMAGE_SUFFIXES, read_image_uint8
from headsplat.media.video import VideoWriter
from headsplat.render.mesh_overlay import draw_mesh
from headsplat.render.mesh_texture import render_textured
from headsplat.rig.controls import controls_to_params, demo_performance
from headsplat.rig.open_rig import OpenRig
from headsplat.track.tracker import track_source
from headsplat.track.tracking import Tracking


def _check_output(path: str | os.PathLike, suffixes: tuple[str, ...], what: str) -> Path:
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise OutputError(f"{p}: {what} must end in {' or '.join(suffixes)}")
    check_writable(p)
    return p


def track(input: str | os.PathLike, output: str | os.PathLike, overlay: str | os.PathLike | None = None,
          face: int = 0, fov: float | None = None, style: str = "shaded", quiet: bool = False) -> Tracking:
    """Track a face in an image, a folder of images or a video and save a ``.track`` file.

    Args:
        input: image, folder of images, or video.
        output: the ``.track`` file to write.
        overlay: optionally also draw the fitted rig over the frames (``.mp4``, or ``.png``/``.jpg`` for a
            single image).
        face: which face when there are several (0: the largest).
        fov: fix the horizontal field of view in degrees instead of estimating it.
        style: overlay style, ``"shaded"`` or ``"wireframe"``.
        quiet: no progress bars.
    """
    out = _check_output(output, (".track", ".npz"), "the tracking output")
    if overlay is not None:
        _check_output(overlay, (".mp4",) + IMAGE_SUFFIXES, "the overlay")
    source = open_frames(input)
    rig = OpenRig()
    tracking = track_source(source, face=face, fov_deg=fov, rig=rig, quiet=quiet)
    tracking.save(out)
    if overlay is not None:
        write_overlay(source, tracking, overlay, rig=rig, style=style, quiet=quiet)
    return tracking


def write_overlay(source: FrameSource, tracking: Tracking, path: str | os.PathLike, rig: OpenRig | None = None,
                  style: str = "shaded", quiet: bool = False) -> None:
    """Draw the tracked rig over each frame of ``source`` into a video, or an image for one frame."""
    rig = rig or OpenRig()
    cam = tracking.camera()
    p = Path(path)
    with torch.no_grad():
        verts = rig(**tracking.params()).vertices
    frames = tqdm(source, total=len(tracking), desc="overlay", unit="frame", disable=quiet, leave=False)

    def draw(frame):
        lm = tracking.landmarks[frame.index] if tracking.found[frame.index] else None
        return draw_mesh(frame.rgb, verts[frame.index], rig.triangles, cam.viewmat, cam.K, style=style, landmarks=lm)

    if p.suffix.lower() in IMAGE_SUFFIXES:
        if len(tracking) != 1:
            raise OutputError(f"{p}: an image overlay needs a single-image input; use .mp4")
        from PIL import Image

        with atomic_path(p) as tmp:
            Image.fromarray(draw(next(iter(frames)))).save(tmp)
        return
    with VideoWriter(p, fps=tracking.fps) as writer:
        for frame in frames:
            writer.write(draw(frame))


@dataclass(frozen=True)
class PosedPhotoVideo:
    """Ground truth of a video made by re-posing a photo through its fitted rig.

    Attributes:
        expression: (T, E), rotation: (T, 3), translation: (T, 3) rig parameters per frame.
        identity_offsets: (478, 3), identity_scale: the photo's fitted identity.
        focal: focal length in pixels; size: frame side in pixels; fps: frame rate.
    """

    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    identity_offsets: np.ndarray
    identity_scale: float
    focal: float
    size: int
    fps: float


def render_posed_photo(photo: str | os.PathLike | np.ndarray, output: str | os.PathLike,
                       controls: dict | None = None, n_frames: int = 120, fps: float = 25.0, size: int = 512,
                       fov: float = 30.0, distance: float = 0.75, quiet: bool = False,
                       rig: OpenRig | None = None) -> PosedPhotoVideo:
    """Make a video with known head parameters: track a portrait, texture the rig with it and render it
    with named controls (default: the demo performance). Writes an mp4, or PNG frames into a folder when
    ``output`` has no suffix."""
    rig = rig or OpenRig()
    img = photo if isinstance(photo, np.ndarray) else read_image_uint8(photo)
    src = _track_array(img, rig, quiet)
    with torch.no_grad():
        ref = rig(**src.params())
        src_cam = src.camera()
        tex_uv = project_points(ref.vertices[0].double(), src_cam.viewmat.double(), src_cam.K.double())[0].numpy()
    controls = controls if controls is not None else demo_performance(n_frames, fps)
    n_frames = len(next(iter(controls.values())))
    exp, rot = controls_to_params(controls, rig.expression_names, n_frames)
    trans = torch.tensor([0.0, 0.0, -distance]).expand(n_frames, 3)
    K = intrinsics_from_fov(fov, size, size)
    view = world_to_opencv()
    bg = cv2.GaussianBlur(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA), (0, 0), size / 40)
    bg = (bg * 0.6).astype(np.uint8)
    with torch.no_grad():
        verts = rig(torch.from_numpy(src.identity_offsets), torch.tensor(src.identity_scale), exp, rot, trans).vertices
    out = Path(output)
    frames = (render_textured(img, tex_uv, verts[t], rig.triangles, view, K, size, size, background=bg)[0]
              for t in range(n_frames))
    frames = tqdm(frames, total=n_frames, desc="rendering", unit="frame", disable=quiet, leave=False)
    if out.suffix:
        with VideoWriter(out, fps=fps) as w:
            for f in frames:
                w.write(f)
    else:
        from headsplat.media.image import write_png

        out.mkdir(parents=True, exist_ok=True)
        for t, f in enumerate(frames):
            write_png(out / f"{t:05d}.png", f)
    return PosedPhotoVideo(exp.numpy(), rot.numpy(), trans.numpy().copy(), src.identity_offsets,
                           src.identity_scale, float(K[0, 0]), size, fps)


def _track_array(img: np.ndarray, rig: OpenRig, quiet: bool) -> Tracking:
    import tempfile

    from headsplat.media.image import write_png

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "photo.png"
        write_png(p, img)
        return track_source(open_frames(p), rig=rig, quiet=quiet)


def sample_portrait() -> np.ndarray:
    """The built-in portrait: NASA's public-domain astronaut photo shipped with scikit-image."""
    try:
        from skimage import data
    except ImportError as e:
        raise HeadsplatError(f"the built-in sample needs scikit-image ({e}): pip install scikit-image") from None
    return data.astronaut()


def demo(output_dir: str | os.PathLike = "headsplat-demo", quiet: bool = False) -> dict:
    """The whole current job on the built-in sample: make a talking-head video from the portrait with a
    procedural performance, track it, and write the tracking and an overlay video.

    Returns:
        paths of what was written: ``video``, ``track``, ``overlay``.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rig = OpenRig()
    video = out / "sample.mp4"
    render_posed_photo(sample_portrait(), video, quiet=quiet, rig=rig)
    paths = {"video": video, "track": out / "sample.track", "overlay": out / "sample_overlay.mp4"}
    tracking = track(video, paths["track"], overlay=paths["overlay"], quiet=quiet)
    paths["frames"] = len(tracking)
    return paths


def doctor() -> list[tuple[str, str, bool]]:
    """What headsplat can use here: (item, detail, ok) rows."""
    from headsplat.core.errors import MissingDependencyError
    from headsplat.face.assets import find_mediapipe_assets

    rows = [("headsplat", importlib.metadata.version("headsplat"), True),
            ("python", platform.python_version(), True),
            ("torch", f"{torch.__version__} (threads: {torch.get_num_threads()})", True),
            ("device", f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu", True)]
    for pkg in ("numpy", "opencv-python-headless", "av", "numba"):
        try:
            rows.append((pkg, importlib.metadata.version(pkg), True))
        except importlib.metadata.PackageNotFoundError:
            rows.append((pkg, "not installed", False))
    try:
        a = find_mediapipe_assets()
        rows.append(("face models", f"mediapipe {a.version}: " + ", ".join(sorted(a.files)), True))
    except MissingDependencyError as e:
        rows.append(("face models", str(e), False))
    try:
        import gsplat  # noqa: F401

        rows.append(("gsplat", importlib.metadata.version("gsplat"), True))
    except ImportError:
        rows.append(("gsplat", "not installed (optional, CUDA only: pip install headsplat[cuda])", True))
    return rows

