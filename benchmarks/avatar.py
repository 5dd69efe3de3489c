"""Avatar speed and memory: create from one 512² photo (each preset) and animate end to end (track the driver
video, retarget, render, encode) on a 120-frame 512² driver. Prints one JSON line per measurement; each runs in
its own process so that peak_mb is that job's peak resident memory.

    python benchmarks/avatar.py [--presets fast quality] [--frames 120]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_create(preset: str, work: Path) -> dict:
    import torch

    from headsplat import api
    from headsplat.media.image import write_png

    photo = work / "astronaut.png"
    write_png(photo, api.sample_portrait())
    t0 = time.perf_counter()
    av = api.create(photo, work / f"{preset}.avatar", preset=preset, quiet=True)
    dt = time.perf_counter() - t0
    return {"name": "create", "preset": preset, "input": "astronaut 512x512", "seconds": round(dt, 1),
            "fit_seconds": av.info["seconds"], "n_gaussians": len(av.gaussians),
            "psnr_foreground_db": av.info["psnr_foreground"], "peak_mb": round(_peak_mb()),
            "threads": torch.get_num_threads()}


def bench_animate(frames: int, work: Path) -> dict:
    import torch

    from headsplat import api
    from headsplat.rig.controls import demo_performance

    avatar = work / "fast.avatar"
    if not avatar.exists():
        bench_create("fast", work)
    driver = work / "driver.mp4"
    api.render_posed_photo(api.sample_portrait(), driver, controls=demo_performance(frames), size=512, quiet=True)
    base = _peak_mb()
    t0 = time.perf_counter()
    res = api.animate(avatar, driver, work / "out.mp4", quiet=True)
    dt = time.perf_counter() - t0
    t1 = time.perf_counter()
    api.animate(avatar, driver, work / "pasted.mp4", paste_back=True, quiet=True)
    dt_paste = time.perf_counter() - t1
    return {"name": "animate", "driver": f"{frames} frames 512x512 mp4", "output_size": 512,
            "frames_per_s": round(res["frames"] / dt, 1), "paste_back_frames_per_s": round(res["frames"] / dt_paste, 1),
            "seconds": round(dt, 1), "peak_mb": round(_peak_mb()), "peak_before_mb": round(base),
            "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["fast", "quality"])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # child-process mode: JOB WORKDIR
    args = ap.parse_args()
    if args.one:
        job, work = args.one
        row = bench_animate(args.frames, Path(work)) if job == "animate" else bench_create(job, Path(work))
        print(json.dumps(row), flush=True)
        return
    with tempfile.TemporaryDirectory() as work:
        for job in list(args.presets) + ["animate"]:
            subprocess.run([sys.executable, __file__, "--frames", str(args.frames), "--one", job, work], check=True)


if __name__ == "__main__":
    main()
