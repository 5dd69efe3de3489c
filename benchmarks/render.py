"""Rasterizer speed and memory on an avatar-like scene: N Gaussians bound by area to the open head rig's
mesh, opaque-ish, seen from the front and filling most of the frame. Prints one JSON line per
(backend, N, size):

    python benchmarks/render.py [--backend cpu] [--sizes 256 512] [--counts 20000 50000 100000] [--repeats 10]

fps: forward only (no grad), the playback path. fwd_bwd_ms: forward + L1 loss + backward to every Gaussian
parameter, the fitting path. peak_mb: peak resident memory growth of the process over the whole run for that
configuration (a fresh subprocess per configuration, so the figures do not leak into each other).
stages_ms: where the time goes (projection and colour in torch; binning; pixel compositing forward and
backward), and the number of (Gaussian, tile) intersections.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def avatar_scene(n: int, size: int, seed: int = 0):
    """N Gaussians on the neutral open rig and a front camera framing the head at ``size``²."""
    import torch

    from headsplat.core.camera import Camera, intrinsics_from_fov, look_at
    from headsplat.rig.open_rig import OpenRig
    from headsplat.splat.binding import init_by_area

    g = torch.Generator().manual_seed(seed)
    rig = OpenRig()
    verts = rig.template
    rgb = torch.rand(n, 3, generator=g) * 0.5 + 0.25
    gs = init_by_area(verts, rig.triangles, n, generator=g, rgb=rgb, opacity=0.8)
    head = verts.max(0).values - verts.min(0).values
    eye = torch.tensor([0.0, 0.0, 1.0]) * float(head.max()) * 1.7
    cam = Camera(look_at(eye, torch.zeros(3)), intrinsics_from_fov(30.0, size, size), size, size)
    return gs, cam


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2]


def run_one(backend: str, n: int, size: int, repeats: int) -> dict:
    import numba
    import numpy as np
    import torch

    from headsplat.render import cpu as cpu_backend
    from headsplat.render import cpu_kernels
    from headsplat.render.projection import project_gaussians, view_colors
    from headsplat.render.rasterize import render

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gs, cam = avatar_scene(n, size)
    params = [gs.means, gs.quats, gs.log_scales, gs.opacity_logits, gs.sh]
    for p in params:
        p.requires_grad_(True)
    target = torch.rand(size, size, 3, generator=torch.Generator().manual_seed(1))

    def fwd():
        with torch.no_grad():
            render(gs, cam, background=1.0, backend=backend)

    def fwd_bwd():
        out = render(gs, cam, background=1.0, backend=backend)
        (out.rgb - target).abs().mean().backward()

    for _ in range(2):  # JIT compilation and first-touch allocations
        fwd_bwd()
        fwd()
    fwd_ms = _median_ms(fwd, repeats)
    fwd_bwd_ms = _median_ms(fwd_bwd, repeats)

    stages = {}
    if backend == "cpu":
        with torch.no_grad():
            def proj():
                colors = view_colors(gs.means, gs.sh, cam.viewmat)
                p = project_gaussians(gs.means, gs.quats, gs.scales, cam.viewmat, cam.K, size, size)
                return colors, p
            stages["project"] = _median_ms(proj, repeats)
            colors, p = proj()
            args = [cpu_backend._np32(t) for t in (p.means2d, p.conics, torch.cat([colors, p.depths[:, None]], -1),
                                                   gs.opacities, p.depths)]
            valid = p.valid.numpy()
            stages["bin"] = _median_ms(lambda: cpu_backend._Binning(*args, valid, size, size), repeats)
            b = cpu_backend._Binning(*args, valid, size, size)
            bg = np.ones(3, np.float32)
            stages["composite"] = _median_ms(lambda: cpu_kernels.rasterize_forward(*b.args(), bg), repeats)
            _, _, depth, out_t, out_last = cpu_kernels.rasterize_forward(*b.args(), bg)
            v = np.random.default_rng(0).random((size, size, 3), np.float32)
            va = np.zeros((size, size), np.float32)
            stages["composite_backward"] = _median_ms(
                lambda: cpu_kernels.rasterize_backward(*b.args(), bg, depth, out_t, out_last, v, va, va), repeats)
            stages["intersections"] = int(b.ids.shape[0])
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"name": "render", "backend": backend, "n_gaussians": n, "width": size, "height": size,
            "fps": round(1000 / fwd_ms, 1), "fwd_ms": round(fwd_ms, 1), "fwd_bwd_ms": round(fwd_bwd_ms, 1),
            "peak_mb": round((rss1 - rss0) / 1024, 1),
            "stages_ms": {k: (round(v, 2) if isinstance(v, float) else v) for k, v in stages.items()},
            "torch_threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads(),
            "numpy": np.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="cpu", choices=["cpu", "torch", "gsplat"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--counts", type=int, nargs="+", default=[20000, 50000, 100000])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child-process mode
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.backend, args.counts[0], args.sizes[0], args.repeats)), flush=True)
        return
    for n in args.counts:
        for size in args.sizes:
            cmd = [sys.executable, __file__, "--one", "--backend", args.backend, "--counts", str(n), "--sizes",
                   str(size), "--repeats", str(args.repeats)]
            subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
