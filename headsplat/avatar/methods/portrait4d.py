"""The ``portrait4d`` method: Portrait4D-v2's released network (:mod:`headsplat.models.portrait4d`) run by
headsplat's own code on one photo, driven by images (the driver's frames give its motion codes; headsplat's
FLAME tracking its head pose, jaw and eyes), rendered in the reference's 512² aligned frame
(:mod:`headsplat.avatar.portrait4d` holds its avatar files and inputs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from tqdm import tqdm

from headsplat.avatar.avatar import check_flame_record
from headsplat.avatar.driving import is_track_file
from headsplat.avatar.methods import (
    Animation,
    AvatarMethod,
    Reenactment,
    driven_count,
    driver_source,
    one_source_frame,
    register_method,
    sized,
)
from headsplat.avatar.options import DEVICE, FLAME_EMBEDDING, FLAME_MODEL, MAX_FRAMES, WEIGHTS, Option
from headsplat.avatar.portrait4d import (
    NEURAL_RESOLUTION,
    P4DAvatar,
    Synthesizer,
    check_flame,
    driven_frame,
    driven_frames,
    filled_landmarks,
    load_networks,
    load_portrait4d,
    make_avatar,
    save_portrait4d,
    views,
)
from headsplat.core.errors import HeadsplatError, InputError
from headsplat.core.validate import check_device
from headsplat.face.align import paste_back
from headsplat.media.frames import open_frames, stream_frames
from headsplat.rig.factory import make_rig
from headsplat.track.tracker import track_source

if TYPE_CHECKING:
    from headsplat.rig.flame.head import FlameHead

MOTION_WEIGHTS = Option("motion_weights", "Portrait4D avatars: PD-FGC's motion encoder motion_model.pth (default: "
                        "$HEADSPLAT_PDFGC_WEIGHTS or \"pdfgc_weights\" in the config)", metavar="FILE")
NEURAL_RES = Option("neural_resolution", "Portrait4D avatars: the volume render's side before 8x super-resolution "
                    f"(default {NEURAL_RESOLUTION}, the released script's; 64 saves 15-25% on a CPU, where the "
                    "triplane decoder dominates)", NEURAL_RESOLUTION,
                    type=int, choices=(32, 64, 128), metavar="R")


def flame_head(opts, avatar: P4DAvatar | None = None, path=None) -> FlameHead:
    head = make_rig("flame", opts.get("flame_model"), opts.get("flame_embedding"))
    if avatar is not None:
        check_flame_record(avatar.rig_record, head, path)
        if tuple(avatar.expression_names) != tuple(head.expression_names):
            raise InputError(f"{path}: made with another FLAME coefficient set than this headsplat's; re-create it")
    return head



def avatar_of_photo(path: Path, opts, face: int, quiet: bool):
    """(avatar, FLAME head, network, motion encoder, device) of one photo."""
    source = open_frames(path)
    if source.kind != "image":
        raise InputError(f"{path}: --method portrait4d needs one photo, not a {source.kind}")
    dev = check_device(opts["device"])
    model, encoder, sha, msha = load_networks(opts["weights"], opts["motion_weights"], dev)
    head = flame_head(opts)
    offset = check_flame(head, model, opts["weights"])
    tracking = track_source(source, face=face, rig=head, quiet=quiet, device=dev.type)
    if not tracking.found[0]:
        raise InputError(f"{path}: no face found")
    av = make_avatar(model, encoder, (sha, msha), next(iter(source)).rgb, head, tracking, 0, dev, offset,
                     info={"inputs": [str(path)], "face": face})
    return av, head, model, encoder, dev


@register_method
class Portrait4DMethod(AvatarMethod):
    """Portrait4D-v2 (one photo, a triplane radiance field re-posed by FLAME) from the user's released weights."""
    name = "portrait4d"
    summary = "the released Portrait4D-v2 network from --weights and --motion-weights (one photo, FLAME)"
    options = {
        "create": (WEIGHTS, MOTION_WEIGHTS, DEVICE, FLAME_MODEL, FLAME_EMBEDDING, NEURAL_RES),
        "animate": (WEIGHTS, MOTION_WEIGHTS, DEVICE, MAX_FRAMES, FLAME_MODEL, NEURAL_RES),
        "render": (WEIGHTS, MOTION_WEIGHTS, DEVICE, FLAME_MODEL, NEURAL_RES),
        "reenact": (WEIGHTS, MOTION_WEIGHTS, DEVICE, FLAME_MODEL, FLAME_EMBEDDING, NEURAL_RES),
        "cross": (WEIGHTS, MOTION_WEIGHTS, DEVICE, FLAME_MODEL, NEURAL_RES),
    }
    cross_pose = "absolute (the driver's head rotation, fixed camera)"

    def __init__(self, avatar: P4DAvatar, rig: FlameHead, synth: Synthesizer | None, encoder, device: torch.device):
        self.avatar, self.rig = avatar, rig
        self.synth, self.encoder, self.device = synth, encoder, device

    @classmethod
    def _loaded(cls, av, head, model, encoder, dev, opts):
        return cls(av, head, Synthesizer(model, av, dev, opts.get("neural_resolution", NEURAL_RESOLUTION)),
                   encoder, dev)

    # -- creating and loading ------------------------------------------------------------------------------------
    @classmethod
    def create(cls, inputs, output, face, quiet, opts):
        if len(inputs) != 1:
            raise HeadsplatError("--method portrait4d makes an avatar from one photo; give exactly one")
        av, head, model, encoder, dev = avatar_of_photo(inputs[0], opts, face, quiet)
        loaded = cls._loaded(av, head, model, encoder, dev, opts)
        save_portrait4d(av, output, loaded.still(0.0, 0.0, 512, opts))
        return av

    @classmethod
    def describe(cls, avatar: P4DAvatar) -> str:
        return f"a Portrait4D-v2 avatar (512² aligned crop at scale {avatar.info.get('crop_scale', 0):.3f})"

    @classmethod
    def load(cls, path, opts):
        av = load_portrait4d(path)
        dev = check_device(opts.get("device", "cpu"))
        head = flame_head(opts, av, path)
        if "weights" not in opts:  # export and view: they refuse before the network matters
            return cls(av, head, None, None, dev)
        model, encoder, _, _ = load_networks(opts.get("weights"), opts.get("motion_weights"), dev, av)
        check_flame(head, model, opts.get("weights"))
        return cls._loaded(av, head, model, encoder, dev, opts)

    # -- playback ---------------------------------------------------------------------------------------------
    def track_driver(self, driver, face, quiet, opts):
        """The driver's frames (its first ``max_frames``) tracked with FLAME; a ``.track`` file is refused (the
        motion codes come from the frames)."""
        if is_track_file(driver):
            raise InputError(f"{driver}: --method portrait4d is driven by images (its motion codes come from the "
                             "driver's frames): give the video or image folder, not a .track")
        source = driver_source(driver, opts.get("max_frames"))
        return track_source(source, face=face, rig=self.rig, quiet=quiet, device=self.device.type), source

    def _driven(self, tracking, source, n: int):  # (track_driver refuses .track drivers: source holds frames)
        return driven_frames(self.synth, self.encoder, tracking, (f.rgb for f in source), n)

    def animation(self, tracking, source, quiet, opts):
        """Per frame: the driver's aligned crop and motion code, its FLAME pose, one synthesis (512², in the
        reference's aligned frame, with the network's background)."""
        n = driven_count(tracking, opts.get("max_frames"))
        frames = (img for img, _, _ in tqdm(self._driven(tracking, source, n), total=n, desc="rendering",
                                            unit="frame", disable=quiet, leave=False))
        return Animation(frames, n, tracking.fps, tracking.n_shots, {"neural_resolution": self.synth.neural_resolution})

    def turntable(self, n_frames, pitch, size, quiet, opts):
        """One turn of the camera about the head in ``n_frames`` frames, at the source's expression."""
        yaws = [360.0 * k / n_frames for k in range(n_frames)]
        for img, _ in tqdm(views(self.synth, yaws, pitch), total=n_frames, desc="rendering", unit="frame",
                           disable=quiet, leave=False):
            yield sized(img, size)

    def still(self, yaw, pitch, size, opts):
        return sized(next(views(self.synth, [yaw], pitch))[0], size)

    @property
    def source_image(self) -> np.ndarray:
        return self.avatar.source

    # -- evaluation -------------------------------------------------------------------------------------------
    @classmethod
    def track_video(cls, source, face, quiet, opts):
        head = make_rig("flame", opts["flame_model"], opts["flame_embedding"])
        return track_source(source, face=face, rig=head, quiet=quiet), head

    @classmethod
    def reenactment(cls, source, tracking, rig: FlameHead, source_frames, folder, quiet, opts):
        k = one_source_frame("portrait4d", source.path, tracking, source_frames)
        dev = check_device(opts["device"])
        model, encoder, sha, msha = load_networks(opts["weights"], opts["motion_weights"], dev)
        offset = check_flame(rig, model, opts["weights"])
        src_img = next(stream_frames(source, [k]))
        av = make_avatar(model, encoder, (sha, msha), src_img, rig, tracking, k, dev, offset)
        loaded = cls._loaded(av, rig, model, encoder, dev, opts)
        save_portrait4d(av, folder / "avatar.avatar", loaded.still(0.0, 0.0, 512, opts))
        return Reenactment({"headsplat": _SelfRenderer(loaded, tracking)}, k, frozenset({k}), src_img,
                           tracking.landmarks[k], f"frames {[k]}")

    @classmethod
    def cross_source(cls, sources, folder, face, quiet, opts):
        src = sources[0]
        if src.suffix.lower() == ".avatar":
            return cls.load(src, opts)
        av, head, model, encoder, dev = avatar_of_photo(src, opts, face, quiet)
        loaded = cls._loaded(av, head, model, encoder, dev, opts)
        save_portrait4d(av, folder / "avatar.avatar", loaded.still(0.0, 0.0, 512, opts))
        return loaded

    def cross_renderer(self, tracking, source, n_frames, opts) -> Callable[[int], np.ndarray]:
        """``render(t)`` for t = 0, 1, … in order: the avatar driven by the driver's frames (512², the aligned
        frame)."""
        frames = self._driven(tracking, source, n_frames)
        return lambda t: next(frames)[0]


class _SelfRenderer:
    """``render(t, ground_truth)``: frame ``t`` re-rendered from its own crop, motion code and FLAME pose, and
    pasted into the frame through the render's foreground (self-reenactment)."""

    def __init__(self, loaded: Portrait4DMethod, tracking):
        self.loaded, self.tracking = loaded, tracking
        self.landmarks = filled_landmarks(tracking)

    def __enter__(self):
        return self.render

    def __exit__(self, *exc):
        return False

    def render(self, t: int, gt: np.ndarray) -> np.ndarray:
        lo = self.loaded
        img, fg, frame = driven_frame(lo.synth, lo.encoder, self.tracking, self.landmarks[t], t, gt)
        return paste_back(gt, img, fg, frame.transform, feather=0.0)
