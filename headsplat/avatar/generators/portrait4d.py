"""The ``portrait4d`` generator: views of the person in one photo (or a Portrait4D ``.avatar``) rendered by
Portrait4D-v2 from a grid of cameras around the head, with their FLAME parameters and cameras, for
``create PHOTO --views VIEWS --rig flame``: at the source's expression, or (``--driver``) at each of a driver's
frames' (its motion code drives the network; its tracked FLAME expression, jaw and eyes label the views).

Each view's camera is the network's orbit camera; as a view set's track it is the head moving in front of a
camera at the origin: the network's world is headsplat's FLAME scaled by 3 and re-centred (``3 x - offset``,
the offset found when the FLAME file is checked against the network's), so a view's head rotation is the
camera's world-to-camera rotation and its translation ``(t - R offset) / 3`` (times the tracked identity scale).
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import torch
from tqdm import tqdm

from headsplat.avatar.generators import PITCHES, SIZE, YAWS, Generator, register_generator
from headsplat.avatar.methods.portrait4d import MOTION_WEIGHTS, NEURAL_RES, Portrait4DMethod, avatar_of_photo
from headsplat.avatar.options import DEVICE, FLAME_MODEL, WEIGHTS, Option
from headsplat.avatar.portrait4d import (
    driver_frame,
    filled_landmarks,
    motion_codes,
    tracked_flame,
    views,
)
from headsplat.avatar.viewset import generated_tracking, write_view_set
from headsplat.core.errors import InputError
from headsplat.core.rotation import matrix_to_axis_angle
from headsplat.media.frames import open_frames
from headsplat.models.portrait4d.inputs import CROP_SIZE, intrinsics, orbit_camera
from headsplat.models.portrait4d.model import world_to_camera
from headsplat.track.tracker import track_source


def view_to_tracking(camera: torch.Tensor, offset: torch.Tensor, identity_scale: float
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(25,) an orbit camera -> headsplat's head rotation (3,) axis-angle and translation (3,) for that view."""
    w2c = world_to_camera(camera[:16].view(1, 4, 4).double())[0]
    R, t = w2c[:3, :3], w2c[:3, 3]
    trans = (t - R @ offset.double()) / 3 * identity_scale
    return matrix_to_axis_angle(R).float(), trans.float()


DRIVER = Option("driver", "portrait4d: a video or image folder; every camera sees each of its frames' expression "
                "(the first --driver-frames)", metavar="VIDEO|FOLDER")
DRIVER_FRAMES = Option("driver_frames", "portrait4d: how many of the driver's frames", 4, type=int, metavar="N")


def driver_expressions(loaded: Portrait4DMethod, driver, n: int, face: int, quiet: bool):
    """[(motion (1, 548), FLAME inputs, headsplat expression (E,))] of the first ``n`` frames of ``driver``."""
    if n < 1:
        raise InputError("--driver-frames must be at least 1")
    source = open_frames(driver).first(n)
    if source.kind == "image":
        source = open_frames(driver)
    tracking = track_source(source, face=face, rig=loaded.rig, quiet=quiet, device=loaded.device.type)
    if tuple(tracking.expression_names) != tuple(loaded.avatar.expression_names):
        raise InputError(f"{driver}: tracked with another FLAME coefficient set than the avatar's")
    lms = filled_landmarks(tracking)
    out = []
    for t, frame in enumerate(source):
        f = driver_frame(frame.rgb, lms[t])
        motion = motion_codes(loaded.encoder, [f], loaded.device)
        out.append((motion, tracked_flame(loaded.avatar.identity, tracking, [t]),
                    torch.as_tensor(tracking.expression[t], dtype=torch.float32)))
    return out


@register_generator
class Portrait4DGenerator(Generator):
    name = "portrait4d"
    summary = "Portrait4D-v2's renders of one photo from a grid of cameras (--weights, --motion-weights)"
    source_help = "portrait4d: a photo (or a Portrait4D .avatar)"
    options = {"generate": (YAWS, PITCHES, SIZE, WEIGHTS, MOTION_WEIGHTS, DEVICE, FLAME_MODEL, NEURAL_RES, DRIVER,
                            DRIVER_FRAMES)}

    @classmethod
    def generate(cls, sources, output, face, quiet, opts):
        """RGBA views (alpha: the render's foreground, 1 - the background's share) at every (expression, pitch,
        yaw)."""
        source = sources[0]
        opts = {**opts, "flame_embedding": None}
        if source.suffix.lower() == ".avatar":
            loaded = Portrait4DMethod.load(source, opts)
        else:
            av, head, model, encoder, dev = avatar_of_photo(source, opts, face, quiet)
            loaded = Portrait4DMethod._loaded(av, head, model, encoder, dev, opts)
        av = loaded.avatar
        if "identity_scale" not in av.info or "flame_offset" not in av.info:
            raise InputError(f"{source}: the avatar does not record its identity scale and FLAME offset; re-create it")
        offset = torch.tensor(av.info["flame_offset"])
        yaws, pitches = tuple(opts["yaws"]), tuple(opts["pitches"])
        expressions = [(None, None, av.expression)]
        if opts.get("driver") is not None:
            expressions = driver_expressions(loaded, opts["driver"], int(opts["driver_frames"]), face, quiet)
        combos = list(itertools.product(range(len(expressions)), pitches, yaws))
        size = int(opts["size"] or CROP_SIZE)
        images, rot, trans = [], [], []
        rendered = itertools.chain.from_iterable(views(loaded.synth, list(yaws), p, motion=m, flame=f)
                                                 for m, f, _ in expressions for p in pitches)
        for img, fg in tqdm(rendered, total=len(combos), desc="generating", unit="view", disable=quiet, leave=False):
            rgba = np.dstack([img, (np.clip(fg, 0, 1) * 255 + 0.5).astype(np.uint8)])
            if size != CROP_SIZE:
                shrink = size < CROP_SIZE
                rgba = cv2.resize(rgba, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            images.append(rgba)
        for _, pitch, yaw in combos:
            r, t = view_to_tracking(orbit_camera(yaw, pitch), offset, float(av.info["identity_scale"]))
            rot.append(r)
            trans.append(t)
        n = len(images)
        focal = float(intrinsics()[0, 0]) * size
        expr = torch.stack([expressions[e][2] for e, _, _ in combos]).numpy()
        tracking = generated_tracking("flame", size, size, focal, av.identity.numpy(),
                                      float(av.info["identity_scale"]), av.expression_names,
                                      torch.stack(rot).numpy(), torch.stack(trans).numpy(), expr, str(source),
                                      av.rig_record)
        generator = {"name": "portrait4d", "weights_sha256": av.weights_sha256, "motion_sha256": av.motion_sha256,
                     "source": str(source), "yaws": list(yaws), "pitches": list(pitches),
                     "driver": None if opts.get("driver") is None else str(opts["driver"]),
                     "expressions": len(expressions),
                     "neural_resolution": loaded.synth.neural_resolution}
        return write_view_set(output, images, tracking, ["generated"] * n, generator)
