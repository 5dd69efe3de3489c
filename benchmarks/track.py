"""Tracking speed: frames per second of `headsplat track` on a 512x512 talking-head video, end to end
(decode, landmarks, fitting) and per stage. Prints JSON lines.

    python benchmarks/track.py [--frames 120] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()

    from headsplat.api import render_posed_photo, sample_portrait
    from headsplat.media import open_frames
    from headsplat.rig.controls import demo_performance
    from headsplat.rig.open_rig import OpenRig
    from headsplat.track.fit import FitConfig, fit_landmarks
    from headsplat.track.tracker import detect_landmarks

    rig = OpenRig()
    with tempfile.TemporaryDirectory() as d:
        video = Path(d) / "talk.mp4"
        render_posed_photo(sample_portrait(), video, controls=demo_performance(args.frames), size=args.size,
                           quiet=True, rig=rig)
        src = open_frames(video)
        detect_landmarks(open_frames(video), quiet=True)  # warm-up: model loading, first-call costs
        t0 = time.perf_counter()
        det = detect_landmarks(src, quiet=True)
        lms, found = det.landmarks, det.found
        t1 = time.perf_counter()
        fit_landmarks(lms, found, args.size, args.size, rig, temporal=True, cfg=FitConfig())
        t2 = time.perf_counter()
    n = len(found)
    print(json.dumps({"name": "track", "width": args.size, "frames": n, "fps": round(n / (t2 - t0), 1),
                      "landmarks_fps": round(n / (t1 - t0), 1), "fit_fps": round(n / (t2 - t1), 1),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
