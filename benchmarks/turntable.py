"""One-photo avatars seen from every side: an avatar of each portrait (the built-in astronaut and the insightface
wheel's Tom Hanks and the largest face of its group photo t1.jpg), rendered at yaw 0, +-45, +-90 and 180 degrees.
Writes a PNG strip per portrait and prints one JSON line each:

- ``speckles_pct``: per view, the share of head pixels that are isolated outliers against a 9x9 median (0.12 in
  luminance), in percent (eyes and teeth count a little in the front views);
- ``roughness``: per view, the mean luminance step between neighbouring head pixels (0..255): blotches raise it;
- ``large_translucent``: Gaussians over 1.5 cm across with opacity below 0.5;
- ``mouth_leak_pct``: at yaw -40, 0 and 40 degrees with the jaw fully open, the share of head pixels outside
  the lips where the mouth interior shows through the skin (``headsplat.eval.mouth.interior_leak``), percent;
- ``needles``: Gaussians over 5 mm long whose largest axis is over 5 times their middle one (streaks when seen
  from any side but the photo's).

    python benchmarks/turntable.py [--insightface .test-assets/insightface] [-o benchmarks/figures] [--size 256]

The strips are written to benchmarks/figures/ (ignored by git: they are remade by this script).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

YAWS = (0, -45, 45, -90, 90, 180)


def views(avatar_path: Path, size: int) -> tuple[list[np.ndarray], list[np.ndarray], object]:
    import torch

    from headsplat.avatar.animate import render_avatar_frame, turned_motion
    from headsplat.avatar.avatar import load_avatar
    from headsplat.rig.factory import make_rig

    av = load_avatar(avatar_path)
    rig = make_rig(av.rig)
    m = turned_motion(av, torch.tensor(np.radians(YAWS), dtype=torch.float32), torch.zeros(len(YAWS)))
    imgs, alphas = [], []
    for t in range(len(YAWS)):
        r = render_avatar_frame(av, rig, m, t, av.camera, background=1.0, width=size, height=size)
        imgs.append((r.rgb.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8))
        alphas.append(r.alpha[..., 0].numpy())
    return imgs, alphas, av


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--insightface", type=Path, default=Path(".test-assets/insightface"))
    ap.add_argument("-o", "--output", type=Path, default=Path("benchmarks/figures"))
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    from headsplat import api
    from headsplat.media.image import read_image_uint8, write_png

    args.output.mkdir(parents=True, exist_ok=True)
    portraits = {"astronaut": api.sample_portrait(),
                 "tom_hanks": read_image_uint8(args.insightface / "Tom_Hanks_54745.png"),
                 "t1_largest": read_image_uint8(args.insightface / "t1.jpg")}
    with tempfile.TemporaryDirectory() as d:
        for name, img in portraits.items():
            photo = Path(d) / f"{name}.png"
            write_png(photo, img)
            t0 = time.perf_counter()
            api.create(photo, Path(d) / f"{name}.avatar", quiet=True)
            row = measure(Path(d) / f"{name}.avatar", args.size, args.output / f"turntable_{name}.png")
            print(json.dumps({"name": "turntable", "portrait": name, **row,
                              "create_s": round(time.perf_counter() - t0, 1)}), flush=True)


def measure(avatar_path: Path, size: int, strip: Path) -> dict:
    """The figures of one avatar's views, and its strip written to ``strip``."""
    import torch

    from headsplat.eval.metrics import speckles
    from headsplat.media.image import write_png

    imgs, alphas, av = views(avatar_path, size)
    spk, rough = [], []
    for im, a in zip(imgs, alphas):
        inner = cv2.erode((a > 0.95).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        spk.append(round(100 * speckles(im, inner, threshold=0.12, size=9), 2))
        g = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32)
        step = (np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1]) / 2
        rough.append(round(float(step[inner[:-1, :-1]].mean()), 2))
    gs = av.gaussians
    big = (gs.log_scales.exp().max(-1).values > 0.015) & (torch.sigmoid(gs.opacity_logits) < 0.5)
    from headsplat.eval.mouth import interior_leak_at, open_mouth_views
    from headsplat.rig.factory import make_rig

    rig = make_rig(av.rig)
    leak = [round(100 * interior_leak_at(open_mouth_views(av, rig, yaw)), 3) for yaw in (-40.0, 0.0, 40.0)]
    top2 = gs.log_scales.exp().sort(-1, descending=True).values[:, :2]
    needles = (top2[:, 0] > 0.005) & (top2[:, 0] > 5 * top2[:, 1])
    write_png(strip, np.concatenate(imgs, 1))
    return {"yaws": list(YAWS), "speckles_pct": spk, "roughness": rough, "large_translucent": int(big.sum()),
            "needles": int(needles.sum()), "mouth_leak_pct": leak, "n_gaussians": len(gs),
            "psnr_foreground": av.info.get("psnr_foreground"), "strip": str(strip)}


if __name__ == "__main__":
    main()
