"""Make the README's picture: the built-in portrait, the avatar made from it driven by a short clip, and
the avatar turned to three yaws, side by side in one PNG (``docs/images/strip.png`` by default).

Only the public API is used (:mod:`headsplat.api`); nothing is downloaded. About a minute on two cores:

    python tools/readme_strip.py [-o docs/images/strip.png] [--panel 176]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from headsplat import api

# The driver: a 1.2 s clip of the portrait re-posed through its own rig. Its first frame is neutral (motion is
# applied relative to it); the frames shown are a turn with the jaw open, a smile with raised brows, and a head
# tilt with a wink, which the clip's tracking reads back only as a narrowed eye.
FPS = 25.0
N_DRIVER = 30
SHOWN = (10, 19, 27)
YAWS = (-45.0, 40.0, 90.0)
GAP = 6  # pixels between panels
CAPTION = 22  # caption band height


def _ramp(keys: dict[int, float]) -> np.ndarray:
    """(N_DRIVER,) piecewise-linear curve through frame -> value keys."""
    frames = sorted(keys)
    return np.interp(np.arange(N_DRIVER), frames, [keys[f] for f in frames]).astype(np.float32)


def driver_controls() -> dict[str, np.ndarray]:
    return {
        "jaw_open": _ramp({0: 0, 4: 0, 10: 0.75, 14: 0.1, 30: 0.1}),
        "head_yaw": _ramp({0: 0, 4: 0, 10: -18, 16: 0, 30: 0}),
        "head_pitch": _ramp({0: 0, 10: 4, 19: -4, 30: 0}),
        "smile": _ramp({0: 0, 13: 0, 19: 0.9, 23: 0.3, 30: 0.3}),
        "brows_up": _ramp({0: 0, 14: 0, 19: 0.8, 23: 0, 30: 0}),
        "blink_left": _ramp({0: 0, 23: 0, 27: 1.0, 30: 1.0}),
        "blink_right": np.zeros(N_DRIVER, np.float32),
        "head_roll": _ramp({0: 0, 22: 0, 27: 6, 30: 6}),
    }


def _square(img: np.ndarray, side: int) -> Image.Image:
    """The image's centre square, resized to ``side``."""
    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return Image.fromarray(img[y0:y0 + s, x0:x0 + s, :3]).resize((side, side), Image.LANCZOS)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def compose(groups: list[tuple[str, list[np.ndarray]]], side: int) -> Image.Image:
    """Panels of ``side`` px in captioned groups, left to right, on white."""
    n = sum(len(imgs) for _, imgs in groups)
    width = n * side + (n - 1) * GAP + (len(groups) - 1) * 2 * GAP
    strip = Image.new("RGB", (width, side + CAPTION), "white")
    draw = ImageDraw.Draw(strip)
    font = _font(14)
    x = 0
    for caption, imgs in groups:
        draw.text((x + 2, 3), caption, fill=(40, 40, 40), font=font)
        for img in imgs:
            strip.paste(_square(img, side), (x, CAPTION))
            x += side + GAP
        x += 2 * GAP
    return strip


def make_strip(output: Path, side: int, quiet: bool = True) -> Path:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        portrait = api.sample_portrait()
        Image.fromarray(portrait).save(d / "portrait.png")
        api.create(d / "portrait.png", d / "sample.avatar", quiet=quiet)
        api.render_posed_photo(portrait, d / "driver.mp4", controls=driver_controls(), n_frames=N_DRIVER, fps=FPS,
                               quiet=quiet)
        api.animate(d / "sample.avatar", d / "driver.mp4", d / "driven", quiet=quiet)
        driven = [np.asarray(Image.open(d / "driven" / f"{t:05d}.png").convert("RGB")) for t in SHOWN]
        views = []
        for yaw in YAWS:
            api.render(d / "sample.avatar", d / f"yaw{yaw:+.0f}.png", orbit=False, yaw=yaw, size=2 * side,
                       quiet=quiet)
            views.append(np.asarray(Image.open(d / f"yaw{yaw:+.0f}.png").convert("RGB")))
        strip = compose([("photo", [portrait]), ("driven by a clip", driven),
                         ("turned: yaw -45, +40, +90 deg", views)], side)
    output.parent.mkdir(parents=True, exist_ok=True)
    # 256 colours keep the file small (the README asks for at most ~300 KB) with no visible banding here.
    strip.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
        output, optimize=True)
    return output


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="docs/images/strip.png", help="the PNG to write")
    ap.add_argument("--panel", type=int, default=176, help="side of each panel in pixels")
    args = ap.parse_args()
    out = make_strip(Path(args.output), args.panel, quiet=False)
    print(f"{out}: {out.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
