"""animate on an in-the-wild HD driver, per shot: a 1920x1080 clip of three shots composed from real photos
re-posed with known motion (the astronaut with her head ~650 px tall; Tom Hanks under a 1.3x -> 2.2x zoom; the
astronaut again, off-centre, beside Tom Hanks' photo). Prints JSON lines:

- ``wild_cross``: ``eval cross`` of the astronaut's avatar driven by the clip: shots found, and per shot the
  correlation of the output's mouth opening and head yaw with the driver's.
- ``wild_framing``: ``animate`` in the avatar's framing: per shot the face centre's largest distance from the
  frame centre (fraction of the frame) and the range of the head's size relative to the shot's first frame.
- ``wild_paste``: ``animate --paste-back``: frames/s, peak memory, and per shot the strongest straight seam the
  output adds over the driver (grey levels), and for the astronaut's shots the face-region PSNR.

    python benchmarks/wild.py [--insightface .test-assets/insightface] [--shot 25]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def compose_driver(insightface: Path, shot: int, path: Path) -> Path:
    from headsplat import api
    from headsplat.media.compose import inset, place
    from headsplat.media.image import read_image_uint8
    from headsplat.media.video import VideoWriter
    from headsplat.rig.controls import talking_performance

    hanks = read_image_uint8(insightface / "Tom_Hanks_54745.png")
    astro = api.sample_portrait()
    with tempfile.TemporaryDirectory() as d, VideoWriter(path, fps=25.0) as w:
        for k, (photo, yaw, phase) in enumerate(((astro, 20, 0.0), (hanks, 25, 0.3), (astro, 20, 0.7))):
            controls = talking_performance(shot, yaw=yaw, phase=phase)
            folder = Path(d) / str(k)
            api.render_posed_photo(photo, folder, controls=controls, quiet=True)
            for i, p in enumerate(sorted(folder.glob("*.png"))):
                f = read_image_uint8(p)
                if k == 0:
                    w.write(place(f, (1920, 1080), 2.0, (0.5, 0.5)))
                elif k == 1:
                    z = i / max(1, shot - 1)
                    w.write(place(f, (1920, 1080), 1.3 + 0.9 * z, (0.45 + 0.1 * z, 0.5)))
                else:
                    w.write(inset(place(f, (1920, 1080), 1.8, (0.35, 0.5)), hanks, 1400, 250, 380))
    return path


def _frames(path: Path) -> list[np.ndarray]:
    from PIL import Image

    from headsplat.media.frames import open_frames

    if path.is_dir():
        return [np.asarray(Image.open(p)) for p in sorted(path.glob("*.png"))]
    return [f.rgb for f in open_frames(path)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--insightface", type=Path, default=Path(".test-assets/insightface"))
    ap.add_argument("--shot", type=int, default=25, help="frames per shot")
    args = ap.parse_args()
    from headsplat import api
    from headsplat.eval import metrics as M
    from headsplat.media.image import write_png
    from headsplat.track.shots import shot_ranges

    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        driver = compose_driver(args.insightface, args.shot, work / "wild.mp4")
        write_png(work / "astronaut.png", api.sample_portrait())
        avatar = work / "astro.avatar"
        api.create(work / "astronaut.png", avatar, quiet=True)

        rep = api.eval_cross(avatar, driver, work / "cross", quiet=True)
        print(json.dumps({"name": "wild_cross", "shots": len(rep["shots"]), "frames": len(rep["frames"]),
                          "per_shot": [{"frames": f"{s['first']}-{s['last']}",
                                        **{k: s["figures"]["headsplat"].get(k)
                                           for k in ("mouth_corr", "yaw_corr", "blink_corr")}}
                                       for s in rep["shots"]],
                          "overall": {k: rep["summary"]["headsplat"].get(k)
                                      for k in ("mouth_corr", "yaw_corr", "csim", "same_person")}}), flush=True)

        tracking = api.track(driver, work / "wild.track", quiet=True)
        ranges = shot_ranges(tracking.shots)
        api.animate(avatar, work / "wild.track", work / "framed", background="transparent", quiet=True)
        framed = _frames(work / "framed")
        per_shot = []
        for a, b in ranges:
            alpha = [f[..., 3].astype(np.float64) / 255 for f in framed[a:b]]
            h, w = alpha[0].shape
            ys, xs = np.mgrid[0:h, 0:w] + 0.5
            off = [max(abs((x * xs).sum() / x.sum() / w - 0.5), abs((x * ys).sum() / x.sum() / h - 0.5))
                   for x in alpha]
            size = [np.sqrt(x.sum() / alpha[0].sum()) for x in alpha]
            per_shot.append({"frames": f"{a}-{b - 1}", "max_centre_offset": round(max(off), 3),
                             "size_ratio_range": [round(min(size), 3), round(max(size), 3)]})
        print(json.dumps({"name": "wild_framing", "per_shot": per_shot}), flush=True)

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        api.animate(avatar, driver, work / "pasted.mp4", paste_back=True, quiet=True)
        dt = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out, drv = _frames(work / "pasted.mp4"), _frames(driver)
        per_shot = []
        for k, (a, b) in enumerate(ranges):
            row = {"frames": f"{a}-{b - 1}", "max_seam_excess": round(max(M.seam_excess(o, g) for o, g in
                                                                          zip(out[a:b], drv[a:b])), 2)}
            if k != 1:  # the astronaut's own shots: self-reenactment, so the face can be compared
                psnr = []
                for t in range(a, b):
                    hull = cv2.convexHull(tracking.landmarks[t, :, :2].astype(np.float32))
                    mask = np.zeros(drv[t].shape[:2], np.uint8)
                    cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
                    psnr.append(M.psnr(out[t], drv[t], mask.astype(bool)))
                row["face_psnr_db"] = round(float(np.mean(psnr)), 2)
            per_shot.append(row)
        print(json.dumps({"name": "wild_paste", "size": "1920x1080", "frames": len(out),
                          "frames_per_s": round(len(out) / dt, 2), "peak_mb": round(peak),
                          "peak_before_mb": round(before), "per_shot": per_shot}), flush=True)


if __name__ == "__main__":
    main()
