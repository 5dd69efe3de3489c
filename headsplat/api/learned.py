"""``create --method gagavatar`` and the commands on such avatars (animate, render, generate, eval): GAGAvatar's
released weights run by headsplat's own code, with headsplat's FLAME tracking, files and evaluation."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from headsplat.api.common import check_device, check_output
from headsplat.core.errors import HeadsplatError, InputError
from headsplat.rig.factory import make_rig


def _weights(weights):
    from headsplat.avatar.gagavatar import CONFIG_KEY, WEIGHTS_ENV
    from headsplat.models.weights import resolve_weights

    return resolve_weights(weights, WEIGHTS_ENV, CONFIG_KEY, "GAGAvatar")


def _check_topology(head, n_vertices: int) -> None:
    nv = int(head.flame.v_template.shape[0])
    if nv != n_vertices:
        raise InputError(f"{head.path}: {nv} vertices; GAGAvatar needs FLAME 2020's topology ({n_vertices} "
                         "vertices): pass a FLAME 2020/2023 generic_model file with --flame-model")


def _flame_head(flame_model, flame_embedding=None, n_vertices: int | None = None, path=None, avatar=None):
    """The FLAME head (the user's file), checked against the network's vertex count and, for an existing
    ``avatar`` (at ``path``), against the FLAME file, expression set and shape size it was made with."""
    from headsplat.avatar.avatar import check_flame_record

    head = make_rig("flame", flame_model, flame_embedding)
    if n_vertices is not None:
        _check_topology(head, n_vertices)
    if avatar is not None:
        check_flame_record(avatar.rig_record, head, path)
        if tuple(avatar.expression_names) != tuple(head.expression_names) or \
                tuple(avatar.identity.shape) != tuple(head.identity_shape):
            raise InputError(f"{path}: made with another FLAME coefficient set than this headsplat's; re-create it")
    return head


def create_gagavatar(inputs, output: str | os.PathLike, weights: str | os.PathLike | None = None,
                     device: str = "cpu", face: int = 0, quiet: bool = False,
                     flame_model: str | os.PathLike | None = None, flame_embedding: str | os.PathLike | None = None):
    """A GAGAvatar avatar of the person in one photo (``headsplat create PHOTO --method gagavatar``).

    Args:
        inputs: one photo (a path, or a list of one path).
        weights: the authors' ``GAGAvatar.pt`` (default: ``$HEADSPLAT_GAGAVATAR_WEIGHTS`` or the user config's
            ``gagavatar_weights``).
        flame_model: the FLAME 2020 (or 2023) file; GAGAvatar is built on FLAME.

    Returns:
        the :class:`~headsplat.avatar.gagavatar.GagaAvatar` (also written to ``output``).
    """
    from headsplat.avatar.gagavatar import render_views, save_gagavatar
    from headsplat.media.frames import open_frames

    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if len(paths) != 1:
        raise HeadsplatError("--method gagavatar makes an avatar from one photo; give exactly one")
    out = check_output(output, (".avatar",), "an avatar", replaces="avatar.json")
    dev = check_device(device)
    w = _weights(weights)
    source = open_frames(paths[0])
    if source.kind != "image":
        raise InputError(f"{paths[0]}: --method gagavatar needs one photo, not a {source.kind}")
    av, head, model = _make(source, paths, w, dev, face, quiet, flame_model, flame_embedding)
    preview, _ = next(render_views(av, head, av.expression[None], av.transform[None], dev, model, noise="stored"))
    save_gagavatar(av, out, preview)
    return av


def _make(source, paths, weights, dev, face, quiet, flame_model, flame_embedding):
    """(avatar, FLAME head, network) of the first frame of ``source``."""
    from headsplat.avatar.gagavatar import load_model, make_avatar, track_for_model

    model, sha = load_model(weights, None, dev)
    head = _flame_head(flame_model, flame_embedding, model.cfg.n_vertices)
    tracking = track_for_model(source, head, face, quiet)
    img = next(iter(source)).rgb
    av = make_avatar(model, sha, img, head, tracking, 0, dev,
                     info={"inputs": [str(p) for p in paths], "face": face, "weights": Path(weights).name})
    return av, head, model


# head-pose and expression grid of the generated views: (name, change to the source's expression)
GENERATED_EXPRESSIONS = ("source", "jaw open", "expr_000 +2", "expr_001 +2")


def expression_variants(expression: torch.Tensor, names: tuple, which=GENERATED_EXPRESSIONS) -> torch.Tensor:
    """(len(which), E) the source expression and named changes of it: "jaw open" (0.3 rad), "expr_NNN +v"."""
    out = []
    for w in which:
        e = expression.clone()
        if w == "jaw open":
            e[names.index("jaw_rx")] += 0.3
        elif w != "source":
            name, value = w.split()
            if name not in names:
                raise HeadsplatError(f"unknown expression coefficient {name!r}")
            e[names.index(name)] += float(value)
        out.append(e)
    return torch.stack(out)


def generate_gagavatar(source, output, yaws, pitches, weights=None, device: str = "cpu", face: int = 0,
                       quiet: bool = False, flame_model=None, size: int | None = None) -> Path:
    """A view set of the person in ``source`` (a photo, or a GAGAvatar ``.avatar``) rendered by GAGAvatar at
    every (expression, pitch, yaw) of the grid: RGBA views (alpha: the splatting's coverage) with their FLAME
    parameters and cameras, for ``create PHOTO --views VIEWS --rig flame``."""
    import itertools

    from headsplat.avatar.gagavatar import load_gagavatar, load_model, render_views
    from headsplat.avatar.viewset import write_view_set
    from headsplat.media.frames import open_frames
    from headsplat.models.gagavatar.inputs import view_to_tracking
    from headsplat.avatar.viewset import generated_tracking

    dev = check_device(device)
    w = _weights(weights)
    if Path(source).suffix.lower() == ".avatar":
        av = load_gagavatar(source)
        model = load_model(w, av, dev)[0]
        head = _flame_head(flame_model, None, av.config.n_vertices, source, av)
    else:
        frames = open_frames(source)
        if frames.kind != "image":
            raise InputError(f"{source}: the gagavatar generator needs one photo (or a GAGAvatar .avatar)")
        av, head, model = _make(frames, [source], w, dev, face, quiet, flame_model, None)
    names = tuple(av.expression_names)
    variants = expression_variants(av.expression, names)
    combos = list(itertools.product(range(len(variants)), pitches, yaws))
    expr = torch.stack([variants[e] for e, _, _ in combos])
    transforms = torch.stack([turned_transform(av.transform, y, p) for _, p, y in combos])
    scale = float(av.info.get("identity_scale", 1.0))
    R = av.config.render_size
    size = int(size or R)
    images = []
    for rgb, alpha in tqdm(render_views(av, head, expr, transforms, dev, model, noise="stored"), total=len(combos),
                           desc="generating", unit="view", disable=quiet, leave=False):
        rgba = np.dstack([rgb, (np.clip(alpha, 0, 1) * 255 + 0.5).astype(np.uint8)])
        if size != R:
            rgba = cv2.resize(rgba, (size, size), interpolation=cv2.INTER_AREA if size < R else cv2.INTER_LINEAR)
        images.append(rgba)
    rot, trans = zip(*(view_to_tracking(t, scale) for t in transforms))
    n = len(images)
    tracking = generated_tracking("flame", size, size, av.config.focal * size / 2, av.identity.numpy(), scale, names,
                                  torch.stack(rot).numpy(), torch.stack(trans).numpy(), expr.numpy(), str(source),
                                  av.rig_record)
    generator = {"name": "gagavatar", "weights_sha256": av.weights_sha256, "source": str(source),
                 "yaws": list(yaws), "pitches": list(pitches), "expressions": list(GENERATED_EXPRESSIONS)}
    return write_view_set(output, images, tracking, ["generated"] * n, generator)


def _driver(driver, face, quiet, head, max_frames: int | None = None):
    """The driver (its first ``max_frames`` frames) tracked with FLAME at the reference's focal length (a
    ``.track`` file is used as it is)."""
    from headsplat.api.playback import driver_tracking
    from headsplat.avatar.gagavatar import track_for_model
    from headsplat.media.frames import open_frames

    if Path(driver).suffix.lower() in (".track", ".npz"):
        return driver_tracking(driver, face, quiet, head)[0]
    source = open_frames(driver)
    if max_frames is not None:
        source = source.first(max_frames)
    return track_for_model(source, head, face, quiet)


def driver_views(head, tracking, frames: list[int], size: int, focal: float):
    """(expressions (F, E), transforms (F, 3, 4), crops, camera-fit errors) of the driver's frames, each in
    its head crop (boxes smoothed over the video within shots)."""
    from headsplat.avatar.gagavatar import frame_view, video_boxes

    boxes = video_boxes(head, tracking, frames)
    views = [frame_view(head, tracking, t, size, focal, box) for t, box in zip(frames, boxes)]
    expr = torch.as_tensor(tracking.expression[frames], dtype=torch.float32)
    return expr, torch.stack([v[1] for v in views]), [v[0] for v in views], [v[2] for v in views]


def animate_gagavatar(avatar, driver, output, weights=None, device: str = "cpu", refiner: bool = True,
                      max_frames: int | None = None, face: int = 0, quiet: bool = False,
                      flame_model=None, batch: int = 4) -> dict:
    """Drive a GAGAvatar avatar: per frame, the driven vertex Gaussians, a 32-channel render and the refiner
    (``batch`` frames at a time), in the driver's head crop (as the reference), on black.

    Args:
        refiner: False writes the raw render's first three channels and needs no weights.
        max_frames: animate only the first N driver frames.
    """
    from headsplat.api.playback import _check_animation_output, _frame_sink
    from headsplat.avatar.gagavatar import load_gagavatar, load_model, render_views

    out = _check_animation_output(output, "black")
    av = load_gagavatar(avatar)
    dev = check_device(device)
    model = load_model(_weights(weights), av, dev)[0] if refiner else None
    head = _flame_head(flame_model, None, av.config.n_vertices, avatar, av)
    if max_frames is not None and max_frames < 1:
        raise HeadsplatError("--max-frames must be at least 1")
    tracking = _driver(driver, face, quiet, head, max_frames)
    n = len(tracking) if max_frames is None else min(len(tracking), int(max_frames))
    expr, transforms, _, errs = driver_views(head, tracking, list(range(n)), av.config.render_size, av.config.focal)
    with _frame_sink(out, tracking.fps) as write:
        for rgb, _ in tqdm(render_views(av, head, expr, transforms, dev, model, batch=batch), total=n,
                           desc="rendering", unit="frame", disable=quiet, leave=False):
            write(rgb)
    return {"frames": n, "fps": tracking.fps, "output": out, "shots": tracking.n_shots,
            "camera_fit_px": float(np.mean(errs))}


def turned_transform(transform: torch.Tensor, yaw_deg: float, pitch_deg: float) -> torch.Tensor:
    """(3, 4) the view ``transform`` with the head turned by ``yaw`` (about its vertical axis) and ``pitch``
    (degrees): the world (the head's frame) rotated before the camera sees it."""
    from headsplat.core.rotation import euler_yxz_to_matrix
    from headsplat.models.gagavatar.conventions import opencv_viewmat, pytorch3d_transform

    v = opencv_viewmat(transform.double())
    turn = torch.eye(4, dtype=torch.float64)
    turn[:3, :3] = euler_yxz_to_matrix(torch.tensor(math.radians(yaw_deg), dtype=torch.float64),
                                       torch.tensor(math.radians(pitch_deg), dtype=torch.float64),
                                       torch.tensor(0.0, dtype=torch.float64))
    return pytorch3d_transform(v @ turn).float()


def render_gagavatar(avatar, output, orbit: bool = True, frames: int = 90, size: int = 512, yaw: float = 0.0,
                     pitch: float = 0.0, fps: float = 30.0, weights=None, device: str = "cpu",
                     refiner: bool = True, quiet: bool = False, flame_model=None) -> Path:
    """A turntable (one full turn in ``frames`` frames, at ``pitch``) or a still (turned by ``yaw`` and
    ``pitch``, degrees) of a GAGAvatar avatar with its source expression, around its source view."""
    from headsplat.api.playback import _check_animation_output, _frame_sink
    from headsplat.avatar.gagavatar import load_gagavatar, load_model, render_views
    from headsplat.media.image import write_png

    av = load_gagavatar(avatar)
    dev = check_device(device)
    if orbit:
        out = _check_animation_output(output, "black")
        yaws = [360.0 * k / frames for k in range(frames)]
    else:
        out = Path(output)
        if out.suffix.lower() != ".png":
            raise HeadsplatError(f"{out}: a still is a .png")
        yaws = [yaw]
    model = load_model(_weights(weights), av, dev)[0] if refiner else None
    head = _flame_head(flame_model, None, av.config.n_vertices, avatar, av)
    transforms = torch.stack([turned_transform(av.transform, y, pitch) for y in yaws])
    expr = av.expression[None].expand(len(yaws), -1)
    views = render_views(av, head, expr, transforms, dev, model)

    def sized(img):
        if img.shape[0] == size:
            return img
        return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if size < img.shape[0] else
                          cv2.INTER_LINEAR)

    if not orbit:
        from headsplat.core.fileio import check_writable

        check_writable(out)
        write_png(out, sized(next(views)[0]))
        return out
    with _frame_sink(out, fps) as write:
        for rgb, _ in tqdm(views, total=len(yaws), desc="rendering", unit="frame", disable=quiet, leave=False):
            write(sized(rgb))
    return out


def self_renderer(avatar, model, head, tracking, device):
    """``render(t, ground_truth)``: frame ``t`` of ``tracking`` rendered by the GAGAvatar avatar in the frame's
    own head crop and pasted back into the frame through the splatting's coverage (self-reenactment)."""
    from headsplat.avatar.gagavatar import frame_view, render_views
    from headsplat.face.align import paste_back

    cfg = avatar.config

    def render(t: int, gt: np.ndarray) -> np.ndarray:
        crop, transform, _ = frame_view(head, tracking, t, cfg.render_size, cfg.focal)
        expr = torch.as_tensor(tracking.expression[[t]], dtype=torch.float32)
        rgb, alpha = next(render_views(avatar, head, expr, transform[None], device, model))
        return paste_back(gt, rgb, alpha, crop, feather=0.01)

    return render


def cross_frames(avatar, model, head, tracking, n: int, device):
    """``render(t)`` for t = 0, 1, … in order: the driver's frames rendered in the driver's head crop."""
    from headsplat.avatar.gagavatar import render_views

    expr, transforms, _, _ = driver_views(head, tracking, list(range(n)), avatar.config.render_size,
                                          avatar.config.focal)
    frames = render_views(avatar, head, expr, transforms, device, model)

    def render(t: int) -> np.ndarray:
        return next(frames)[0]

    return render


def gagavatar_for_eval(source, photo: np.ndarray | None, tracking, t: int, out, weights, device, face, quiet,
                       flame_model, head=None):
    """(avatar saved at ``out``, network, FLAME head) for an evaluation: from frame ``t`` of an already
    tracked video (``photo``, ``tracking``), from a photo path, or a GAGAvatar ``.avatar`` (``source``)."""
    from headsplat.avatar.gagavatar import load_gagavatar, load_model, make_avatar, render_views, save_gagavatar
    from headsplat.media.frames import open_frames

    dev = check_device(device)
    w = _weights(weights)
    if source is not None and Path(source).suffix.lower() == ".avatar":
        av = load_gagavatar(source)
        return av, load_model(w, av, dev)[0], _flame_head(flame_model, None, av.config.n_vertices, source, av)
    if photo is None:
        frames = open_frames(source)
        if frames.kind != "image":
            raise InputError(f"{source}: --method gagavatar needs one photo")
        av, head, model = _make(frames, [source], w, dev, face, quiet, flame_model, None)
    else:
        model, sha = load_model(w, None, dev)
        _check_topology(head, model.cfg.n_vertices)
        av = make_avatar(model, sha, photo, head, tracking, t, dev, info={"frame": t, "weights": Path(w).name})
    preview, _ = next(render_views(av, head, av.expression[None], av.transform[None], dev, model, noise="stored"))
    save_gagavatar(av, out, preview)
    return av, model, head
