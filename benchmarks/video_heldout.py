"""Video avatars against one-photo avatars on real footage, frames held out from the fit, per region (issue:
video avatars that beat one-photo avatars). Prints one JSON line per shot and variant.

    python benchmarks/video_heldout.py [--video Megamind.avi] [--shots 1:98,155:200] [--train-share 0.5]
                                       [--variants default,no-density,no-refine,no-field,no-sh] [--frames N]
                                       [--set iterations_per_frame=15 ...]
    python benchmarks/video_heldout.py --rendered   # a rendered clip whose held-out part goes beyond its training

Each shot (``A:B``, frames of the video; default: the film clip's two shots of its character with big dark hair,
Debian opencv-doc's ``Megamind.avi`` found in ``.test-assets/``) is tracked once; the video avatar is fitted to
the first ``train-share`` of it (at most the preset's 60 frames, chosen to cover poses and expressions), the
one-photo avatar to its first frame, and both are pasted back into every later frame (the protocol of ``eval
reenact --train``). Scored per frame, then averaged: PSNR over the face (the tracked landmarks' hull, as ``eval``),
its mouth (the outer lips' hull, widened by a fifth of the eye distance), the face without the mouth, the chin
and neck (a band below the chin as wide as the face's lower half, 0.4 face heights deep) and the hair (a band
above the face, 0.5 face heights high, outside it). Variants refit the video avatar with one part of the fit off
(``no-density``, ``no-refine`` per-frame corrections, ``no-field``, ``no-sh``); ``field unbounded`` (the default
avatar's field with its input range removed, as before it was recorded) and ``field off`` (its field dropped)
cost no fit. ``create_s`` is each avatar's create time, beside a 1024² matmul baseline. A PNG strip per shot
(real frame | one-photo | video avatar on four held-out frames) goes to benchmarks/figures/.

``--rendered``: instead of the film clip, a 200-frame 512² clip with known parameters (the built-in portrait
through the textured rig, talking and turning): its first 120 frames open the jaw at most 0.3 and smile at most
0.2, the 80 held out open it to 0.9 and smile 0.7, expressions the video avatar never saw.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from timing import machine, matmul_seconds

CLIP = Path(__file__).resolve().parent.parent / ".test-assets" / "opencv-doc" / "Megamind.avi"
FIGURES = Path(__file__).resolve().parent / "figures"
STRIP_ROWS = 4  # held-out frames shown per shot in the PNG strip
VARIANTS = {"default": {}, "no-density": {"density": None}, "no-refine": {"refine_min_frames": 10 ** 6},
            "no-field": {"deformation_rank": 0}, "no-sh": {"sh_degree_span": 1e9}}


def _hull(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(size[::-1], np.uint8)
    cv2.fillConvexPoly(mask, np.round(cv2.convexHull(points.astype(np.float32) - 0.5)).astype(np.int32), 1)
    return mask.astype(bool)


def regions(face: np.ndarray, landmarks: np.ndarray, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """(H, W) bool masks of one frame: face, mouth, face without mouth, chin and neck, hair (module docstring).

    Args:
        face: (H, W) bool, the face region ``eval`` measures. landmarks: (478, 2+) pixel landmarks.
    """
    from headsplat.face.indices import LIPS_OUTER, interocular

    lm = landmarks[:, :2]
    iod = float(interocular(lm[None])[0])
    lips = lm[LIPS_OUTER]
    centre = lips.mean(0)
    mouth = _hull(centre + (lips - centre) * (1 + 0.2 * iod / np.ptp(lips, 0).max()), size)
    ys, xs = np.nonzero(face)
    top, bottom, height = ys.min(), ys.max(), ys.max() - ys.min()
    lower = xs[ys > top + 0.6 * height]
    h, w = size[1], size[0]
    yy, xx = np.mgrid[:h, :w]
    chin = (yy > bottom) & (yy <= bottom + 0.4 * height) & (xx >= lower.min()) & (xx <= lower.max())
    hair = (yy < top) & (yy >= top - 0.5 * height) & (xx >= xs.min()) & (xx <= xs.max())
    return {"face": face, "mouth": mouth & face, "face without mouth": face & ~mouth, "chin and neck": chin & ~face,
            "hair": hair}


def _write_strip(strip: dict, tracking, name: str) -> None:
    """Rows of (real frame | one-photo | video avatar), cropped around the face, to benchmarks/figures/."""
    from headsplat.media.image import write_png

    rows = []
    for t, images in strip.items():
        lm = tracking.landmarks[t][:, :2]
        (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
        side = 1.8 * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.1 * side
        h, w = images[0].shape[:2]
        left, top = int(np.clip(cx - side / 2, 0, max(w - side, 0))), int(np.clip(cy - side / 2, 0, max(h - side, 0)))
        box = (slice(top, top + int(side)), slice(left, left + int(side)))
        rows.append(np.concatenate([cv2.resize(im[box], (256, 256), interpolation=cv2.INTER_AREA) for im in images],
                                   1))
    FIGURES.mkdir(exist_ok=True)
    write_png(FIGURES / name, np.concatenate(rows, 0))


def _config(name: str, overrides: dict | None = None):
    from headsplat.avatar.config import PRESETS

    return replace(PRESETS["fast"], **(overrides or {}), **VARIANTS[name])


def _overrides(items: list[str]) -> dict:
    """``--set key=value`` pairs as CreateConfig fields (values read as Python literals)."""
    import ast

    from headsplat.avatar.config import CreateConfig
    from headsplat.splat.density import DensityConfig

    out, density = {}, {}
    for item in items:
        key, _, value = item.partition("=")
        if key.startswith("density."):
            if key[8:] not in DensityConfig.__dataclass_fields__:
                raise SystemExit(f"--set {item}: DensityConfig has no field {key[8:]!r}")
            density[key[8:]] = ast.literal_eval(value)
        elif key not in CreateConfig.__dataclass_fields__:
            raise SystemExit(f"--set {item}: CreateConfig has no field {key!r}")
        else:
            out[key] = ast.literal_eval(value)
    if density:
        out["density"] = DensityConfig(**density)
    return out


def shot(video: Path, a: int, b: int, share: float, variants: list[str], max_frames: int | None,
         overrides: dict) -> list[dict]:
    from headsplat.avatar.animate import retarget
    from headsplat.avatar.composite import PasteBack
    from headsplat.avatar.create import create_avatar
    from headsplat.avatar.frames import select_frames
    from headsplat.eval import metrics as M
    from headsplat.eval.protocol import face_region
    from headsplat.media.frames import open_frames
    from headsplat.media.image import write_png
    from headsplat.rig.open_rig import OpenRig
    from headsplat.track.tracker import track_source

    rig = OpenRig()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "shot"
        folder.mkdir()
        for f in open_frames(video):
            if a <= f.index < b:
                write_png(folder / f"{f.index:05d}.png", f.rgb)
        source = open_frames(folder)
        frames = {f.index: f.rgb for f in source}
        t0 = time.perf_counter()
        tracking = track_source(source, rig=rig, quiet=True)
        track_s = time.perf_counter() - t0
    n = len(tracking)
    n_train = max(2, int(round(n * share)))
    first = int(np.flatnonzero(tracking.found)[0])
    chosen = select_frames(tracking, _config("default", overrides).max_frames, within=range(first, n_train))
    held = [t for t in range(n_train, n) if tracking.found[t]][:max_frames]
    avatars, seconds = {}, {}
    for name in ["one-photo"] + variants:
        cfg = _config("default" if name == "one-photo" else name, overrides)
        idx = [first] if name == "one-photo" else chosen
        t0 = time.perf_counter()
        avatars[name] = create_avatar([frames[i] for i in idx], idx, tracking, rig, cfg, quiet=True)
        seconds[name] = round(time.perf_counter() - t0, 1)
    if "default" in avatars and avatars["default"].deformation is not None:
        fld = avatars["default"].deformation
        e = fld.n_inputs
        avatars["field unbounded"] = replace(avatars["default"], deformation=replace(
            fld, low=torch.full((e,), -math.inf), high=torch.full((e,), math.inf)))
        avatars["field off"] = replace(avatars["default"], deformation=None)
    p = tracking.params(with_offsets=True)
    scores = {name: {} for name in avatars}
    shown = [held[i] for i in np.linspace(0, len(held) - 1, min(STRIP_ROWS, len(held))).round().astype(int)]
    strip = {t: [frames[t]] for t in shown}
    for name, avatar in avatars.items():
        motion = retarget(avatar, p["expression"], p["rotation"], p["translation"], pose="absolute", reference=first,
                          offsets=p.get("offsets"), driver_identity=p["identity"])
        with PasteBack(avatar, rig, tracking) as paste:
            for t in held:
                gt = frames[t]
                out = paste(motion, t, gt)
                if t in strip and name in ("one-photo", "default"):
                    strip[t].append(out)
                masks = regions(face_region(rig, tracking, t), tracking.landmarks[t], (tracking.width, tracking.height))
                for region, mask in masks.items():
                    scores[name].setdefault(region, []).append(M.psnr(out, gt, mask) if mask.any() else np.nan)
    _write_strip(strip, tracking, f"video_heldout_{a}_{b}.png")
    rows = []
    for name, per_region in scores.items():
        row = {"shot": f"{a}:{b}", "train": f"{first}:{n_train} ({len(chosen)} frames)", "held_out": len(held),
               "avatar": name, **{f"psnr {k}": round(float(np.nanmean(v)), 2) for k, v in per_region.items()}}
        if name in seconds:
            row["create_s"] = seconds[name]
        rows.append(row)
    base = {r["avatar"]: r for r in rows}["one-photo"]
    for r in rows:
        r["face vs one-photo"] = round(r["psnr face"] - base["psnr face"], 2)
    rows[0]["track_s"] = round(track_s, 1)
    return rows


def rendered_clip(path: Path) -> Path:
    """The ``--rendered`` clip (module docstring), written to ``path``."""
    from headsplat import api
    from headsplat.rig.controls import talking_performance

    n, seen = 200, 120
    c = talking_performance(n)
    t = np.arange(n) / 25.0
    wave = np.clip(np.sin(2 * np.pi * t / 0.6), 0, None).astype(np.float32)
    smile = np.clip(np.sin(2 * np.pi * t / 3.1), 0, None).astype(np.float32)
    c["jaw_open"] = np.where(np.arange(n) < seen, 0.3, 0.9).astype(np.float32) * wave
    c["smile"] = np.where(np.arange(n) < seen, 0.2, 0.7).astype(np.float32) * smile
    api.render_posed_photo(api.sample_portrait(), path, controls=c, quiet=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=CLIP)
    ap.add_argument("--shots", default="1:98,155:200")
    ap.add_argument("--train-share", type=float, default=0.5)
    ap.add_argument("--variants", default="default")
    ap.add_argument("--rendered", action="store_true", help="the rendered clip with held-out extreme expressions")
    ap.add_argument("--frames", type=int, default=None, help="held-out frames scored per shot (default: all)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="preset fields changed for every avatar, e.g. iterations_per_frame=15 "
                         "density.max_gaussians=30000 (density.KEY for DensityConfig)")
    args = ap.parse_args()
    work = tempfile.TemporaryDirectory()
    if args.rendered:
        args.video, args.shots, args.train_share = rendered_clip(Path(work.name) / "extreme.mp4"), "0:200", 0.6
    if not args.video.is_file():
        raise SystemExit(f"{args.video}: no such video (see the module docstring for the film clip)")
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; known: {sorted(VARIANTS)}")
    overrides = _overrides(args.set)
    device = torch.device("cpu")
    print(json.dumps({"machine": machine(device), "matmul_1024_s": round(matmul_seconds(device), 5),
                      "preset changes": args.set}), flush=True)
    for spec in args.shots.split(","):
        a, b = (int(x) for x in spec.split(":"))
        for row in shot(args.video, a, b, args.train_share, variants, args.frames, overrides):
            print(json.dumps(row), flush=True)
    work.cleanup()


if __name__ == "__main__":
    main()
