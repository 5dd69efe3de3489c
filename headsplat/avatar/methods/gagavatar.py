"""The ``gagavatar`` method: GAGAvatar's released network (:mod:`headsplat.models.gagavatar`) run by headsplat's
own code on one photo, driven by headsplat's FLAME tracking, splatted as features and refined to RGB in the
driver's head crop (:mod:`headsplat.avatar.gagavatar` holds its avatar files and inputs)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from tqdm import tqdm

from headsplat.avatar.avatar import check_flame_record
from headsplat.avatar.driving import is_track_file, load_driver_track
from headsplat.avatar.gagavatar import (
    CONFIG_KEY,
    WEIGHTS_ENV,
    GagaAvatar,
    frame_view,
    load_gagavatar,
    load_model,
    make_avatar,
    render_views,
    save_gagavatar,
    track_for_model,
    video_boxes,
)
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
from headsplat.core.errors import HeadsplatError, InputError
from headsplat.core.rotation import euler_yxz_to_matrix
from headsplat.core.validate import check_device
from headsplat.face.align import paste_back
from headsplat.media.frames import open_frames, stream_frames
from headsplat.models.gagavatar.conventions import opencv_viewmat, pytorch3d_transform
from headsplat.models.weights import resolve_weights
from headsplat.rig.factory import make_rig

REFINER = Option("refiner", "GAGAvatar avatars: the raw render's first three channels (needs no weights)", True,
                 flag="--no-refiner", flag_value=False)

if TYPE_CHECKING:
    from headsplat.rig.flame.head import FlameHead


def gagavatar_weights(weights):
    """The GAGAvatar weights file: ``weights``, ``$HEADSPLAT_GAGAVATAR_WEIGHTS`` or ``"gagavatar_weights"``."""
    return resolve_weights(weights, WEIGHTS_ENV, CONFIG_KEY, "GAGAvatar")


def check_topology(head: FlameHead, n_vertices: int) -> None:
    nv = int(head.flame.v_template.shape[0])
    if nv != n_vertices:
        raise InputError(f"{head.path}: {nv} vertices; GAGAvatar needs FLAME 2020's topology ({n_vertices} "
                         "vertices): pass a FLAME 2020/2023 generic_model file with --flame-model")


def flame_head(flame_model, flame_embedding=None, n_vertices: int | None = None, path=None, avatar=None):
    """The FLAME head (the user's file), checked against the network's vertex count and, for an existing
    ``avatar`` (at ``path``), against the FLAME file, expression set and shape size it was made with."""
    head = make_rig("flame", flame_model, flame_embedding)
    if n_vertices is not None:
        check_topology(head, n_vertices)
    if avatar is not None:
        check_flame_record(avatar.rig_record, head, path)
        if tuple(avatar.expression_names) != tuple(head.expression_names) or \
                tuple(avatar.identity.shape) != tuple(head.identity_shape):
            raise InputError(f"{path}: made with another FLAME coefficient set than this headsplat's; re-create it")
    return head


def avatar_of_photo(source, paths, weights, dev, face, quiet, flame_model, flame_embedding):
    """(avatar, FLAME head, network) of the first frame of ``source``."""
    model, sha = load_model(weights, None, dev)
    head = flame_head(flame_model, flame_embedding, model.cfg.n_vertices)
    tracking = track_for_model(source, head, face, quiet, dev.type)
    img = next(iter(source)).rgb
    av = make_avatar(model, sha, img, head, tracking, 0, dev,
                     info={"inputs": [str(p) for p in paths], "face": face, "weights": Path(weights).name})
    return av, head, model


def avatar_or_photo(source: Path, weights, dev, face: int, quiet: bool, flame_model, needs: str):
    """(avatar, FLAME head, network, whether it was made now) of a GAGAvatar ``.avatar`` (checked against the
    weights and FLAME file) or of one photo; ``needs`` completes the error for anything else ("{source}: ...")."""
    if source.suffix.lower() == ".avatar":
        av = load_gagavatar(source)
        return av, flame_head(flame_model, None, av.config.n_vertices, source, av), load_model(weights, av, dev)[0], \
            False
    frames = open_frames(source)
    if frames.kind != "image":
        raise InputError(f"{source}: {needs}")
    return (*avatar_of_photo(frames, [source], weights, dev, face, quiet, flame_model, None), True)


def save_with_preview(av: GagaAvatar, model, head: FlameHead, dev, output: Path) -> None:
    preview, _ = next(render_views(av, head, av.expression[None], av.transform[None], dev, model, noise="stored"))
    save_gagavatar(av, output, preview)


def turned_transform(transform: torch.Tensor, yaw_deg: float, pitch_deg: float) -> torch.Tensor:
    """(3, 4) the view ``transform`` with the head turned by ``yaw`` (about its vertical axis) and ``pitch``
    (degrees): the world (the head's frame) rotated before the camera sees it."""
    v = opencv_viewmat(transform.double())
    turn = torch.eye(4, dtype=torch.float64)
    turn[:3, :3] = euler_yxz_to_matrix(torch.tensor(math.radians(yaw_deg), dtype=torch.float64),
                                       torch.tensor(math.radians(pitch_deg), dtype=torch.float64),
                                       torch.tensor(0.0, dtype=torch.float64))
    return pytorch3d_transform(v @ turn).float()


def driver_views(head: FlameHead, tracking, frames: list[int], size: int, focal: float):
    """(expressions (F, E), transforms (F, 3, 4), crops, camera-fit errors) of the driver's frames, each in
    its head crop (boxes smoothed over the video within shots)."""
    boxes = video_boxes(head, tracking, frames)
    views = [frame_view(head, tracking, t, size, focal, box) for t, box in zip(frames, boxes)]
    expr = torch.as_tensor(tracking.expression[frames], dtype=torch.float32)
    return expr, torch.stack([v[1] for v in views]), [v[0] for v in views], [v[2] for v in views]



@register_method
class GagavatarMethod(AvatarMethod):
    """GAGAvatar (one photo, feed-forward Gaussians, neural refiner) from the user's released weights."""
    name = "gagavatar"
    summary = "the released GAGAvatar network from --weights (one photo, FLAME)"
    options = {
        "create": (WEIGHTS, DEVICE, FLAME_MODEL, FLAME_EMBEDDING),
        "animate": (WEIGHTS, DEVICE, REFINER, MAX_FRAMES, FLAME_MODEL),
        "render": (WEIGHTS, DEVICE, REFINER, FLAME_MODEL),
        "reenact": (WEIGHTS, DEVICE, FLAME_MODEL, FLAME_EMBEDDING),
        "cross": (WEIGHTS, DEVICE, FLAME_MODEL),
    }
    cross_pose = "absolute (driver crop)"

    def __init__(self, avatar: GagaAvatar, rig: FlameHead, model, device: torch.device):
        self.avatar = avatar
        self.rig = rig
        self.model = model  # None: no refiner
        self.device = device

    # -- creating and loading ------------------------------------------------------------------------------------
    @classmethod
    def create(cls, inputs, output, face, quiet, opts):
        if len(inputs) != 1:
            raise HeadsplatError("--method gagavatar makes an avatar from one photo; give exactly one")
        dev = check_device(opts["device"])
        w = gagavatar_weights(opts["weights"])
        source = open_frames(inputs[0])
        if source.kind != "image":
            raise InputError(f"{inputs[0]}: --method gagavatar needs one photo, not a {source.kind}")
        av, head, model = avatar_of_photo(source, inputs, w, dev, face, quiet, opts["flame_model"],
                                          opts["flame_embedding"])
        save_with_preview(av, model, head, dev, output)
        return av

    @classmethod
    def describe(cls, avatar: GagaAvatar) -> str:
        return (f"a GAGAvatar avatar of {avatar.gaussians.xyz.shape[1]} Gaussians (camera fit "
                f"{avatar.info['camera_fit_px']:.2f} px)")

    @classmethod
    def load(cls, path, opts):
        av = load_gagavatar(path)
        dev = check_device(opts.get("device", "cpu"))
        refine = opts.get("refiner", False)  # export and view take no refiner: they refuse before weights matter
        model = load_model(gagavatar_weights(opts.get("weights")), av, dev)[0] if refine else None
        head = flame_head(opts.get("flame_model"), None, av.config.n_vertices, path, av)
        return cls(av, head, model, dev)

    # -- playback ---------------------------------------------------------------------------------------------
    def track_driver(self, driver, face, quiet, opts):
        """The driver (its first ``max_frames`` frames) tracked with FLAME at the reference's focal length (a
        ``.track`` file is used as it is)."""
        if is_track_file(driver):
            return load_driver_track(driver, self.rig, quiet), None
        source = driver_source(driver, opts.get("max_frames"))
        return track_for_model(source, self.rig, face, quiet, self.device.type), source

    def animation(self, tracking, source, quiet, opts, batch: int = 4):
        """Per frame, the driven vertex Gaussians, a 32-channel render and the refiner (``batch`` frames at a time),
        in the driver's head crop (as the reference), on black."""
        n = driven_count(tracking, opts.get("max_frames"))
        cfg = self.avatar.config
        expr, transforms, _, errs = driver_views(self.rig, tracking, list(range(n)), cfg.render_size, cfg.focal)
        views = render_views(self.avatar, self.rig, expr, transforms, self.device, self.model, batch=batch)
        frames = (rgb for rgb, _ in tqdm(views, total=n, desc="rendering", unit="frame", disable=quiet, leave=False))
        return Animation(frames, n, tracking.fps, tracking.n_shots, {"camera_fit_px": float(np.mean(errs))})

    def _views(self, yaws: list[float], pitch: float):
        transforms = torch.stack([turned_transform(self.avatar.transform, y, pitch) for y in yaws])
        expr = self.avatar.expression[None].expand(len(yaws), -1)
        return render_views(self.avatar, self.rig, expr, transforms, self.device, self.model)

    def turntable(self, n_frames, pitch, size, quiet, opts):
        """One full turn in ``n_frames`` frames with the source expression, around its source view, on black."""
        views = self._views([360.0 * k / n_frames for k in range(n_frames)], pitch)
        for rgb, _ in tqdm(views, total=n_frames, desc="rendering", unit="frame", disable=quiet, leave=False):
            yield sized(rgb, size)

    def still(self, yaw, pitch, size, opts):
        return sized(next(self._views([yaw], pitch))[0], size)

    @property
    def source_image(self) -> np.ndarray:
        return self.avatar.source

    # -- evaluation -------------------------------------------------------------------------------------------
    @classmethod
    def track_video(cls, source, face, quiet, opts):
        head = make_rig("flame", opts["flame_model"], opts["flame_embedding"])
        return track_for_model(source, head, face, quiet), head

    @classmethod
    def reenactment(cls, source, tracking, rig: FlameHead, source_frames, folder, quiet, opts):
        k = one_source_frame("gagavatar", source.path, tracking, source_frames)
        dev = check_device(opts["device"])
        w = gagavatar_weights(opts["weights"])
        model, sha = load_model(w, None, dev)
        check_topology(rig, model.cfg.n_vertices)
        src_img = next(stream_frames(source, [k]))
        av = make_avatar(model, sha, src_img, rig, tracking, k, dev,
                         info={"frame": k, "weights": Path(w).name})
        save_with_preview(av, model, rig, dev, folder / "avatar.avatar")
        loaded = cls(av, rig, model, dev)
        return Reenactment({"headsplat": _SelfRenderer(loaded, tracking)}, k, frozenset({k}), src_img,
                           tracking.landmarks[k], f"frames {[k]}")

    @classmethod
    def cross_source(cls, sources, folder, face, quiet, opts):
        dev = check_device(opts["device"])
        av, head, model, made = avatar_or_photo(sources[0], gagavatar_weights(opts["weights"]), dev, face, quiet,
                                                opts["flame_model"], "--method gagavatar needs one photo")
        if made:
            save_with_preview(av, model, head, dev, folder / "avatar.avatar")
        return cls(av, head, model, dev)

    def cross_renderer(self, tracking, source, n_frames, opts) -> Callable[[int], np.ndarray]:
        """``render(t)`` for t = 0, 1, … in order: the driver's frames rendered in the driver's head crop."""
        cfg = self.avatar.config
        expr, transforms, _, _ = driver_views(self.rig, tracking, list(range(n_frames)), cfg.render_size, cfg.focal)
        frames = render_views(self.avatar, self.rig, expr, transforms, self.device, self.model)
        return lambda t: next(frames)[0]


class _SelfRenderer:
    """``render(t, ground_truth)``: frame ``t`` of ``tracking`` rendered by the GAGAvatar avatar in the frame's own
    head crop and pasted back into the frame through the splatting's coverage (self-reenactment)."""
    def __init__(self, loaded: GagavatarMethod, tracking):
        self.loaded, self.tracking = loaded, tracking

    def __enter__(self):
        return self.render

    def __exit__(self, *exc):
        return False

    def render(self, t: int, gt: np.ndarray) -> np.ndarray:
        lo, cfg = self.loaded, self.loaded.avatar.config
        crop, transform, _ = frame_view(lo.rig, self.tracking, t, cfg.render_size, cfg.focal)
        expr = torch.as_tensor(self.tracking.expression[[t]], dtype=torch.float32)
        rgb, alpha = next(render_views(lo.avatar, lo.rig, expr, transform[None], lo.device, lo.model))
        return paste_back(gt, rgb, alpha, crop, feather=0.01)
