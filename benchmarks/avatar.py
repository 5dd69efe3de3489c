"""Avatar speed and memory: create from one 512² photo (each preset), create from 2.4 s (60 frames), 10 s and
30 s 512² talking-head videos (the default preset, with its stage table; the one-photo create in the same run
and a 1024² matmul are the baselines for ratios),
and animate end to end (track the driver video, retarget, render, encode) on a 120-frame 512² driver. Prints
one JSON line per measurement; each runs in its own process so that peak_mb is that job's peak resident memory.

    python benchmarks/avatar.py [--presets fast quality] [--frames 120] [--videos 2.4 10 30]
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


def bench_create_video(seconds: float, work: Path) -> dict:
    """create on a talking-head video (the astronaut re-posed: talking, turning), default preset; ``seconds``
    at 25 fps (2.4: a 60-frame clip)."""
    import torch
    from timing import matmul_seconds

    from headsplat import api
    from headsplat.rig.controls import talking_performance

    video = work / f"talk{seconds}.mp4"
    api.render_posed_photo(api.sample_portrait(), video, controls=talking_performance(round(25 * seconds)),
                           size=512, quiet=True)
    base = _peak_mb()
    t0 = time.perf_counter()
    av = api.create(video, work / f"video{seconds}.avatar", quiet=True)
    dt = time.perf_counter() - t0
    return {"name": "create_video", "preset": "fast",
            "input": f"{seconds} s ({round(25 * seconds)} frames) 512x512 25 fps talking head",
            "seconds": round(dt, 1), "frames_used": len(av.info["frames"]), "stages_s": av.info["stages_s"],
            "fit": av.info["fit"], "matmul_1024_s": round(matmul_seconds(torch.device("cpu")), 5),
            "n_gaussians": len(av.gaussians), "psnr_foreground_db": av.info["psnr_foreground"],
            "peak_mb": round(_peak_mb()), "peak_before_mb": round(base), "threads": torch.get_num_threads()}


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


def bench_paste_hd(frames: int, work: Path) -> dict:
    """Paste-back into 1080p frames (the head about 1000 px tall) next to paste-back at 512 px in the same run
    (the ratio is what compares across machines); peak memory for ``frames`` frames (run twice, with N and 2N
    frames, it shows memory does not grow with the clip's length)."""
    import cv2

    from headsplat import api
    from headsplat.media.frames import open_frames
    from headsplat.media.video import VideoWriter
    from headsplat.rig.controls import demo_performance

    avatar = work / "fast.avatar"
    if not avatar.exists():
        bench_create("fast", work)
    small = work / f"driver{frames}.mp4"
    api.render_posed_photo(api.sample_portrait(), small, controls=demo_performance(frames), size=512, quiet=True)
    hd = work / f"driver{frames}_1080p.mp4"
    with VideoWriter(hd, fps=25.0) as w:
        for f in open_frames(small):
            canvas = cv2.resize(f.rgb, (1920, 1920), interpolation=cv2.INTER_CUBIC)[420:1500]
            w.write(canvas)
    base = _peak_mb()
    t0 = time.perf_counter()
    api.animate(avatar, small, work / "p512.mp4", paste_back=True, quiet=True)
    t1 = time.perf_counter()
    api.animate(avatar, hd, work / "p1080.mp4", paste_back=True, quiet=True)
    t2 = time.perf_counter()
    fps512, fps1080 = frames / (t1 - t0), frames / (t2 - t1)
    return {"name": "paste_back_1080p", "frames": frames, "driver": "1920x1080, head ~1000 px",
            "frames_per_s": round(fps1080, 2), "baseline_512_frames_per_s": round(fps512, 2),
            "ratio_to_512": round(fps1080 / fps512, 2), "peak_mb": round(_peak_mb()), "peak_before_mb": round(base)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["fast", "quality"])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--videos", type=float, nargs="*", default=[2.4, 10, 30],
                    help="video lengths in seconds for create (2.4: 60 frames)")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # child-process mode: JOB WORKDIR
    args = ap.parse_args()
    if args.one:
        job, work = args.one
        if job == "animate":
            row = bench_animate(args.frames, Path(work))
        elif job.startswith("video:"):
            row = bench_create_video(float(job.split(":")[1]), Path(work))
        elif job.startswith("paste_hd"):
            row = bench_paste_hd(int(job.split(":")[1]), Path(work))
        else:
            row = bench_create(job, Path(work))
        print(json.dumps(row), flush=True)
        return
    with tempfile.TemporaryDirectory() as work:
        hd = [f"paste_hd:{max(2, args.frames // 8)}", f"paste_hd:{max(4, args.frames // 4)}"]
        videos = [f"video:{s}" for s in args.videos]
        for job in list(args.presets) + videos + ["animate"] + hd:
            subprocess.run([sys.executable, __file__, "--frames", str(args.frames), "--one", job, work], check=True)


if __name__ == "__main__":
    main()
