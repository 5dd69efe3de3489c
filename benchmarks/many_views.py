"""Many-view fitting figures (issue: avatars from many views). Prints one JSON line per measurement.

    python benchmarks/many_views.py oracle        # photo alone vs photo + oracle views: novel-view PSNR
    python benchmarks/many_views.py deformation   # held-out expressions with and without the deformation field
    python benchmarks/many_views.py train         # eval reenact --train on talking-head videos vs one-shot

``oracle``: the astronaut's one-photo avatar with stripes painted where the photo cannot see is the oracle; its
views (yaw -60..60 by 15, pitch -20/0/20, five expressions) are fitted with the photo; novel views (pitch 10,
yaw +-45/+-60) are compared with the oracle's. ``deformation``: the oracle also darkens the lower face in
proportion to jaw opening (a known expression-dependent appearance); fitted with and without the field,
scored on held-out jaw openings in the mouth region. ``train``: 10 s 512² talking-head videos with known
parameters (the astronaut and Tom Hanks photos re-posed through the rig: talking, turning, blinking, smiling),
avatar from frames 0..149, scored on frames 150..209 beside the one-shot avatar from frame 0
(``HEADSPLAT_BENCH_ONLY=astronaut`` runs one clip). Figures (the PNG strips) go to benchmarks/figures/.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

FIGURES = Path(__file__).parent / "figures"


def _astronaut_avatar(work: Path):
    from headsplat import api
    from headsplat.avatar.avatar import load_avatar
    from headsplat.media.image import write_png

    photo = work / "astronaut.png"
    write_png(photo, api.sample_portrait())
    api.create(photo, work / "one.avatar", quiet=True)
    return photo, load_avatar(work / "one.avatar")


def _strip(rows: list[list[np.ndarray]], path: Path) -> None:
    from headsplat.media.image import write_png

    FIGURES.mkdir(exist_ok=True)
    write_png(path, np.concatenate([np.concatenate(r, 1) for r in rows], 0))


def oracle(work: Path) -> dict:
    from headsplat import api
    from headsplat.avatar.avatar import load_avatar, save_avatar
    from headsplat.avatar.oracle import oracle_params, with_hidden_pattern
    from headsplat.eval.novel_views import novel_view_psnr, render_views
    from headsplat.rig.open_rig import OpenRig

    rig = OpenRig()
    photo, one = _astronaut_avatar(work)
    truth = with_hidden_pattern(one, rig)
    save_avatar(truth, work / "oracle.avatar")
    t0 = time.perf_counter()
    api.generate(work / "oracle.avatar", work / "views", quiet=True)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    both = api.create(photo, work / "both.avatar", views=work / "views", quiet=True)
    t_fit = time.perf_counter() - t0
    res = novel_view_psnr({"photo alone": one, "photo + oracle views": both}, truth, rig,
                          yaws=(-60, -45, 45, 60), pitches=(10,), size=512)
    exp, rot, trans = oracle_params(truth, rig, (-60, -45, 45, 60), (10,), ({},))
    rows = [[(rgb * 255).astype(np.uint8) for rgb, _ in render_views(av, rig, exp - truth.expression + av.expression,
                                                                       rot, trans, 256)]
            for av in (truth, one, load_avatar(work / "both.avatar"))]
    _strip(rows, FIGURES / "oracle_novel_views.png")
    return {"name": "oracle novel views", "psnr_db": {k: v["mean"] for k, v in res.items()},
            "per_view": {k: dict(zip(["-60", "-45", "45", "60"], v["per_view"])) for k, v in res.items()},
            "views": both.info["views"], "fit": both.info["fit"], "n_gaussians": len(both.gaussians),
            "generate_s": round(t_gen, 1), "create_s": round(t_fit, 1), "figure": "figures/oracle_novel_views.png"}


def deformation(work: Path) -> dict:
    from dataclasses import replace

    from headsplat import api
    from headsplat.avatar.avatar import save_avatar
    from headsplat.avatar.config import PRESETS
    from headsplat.avatar.create import create_avatar
    from headsplat.avatar.oracle import oracle_views, with_hidden_pattern, with_jaw_shading
    from headsplat.avatar.viewset import read_view_set, write_view_set
    from headsplat.eval.novel_views import novel_view_psnr
    from headsplat.rig.open_rig import OpenRig
    from headsplat.track.arrays import track_images

    rig = OpenRig()
    photo, one = _astronaut_avatar(work)
    truth = with_hidden_pattern(one, rig)
    truth = with_jaw_shading(truth, rig)
    save_avatar(truth, work / "oracle_def.avatar")
    train = ({}, {"jaw_open": 0.3}, {"jaw_open": 0.6}, {"jaw_open": 1.0}, {"smile": 0.8})
    images, tracking = oracle_views(truth, rig, yaws=(-40, -20, 0, 20, 40), pitches=(-10, 10), expressions=train)
    write_view_set(work / "views_def", images, tracking, ["generated"] * len(images), {"name": "oracle"})
    views = read_view_set(work / "views_def")
    img = api.sample_portrait()
    tr = track_images([img], rig, True)
    out = {}
    avatars = {}
    configs = (("with field", PRESETS["fast"]), ("without field", replace(PRESETS["fast"], deformation_rank=0)))
    for label, cfg in configs:
        t0 = time.perf_counter()
        avatars[label] = create_avatar([img], [0], tr, rig, cfg, quiet=True, views=views, views_share=0.5)
        out[f"create_s {label}"] = round(time.perf_counter() - t0, 1)
    held = ({"jaw_open": 0.45}, {"jaw_open": 0.8})
    res = novel_view_psnr(avatars, truth, rig, yaws=(-30, 0, 30), pitches=(0,), expressions=held, size=512)
    neutral = novel_view_psnr(avatars, truth, rig, yaws=(-30, 0, 30), pitches=(0,), expressions=({},), size=512)
    cost = _field_cost(avatars["with field"], rig)
    return {"name": "deformation field", "held_out_jaw_psnr_db": {k: v["mean"] for k, v in res.items()},
            "neutral_psnr_db": {k: v["mean"] for k, v in neutral.items()}, "field_ms_per_frame": cost, **out}


def _field_cost(avatar, rig) -> dict:
    from dataclasses import replace

    from headsplat.avatar.avatar import pose_avatar

    e = avatar.expression.clone()
    plain = replace(avatar, deformation=None)
    times = {}
    for label, av in (("posing with field", avatar), ("posing without", plain)):
        t0 = time.perf_counter()
        with torch.no_grad():
            for _ in range(50):
                pose_avatar(av, rig, e, avatar.rotation, avatar.translation)
        times[label] = round((time.perf_counter() - t0) / 50 * 1000, 2)
    return times


def train(work: Path) -> list[dict]:
    from headsplat import api
    from headsplat.avatar.posed_photo import sample_portrait
    from headsplat.media.image import read_image_uint8
    from headsplat.rig.controls import talking_performance

    out = []
    photos = {"astronaut": sample_portrait()}
    hanks = Path(os.environ.get("HEADSPLAT_TEST_ASSETS", ".test-assets")) / "insightface" / "Tom_Hanks_54745.png"
    if hanks.is_file():
        photos["Tom Hanks"] = read_image_uint8(hanks)
    only = os.environ.get("HEADSPLAT_BENCH_ONLY")
    for name, img in photos.items():
        if only and name != only:
            continue
        video = work / f"{name.replace(' ', '_')}_talk.mp4"
        controls = talking_performance(250)
        t = np.arange(250) / 25.0
        blink = (np.abs(((t + 0.7) % 2.3) - 1.15) < 0.08).astype(np.float32)  # a blink every 2.3 s
        controls.update(blink_left=blink, blink_right=blink,
                        smile=(0.6 * np.clip(np.sin(2 * np.pi * t / 4.1), 0, None)).astype(np.float32))
        api.render_posed_photo(img, video, controls=controls, quiet=True)
        t0 = time.perf_counter()
        rep = api.eval_reenact(video, work / f"report_{name.replace(' ', '_')}", train=(0, 150), max_frames=60,
                               quiet=True)
        s = rep["summary"]
        rows = {k: {m: s[k].get(m) for m in ("psnr_face", "ssim_face", "lpips", "csim")} for k in s}
        out.append({"name": f"eval reenact --train 0:150 ({name})", "frames_evaluated": len(rep["frames"]),
                    "rows": rows, "seconds": round(time.perf_counter() - t0, 1),
                    "avatar_from": rep["settings"]["avatar from"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("oracle", "deformation", "train"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        res = {"oracle": oracle, "deformation": deformation, "train": train}[args.what](Path(d))
    for r in res if isinstance(res, list) else [res]:
        r["threads"] = torch.get_num_threads()
        print(json.dumps(r))


if __name__ == "__main__":
    main()
