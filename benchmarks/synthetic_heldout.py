"""Held-out accuracy on a generator's exact view sets: one-photo vs many-view avatars (issue: OmniAvatar).

    python benchmarks/synthetic_heldout.py --model oracle
    python benchmarks/synthetic_heldout.py --model omniavatar --weights omniavatar.pkl --flame-model FLAME.pkl \
        [--labels ffhq_labels.npy] [--identity-seed 0] [--device cuda]

A generator whose rig parameters are inputs renders one identity twice: a training view set (cameras x
expressions) and a held-out one (other cameras, other expressions). Three avatars are made from the training set
— from its frontal view alone (tracked like a user's photo, with the views' field of view), from the views alone
(``create --views`` with no photo), and from both (the fast preset) — and each is posed at every held-out view
relative to the frontal training view (the head motion and expression change from it, as animation does) and
scored against the generator's own render: PSNR over the pixels either covers, both over black
(:func:`headsplat.eval.novel_views.heldout_psnr`).

``oracle``: the astronaut's one-photo avatar with stripes painted where the photo cannot see (what only views
can teach), open rig. ``omniavatar``: a random identity of the released network (FLAME rig; views within the
yaws the GAN was trained on). With random weights the figure means nothing: run it with the released weights.
Prints one JSON line; the strip (truth, then each avatar, at four held-out views) goes to benchmarks/figures/.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

FIGURES = Path(__file__).parent / "figures"
SETTINGS = {  # training (yaws, pitches, expressions) and held-out (yaws, pitches, expressions)
    "oracle": dict(train=((-60, -30, 0, 30, 60), (-15, 0, 15), ({}, {"jaw_open": 0.7}, {"smile": 0.8})),
                   held=((-45, -15, 15, 45), (-8, 8), ({}, {"jaw_open": 0.4}, {"smile": 0.5, "jaw_open": 0.2}))),
    "omniavatar": dict(train=((-40, -20, 0, 20, 40), (-10, 0, 10)), held=((-30, -10, 10, 30), (-5, 5))),
}


def oracle_sets(work: Path, args) -> tuple[Path, Path, str]:
    from headsplat import api
    from headsplat.avatar.oracle import oracle_views, with_hidden_pattern
    from headsplat.avatar.viewset import write_view_set
    from headsplat.media.image import write_png
    from headsplat.rig.open_rig import OpenRig

    rig = OpenRig()
    write_png(work / "astronaut.png", api.sample_portrait())
    one = api.create(work / "astronaut.png", work / "astronaut.avatar", quiet=True)
    truth = with_hidden_pattern(one, rig)
    out = []
    for part in ("train", "held"):
        yaws, pitches, expressions = SETTINGS["oracle"][part]
        images, tracking = oracle_views(truth, rig, yaws, pitches, expressions)
        out.append(write_view_set(work / part, images, tracking, ["generated"] * len(images), {"name": "oracle"}))
    return out[0], out[1], "open"


def omniavatar_sets(work: Path, args) -> tuple[Path, Path, str]:
    from headsplat import api

    out = []
    for part, seed in (("train", args.seed), ("held", args.seed + 1)):
        yaws, pitches = SETTINGS["omniavatar"][part]
        folder = api.generate(None, work / part, model="omniavatar", weights=args.weights,
                              flame_model=args.flame_model, labels=args.labels, identity_seed=args.identity_seed,
                              seed=seed, yaws=yaws, pitches=pitches, device=args.device, quiet=True)
        out.append(folder / "identity_000")
    return out[0], out[1], "flame"


def run(args) -> dict:
    from headsplat.avatar.avatar import pose_avatar
    from headsplat.avatar.config import PRESETS
    from headsplat.avatar.create import create_avatar, reference_view
    from headsplat.avatar.viewset import read_view_set
    from headsplat.eval.novel_views import heldout_psnr, relative_pose
    from headsplat.face.segment import Matter
    from headsplat.media.frames import open_frames
    from headsplat.media.image import write_png
    from headsplat.render.rasterize import render
    from headsplat.rig.factory import make_rig
    from headsplat.track.tracker import track_source

    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        t0 = time.perf_counter()
        train_dir, held_dir, rig_kind = {"oracle": oracle_sets, "omniavatar": omniavatar_sets}[args.model](work, args)
        t_gen = time.perf_counter() - t0
        train, held = read_view_set(train_dir), read_view_set(held_dir)
        rig = make_rig(rig_kind, args.flame_model)
        ref = reference_view(train.tracking)
        rgb, _ = train.load(ref)
        write_png(work / "frontal.png", rgb)
        # the frontal view tracked as a user's photo, with the views' field of view (a known camera: else its
        # depth is that of another focal length, and no relative pose puts it where the views' camera sees it)
        fov = train.tracking.camera().fov_x_deg
        tracked = track_source(open_frames(work / "frontal.png"), fov_deg=fov, rig=rig, quiet=True,
                               device=args.device)
        cfg = PRESETS["fast"]
        avatars, seconds = {}, {}
        # photo + views: the photo in the views' frame (its exact tracking), as a generator's views of that
        # photo are; one photo: tracked as a user's photo is
        for name, inputs, indices, tracking, views in (("one photo", [rgb], [0], tracked, None),
                                                       ("views alone", [], [], train.tracking, train),
                                                       ("photo + views", [rgb], [ref], train.tracking, train)):
            t0 = time.perf_counter()
            avatars[name] = create_avatar(inputs, indices, tracking, rig, cfg, quiet=True, device=args.device,
                                          views=views)
            seconds[name] = round(time.perf_counter() - t0, 1)
        with Matter() as matter:
            res = heldout_psnr(avatars, held, ref, rig, train=train, matter=matter)
        # the strip: truth, then each avatar, at four held-out views
        picks = np.linspace(0, len(held) - 1, 4).round().astype(int)
        p, t = held.tracking.params(), train.tracking.params()
        base = (t["expression"][ref], t["rotation"][ref], t["translation"][ref])
        cam = held.tracking.camera()
        rows = [[held.load(int(i))[0] for i in picks]]
        with torch.no_grad():
            for av in avatars.values():
                row = []
                for i in picks:
                    e, r, tr = relative_pose(av, base, (p["expression"][i], p["rotation"][i], p["translation"][i]))
                    row.append((render(pose_avatar(av, rig, e, r, tr), cam, background=0.0).rgb.numpy() * 255)
                               .clip(0, 255).astype(np.uint8))
                rows.append(row)
        FIGURES.mkdir(exist_ok=True)
        figure = FIGURES / f"synthetic_heldout_{args.model}.png"
        write_png(figure, np.concatenate([np.concatenate(r, 1) for r in rows], 0))
    return {"name": f"synthetic held-out ({args.model})", "psnr_db": {k: v["mean"] for k, v in res.items()},
            "per_view": {k: v["per_view"] for k, v in res.items()}, "train_views": len(train),
            "held_views": len(held), "generate_s": round(t_gen, 1), "create_s": seconds,
            "figure": str(figure.relative_to(Path(__file__).parent)), "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=tuple(SETTINGS), default="oracle")
    ap.add_argument("--weights", help="omniavatar: the network pickle")
    ap.add_argument("--flame-model", help="FLAME file (omniavatar: needed)")
    ap.add_argument("--labels", help="omniavatar: ffhq_labels.npy (default: mean shape, neutral and jaw open)")
    ap.add_argument("--identity-seed", type=int, default=0, help="omniavatar: the identity")
    ap.add_argument("--seed", type=int, default=0, help="omniavatar: the training set's expressions (held: +1)")
    ap.add_argument("--device", default="cpu")
    print(json.dumps(run(ap.parse_args())))


if __name__ == "__main__":
    main()
