"""The ``omniavatar`` generator: random identities of OmniAvatar's 3D head GAN, each rendered at a grid of head poses
and expressions with the exact cameras and controls, one view set per identity, labelled in headsplat's FLAME.

Controls: with a label pool (``--labels ffhq_labels.npy``: rows of 25 camera values and the 206 controls), an
identity takes the shape and first expression of a row drawn from it and the expressions of two more rows, as the
authors' ``gen_grouped_samples.py`` draws them; without one, FLAME's mean shape, neutral and with the jaw open.
The neck is 0 in every view (headsplat's FLAME head has no neck joint).

FLAME (the user's file, needed): OmniAvatar's controls are FLAME's shape, expression, neck and jaw codes, and its
implicit 3DMM gives the signed distance to the FLAME head they make, in the network's world. The generator
measures where FLAME sits in that world (:func:`~headsplat.models.omniavatar.flame_map.align_flame`, once a run,
on the first identity's controls), which makes the cameras metric: each view's camera becomes the head's pose in
headsplat's tracking frame in metres (:func:`~headsplat.models.omniavatar.flame_map.head_pose`). The 100
expression codes and the jaw become headsplat's FLAME expression (its 50 coefficients, jaw and eyes) by a
least-squares fit of the vertices. Both residuals are recorded; an alignment residual above ``RMS_WARN_MM`` warns
that the FLAME file is probably not the version the codes belong to.
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from headsplat.avatar.generators import PITCHES, SIZE, YAWS, Generator, register_generator
from headsplat.avatar.generators.cap4d import GENERATE_SEED
from headsplat.avatar.options import DEVICE, FLAME_MODEL, WEIGHTS, Option
from headsplat.avatar.viewset import generated_tracking, write_view_set
from headsplat.core.errors import HeadsplatError, InputError
from headsplat.core.fileio import atomic_dir
from headsplat.core.validate import check_device

COUNT = Option("count", "omniavatar: how many view sets (random identities, or one with --identity-seed)", 1,
               type=int, metavar="N")
LABELS = Option("labels", "omniavatar: the label pool the identities' shapes and expressions are drawn from "
                "(ffhq_labels.npy; default: FLAME's mean shape, neutral and jaw open)", metavar="FILE")
IDENTITY_SEED = Option("identity_seed", "omniavatar: one identity (this seed's latent and shape) in every view set; "
                       "--seed then seeds each set's expressions", type=int, metavar="K")
TRUNCATION_PSI, TRUNCATION_CUTOFF = 0.7, 14  # the README's --trunc 0.7 and the script's cut-off
N_EXPRESSIONS = 3  # per identity with a label pool: its own row's expression, then those of two other rows
JAW_OPEN = (0.1, 0.3)  # without labels: the second expression opens the jaw by this many radians (uniform)
RMS_WARN_MM = 2.0  # alignment residual (FLAME mm) above which the FLAME file is probably another version
WEIGHTS_ENV, CONFIG_KEY = "HEADSPLAT_OMNIAVATAR_WEIGHTS", "omniavatar_weights"


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


def identity_controls(labels: np.ndarray | None, identity_seed: int, expression_seed: int | None = None
                      ) -> tuple[int | None, list[int], np.ndarray]:
    """One view set's draws: the identity's row, the rows whose expressions it takes, and (X, 206) controls with
    its shape, those expressions and jaws, neck 0. The identity's row (its own expression first) comes from
    ``identity_seed``, the other rows from ``expression_seed`` (None: from ``identity_seed``'s stream too, as one
    draw). Without labels: no rows, the mean
    shape, neutral and a jaw opened by an angle drawn from ``expression_seed``."""
    rng = np.random.RandomState(identity_seed)
    exp_rng = rng if expression_seed is None else np.random.RandomState(expression_seed)
    if labels is None:
        controls = np.zeros((2, 206), np.float32)
        controls[1, 203] = exp_rng.uniform(*JAW_OPEN)
        return None, [], controls
    own = int(rng.randint(0, len(labels)))
    rows = [own] + [int(exp_rng.randint(0, len(labels))) for _ in range(N_EXPRESSIONS - 1)]
    controls = labels[rows, 25:].copy()
    controls[:, :100] = labels[own, 25:125]
    controls[:, 200:203] = 0  # neck
    return own, rows, controls


def flame_vertices(rig, controls: np.ndarray) -> torch.Tensor:
    """(X, V, 3) FLAME's vertices (head frame, metres) under (X, 206) controls: shape 100, expression 100, neck,
    jaw; eyes 0. ``rig``: a :class:`~headsplat.rig.flame.model.FlameRig` with 100 of each."""
    c = torch.from_numpy(np.asarray(controls, np.float32))
    z = torch.zeros(len(c), 3)
    return rig(c[:, :100], c[:, 100:200], z, c[:, 200:203], c[:, 203:206], torch.zeros(len(c), 6), z).vertices


def measure_alignment(model, rig, controls: np.ndarray, device):
    """Where FLAME sits in the network's world, from the prior SDF under ``controls`` (X, 206)."""
    from headsplat.models.omniavatar.flame_map import align_flame, vertex_normals
    from headsplat.rig.flame.head import eyeball_vertices

    with torch.no_grad():
        verts = flame_vertices(rig, controls)
        normals = vertex_normals(verts, rig.triangles.long())
    keep = torch.from_numpy(~eyeball_vertices(rig))
    ctrl = torch.from_numpy(np.asarray(controls, np.float32)).to(device)
    box = torch.as_tensor(model.cfg.rendering_kwargs["bbox"], dtype=torch.float64)

    def sdf(points):
        return model.prior_sdf(points.to(device), ctrl).cpu()

    return align_flame(sdf, verts[:, keep], normals[:, keep], box)


@register_generator
class OmniAvatarGenerator(Generator):
    name = "omniavatar"
    summary = ("OmniAvatar's random identities (--count, --seed, --identity-seed) at a grid of head poses and "
               "expressions, one view set each (--weights omniavatar.pkl, FLAME)")
    source_help = "omniavatar: none (see --labels)"
    min_sources, max_sources = 0, 0
    options = {"generate": (YAWS, PITCHES, SIZE, WEIGHTS, DEVICE, FLAME_MODEL, GENERATE_SEED, COUNT, LABELS,
                            IDENTITY_SEED)}

    @classmethod
    def generate(cls, sources, output, face, quiet, opts):
        """``output/identity_NNN``: view set i drawn with seed ``seed + i`` (its identity from ``identity_seed``
        when given)."""
        from headsplat.models.cap4d.views import fit_headsplat_expressions
        from headsplat.models.omniavatar import OmniAvatar, look_at_camera
        from headsplat.models.omniavatar.flame_map import head_pose
        from headsplat.models.omniavatar.model import FFHQ_3DMM_FOCAL
        from headsplat.models.weights import resolve_weights, sha256_file
        from headsplat.rig.factory import make_rig
        from headsplat.rig.flame.model import FlameRig
        from headsplat.track.tracker import rig_record

        count, seed = int(opts["count"]), int(opts["seed"] or 0)
        if count < 1:
            raise HeadsplatError(f"--count: at least one view set, got {count}")
        id_seed = opts.get("identity_seed")
        weights = resolve_weights(opts["weights"], WEIGHTS_ENV, CONFIG_KEY, "OmniAvatar")
        dev = check_device(opts["device"])
        labels = read_labels(Path(opts["labels"])) if opts.get("labels") else None
        head = make_rig("flame", opts["flame_model"])
        rig = FlameRig.from_file(head.path, n_shape=100, n_expr=100)  # the codes' 100 + 100 directions
        model = OmniAvatar.from_pretrained(weights, device=dev).requires_grad_(False)
        rk = model.cfg.rendering_kwargs
        pivot, radius = rk.get("avg_camera_pivot", [0, 0, 0]), float(rk.get("avg_camera_radius", 1.0))
        yaws, pitches = tuple(opts["yaws"]), tuple(opts["pitches"])
        R = model.cfg.img_resolution
        size = int(opts["size"] or R)
        k = torch.tensor([[FFHQ_3DMM_FOCAL, 0, 0.5], [0, FFHQ_3DMM_FOCAL, 0.5], [0, 0, 1]], device=dev)
        digest = sha256_file(weights)
        draws = [identity_controls(labels, seed + i if id_seed is None else int(id_seed),
                                   None if id_seed is None else seed + i) for i in range(count)]
        # on the first identity's own row (its shape and expression: the same row in every set of one
        # --identity-seed, so a training and a held-out set share one alignment)
        alignment = measure_alignment(model, rig, draws[0][2][:1], dev)
        if alignment.rms_mm > RMS_WARN_MM:
            warnings.warn(f"{head.path}: FLAME lies {alignment.rms_mm:.1f} mm RMS from OmniAvatar's prior surface "
                          f"(a matching FLAME: under {RMS_WARN_MM:g} mm); the codes are probably another FLAME "
                          "version's, and the views' cameras and expressions are approximate", stacklevel=2)
        output = Path(output)
        with atomic_dir(output) as tmp:
            for i, (own, rows, controls) in enumerate(draws):
                z_seed = seed + i if id_seed is None else int(id_seed)
                z = torch.from_numpy(np.random.RandomState(z_seed).randn(1, model.cfg.z_dim)).float().to(dev)
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
                        a, t = head_pose(cam[0].cpu().numpy(), alignment)
                        rot.append(a)
                        trans.append(t)
                identity = torch.from_numpy(controls[0, :100])
                with torch.no_grad():
                    targets = flame_vertices(rig, controls)
                expr, err = fit_headsplat_expressions(head, identity, targets, torch.zeros(head.n_expressions))
                expr = expr.numpy()[[e for e, _, _ in combos]]
                extra = {**rig_record(head), "omniavatar": {"controls": controls.tolist()}}
                tracking = generated_tracking("flame", size, size, FFHQ_3DMM_FOCAL * size, identity.numpy(), 1.0,
                                              head.expression_names, np.stack(rot), np.stack(trans), expr,
                                              str(opts.get("labels") or "omniavatar"), extra)
                gen = {"name": "omniavatar", "weights_sha256": digest,
                       "labels": None if labels is None else str(opts["labels"]), "seed": seed + i,
                       "identity_seed": z_seed, "label_rows": rows, "identity_row": own,
                       "truncation_psi": TRUNCATION_PSI, "yaws": list(yaws), "pitches": list(pitches),
                       "neck": "0 in every view", "flame_model": str(head.path), "flame_version": head.version,
                       "flame_alignment": alignment.as_dict(),
                       "expression_fit_rms_mm": [round(float(x) * 1000, 3) for x in err]}
                write_view_set(tmp / f"identity_{i:03d}", images, tracking, ["generated"] * len(images), gen)
        return output
