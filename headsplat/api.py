"""The public functions behind every CLI command (same arguments); the CLI only parses and prints."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from headsplat.avatar.animate import offset_motion, paste_back_frame, straight_rgb8
from headsplat.core.camera import intrinsics_from_fov, project_points, world_to_opencv
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.core.errors import HeadsplatError, OutputError
from headsplat.core.fileio import atomic_path, check_writable
from headsplat.media.frames import FrameSource, open_frames
from headsplat.media.image import IMAGE_SUFFIXES, read_image_uint8
from headsplat.media.video import VideoWriter
from headsplat.render.mesh_overlay import draw_mesh
from headsplat.render.mesh_texture import render_textured
from headsplat.rig.controls import controls_to_params, demo_performance
from headsplat.rig.open_rig import OpenRig
from headsplat.rig.factory import make_rig
from headsplat.track.tracker import refit_tracking, track_source
from headsplat.track.tracking import Tracking


def _check_output(path: str | os.PathLike, suffixes: tuple[str, ...], what: str) -> Path:
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise OutputError(f"{p}: {what} must end in {' or '.join(suffixes)}")
    check_writable(p)
    return p


def track(input: str | os.PathLike, output: str | os.PathLike, overlay: str | os.PathLike | None = None,
          face: int = 0, fov: float | None = None, style: str = "shaded", quiet: bool = False, rig: str = "open",
          flame_model: str | os.PathLike | None = None, flame_embedding: str | os.PathLike | None = None
          ) -> Tracking:
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
        rig: ``"open"`` (default) or ``"flame"`` (needs the user's FLAME file: ``flame_model``,
            ``$HEADSPLAT_FLAME_MODEL`` or the per-user config).
        flame_model: the FLAME file. flame_embedding: a landmark embedding .npz overriding the computed one.
    """
    out = _check_output(output, (".track", ".npz"), "the tracking output")
    if overlay is not None:
        _check_output(overlay, (".mp4",) + IMAGE_SUFFIXES, "the overlay")
    head = make_rig(rig, flame_model, flame_embedding)
    source = open_frames(input)
    tracking = track_source(source, face=face, fov_deg=fov, rig=head, quiet=quiet)
    tracking.save(out)
    if overlay is not None:
        write_overlay(source, tracking, overlay, rig=head, style=style, quiet=quiet)
    return tracking


def write_overlay(source: FrameSource, tracking: Tracking, path: str | os.PathLike, rig=None,
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
        identity: (478, 3), identity_scale: the photo's fitted identity.
        focal: focal length in pixels; size: frame side in pixels; fps: frame rate.
    """

    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    identity: np.ndarray
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
        verts = rig(torch.from_numpy(src.identity), torch.tensor(src.identity_scale), exp, rot, trans).vertices
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
    return PosedPhotoVideo(exp.numpy(), rot.numpy(), trans.numpy().copy(), src.identity,
                           src.identity_scale, float(K[0, 0]), size, fps)


def _track_arrays(images: list[np.ndarray], rig: OpenRig, quiet: bool) -> Tracking:
    """Track in-memory images (one image, or several of one size) through temporary PNGs."""
    import tempfile

    from headsplat.media.image import write_png

    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, img in enumerate(images):
            files.append(Path(d) / f"{i:04d}.png")
            write_png(files[-1], img)
        return track_source(open_frames(files if len(files) > 1 else files[0]), rig=rig, quiet=quiet)


def _track_array(img: np.ndarray, rig: OpenRig, quiet: bool) -> Tracking:
    return _track_arrays([img], rig, quiet)


def sample_portrait() -> np.ndarray:
    """The built-in portrait: NASA's public-domain astronaut photo shipped with scikit-image."""
    try:
        from skimage import data
    except ImportError as e:
        raise HeadsplatError(f"the built-in sample needs scikit-image ({e}): pip install scikit-image") from None
    return data.astronaut()


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
    avatar = _create_from_arrays([sample_portrait()], paths["avatar"], rig, preset, seed=0, quiet=quiet,
                                 provenance={"inputs": ["skimage.data.astronaut()"]})
    perf = demo_performance(n_frames)
    exp, rot = controls_to_params(perf, rig.expression_names, n_frames)
    motion = offset_motion(avatar, exp, axis_angle_to_matrix(rot))
    _write_animation(avatar, rig, motion, paths["video"], fps=25.0, background="source", quiet=quiet)
    paths["frames"] = n_frames
    paths["info"] = avatar.info
    return paths


def doctor(flame_model: str | os.PathLike | None = None) -> list[tuple[str, str, bool]]:
    """What headsplat can use here: (item, detail, ok) rows. ``flame_model`` (or the configured FLAME file)
    is loaded and described; without one FLAME is reported as not configured (it is optional)."""
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
    rows.append(_flame_row(flame_model))
    return rows


def _flame_row(flame_model) -> tuple[str, str, bool]:
    from headsplat.core.errors import InputError
    from headsplat.rig.flame.loader import load_flame_file, resolve_flame_model

    try:
        path = resolve_flame_model(flame_model)
    except InputError:
        return ("FLAME model", "not configured (optional; see README: FLAME)", True)
    try:
        d = load_flame_file(path)
    except InputError as e:
        return ("FLAME model", str(e), False)
    return ("FLAME model", f"{d.version}: {d.n_vertices} vertices, {len(d.faces)} faces, "
            f"{d.shapedirs.shape[-1]} shape and {d.exprdirs.shape[-1]} expression coefficients ({path})", True)



# --- avatars ---------------------------------------------------------------------------------------------------

BACKGROUNDS = ("source", "white", "black", "transparent")


def _check_device(device: str) -> torch.device:
    if device not in ("cpu", "cuda"):
        raise HeadsplatError(f"device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise HeadsplatError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    return torch.device(device)


def _select_frames(tracking: Tracking, max_frames: int) -> list[int]:
    found = np.flatnonzero(tracking.found)
    if len(found) <= max_frames:
        return [int(i) for i in found]
    return [int(found[round(i)]) for i in np.linspace(0, len(found) - 1, max_frames)]


def _create_from_arrays(images: list[np.ndarray], output: Path, rig: OpenRig, preset: str, seed: int,
                        quiet: bool, provenance: dict, device: str = "cpu"):
    tracking = _track_arrays(images, rig, quiet)
    return _create_from_tracking(images, list(range(len(images))), tracking, output, rig, preset, seed, quiet,
                                 provenance, device)


def _create_from_tracking(images, indices, tracking, output, rig, preset, seed, quiet, provenance, device="cpu"):
    from headsplat.avatar.animate import render_avatar_frame, retarget
    from headsplat.avatar.avatar import save_avatar
    from headsplat.avatar.create import PRESETS, create_avatar

    if preset not in PRESETS:
        raise HeadsplatError(f"unknown preset {preset!r}; choose {' or '.join(PRESETS)}")
    avatar = create_avatar(images, indices, tracking, rig, PRESETS[preset], seed=seed, quiet=quiet,
                           provenance={**provenance, "preset": preset}, device=_check_device(device))
    still = retarget(avatar, avatar.expression[None], avatar.rotation[None], avatar.translation[None], pose="none")
    preview = render_avatar_frame(avatar, rig, still, 0, avatar.camera, background=1.0).rgb
    save_avatar(avatar, output, preview=preview.cpu())
    return avatar


def create(inputs, output: str | os.PathLike, rig: str = "open", preset: str = "fast", device: str = "cpu",
           seed: int = 0, face: int = 0, quiet: bool = False, flame_model: str | os.PathLike | None = None,
           flame_embedding: str | os.PathLike | None = None):
    """Create an avatar from one photo, several photos of one person (same size), or a video.

    Args:
        inputs: a path or a list of paths.
        output: the ``.avatar`` folder to write.
        rig: ``"open"`` (default) or ``"flame"`` (the user's FLAME file: ``flame_model``,
            ``$HEADSPLAT_FLAME_MODEL`` or the per-user config; ``flame_embedding`` overrides its landmarks).
        preset: ``"fast"`` (default) or ``"quality"``.
        device: ``"cpu"`` or ``"cuda"``.
        seed: the same seed gives the same avatar on the same machine.
        face: which face when there are several (0: the largest).

    Returns:
        the :class:`~headsplat.avatar.avatar.Avatar`.
    """
    from headsplat.avatar.create import PRESETS

    _check_device(device)
    if preset not in PRESETS:
        raise HeadsplatError(f"unknown preset {preset!r}; choose {' or '.join(PRESETS)}")
    out = _check_output(output, (".avatar",), "the avatar")
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    r = make_rig(rig, flame_model, flame_embedding)
    source = open_frames(paths if len(paths) > 1 else paths[0])
    tracking = track_source(source, face=face, rig=r, quiet=quiet)
    indices = _select_frames(tracking, PRESETS[preset].max_frames)
    wanted = set(indices)
    images = {f.index: f.rgb for f in source if f.index in wanted}
    missing = wanted - set(images)
    if missing:
        raise HeadsplatError(f"{source.path}: could not decode frame(s) {sorted(missing)}")
    return _create_from_tracking([images[i] for i in indices], indices, tracking, out, r, preset, seed, quiet,
                                 {"inputs": [str(p) for p in paths], "face": face}, device)


def _load_checked(path, flame_model=None):
    """The avatar and its rig (FLAME: the user's file, which must be the one it was made with)."""
    from headsplat.avatar.avatar import check_rig_compatible, load_avatar

    avatar = load_avatar(path)
    rig = make_rig(avatar.rig, flame_model)
    check_rig_compatible(avatar, rig, path)
    return avatar, rig


def _background_image(avatar, background: str, size: tuple[int, int]) -> np.ndarray | None:
    if background == "source":
        return cv2.resize(avatar.source, size, interpolation=cv2.INTER_AREA)
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


def _compose(rgb: torch.Tensor, alpha: torch.Tensor, bg: np.ndarray | None) -> np.ndarray:
    rgb8 = (rgb.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    a = alpha.clamp(0, 1).cpu().numpy()
    if bg is None:  # transparent: premultiplied render -> straight RGBA
        return np.concatenate([straight_rgb8(rgb, alpha.clamp(0, 1)), (a * 255 + 0.5).astype(np.uint8)], -1)
    return (rgb8 + (1 - a) * bg + 0.5).clip(0, 255).astype(np.uint8)


def _write_animation(avatar, rig, motion, output: Path, fps: float, background: str, quiet: bool,
                     size: int | None = None) -> None:
    """Render ``motion`` in the avatar's reference framing (at ``size`` px if given) over ``background``."""
    from headsplat.avatar.animate import render_avatar_frame

    cam = avatar.camera
    w = size or cam.width
    h = size or cam.height
    bg = _background_image(avatar, background, (w, h))
    with _frame_sink(output, fps) as write:
        for t in tqdm(range(len(motion)), desc="rendering", unit="frame", disable=quiet, leave=False):
            out = render_avatar_frame(avatar, rig, motion, t, cam, width=w, height=h)
            write(_compose(out.rgb, out.alpha, bg))


def _driver_tracking(driver, face: int, quiet: bool, rig) -> tuple[Tracking, FrameSource | None]:
    """The driver tracked with the avatar's rig: a video or images are tracked; a ``.track`` of another rig
    is re-fitted from its stored landmarks."""
    p = Path(driver)
    if p.suffix.lower() in (".track", ".npz"):
        tracking = Tracking.load(p)
        if not tracking.found.any():
            from headsplat.core.errors import NoFaceError
            raise NoFaceError(f"{p}: the driver has no face in any frame")
        if tracking.rig != rig.kind:
            tracking = refit_tracking(tracking, rig, quiet=quiet, path=p)
        return tracking, None
    source = open_frames(p)
    return track_source(source, face=face, rig=rig, quiet=quiet), source


def animate(avatar: str | os.PathLike, driver: str | os.PathLike, output: str | os.PathLike,
            pose: str = "relative", expression_scale: float = 1.0, background: str = "source",
            paste_back: bool = False, face: int = 0, quiet: bool = False,
            flame_model: str | os.PathLike | None = None) -> dict:
    """Drive an avatar with a video, an image, a folder of images or a ``.track`` file.

    Args:
        avatar: the ``.avatar`` folder.
        driver: what drives it; it is tracked (a ``.track`` is used as is).
        output: ``.mp4``, or a folder for PNG frames.
        pose: ``relative`` (default), ``absolute`` or ``none``; paste-back always uses the driver's pose.
        expression_scale: multiplies the driver's expression change.
        background: ``source``, ``white``, ``black`` or ``transparent`` (PNG folder only).
        paste_back: render in each driver frame's own geometry and composite the head over the driver frame.
        face: which face of the driver when there are several.
        flame_model: for a FLAME avatar, its FLAME file (default: the configured one).

    Returns:
        ``frames`` written, ``fps``, ``output``.
    """
    from headsplat.avatar.animate import POSE_MODES, retarget

    if pose not in POSE_MODES:
        raise HeadsplatError(f"unknown pose mode {pose!r}; choose {', '.join(POSE_MODES)}")
    out = _check_animation_output(output, background)
    av, rig = _load_checked(avatar, flame_model)
    tracking, source = _driver_tracking(driver, face, quiet, rig)
    params = tracking.params()
    if paste_back:
        if source is None:
            raise HeadsplatError(f"{driver}: --paste-back needs the driver's frames: pass the video or images, "
                                 "not a .track file")
        motion = retarget(av, params["expression"], params["rotation"], params["translation"], pose="absolute",
                          expression_scale=expression_scale)
        _write_paste_back(av, rig, motion, tracking, source, out, quiet)
    else:
        motion = retarget(av, params["expression"], params["rotation"], params["translation"], pose=pose,
                          expression_scale=expression_scale)
        _write_animation(av, rig, motion, out, tracking.fps, background, quiet)
    return {"frames": len(motion), "fps": tracking.fps, "output": out}


def _write_paste_back(avatar, rig, motion, tracking: Tracking, source: FrameSource, out: Path, quiet: bool,
                      crop_size: int = 512) -> None:
    with _frame_sink(out, tracking.fps) as write:
        for frame in tqdm(source, total=len(tracking), desc="rendering", unit="frame", disable=quiet, leave=False):
            t = min(frame.index, len(tracking) - 1)
            write(paste_back_frame(avatar, rig, motion, tracking, t, frame.rgb, crop_size))


def render(avatar: str | os.PathLike, output: str | os.PathLike, orbit: bool = True, frames: int = 90,
           size: int = 512, yaw: float = 0.0, pitch: float = 0.0, background: str = "white",
           fps: float = 30.0, quiet: bool = False, flame_model: str | os.PathLike | None = None) -> Path:
    """Turntable video (``orbit``) or a still from a given yaw/pitch (degrees, a .png output)."""
    from headsplat.avatar.animate import orbit_motion, render_avatar_frame, turned_motion
    from headsplat.media.image import write_png

    av, rig = _load_checked(avatar, flame_model)
    out = Path(output)
    if orbit and out.suffix.lower() != ".png":
        out = _check_animation_output(out, background)
        _write_animation(av, rig, orbit_motion(av, frames), out, fps, background, quiet, size=size)
        return out
    out = _check_output(out, (".png",), "a still")
    motion = turned_motion(av, torch.tensor([math.radians(yaw)]), torch.tensor([math.radians(pitch)]))
    r = render_avatar_frame(av, rig, motion, 0, av.camera, width=size, height=size)
    write_png(out, _compose(r.rgb, r.alpha, _background_image(av, background, (size, size))))
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
    av, rig = _load_checked(avatar, flame_model)
    if driver is not None:
        tracking, _ = _driver_tracking(driver, face, quiet, rig)
        p = tracking.params()
        motion = retarget(av, p["expression"], p["rotation"], p["translation"], pose="relative")
    else:
        motion = retarget(av, av.expression[None], av.rotation[None], av.translation[None], pose="none")
    if ply is not None:
        out = _check_output(ply, (".ply",), "the PLY export")
        if not 0 <= frame < len(motion):
            raise HeadsplatError(f"--frame {frame} is out of range: the driver has {len(motion)} frames")
        with torch.no_grad():
            write_ply(out, pose_avatar(av, rig, motion.expression[frame], motion.rotation[frame],
                                       motion.translation[frame]))
        return [out]
    folder = Path(ply_sequence)
    written = []
    with atomic_dir(folder) as d:
        for t in tqdm(range(len(motion)), desc="exporting", unit="frame", disable=quiet, leave=False):
            with torch.no_grad():
                write_ply(d / f"{t:05d}.ply", pose_avatar(av, rig, motion.expression[t], motion.rotation[t],
                                                          motion.translation[t]))
            written.append(folder / f"{t:05d}.ply")
    return written


def view(avatar: str | os.PathLike, driver: str | os.PathLike | None = None, port: int = 8080,
         host: str = "127.0.0.1", open_browser: bool = True, face: int = 0, quiet: bool = False,
         flame_model: str | os.PathLike | None = None, screenshot_dir: str | os.PathLike = ".", block: bool = True):
    """Serve the browser viewer of an avatar (``headsplat view``): orbit camera, the rig's controls, playback
    of a driver, screenshots. Everything is checked before the server starts (avatar, driver, port).

    Args:
        avatar: the ``.avatar`` folder. driver: a video, image(s) or ``.track`` to play (optional).
        port, host: where the page is served (localhost by default).
        open_browser: open the page in the default browser.
        screenshot_dir: where the page's screenshot button saves PNGs.
        block: serve until interrupted (Ctrl-C); otherwise return the running viewer (call ``close()``).

    Returns:
        the :class:`~headsplat.viewer.server.AvatarViewer` (after it stopped, when ``block``).
    """
    from headsplat.avatar.animate import retarget
    from headsplat.viewer.server import AvatarViewer, check_port_free

    av, rig = _load_checked(avatar, flame_model)
    check_port_free(host, port)
    motion, fps = None, 25.0
    if driver is not None:
        tracking, _ = _driver_tracking(driver, face, quiet, rig)
        p = tracking.params()
        motion = retarget(av, p["expression"], p["rotation"], p["translation"], pose="relative")
        fps = tracking.fps
    viewer = AvatarViewer(av, rig, motion, fps=fps, host=host, port=port, screenshot_dir=screenshot_dir)
    if open_browser:
        import webbrowser

        webbrowser.open(viewer.url)
    if not block:
        return viewer
    if not quiet:
        print(f"headsplat view: {viewer.url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.close()
    return viewer


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
    _check_device(device)
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
                 flame_model: str | os.PathLike | None = None, flame_embedding: str | os.PathLike | None = None
                 ) -> dict:
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
        rig, preset, seed, device, flame_model, flame_embedding: as for :func:`create`.
        max_frames: evaluate at most this many frames.

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
                                face, device, quiet, flame_model, flame_embedding)
    source = open_frames(video)
    if source.kind == "image":
        raise InputError(f"{video}: self-reenactment needs a video or a folder of frames, not one image")
    src_avatar = Path(avatar_from[0] if isinstance(avatar_from, (list, tuple)) else avatar_from) \
        if avatar_from is not None else None
    av = None
    if src_avatar is not None and src_avatar.suffix.lower() == ".avatar":
        av, r = _load_checked(src_avatar, flame_model)
    else:
        r = make_rig(rig, flame_model, flame_embedding)
    t0 = time.perf_counter()
    timing = {}
    tracking = track_source(source, face=face, rig=r, quiet=quiet)
    timing["track"] = round(time.perf_counter() - t0, 1)
    frames = [int(k) for k in source_frames]
    if avatar_from is None:
        for k in frames:
            if not 0 <= k < len(tracking):
                raise HeadsplatError(f"{video}: --source-frame {k} is outside the video's {len(tracking)} frames")
            if not tracking.found[k]:
                raise HeadsplatError(f"{video}: frame {k} has no face; choose another --source-frame")
    with atomic_dir(out) as tmp:
        t1 = time.perf_counter()
        if avatar_from is None:
            wanted = set(frames)
            images = {f.index: f.rgb for f in source if f.index in wanted}
            av = _create_from_tracking([images[k] for k in frames], frames, tracking, tmp / "avatar.avatar", r,
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
                                      max_frames=max_frames, on_frame=on_frame, quiet=quiet)
        timing["evaluate"] = round(time.perf_counter() - t2, 1)
        timing["total"] = round(time.perf_counter() - t0, 1)
        settings = {"video": str(video), "avatar from": str(avatar_from) if avatar_from else f"frames {frames}",
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
               flame_embedding: str | os.PathLike | None = None) -> dict:
    """Cross-reenactment (``headsplat eval cross``): an avatar of ``source`` (a photo or photos, or a
    ``.avatar``) driven by another person's ``driver`` video (relative pose, in the avatar's framing); measures
    identity against the source and how closely expression and pose follow the driver.

    Returns:
        the report (what report.json holds).
    """
    from headsplat.avatar.animate import render_avatar_frame, retarget
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
    with atomic_dir(out) as tmp:
        if first.suffix.lower() == ".avatar":
            av, r = _load_checked(first, flame_model)
        else:
            r = make_rig(rig, flame_model, flame_embedding)
            av = create(source, tmp / "avatar.avatar", rig=rig, preset=preset, device=device, seed=seed,
                        quiet=quiet, flame_model=flame_model, flame_embedding=flame_embedding)
        timing["create"] = round(time.perf_counter() - t0, 1)
        source_desc = encoder(av.source, _face_points(av.source, f"{first}: the avatar's source image"))
        t1 = time.perf_counter()
        tracking = track_source(drv, face=face, rig=r, quiet=quiet)
        timing["track driver"] = round(time.perf_counter() - t1, 1)
        p = tracking.params()
        motion = retarget(av, p["expression"], p["rotation"], p["translation"], pose="relative")
        bg = _background_image(av, "source", (av.camera.width, av.camera.height))

        def render_frame(t):
            o = render_avatar_frame(av, r, motion, t, av.camera)
            return _compose(o.rgb, o.alpha, bg)

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
        settings = {"source": str(source), "driver": str(driver), "rig": r.kind, "preset": preset,
                    "pose": "relative", "fps": round(tracking.fps, 3), "max frames": max_frames, "seed": seed,
                    "side by side": "source | driver | headsplat"}
        report = report_dict(result, settings, _eval_environment(encoder), timing)
        report["notes"] = _EVAL_NOTES[1:2] + _EVAL_NOTES[3:] + [
            "The 'driver frames' row is the driver's own face measured against the source: the identity a "
            "method would score by copying the driver."]
        write_report(report, tmp)
    return report
