"""Memory against video length: peak resident memory of `headsplat track` and `headsplat animate` (driven by
that track) on rendered talking-head clips of growing length, each command in its own process. Prints one JSON
line: per clip the peak RSS and seconds of each command, and the slope of peak RSS per frame (a least-squares
line through the clips), beside the peak RSS of a process that only imports headsplat (the floor).

    python benchmarks/long_video.py [--frames 150 600 2400] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_rss(args: list[str]) -> tuple[float, float]:
    """(peak resident memory in MB, seconds) of a command run in a child process (fails loudly)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed: {err.strip()[-500:]}")
    return usage.ru_maxrss / 1024, seconds  # Linux: kilobytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[150, 600, 2400])
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()

    from headsplat.api import render_posed_photo, sample_portrait
    from headsplat.rig.controls import demo_performance

    hs = [sys.executable, "-m", "headsplat", "-q"]
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        floor, _ = peak_rss([sys.executable, "-c", "import headsplat.api, headsplat.cli.main"])
        photo = work / "astronaut.png"
        from headsplat.media.image import write_png

        write_png(photo, sample_portrait())
        subprocess.run([*hs, "create", str(photo), "-o", str(work / "a.avatar")], check=True)
        rows = []
        for n in args.frames:
            clip = work / f"talk{n}.mp4"
            render_posed_photo(sample_portrait(), clip, controls=demo_performance(n), size=args.size, quiet=True)
            track_mb, track_s = peak_rss([*hs, "track", str(clip), "-o", str(work / f"talk{n}.track")])
            anim_mb, anim_s = peak_rss([*hs, "animate", str(work / "a.avatar"), "--driver",
                                        str(work / f"talk{n}.track"), "-o", str(work / f"out{n}.mp4")])
            rows.append({"frames": n, "track_mb": round(track_mb, 1), "track_s": round(track_s, 1),
                         "animate_mb": round(anim_mb, 1), "animate_s": round(anim_s, 1),
                         "track_file_kb": round((work / f"talk{n}.track").stat().st_size / 1024, 1)})
            print(json.dumps(rows[-1]), file=sys.stderr)
    n = np.array([r["frames"] for r in rows], float)

    def slope(key):  # KB of peak memory per frame
        return round(float(np.polyfit(n, [r[key] for r in rows], 1)[0]) * 1024, 2) if len(rows) > 1 else None

    print(json.dumps({"name": "long_video", "size": args.size, "import_floor_mb": round(floor, 1), "clips": rows,
                      "track_kb_per_frame": slope("track_mb"), "animate_kb_per_frame": slope("animate_mb")}))


if __name__ == "__main__":
    main()
