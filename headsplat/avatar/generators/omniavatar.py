"""The ``omniavatar`` generator: random identities of OmniAvatar's 3D head GAN, each rendered at a grid of head poses
and expressions with the exact cameras and controls, one view set per identity.

Its source is the label pool (``ffhq_labels.npy``: rows of 25 camera values and the 206 controls): each identity
takes the shape (and first expression) of a row drawn from it, as the authors' ``gen_grouped_samples.py`` does.

What the view sets hold, and what is not verified (no released weights or labels here):

- cameras exact: each view's OmniAvatar camera (``look_at_camera`` round ``avg_camera_pivot``) is written as the
  head's pose in headsplat's tracking frame (camera at the origin looking down -z), in OmniAvatar's world units
  (their size in metres is not known: ``identity_scale`` is 1);
- ``rig: "flame"``: the 100 shape codes as the identity, the 100 expression codes and the jaw as FLAME's
  ``expr_000..099`` and ``jaw_rx..rz`` (eyes 0); which FLAME version the codes belong to is not stated by the
  authors, and the neck is set to 0 in every view (headsplat's FLAME has no neck joint).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from headsplat.avatar.generators import PITCHES, SIZE, YAWS, Generator, register_generator
from headsplat.avatar.generators.cap4d import GENERATE_SEED
from headsplat.avatar.options import DEVICE, WEIGHTS, Option
from headsplat.avatar.viewset import generated_tracking, write_view_set
from headsplat.core.errors import HeadsplatError, InputError
from headsplat.core.fileio import atomic_dir
from headsplat.core.validate import check_device

COUNT = Option("count", "omniavatar: how many random identities (one view set each)", 1, type=int, metavar="N")
TRUNCATION_PSI, TRUNCATION_CUTOFF = 0.7, 14  # the README's --trunc 0.7 and the script's cut-off
N_EXPRESSIONS = 3  # per identity: its own row's expression, then those of two other rows (the script's draw)
FLAME_POSE = ("jaw_rx", "jaw_ry", "jaw_rz", "eye_l_rx", "eye_l_ry", "eye_l_rz", "eye_r_rx", "eye_r_ry", "eye_r_rz")
OPENCV_FROM_TRACKING = np.diag([1.0, -1.0, -1.0])  # tracking's camera looks down -z (Tracking's viewmat)


def read_labels(path: Path) -> np.ndarray:
    """(N, 231) float32 label rows of a ``.npy`` label pool (never unpickled).

    Raises:
        InputError: not a readable array of at least 25 + 206 columns.
    """
    from headsplat.models.omniavatar import N_CAMERA, N_CONTROLS

    try:
        rows = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a NumPy label pool ({type(e).__name__}: {e})") from None
    if rows.ndim != 2 or rows.shape[1] < N_CAMERA + N_CONTROLS or len(rows) == 0:
        raise InputError(f"{path}: expected (N, {N_CAMERA + N_CONTROLS}) label rows, got {rows.shape}")
    return np.ascontiguousarray(rows[:, -(N_CAMERA + N_CONTROLS):], dtype=np.float32)


def camera_to_head_pose(cam2world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An OpenCV camera-to-world (4, 4) of OmniAvatar's world -> the head's (axis-angle (3,), translation (3,)) in
    headsplat's tracking frame, where the camera sits at the origin looking down -z."""
    w2c = np.linalg.inv(cam2world.astype(np.float64))
    rot = OPENCV_FROM_TRACKING @ w2c[:3, :3]
    trans = OPENCV_FROM_TRACKING @ w2c[:3, 3]
    aa, _ = cv2.Rodrigues(rot)
    return aa.reshape(3), trans


def identity_controls(labels: np.ndarray, seed: int) -> tuple[int, list[int], np.ndarray]:
    """One identity's draws: its row, the rows whose expressions it takes, and (N_EXPRESSIONS, 206) controls with
    its shape, those expressions and jaws, neck 0."""
    rng = np.random.RandomState(seed)
    own = int(rng.randint(0, len(labels)))
    rows = [own] + [int(rng.randint(0, len(labels))) for _ in range(N_EXPRESSIONS - 1)]
    controls = labels[rows, 25:].copy()
    controls[:, :100] = labels[own, 25:125]
    controls[:, 200:203] = 0  # neck
    return own, rows, controls


@register_generator
class OmniAvatarGenerator(Generator):
    name = "omniavatar"
    summary = ("OmniAvatar's random identities (--count, --seed) at a grid of head poses and expressions, one "
               "view set each (--weights omniavatar.pkl)")
    source_help = "omniavatar: its label pool (ffhq_labels.npy)"
    options = {"generate": (YAWS, PITCHES, SIZE, WEIGHTS, DEVICE, GENERATE_SEED, COUNT)}

    @classmethod
    def generate(cls, sources, output, face, quiet, opts):
        """``output/identity_NNN``: a view set per identity, identity i drawn with seed ``seed + i``."""
        from headsplat.models.omniavatar import OmniAvatar, look_at_camera
        from headsplat.models.omniavatar.model import FFHQ_3DMM_FOCAL
        from headsplat.models.weights import sha256_file

        if not opts["weights"]:
            raise HeadsplatError("the omniavatar generator needs --weights omniavatar.pkl (the authors' G_ema)")
        count, seed = int(opts["count"]), int(opts["seed"] or 0)
        if count < 1:
            raise HeadsplatError(f"--count: at least one identity, got {count}")
        dev = check_device(opts["device"])
        labels = read_labels(sources[0])
        model = OmniAvatar.from_pretrained(opts["weights"], device=dev)
        rk = model.cfg.rendering_kwargs
        pivot, radius = rk.get("avg_camera_pivot", [0, 0, 0]), float(rk.get("avg_camera_radius", 1.0))
        yaws, pitches = tuple(opts["yaws"]), tuple(opts["pitches"])
        R = model.cfg.img_resolution
        size = int(opts["size"] or R)
        k = torch.tensor([[FFHQ_3DMM_FOCAL, 0, 0.5], [0, FFHQ_3DMM_FOCAL, 0.5], [0, 0, 1]], device=dev)
        digest = sha256_file(opts["weights"])
        output = Path(output)
        with atomic_dir(output) as tmp:
            for i in range(count):
                own, rows, controls = identity_controls(labels, seed + i)
                z = torch.from_numpy(np.random.RandomState(seed + i).randn(1, model.cfg.z_dim)).float().to(dev)
                frontal = look_at_camera(math.pi / 2, math.pi / 2, pivot, radius, device=dev)
                c0 = torch.cat([frontal.reshape(1, 16), k.reshape(1, 9),
                                torch.from_numpy(controls[:1]).to(dev)], 1)
                combos = list(itertools.product(range(len(controls)), pitches, yaws))
                images, rot, trans = [], [], []
                with torch.no_grad():
                    ws = model.mapping(z, c0, TRUNCATION_PSI, TRUNCATION_CUTOFF)
                    planes = model.planes(ws)
                    for e, p, y in tqdm(combos, desc=f"identity {i}", unit="view", disable=quiet, leave=False):
                        # the script's angles: yaw and polar angle about pi/2 (+pitch: the camera higher)
                        cam = look_at_camera(math.pi / 2 + math.radians(y), math.pi / 2 - math.radians(p), pivot,
                                             radius, device=dev)
                        c = torch.cat([cam.reshape(1, 16), k.reshape(1, 9), torch.from_numpy(controls[e:e + 1])
                                       .to(dev)], 1)
                        img = model.synthesis(ws, c, planes=planes).image[0]
                        rgb = ((img.permute(1, 2, 0)[..., :3] * 127.5 + 128).clamp(0, 255)
                               .to(torch.uint8).cpu().numpy())
                        if size != R:
                            rgb = cv2.resize(rgb, (size, size),
                                             interpolation=cv2.INTER_AREA if size < R else cv2.INTER_LINEAR)
                        images.append(np.ascontiguousarray(rgb))
                        a, t = camera_to_head_pose(cam[0].cpu().numpy())
                        rot.append(a)
                        trans.append(t)
                expr = np.concatenate([controls[[e for e, _, _ in combos], 100:200],
                                       controls[[e for e, _, _ in combos], 203:206],
                                       np.zeros((len(combos), 6), np.float32)], 1)
                names = tuple(f"expr_{j:03d}" for j in range(100)) + FLAME_POSE
                extra = {"flame": {"version": None, "n_shape": 100, "n_expressions": 100,
                                   "note": "OmniAvatar's FLAME-like codes; the FLAME version is not verified"},
                         "omniavatar": {"controls": controls.tolist(), "units": "OmniAvatar world units"}}
                tracking = generated_tracking("flame", size, size, FFHQ_3DMM_FOCAL * size, controls[0, :100], 1.0,
                                              names, np.stack(rot), np.stack(trans), expr, str(sources[0]), extra)
                gen = {"name": "omniavatar", "weights_sha256": digest, "labels": str(sources[0]), "seed": seed + i,
                       "label_rows": rows, "identity_row": own, "truncation_psi": TRUNCATION_PSI,
                       "yaws": list(yaws), "pitches": list(pitches), "neck": "0 in every view"}
                write_view_set(tmp / f"identity_{i:03d}", images, tracking, ["generated"] * len(images), gen)
        return output
