"""``headsplat batch`` on a local Ray: the overhead of a job run as a Ray task against the same public function
called directly, and jobs per minute of N one-photo creates with 1 and 2 workers. Prints JSON lines.

    python benchmarks/batch.py [--tracks 4] [--creates 2] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def _spec(folder: Path, jobs: list[dict]) -> Path:
    p = folder / "spec.json"
    p.write_text(json.dumps({"jobs": jobs}))
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tracks", type=int, default=4, help="one-photo track jobs for the overhead")
    ap.add_argument("--creates", type=int, default=2, help="one-photo create jobs per scaling run (0: none)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    import ray
    import torch
    from PIL import Image

    from headsplat import api

    torch.set_num_threads(1)  # as a job with --cpus-per-task 1 runs
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        photo = d / "portrait.png"
        Image.fromarray(api.sample_portrait()).save(photo)
        api.track(photo, d / "warm.track", quiet=True)  # first-call costs out of the figures
        t0 = time.perf_counter()
        for i in range(args.tracks):
            api.track(photo, d / f"direct{i}.track", quiet=True)
        direct = (time.perf_counter() - t0) / args.tracks

        spec = _spec(d, [{"name": f"t{i}", "command": "track", "input": str(photo)} for i in range(args.tracks)])
        t0 = time.perf_counter()
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        t_init = time.perf_counter() - t0
        t1 = time.perf_counter()
        m = api.batch(spec, d / "out-track", quiet=True)["manifest"]
        wall = time.perf_counter() - t1
        t2 = time.perf_counter()
        api.batch(spec, d / "out-track", quiet=True)  # resumed: every job skipped
        resume = time.perf_counter() - t2
        ray.shutdown()
        in_task = [r["seconds"] for r in m["jobs"].values()]
        print(json.dumps({"bench": "batch_overhead", "jobs": args.tracks, "direct_s_per_job": round(direct, 3),
                          "batch_wall_s_per_job": round(wall / args.tracks, 3),
                          "in_task_s_per_job": round(sum(in_task) / len(in_task), 3),
                          "in_task_s": in_task,
                          "overhead_s_per_job": round(wall / args.tracks - direct, 3), "ray_init_s": round(t_init, 2),
                          "resume_all_skipped_s": round(resume, 2),
                          "first_job_includes": "worker start and imports (one worker, 1 CPU)"}), flush=True)

        if args.creates:
            jobs = [{"name": f"c{i}", "command": "create", "inputs": str(photo), "seed": i}
                    for i in range(args.creates)]
            spec = _spec(d, jobs)
            for w in args.workers:
                ray.init(num_cpus=w, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
                t0 = time.perf_counter()
                m = api.batch(spec, d / f"out-create-{w}", quiet=True)["manifest"]
                wall = time.perf_counter() - t0
                ray.shutdown()
                print(json.dumps({"bench": "batch_create", "workers": w, "jobs": args.creates,
                                  "done": m["counts"]["done"], "wall_s": round(wall, 1),
                                  "jobs_per_min": round(60 * args.creates / wall, 2),
                                  "peak_rss_mb": max(r["peak_rss_mb"] or 0 for r in m["jobs"].values())}),
                      flush=True)


if __name__ == "__main__":
    main()
