"""GAGAvatar stage timings at the released size (issue: GAGAvatar from released weights). Prints JSON lines.

    python benchmarks/gagavatar.py                      # CPU, random weights written in the released layout
    python benchmarks/gagavatar.py --weights GAGAvatar.pt --device cuda --frames 8

Without ``--weights`` a full-size random checkpoint is written in the released file's layout (all 597 tensors,
the training loss's included) and loaded through ``GAGAvatar.from_pretrained``, so the figures are those of the
real model's sizes (the values of the weights do not change the time). Measured: loading, the one-off
reconstruction (encoder + generators on a 518² source), and per frame: the 32-channel splat of the 180k
Gaussians at 512², the refiner (frames batched by 4), and the raw render alone. Baselines in the same run (the
machine's speed varies between sessions): the same Gaussians splatted as 3 RGB channels, and a fixed matmul
(GFLOP/s); ratios are given against them.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import torch
from timing import machine, matmul_seconds, timed


def _random_released_checkpoint(path: Path) -> None:
    import json as _json
    from importlib import resources

    from headsplat.models.registry import LAYOUTS

    package, name = LAYOUTS["GAGAvatar"]
    layout = _json.loads(resources.files(package).joinpath(name).read_text())["tensors"]
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(*shape, generator=g) * (0.02 if len(shape) > 1 else 0.1) for k, shape in layout.items()}
    torch.save({"model": state, "meta_cfg": {"MODEL": {"NAME": "GAGAvatar"}}}, path)



def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", help="the released GAGAvatar.pt (default: random weights in its layout)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--bf16", action="store_true", help="CUDA: run encoder and refiner under bf16 autocast")
    args = ap.parse_args()
    from headsplat.models.gagavatar.model import GAGAvatar, render_features
    from headsplat.render.rasterize import rasterize

    dev = torch.device(args.device)
    info = machine(dev)
    with tempfile.TemporaryDirectory() as d:
        path = Path(args.weights) if args.weights else Path(d) / "random_released_layout.pt"
        if not args.weights:
            _random_released_checkpoint(path)
        model, t_load = timed(lambda: GAGAvatar.from_pretrained(path, device=dev), dev)
    cfg = model.cfg
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if (args.bf16 and dev.type == "cuda") else None
    g = torch.Generator().manual_seed(1)
    img = torch.rand(1, 3, cfg.source_size, cfg.source_size, generator=g).to(dev)
    yaw = 0.2
    tf = torch.tensor([[math.cos(yaw), 0, math.sin(yaw), 0.0], [0, 1, 0, 0.0], [-math.sin(yaw), 0, math.cos(yaw), 9.3]])
    with torch.no_grad():
        def recon():
            if amp is not None:
                with amp:
                    return model.reconstruct(img, tf[None].to(dev))
            return model.reconstruct(img, tf[None].to(dev))

        model.reconstruct(img, tf[None].to(dev))  # warm-up (numba compilation, CUDA kernels)
        gs, t_recon = timed(recon, dev)
        gs = gs.to(dev, torch.float32)
        verts = (torch.randn(args.frames, cfg.n_vertices, 3, generator=g) * torch.tensor([0.5, 0.6, 0.5])).to(dev)
        tfs = tf[None].expand(args.frames, 3, 4).to(dev)
        render_features(gs, verts[:1], tfs[:1], cfg.render_size, cfg.focal)  # warm-up
        feats, t_render = timed(lambda: render_features(gs, verts, tfs, cfg.render_size, cfg.focal), dev)

        def refine():
            outs = []
            for i in range(0, args.frames, 4):
                if amp is not None:
                    with amp:
                        outs.append(model.refine(feats[i:i + 4]))
                else:
                    outs.append(model.refine(feats[i:i + 4]))
            return torch.cat(outs)

        refine()  # warm-up
        _, t_refine = timed(refine, dev)
        from headsplat.models.gagavatar.conventions import render_camera

        cam = render_camera(tfs[0], cfg.render_size, cfg.focal)
        xyz = torch.cat([verts[0], gs.xyz[0, cfg.n_vertices:]])
        _, t_rgb = timed(lambda: rasterize(xyz, gs.rotations[0], gs.scales[0], gs.opacities[0, :, 0],
                                            gs.colors[0, :, :3].contiguous(), cam, normalize_quats=False), dev, 2)
        t_mm = matmul_seconds(dev)
    per = args.frames
    print(json.dumps({
        **info, "weights": "released file" if args.weights else "random, released layout",
        "gaussians": int(gs.xyz.shape[1]), "load_s": round(t_load, 2), "reconstruct_s": round(t_recon, 3),
        "render32_ms_per_frame": round(1e3 * t_render / per, 1), "refiner_ms_per_frame": round(1e3 * t_refine / per, 1),
        "frame_ms_with_refiner": round(1e3 * (t_render + t_refine) / per, 1),
        "frame_ms_without_refiner": round(1e3 * t_render / per, 1),
        "baseline_render_rgb_ms": round(1e3 * t_rgb, 1), "baseline_matmul_gflops": round(2 * 1024 ** 3 / t_mm / 1e9, 1),
        "ratio_render32_to_rgb": round(t_render / per / t_rgb, 2),
        "ratio_frame_to_rgb_render": round((t_render + t_refine) / per / t_rgb, 2)}))


if __name__ == "__main__":
    main()
