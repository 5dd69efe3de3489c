"""Expressions of a one-photo avatar, as a picture: the astronaut's avatar rendered neutral, blinking, winking,
looking left and right, surprised (wide eyes, raised brows, open jaw), with a lopsided smile, and with the jaw
fully open at -45, 0 and 45 degrees. Writes benchmarks/figures/expressions_astronaut.png (ignored by git) and
prints one JSON line: what each panel is, the avatar's foreground PSNR and the file.

    python benchmarks/expression_strip.py [-o benchmarks/figures] [--size 384]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np

PANELS = (
    ("neutral", {}, 0.0),
    ("blink", {"blink_left": 1.0, "blink_right": 1.0}, 0.0),
    ("wink", {"blink_left": 1.0}, 0.0),
    ("look left", {"gaze_yaw": 1.0}, 0.0),
    ("look right", {"gaze_yaw": -1.0}, 0.0),
    ("surprise", {"wide_left": 1.0, "wide_right": 1.0, "brow_up_left": 1.0, "brow_up_right": 1.0,
                  "jaw_open": 0.5}, 0.0),
    ("lopsided smile", {"smile_left": 1.0}, 0.0),
    ("jaw open -45", {"jaw_open": 1.0}, -45.0),
    ("jaw open", {"jaw_open": 1.0}, 0.0),
    ("jaw open 45", {"jaw_open": 1.0}, 45.0),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", type=Path, default=Path("benchmarks/figures"))
    ap.add_argument("--size", type=int, default=384)
    args = ap.parse_args()
    import cv2
    import torch
    from PIL import Image
    from skimage import data

    from headsplat import api
    from headsplat.avatar.animate import offset_motion, render_avatar_frame, straight_rgb8
    from headsplat.avatar.methods.fitted import load_fitted
    from headsplat.core.rotation import euler_yxz_to_matrix
    from headsplat.media.image import write_png

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "astronaut.png"
        Image.fromarray(data.astronaut()).save(photo)
        api.create(photo, Path(tmp) / "a.avatar", quiet=True)
        av, rig = load_fitted(Path(tmp) / "a.avatar", None)
    names = list(rig.expression_names)
    tiles = []
    for label, controls, yaw in PANELS:
        e = torch.zeros(1, len(names))
        for k, x in controls.items():
            e[0, names.index(k)] = x
        turn = euler_yxz_to_matrix(torch.tensor([math.radians(yaw)]), torch.zeros(1), torch.zeros(1))
        out = render_avatar_frame(av, rig, offset_motion(av, e, turn), 0, av.camera, width=args.size,
                                  height=args.size)
        rgb = straight_rgb8(out.rgb, out.alpha)
        a = out.alpha.numpy()
        tile = (rgb * a + 255 * (1 - a)).astype(np.uint8)
        s = args.size
        tile = np.ascontiguousarray(tile[int(0.15 * s):int(0.85 * s), int(0.2 * s):int(0.8 * s)])
        cv2.putText(tile, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "expressions_astronaut.png"
    write_png(path, np.concatenate(tiles, 1))
    print(json.dumps({"name": "expression_strip", "panels": [p[0] for p in PANELS],
                      "psnr_foreground": av.info["psnr_foreground"], "strip": str(path)}))


if __name__ == "__main__":
    main()
