"""The ``headsplat`` method: Gaussians bound to the open rig (or FLAME) and fitted to the input photos, video or
view set (:mod:`headsplat.avatar.create`), driven by retargeting (:mod:`headsplat.avatar.animate`) and rendered
by the rasterizer in real time."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import cv2
import numpy as np
import torch
from tqdm import tqdm

from headsplat.avatar.animate import (
    POSE_MODES,
    Motion,
    driver_motion,
    orbit_motion,
    render_avatar_frame,
    retarget,
    turned_motion,
)
from headsplat.avatar.avatar import Avatar, check_rig_compatible, load_avatar, save_avatar
from headsplat.avatar.backgrounds import BACKGROUNDS, background_image, compose
from headsplat.avatar.composite import PasteBack
from headsplat.avatar.config import PRESETS
from headsplat.avatar.create import check_views, create_avatar
from headsplat.avatar.driving import driver_tracking
from headsplat.avatar.frames import select_frames
from headsplat.avatar.methods import (
    Animation,
    AvatarMethod,
    Reenactment,
    check_source_frames,
    register_method,
)
from headsplat.avatar.options import DEVICE, FLAME_EMBEDDING, FLAME_MODEL, SEED, Option
from headsplat.avatar.viewset import read_view_set
from headsplat.core.errors import HeadsplatError
from headsplat.core.validate import check_device, check_fov
from headsplat.face.landmarks import face_points
from headsplat.media.frames import FrameSource, open_frames, stream_frames
from headsplat.rig.base import HeadRig
from headsplat.rig.factory import RIG_KINDS, make_rig
from headsplat.track.tracker import track_source
from headsplat.track.tracking import Tracking

FRAMINGS = ("avatar", "driver")

RIG = Option("rig", "head rig: open (default, no licensed asset) or flame (your FLAME model file)", "open",
             choices=RIG_KINDS)
PRESET = Option("preset", "fitting preset: fast (default) or quality", "fast", choices=tuple(PRESETS))
MAX_FRAMES = Option("max_frames", "most frames of a video or photo set used, chosen to cover its head poses and "
                    "expressions (default: the preset's, 60)", type=int, metavar="N")
FOV = Option("fov", "the photos' or video's horizontal field of view in degrees, for a known camera (default: "
             "estimated)", type=float, metavar="DEG")
VIEWS = Option("views", "a view set folder (from `headsplat generate`) to fit as well", metavar="VIEWS_DIR")
VIEWS_SHARE = Option("views_share", "share of the fitting steps spent on the generated views (default 0.5; the "
                     "real frames share the rest, so each counts more than a view)", 0.5, type=float)
POSE = Option("pose", "head pose from the driver: its motion since the first frame of each shot (relative, the "
              "default), its own pose (absolute) or none", "relative", choices=POSE_MODES)
EXPRESSION_SCALE = Option("expression_scale", "scale the driver's expression change", 1.0, type=float)
ANIMATE_BACKGROUND = Option("background", "behind the avatar: source (default: the avatar's photo with its person "
                            "removed), white, black, transparent (PNG folder output only)", "source",
                            choices=BACKGROUNDS)
RENDER_BACKGROUND = Option("background", "behind the avatar: white (default), source, black, transparent (PNG "
                           "folder output only)", "white", choices=BACKGROUNDS)
PASTE_BACK = Option("paste_back", "render in each driver frame's own camera and composite the head over the driver "
                    "frame", False, flag_value=True)
FRAMING = Option("framing", "the avatar photo's framing (default) or the driver's frame size and head placement",
                 "avatar", choices=FRAMINGS)

AVATAR_FROM = Option("avatar_from", "build the avatar from these photos (or use this .avatar) instead of the video's "
                     "frames", metavar="PHOTO", many=True)
TRAIN = Option("train", "build the avatar from frames A..B-1 and evaluate it on the others, beside the one-shot "
               "avatar from frame A (the protocol of per-subject video avatars)", metavar="A:B")
TRAIN_FRAMES = Option("train_frames", "with --train: the most frames used (default: the preset's)", type=int,
                      metavar="N")

_FIT = (RIG, PRESET, DEVICE, SEED, FLAME_MODEL, FLAME_EMBEDDING)


def check_create_options(opts: Mapping[str, Any]) -> None:
    """The fit's own ranges (the choices are checked by the options)."""
    if opts.get("max_frames") is not None and opts["max_frames"] < 1:
        raise HeadsplatError(f"--max-frames must be at least 1, got {opts['max_frames']}")
    if not 0 < opts.get("views_share", 0.5) < 1:
        raise HeadsplatError(f"--views-share must be between 0 and 1, got {opts['views_share']}")
    check_fov(opts.get("fov"))


def fit_and_save(images, indices: list[int], tracking: Tracking, output: Path, rig: HeadRig, preset: str, seed: int,
                 quiet: bool, provenance: dict, device: str = "cpu", views=None, views_share: float = 0.5) -> Avatar:
    """Fit an avatar to tracked frames and save it with its preview; ``images`` may be an iterable yielding the
    frames of ``indices`` in order."""
    avatar = create_avatar(images, indices, tracking, rig, PRESETS[preset], seed=seed, quiet=quiet,
                           provenance={**provenance, "preset": preset}, device=check_device(device), views=views,
                           views_share=views_share)
    still = retarget(avatar, avatar.expression[None], avatar.rotation[None], avatar.translation[None], pose="none")
    preview = render_avatar_frame(avatar, rig, still, 0, avatar.camera, background=1.0).rgb
    save_avatar(avatar, output, preview=preview.cpu())
    return avatar


def load_fitted(path, flame_model=None) -> tuple[Avatar, Any]:
    """A headsplat avatar and its rig (FLAME: the user's file, which must be the one it was made with)."""
    avatar = load_avatar(path)
    rig = make_rig(avatar.rig, flame_model)
    check_rig_compatible(avatar, rig, path)
    return avatar, rig


def _paste_frames(avatar: Avatar, rig: HeadRig, motion: Motion, tracking: Tracking, source: FrameSource, quiet: bool
                  ) -> Iterator[np.ndarray]:
    with PasteBack(avatar, rig, tracking) as paste:
        for frame in tqdm(source, total=len(tracking), desc="rendering", unit="frame", disable=quiet, leave=False):
            t = min(frame.index, len(tracking) - 1)
            yield paste(motion, t, frame.rgb)


def motion_frames(avatar: Avatar, rig: HeadRig, motion: Motion, background: str, quiet: bool, size: int | None = None,
                  camera=None) -> Iterator[np.ndarray]:
    """Frames of ``motion`` through ``camera`` (default: the avatar's reference framing, at ``size`` px if
    given) over ``background``."""
    cam = camera or avatar.camera
    w = size or cam.width
    h = size or cam.height
    bg = background_image(avatar, rig, background, (w, h))
    for t in tqdm(range(len(motion)), desc="rendering", unit="frame", disable=quiet, leave=False):
        out = render_avatar_frame(avatar, rig, motion, t, cam, width=w, height=h)
        yield compose(out.rgb, out.alpha, bg)


@register_method
class FittedMethod(AvatarMethod):
    """headsplat's own avatars: Gaussians fitted to the input, real-time, on the open rig or FLAME."""

    name = "headsplat"
    summary = "Gaussians fitted to the input on the open rig or FLAME (default; real-time)"
    shares_driver_tracks = True  # track_driver: driver_tracking with the avatar's rig, as `headsplat track` does
    options = {
        "create": (*_FIT, MAX_FRAMES, FOV, VIEWS, VIEWS_SHARE),
        "animate": (POSE, EXPRESSION_SCALE, ANIMATE_BACKGROUND, PASTE_BACK, FRAMING, FLAME_MODEL, DEVICE),
        "render": (RENDER_BACKGROUND, FLAME_MODEL),
        "export": (FLAME_MODEL,),
        "view": (FLAME_MODEL,),
        "reenact": (RIG, PRESET, DEVICE, SEED, FLAME_MODEL, FLAME_EMBEDDING, AVATAR_FROM, TRAIN, TRAIN_FRAMES),
        "cross": (RIG, PRESET, DEVICE, SEED, FLAME_MODEL, FLAME_EMBEDDING),
    }

    def __init__(self, avatar: Avatar, rig: HeadRig):
        self.avatar = avatar
        self.rig = rig

    # -- creating and loading ------------------------------------------------------------------------------------
    @classmethod
    def create(cls, inputs, output, face, quiet, opts):
        check_device(opts["device"])
        check_create_options(opts)
        if not inputs and opts.get("fov") is not None:
            raise HeadsplatError("create: --fov is the photos' camera; a view set alone keeps its own")
        rig = make_rig(opts["rig"], opts["flame_model"], opts["flame_embedding"])
        view_set = read_view_set(opts["views"]) if opts["views"] is not None else None
        if view_set is not None:
            check_views(view_set, rig)
        if not inputs:  # the views alone (api.create refuses neither inputs nor views)
            provenance = {"inputs": [], "face": face}
            return fit_and_save([], [], view_set.tracking, output, rig, opts["preset"], opts["seed"], quiet,
                                provenance, opts["device"], views=view_set, views_share=opts["views_share"])
        source = open_frames(inputs if len(inputs) > 1 else inputs[0])
        tracking = track_source(source, face=face, fov_deg=opts.get("fov"), rig=rig, quiet=quiet,
                                device=opts["device"])
        indices = select_frames(tracking, opts["max_frames"] or PRESETS[opts["preset"]].max_frames)
        provenance = {"inputs": [str(p) for p in inputs], "face": face}
        if opts.get("fov") is not None:
            provenance["fov"] = opts["fov"]
        return fit_and_save(stream_frames(source, indices), indices, tracking, output, rig, opts["preset"],
                            opts["seed"], quiet, provenance, opts["device"], views=view_set,
                            views_share=opts["views_share"])

    @classmethod
    def describe(cls, avatar: Avatar) -> str:
        views = f" + {avatar.info['views']['generated']} generated view(s)" if "views" in avatar.info else ""
        return (f"an avatar of {len(avatar.gaussians)} Gaussians from {len(avatar.info['frames'])} frame(s){views} "
                f"(foreground PSNR {avatar.info['psnr_foreground']:.1f} dB)")

    @classmethod
    def load(cls, path, opts):
        return cls(*load_fitted(path, opts.get("flame_model")))

    # -- playback ---------------------------------------------------------------------------------------------
    def track_driver(self, driver, face, quiet, opts):
        return driver_tracking(driver, face, quiet, self.rig, device=opts.get("device", "cpu"))

    def animation(self, tracking, source, quiet, opts):
        paste_back, framing = opts["paste_back"], opts["framing"]
        if paste_back and source is None:
            raise HeadsplatError(f"{tracking.source}: --paste-back needs the driver's frames: pass the video or "
                                 "images, not a .track file")
        motion = driver_motion(self.avatar, tracking, "absolute" if paste_back else opts["pose"],
                               opts["expression_scale"])
        if paste_back:
            frames = _paste_frames(self.avatar, self.rig, motion, tracking, source, quiet)
        elif framing == "driver":
            # The head where the driver's is, as large: the driver's camera and head position.
            motion = replace(motion, translation=torch.from_numpy(tracking.translation).float())
            frames = motion_frames(self.avatar, self.rig, motion, opts["background"], quiet, camera=tracking.camera())
        else:
            frames = motion_frames(self.avatar, self.rig, motion, opts["background"], quiet)
        return Animation(frames, len(motion), tracking.fps, tracking.n_shots)

    def turntable(self, n_frames, pitch, size, quiet, opts):
        return motion_frames(self.avatar, self.rig, orbit_motion(self.avatar, n_frames, pitch=pitch),
                             opts["background"], quiet, size=size)

    def still(self, yaw, pitch, size, opts):
        av = self.avatar
        motion = turned_motion(av, torch.tensor([math.radians(yaw)]), torch.tensor([math.radians(pitch)]))
        r = render_avatar_frame(av, self.rig, motion, 0, av.camera, width=size, height=size)
        return compose(r.rgb, r.alpha, background_image(av, self.rig, opts["background"], (size, size)))

    def posable(self):
        return self.avatar, self.rig

    @property
    def source_image(self) -> np.ndarray:
        return self.avatar.source

    # -- evaluation -------------------------------------------------------------------------------------------
    @classmethod
    def _rig_for(cls, opts):
        """The rig of an evaluation: an ``--avatar-from`` avatar's own, else the one ``opts`` name."""
        first = _first(opts.get("avatar_from"))
        if first is not None and first.suffix.lower() == ".avatar":
            return load_fitted(first, opts["flame_model"])
        return None, make_rig(opts["rig"], opts["flame_model"], opts["flame_embedding"])

    @classmethod
    def track_video(cls, source, face, quiet, opts):
        check_train(source.path, opts.get("train"), opts.get("avatar_from"))  # before the minutes of tracking
        _, rig = cls._rig_for(opts)
        return track_source(source, face=face, rig=rig, quiet=quiet, device=opts.get("device", "cpu")), rig

    @classmethod
    def reenactment(cls, source, tracking, rig: HeadRig, source_frames, folder, quiet, opts):
        video = source.path
        train, avatar_from, preset, seed, device = (opts["train"], opts["avatar_from"], opts["preset"], opts["seed"],
                                                    opts["device"])
        frames = [int(k) for k in source_frames]
        if train is not None:
            a, b = check_train(video, train, avatar_from)
            if not 0 <= a < b <= len(tracking):
                raise HeadsplatError(f"{video}: --train {a}:{b} is not a range of the video's {len(tracking)} frames")
            if not tracking.found[a]:
                raise HeadsplatError(f"{video}: frame {a} (the start of --train) has no face; start elsewhere")
            if b == len(tracking) and a == 0:
                raise HeadsplatError(f"{video}: --train {a}:{b} leaves no frame to evaluate")
            frames = select_frames(tracking, opts["train_frames"] or PRESETS[preset].max_frames, within=range(a, b))
        if avatar_from is None:
            check_source_frames(video, tracking, frames)
        others = {}
        if train is not None:
            av = fit_and_save(stream_frames(source, frames), frames, tracking, folder / "avatar.avatar", rig, preset,
                              seed, quiet, {"inputs": [str(video)], "train": [a, b]}, device)
            src_img = next(stream_frames(source, [a]))
            others[f"one-shot (frame {a})"] = fit_and_save(
                [src_img], [a], tracking, folder / "one_shot.avatar", rig, preset, seed, quiet,
                {"inputs": [str(video)], "frames": [a]}, device)
            src_lms = tracking.landmarks[a]
            reference, exclude = a, set(range(a, b))
            made_from = f"{len(frames)} of frames {a}..{b - 1} (--train {a}:{b}): {frames}"
        elif avatar_from is None:
            wanted = set(frames)
            images = {f.index: f.rgb for f in source if f.index in wanted}
            av = fit_and_save([images[k] for k in frames], frames, tracking, folder / "avatar.avatar", rig, preset,
                              seed, quiet, {"inputs": [str(video)], "frames": frames}, device)
            src_img, src_lms = images[frames[0]], tracking.landmarks[frames[0]]
            reference, exclude = frames[0], wanted
            made_from = f"frames {frames}"
        else:
            av, _ = cls._rig_for(opts)
            if av is None:
                av = cls.create([Path(p) for p in _paths(avatar_from)], folder / "avatar.avatar", 0, quiet,
                                cls.accept("create", {k: opts[k] for k in ("rig", "preset", "device", "seed",
                                                                           "flame_model", "flame_embedding")}))
            src_img = cv2.resize(av.source, source.size, interpolation=cv2.INTER_AREA)
            src_lms = face_points(src_img, "the avatar's source image for the baselines")
            reference, exclude = 0, set()
            made_from = str(avatar_from)
        p = tracking.params(with_offsets=True)

        def renderer(avatar):
            motion = retarget(avatar, p["expression"], p["rotation"], p["translation"], pose="absolute",
                              reference=reference, offsets=p.get("offsets"), driver_identity=p["identity"])
            return _PasteRenderer(avatar, rig, tracking, motion)

        renderers = {"headsplat": renderer(av), **{name: renderer(o) for name, o in others.items()}}
        return Reenactment(renderers, reference, frozenset(exclude), src_img, src_lms, made_from)

    @classmethod
    def cross_source(cls, sources, folder, face, quiet, opts):
        first = sources[0]
        if first.suffix.lower() == ".avatar":
            return cls(*load_fitted(first, opts["flame_model"]))
        create_opts = cls.accept("create", {k: opts[k] for k in ("rig", "preset", "device", "seed", "flame_model",
                                                                 "flame_embedding")})
        av = cls.create(sources, folder / "avatar.avatar", face, quiet, create_opts)
        return cls(av, make_rig(opts["rig"], opts["flame_model"], opts["flame_embedding"]))

    def cross_renderer(self, tracking, source, n_frames, opts) -> Callable[[int], np.ndarray]:
        av, rig = self.avatar, self.rig
        motion = driver_motion(av, tracking)
        bg = background_image(av, rig, "source", (av.camera.width, av.camera.height))

        def render_frame(t: int) -> np.ndarray:
            o = render_avatar_frame(av, rig, motion, t, av.camera)
            return compose(o.rgb, o.alpha, bg)

        return render_frame


class _PasteRenderer:
    """A context manager giving ``render(t, ground_truth)``: frame ``t`` of ``motion`` pasted back into the real
    frame (paste-back's resources held while open)."""

    def __init__(self, avatar: Avatar, rig: HeadRig, tracking: Tracking, motion: Motion):
        self._paste = PasteBack(avatar, rig, tracking)
        self._motion = motion

    def __enter__(self):
        paste = self._paste.__enter__()
        return lambda t, gt: paste(self._motion, t, gt)

    def __exit__(self, *exc):
        return self._paste.__exit__(*exc)


def check_train(video, train, avatar_from) -> tuple[int, int] | None:
    """``(A, B)`` of ``--train`` for ``video`` (None without it), refusing what needs no frame count: a value
    that is not A:B, an empty or negative range, ``--avatar-from`` beside it (the video's length is checked
    once it is tracked)."""
    if train is None:
        return None
    if avatar_from is not None:
        raise HeadsplatError("eval reenact: --train builds the avatar from the video; drop --avatar-from")
    a, b = parse_train(train)
    if not 0 <= a < b:
        raise HeadsplatError(f"{video}: --train {a}:{b} is not a range of frames (0 <= A < B)")
    return a, b


def parse_train(train) -> tuple[int, int]:
    """``(A, B)`` of ``--train``: a pair, or text ``"A:B"``."""
    if isinstance(train, str):
        try:
            a, b = (int(x) for x in train.split(":"))
        except ValueError:
            raise HeadsplatError(f"--train {train}: expected A:B, two frame numbers") from None
        return a, b
    a, b = train
    return int(a), int(b)


def _paths(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _first(value) -> Path | None:
    return None if value is None else Path(_paths(value)[0])
