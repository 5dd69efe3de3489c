"""The ``cap4d`` generator (``headsplat generate REF... --model cap4d``): CAP4D's morphable multi-view diffusion
model (released weights, run by headsplat's own code) generates views of the person in the reference photos under
new head poses and expressions, written as a view set for ``create REF... --views VIEWS --rig flame``.

The pipeline, as CAP4D's inference: the references are tracked (headsplat's FLAME tracker) and converted to
CAP4D's FLAME parameters; each frame gets its conditioning maps; references are matted onto white, cropped around
the head and encoded; the generated views take CAP4D's generation expressions and cameras pivoted about the head;
stochastic I/O DDIM sampling with classifier-free guidance; decoding. The generated views' FLAME parameters are
converted back to headsplat's for the view set.
"""

from __future__ import annotations

import copy
import math
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from headsplat.avatar.generators import Generator, register_generator
from headsplat.avatar.options import DEVICE, FLAME_MODEL, WEIGHTS, Option
from headsplat.avatar.viewset import generated_tracking, write_view_set
from headsplat.core.errors import HeadsplatError, InputError
from headsplat.core.validate import check_device, resolve_user_file
from headsplat.face.segment import Matter
from headsplat.media.frames import open_frames
from headsplat.models.cap4d.assets import load_assets
from headsplat.models.cap4d.flame import LIP_VERTEX, CAP4DFlame
from headsplat.models.cap4d.model import MMDM, guided_eps
from headsplat.models.cap4d.vae import SCALE_FACTOR
from headsplat.models.cap4d.views import (
    N_EXPR,
    N_SHAPE,
    Cap4dFrames,
    camera_as_head_motion,
    fit_cap4d_parameters,
    fit_headsplat_expressions,
    frame_conditioning,
    generation_cameras,
    pose_frames,
    reference_crop,
)
from headsplat.models.sampling import cap4d_schedule, stochastic_io_sample
from headsplat.rig.factory import make_rig
from headsplat.rig.flame.loader import load_flame_file
from headsplat.track.tracker import track_source

WEIGHTS_ENV = "HEADSPLAT_CAP4D_WEIGHTS"
CONFIG_KEY = "cap4d_weights"
#: preset -> (generated views, DDIM steps), CAP4D's generation configs
PRESETS = {"debug": (28, 10), "low": (210, 50), "medium": (420, 50), "high": (840, 100)}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CFG_SCALE = 2.0
MAX_REFERENCES = 4
SEED = 124  # CAP4D's generation seed

if TYPE_CHECKING:
    from headsplat.rig.flame.head import FlameHead


def resolve_cap4d_weights(weights=None) -> Path:
    """The MMDM checkpoint: a file, or a folder holding one (CAP4D's ``data/weights/mmdm`` with
    ``checkpoints/*.ckpt``), from ``--weights``, ``$HEADSPLAT_CAP4D_WEIGHTS`` or ``"cap4d_weights"``."""
    chosen = resolve_user_file(weights, WEIGHTS_ENV, CONFIG_KEY, "CAP4D weights", "--weights cap4d_mmdm_100k.ckpt",
                               kind=None, see="docs/learned-models.md")
    if chosen.is_dir():
        found = sorted(list(chosen.glob("*.ckpt")) + list(chosen.glob("checkpoints/*.ckpt")) +
                       list(chosen.glob("*.safetensors")))
        if len(found) != 1:
            raise InputError(f"{chosen}: expected one .ckpt (or .safetensors) in the folder or its checkpoints/, "
                             f"found {len(found)}; pass the file")
        chosen = found[0]
    if not chosen.is_file():
        raise InputError(f"{chosen}: CAP4D weights file not found")
    return chosen


def _references(paths, head: FlameHead, face, quiet):
    """(tracking, frames (N, H, W, 3) uint8) of the reference photos (several: one size, one camera)."""
    source = open_frames(paths if len(paths) > 1 else paths[0])
    if source.kind == "video":
        raise InputError(f"{paths[0]}: CAP4D's references are photos (extract the frames you want from the video)")
    tracking = track_source(source, face=face, rig=head, quiet=quiet)
    missing = [str(paths[i] if len(paths) > 1 else paths[0]) for i in np.flatnonzero(~tracking.found)]
    if missing:
        raise InputError(f"{missing[0]}: no face found in this reference photo")
    return tracking, [f.rgb for f in source]


def _eye_rotation(tracking) -> torch.Tensor:
    """(T, 3) one rotation for both eyes (CAP4D's): the mean of headsplat's two tracked eye rotations."""
    names = list(tracking.expression_names)
    e = torch.as_tensor(tracking.expression, dtype=torch.float32)
    left = e[:, [names.index(f"eye_l_r{a}") for a in "xyz"]]
    right = e[:, [names.index(f"eye_r_r{a}") for a in "xyz"]]
    return (left + right) / 2


def _flames(head: FlameHead, assets):
    """CAP4D's FLAME on the user's file (150 shape, 65 expression coefficients, the blink in the last slot)."""
    data = load_flame_file(head.path, n_shape=N_SHAPE, n_expr=N_EXPR)
    if data.shapedirs.shape[-1] < N_SHAPE or data.exprdirs.shape[-1] < N_EXPR:
        raise InputError(f"{head.path}: {data.shapedirs.shape[-1]} shape and {data.exprdirs.shape[-1]} expression "
                         f"directions; CAP4D needs {N_SHAPE} and {N_EXPR} (FLAME 2023: flame2023_no_jaw.pkl)")
    if assets.expressions.shape[1] != N_EXPR:
        raise InputError(f"{assets.folder}: generation expressions have {assets.expressions.shape[1]} coefficients, "
                         f"CAP4D's FLAME {N_EXPR}")
    return CAP4DFlame(data, blink=assets.blink, lip_vertex=LIP_VERTEX)


def generate_cap4d(references, output, weights=None, flame_model=None, assets=None, preset: str = "debug",
                   device: str = "cpu", dtype: str = "fp32", seed: int = SEED, face: int = 0, quiet: bool = False,
                   n_views: int | None = None, steps: int | None = None, cfg_scale: float = CFG_SCALE) -> Path:
    """Generate a view set of the person in ``references`` with CAP4D's MMDM.
    Args:
        references: one or more photos of one person (several: the same size).
        output: the view set folder (written atomically: an interrupted run leaves nothing).
        weights: the released ``cap4d_mmdm_100k.ckpt`` (or a folder holding it).
        flame_model: FLAME 2023 ``flame2023_no_jaw.pkl`` (CAP4D's FLAME; the references are tracked with it).
        assets: CAP4D's ``data/assets`` folder (see :mod:`headsplat.models.cap4d.assets`).
        preset: debug (28 views, 10 steps), low (210, 50), medium (420, 50), high (840, 100).
        device: cpu, or cuda (every visible GPU: the sampler's groups are dealt round-robin to them).
        dtype: fp32, bf16 or fp16 for the networks (bf16 on a GPU).
        seed: the generated cameras (CAP4D's draw with its seed 124), the noise and the groups.
        n_views, steps: override the preset's. cfg_scale: classifier-free guidance.

    Returns:
        the folder.
    """
    paths = [references] if isinstance(references, (str, os.PathLike)) else list(references)
    if preset not in PRESETS:
        raise HeadsplatError(f"unknown preset {preset!r}; choose {', '.join(PRESETS)}")
    if dtype not in DTYPES:
        raise HeadsplatError(f"unknown dtype {dtype!r}; choose {', '.join(DTYPES)}")
    n_gen, n_steps = PRESETS[preset]
    n_gen, n_steps = int(n_views or n_gen), int(steps or n_steps)
    if n_gen < 1 or n_steps < 1 or 1000 % n_steps:
        raise HeadsplatError(f"need at least one view and a step count that divides 1000, got {n_gen}, {n_steps}")
    dev = check_device(device)
    w = resolve_cap4d_weights(weights)
    head = make_rig("flame", flame_model)
    nv = int(head.flame.v_template.shape[0])
    a = load_assets(assets, nv)
    flame = _flames(head, a)
    t0 = time.perf_counter()
    # what can fail on the user's inputs (no face in a reference) before the 3.6 GB model is read
    tracking, images = _references(paths, head, face, quiet)
    t1 = time.perf_counter()
    model = MMDM.from_pretrained(w, dev, DTYPES[dtype], cache=True)
    t_load = time.perf_counter() - t1
    n_ref = len(images)
    R = min(n_ref, MAX_REFERENCES)
    group = model.cfg.unet.frames - R
    n_gen = int(math.ceil(n_gen / group) * group)
    if n_gen > len(a.expressions):
        raise HeadsplatError(f"{n_gen} views asked for; CAP4D's generation data holds {len(a.expressions)}")

    frames, ref_err = _reference_frames(flame, head, tracking)
    gen = _generated_frames(frames, a, n_gen, seed)
    res = model.cfg.resolution
    cond, boxes = _conditioning(flame, a, frames, gen, model.cfg.latent_size, dev)
    view_tracking, gen_err = _view_tracking(head, tracking, flame, gen, boxes[n_ref:], res)
    z_ref = _encode_references(model, images, boxes[:n_ref], res, seed, dev)
    unets = _unets(model, dev)
    latents = _sample(model, cond, z_ref, n_gen, n_steps, cfg_scale, seed, quiet, unets)
    views = _decode(model, latents, quiet)


    generator = {"name": "cap4d", "weights": w.name, "weights_bytes": w.stat().st_size, "preset": preset,
                 "views": n_gen, "steps": n_steps, "cfg_scale": cfg_scale, "seed": seed, "dtype": dtype,
                 "devices": len(unets),
                 "references": [str(p) for p in paths], "flame_model": str(head.path), "assets": str(a.folder),
                 "reference_fit_mm": [round(float(e) * 1000, 3) for e in ref_err],
                 "generated_fit_mm": round(float(gen_err.mean()) * 1000, 3), "load_s": round(t_load, 1),
                 "seconds": round(time.perf_counter() - t0, 1)}
    return write_view_set(output, views, view_tracking, ["generated"] * n_gen, generator, cropped=True)


def _reference_frames(flame, head: FlameHead, tracking):
    """The references in CAP4D's parameters (one least-squares fit to headsplat's tracked FLAME vertices) and
    the fit's RMS vertex error per reference (metres)."""
    p = tracking.params()
    with torch.no_grad():
        targets = head.flame_vertices(p["identity"].expand(len(tracking), -1), p["expression"])
    eyes = _eye_rotation(tracking)
    shape, expr, err = fit_cap4d_parameters(flame, targets, eyes)
    K = tracking.camera(torch.float64).K.numpy()
    frames = Cap4dFrames(shape=shape, expression=expr, eye_rotation=eyes, rotation=p["rotation"],
                         translation=p["translation"] / tracking.identity_scale, K=K,
                         extr=np.tile(np.eye(4), (len(tracking), 1, 1)), frame_size=(tracking.width, tracking.height))
    return frames, err


def _generated_frames(refs, assets, n: int, seed: int):
    """CAP4D's generated frames: its generation expressions and eye rotations in order, the first reference's
    shape and head pose, cameras pivoted about the head."""
    extr, _ = generation_cameras(refs.extr[0], refs.rotation[0].double().numpy(),
                                 refs.translation[0].double().numpy(), n, seed=seed)
    return Cap4dFrames(shape=refs.shape, expression=torch.from_numpy(assets.expressions[:n]),
                       eye_rotation=torch.from_numpy(assets.eye_rotations[:n]),
                       rotation=refs.rotation[:1].expand(n, 3), translation=refs.translation[:1].expand(n, 3),
                       K=refs.K, extr=extr, frame_size=refs.frame_size)


def _conditioning(flame, assets, refs, gen, size: int, dev):
    """(N_ref + N_gen, size, size, 50) maps, references first, and each frame's crop box."""
    maps, boxes = [], []
    mask = assets.face_mask().to(dev)
    with torch.no_grad():
        for frames, is_ref in ((refs, True), (gen, False)):
            verts, offsets = pose_frames(flame, frames)
            for i in range(len(frames)):
                m, box = frame_conditioning(verts[i].to(dev), offsets[i].to(dev), frames.K, frames.extr[i],
                                            frames.frame_size, is_ref, refs.extr[0], assets, size, mask)
                maps.append(m.float().cpu())
                boxes.append(box)
    return torch.stack(maps), boxes


def _encode_references(model, images, boxes, res: int, seed: int, dev):
    """(N_ref, 4, h, w) scaled latents of the references on white: a sample of the encoder's posterior (as
    latent diffusion's ``get_first_stage_encoding``), seeded."""
    gen = torch.Generator().manual_seed(seed + 1)
    dt = next(model.parameters()).dtype
    out = []
    with Matter() as matter, torch.no_grad():
        for img, box in zip(images, boxes):
            x = reference_crop(img, matter(img), box, res)
            mean, logvar = model.vae.encode(torch.from_numpy(x).permute(2, 0, 1)[None].to(dev, dt))
            noise = torch.randn(mean.shape, generator=gen).to(mean)
            out.append((mean + torch.exp(0.5 * logvar) * noise).float().cpu() * SCALE_FACTOR)
    return torch.cat(out)


def _unets(model, dev) -> list:
    """The denoiser on every visible GPU when running on CUDA (the sampler deals the groups round-robin to
    them), else the model's own."""
    if dev.type != "cuda" or torch.cuda.device_count() < 2:
        return [model.unet]
    return [model.unet] + [copy.deepcopy(model.unet).to(f"cuda:{i}") for i in range(1, torch.cuda.device_count())]


def _sample(model, cond, z_ref, n_gen: int, steps: int, cfg_scale: float, seed: int, quiet: bool, unets=None):
    """(N_gen, 4, h, w) latents by stochastic I/O sampling, with a progress bar (and ETA) over model calls."""

    R = min(len(z_ref), MAX_REFERENCES)
    frames = model.cfg.unet.frames
    calls = steps * (n_gen // (frames - R))
    bar = tqdm(total=calls, desc="CAP4D sampling", unit="call", disable=quiet, leave=False)
    lock = threading.Lock()

    def counted(eps):
        def fn(*args):
            out = eps(*args)
            with lock:
                bar.update()
            return out
        return fn

    fns = [counted(guided_eps(u, cond, z_ref, cfg_scale)) for u in (unets or [model.unet])]
    try:
        return stochastic_io_sample(fns, z_ref, n_gen, cap4d_schedule(frames=frames), steps, frames=frames,
                                    max_references=MAX_REFERENCES, seed=seed)
    finally:
        bar.close()


def _decode(model, latents, quiet: bool, batch: int = 4) -> list[np.ndarray]:
    """(res, res, 3) uint8 images of the latents (CAP4D's conversion: (x + 1) / 2 clipped, × 255 truncated)."""
    p = next(model.parameters())
    out = []
    with torch.no_grad():
        for s in tqdm(range(0, len(latents), batch), desc="decoding", unit="batch", disable=quiet, leave=False):
            x = model.vae.decode((latents[s:s + batch] / SCALE_FACTOR).to(p.device, p.dtype)).float().cpu()
            img = ((x + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 1).numpy() * 255.0
            out.extend(img.astype(np.uint8))
    return out


def _view_tracking(head: FlameHead, tracking, flame, gen, boxes, res: int):
    """The generated views as a cropped view set's track: headsplat's FLAME expressions fitted to CAP4D's
    posed heads, head poses that look through the fixed camera as CAP4D's pivoted cameras do, and each view's
    crop of the reference's frame. Also the fit's RMS vertex error per view (metres)."""
    n = len(gen)
    z = torch.zeros(n, 3)
    nv = int(head.flame.v_template.shape[0])
    with torch.no_grad():
        canon, _ = flame(gen.shape, gen.expression, z, z, gen.eye_rotation)
    identity = torch.as_tensor(tracking.identity, dtype=torch.float32)
    init = torch.as_tensor(tracking.expression[0], dtype=torch.float32)
    expr, err = fit_headsplat_expressions(head, identity, canon[:, :nv], init)
    s = float(tracking.identity_scale)
    rot, tra = zip(*(camera_as_head_motion(gen.extr[i], tracking.rotation[0], tracking.translation[0], s)
                     for i in range(n)))
    crops = np.zeros((n, 2, 3))
    for i, (x0, y0, x1, _) in enumerate(boxes):
        k = res / (x1 - x0)
        crops[i] = [[k, 0.0, -k * x0], [0.0, k, -k * y0]]
    vt = generated_tracking("flame", tracking.width, tracking.height, tracking.focal, tracking.identity, s,
                            tracking.expression_names, np.stack(rot), np.stack(tra), expr.numpy(), "cap4d",
                            tracking.extra, crops=crops, crop_size=res)
    return vt, err


ASSETS = Option("assets", "cap4d: the CAP4D repository's data/assets folder (default: $HEADSPLAT_CAP4D_ASSETS or the "
                "config's cap4d_assets)", flag="--cap4d-assets", metavar="DIR")
PRESET = Option("preset", "cap4d: views and DDIM steps: debug 28/10 (default), low 210/50, medium 420/50, high 840/100",
                choices=tuple(PRESETS))
DTYPE = Option("dtype", "cap4d: the networks' precision (default fp32; bf16 on a GPU)", choices=tuple(DTYPES))
N_VIEWS = Option("n_views", "cap4d: generate this many views instead of the preset's", type=int, flag="--views",
                 metavar="N")
STEPS = Option("steps", "cap4d: DDIM steps instead of the preset's (must divide 1000)", type=int, metavar="S")
GENERATE_SEED = Option("seed", "cap4d: seed of the cameras, noise and groups (default 124, CAP4D's); omniavatar: "
                       "the first identity's seed (default 0)", type=int)


@register_generator
class Cap4dGenerator(Generator):
    name = "cap4d"
    summary = "CAP4D's morphable multi-view diffusion model from one or more photos (--weights, FLAME 2023)"
    source_help = "cap4d: one or more photos of one person (several: the same size)"
    max_sources = None
    options = {"generate": (WEIGHTS, DEVICE, FLAME_MODEL, ASSETS, PRESET, DTYPE, N_VIEWS, STEPS, GENERATE_SEED)}

    @classmethod
    def generate(cls, sources, output, face, quiet, opts):
        return generate_cap4d(sources, output, opts["weights"], opts["flame_model"], opts["assets"],
                              opts["preset"] or "debug", opts["device"], opts["dtype"] or "fp32",
                              SEED if opts["seed"] is None else opts["seed"], face, quiet, opts["n_views"],
                              opts["steps"])
