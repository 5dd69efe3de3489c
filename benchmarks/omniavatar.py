"""OmniAvatar stage timings at the released size (issue: OmniAvatar in headsplat). Prints one JSON line.

    python benchmarks/omniavatar.py                      # CPU, random weights at the released sizes
    python benchmarks/omniavatar.py --weights omniavatar.pkl --device cuda --views 8

Without ``--weights`` the network is built at the released configuration (the committed manifest's) with random
weights (their values do not change the time). Measured: the mapping and the volume planes (once per identity),
a 512² view (volume render with the 3DMM warp and prior, 48 + 48 samples a ray, and the 8x super-resolution) at
neural resolutions 64 and 128, and the prior SDF on the points the FLAME alignment evaluates (3 control rows x
1800 points, forward and backward: one of its L-BFGS evaluations). Baseline in the same run (machine speed varies
between sessions): a fixed 1024² matmul; the ratio is a view's time in units of it.
"""

from __future__ import annotations

import argparse
import json
import math

import torch
from timing import machine, matmul_seconds, timed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", help="the authors' network pickle (default: random weights)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--views", type=int, default=1, help="views timed per neural resolution")
    args = ap.parse_args()
    from headsplat.avatar.generators.omniavatar import TRUNCATION_CUTOFF, TRUNCATION_PSI
    from headsplat.models.omniavatar import OmniAvatar, OmniAvatarConfig, look_at_camera, make_label
    from headsplat.models.omniavatar.model import FFHQ_3DMM_FOCAL

    dev = torch.device(args.device)
    info = machine(dev)
    t_load = None
    if args.weights:
        model, t_load = timed(lambda: OmniAvatar.from_pretrained(args.weights, device=dev), dev)
    else:
        torch.manual_seed(0)
        model = OmniAvatar(OmniAvatarConfig()).eval().to(dev)
    model.requires_grad_(False)
    rk = model.cfg.rendering_kwargs
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, model.cfg.z_dim, generator=g).to(dev)
    k = torch.tensor([[FFHQ_3DMM_FOCAL, 0, 0.5], [0, FFHQ_3DMM_FOCAL, 0.5], [0, 0, 1]])[None]
    cam = look_at_camera(math.pi / 2 + 0.3, math.pi / 2 - 0.1, rk["avg_camera_pivot"], rk["avg_camera_radius"])
    controls = torch.randn(3, 206, generator=g) * 0.3
    c = make_label(cam, k, controls[:1]).to(dev)
    out = {}
    with torch.no_grad():
        ws, t_map = timed(lambda: model.mapping(z, c, TRUNCATION_PSI, TRUNCATION_CUTOFF), dev)
        planes, t_planes = timed(lambda: model.planes(ws), dev)
        for r in (64, 128):
            _, t = timed(lambda: model.synthesis(ws, c, neural_rendering_resolution=r, planes=planes), dev,
                         args.views)
            out[f"view_s_neural{r}"] = round(t, 3)
        t_mm = matmul_seconds(dev)
    pts = (torch.rand(3, 1800, 3, generator=g) - 0.5).to(dev).requires_grad_(True)

    def sdf_step():
        d = model.prior_sdf(pts, controls.to(dev))
        d.sum().backward()
        return d

    _, t_sdf = timed(sdf_step, dev, 3)
    print(json.dumps({
        **info, "weights": "released file" if args.weights else "random, released sizes",
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "load_s": None if t_load is None else round(t_load, 2), "mapping_s": round(t_map, 3),
        "planes_s": round(t_planes, 3), **out, "prior_sdf_step_s": round(t_sdf, 4),
        "baseline_matmul_gflops": round(2 * 1024 ** 3 / t_mm / 1e9, 1),
        "ratio_view64_to_matmul": round(out["view_s_neural64"] / t_mm, 1)}))


if __name__ == "__main__":
    main()
