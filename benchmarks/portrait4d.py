"""Portrait4D-v2 stage timings at the released size (issue: Portrait4D-v2 in headsplat). Prints one JSON line.

    python benchmarks/portrait4d.py                       # CPU, random weights at the released sizes
    python benchmarks/portrait4d.py --weights portrait4d-v2-vfhq512.pkl --device cuda --frames 4

Without ``--weights`` the network is built at the released configuration with random weights (the values of the
weights do not change the time) and its deformer gets a stand-in simplified mesh of the released one's size
(730 vertices, about 1400 triangles; FLAME's own buffers are not shipped). Measured: the source's encoders (once
per avatar), and per 512² frame: PD-FGC's motion code, the head-pose deformer's grids, the triplanes
(canonical encoder + triplane decoder), and the volume render with super-resolution, at neural resolutions 64
and 128 (the released script's). Baseline in the same run (machine speed varies between sessions): a fixed
matmul (GFLOP/s); the ratio is a frame's time in units of that matmul.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch


def _timed(fn, device, repeat: int = 1):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, (time.perf_counter() - t0) / repeat


RENDERING = {"superresolution_module": "training.superresolution.SuperresolutionHybrid8XDC", "sr_antialias": True,
             "superresolution_noise_mode": "none", "decoder_lr_mul": 1.0, "clamp_mode": "softplus",
             "disparity_space_sampling": False, "depth_resolution": 48, "depth_resolution_importance": 48,
             "ray_start": "auto-plane", "ray_end": "auto-plane", "box_warp": 1.3, "c_scale": 1.0}


def _stand_in_deformer(n_lat: int = 28, n_lon: int = 26) -> dict[str, torch.Tensor]:
    """A head-sized ellipsoid as the deformer's FLAME and simplified mesh (the released mesh's size)."""
    verts = [[0.0, 1.0, 0.0]] + [[math.sin(math.pi * i / n_lat) * math.cos(2 * math.pi * j / n_lon),
                                  math.cos(math.pi * i / n_lat), math.sin(math.pi * i / n_lat) *
                                  math.sin(2 * math.pi * j / n_lon)] for i in range(1, n_lat) for j in range(n_lon)]
    verts += [[0.0, -1.0, 0.0]]
    faces = [[0, 1 + (j + 1) % n_lon, 1 + j] for j in range(n_lon)]
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b = 1 + i * n_lon + j, 1 + i * n_lon + (j + 1) % n_lon
            faces += [[a, b, b + n_lon], [a, b + n_lon, a + n_lon]]
    last = len(verts) - 1
    faces += [[1 + (n_lat - 2) * n_lon + j, 1 + (n_lat - 2) * n_lon + (j + 1) % n_lon, last] for j in range(n_lon)]
    v = torch.tensor(verts) * torch.tensor([0.25, 0.32, 0.28])
    nv = len(v)
    weights = torch.zeros(nv, 5)
    weights[:, 1] = 1.0
    reg = torch.full((5, nv), 1.0 / nv)
    p = "flame_deform.flame_model."
    return {p + "v_template": v, p + "shapedirs": torch.randn(nv, 3, 400) * 1e-4,
            p + "posedirs": torch.zeros(36, 3 * nv), p + "J_regressor": reg,
            p + "parents": torch.tensor([-1, 0, 1, 1, 1]), p + "lbs_weights": weights,
            "flame_deform.simplify_idxs": torch.arange(nv)[:, None].repeat(1, 3),
            "flame_deform.simplify_baris": torch.tensor([[1.0, 0.0, 0.0]]).repeat(nv, 1),
            "flame_deform.simplify_faces": torch.tensor(faces)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", help="the released portrait4d-v2-vfhq512.pkl (default: random weights)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--frames", type=int, default=1)
    args = ap.parse_args()
    from headsplat.models.portrait4d.inputs import orbit_camera
    from headsplat.models.portrait4d.model import Portrait4D, Portrait4DConfig
    from headsplat.models.portrait4d.motion import FanEncoder

    dev = torch.device(args.device)
    info = {"device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "torch": torch.__version__}
    t_load = None
    if args.weights:
        model, t_load = _timed(lambda: Portrait4D.from_pretrained(args.weights, device=dev), dev)
    else:
        torch.manual_seed(0)
        model = Portrait4D(Portrait4DConfig(rendering_kwargs=RENDERING, num_blocks_neutral=4, num_blocks_motion=4,
                                            motion_map_layers=2)).eval().to(dev)
        model.deformer_state = {k: v.to(dev) for k, v in _stand_in_deformer().items()}
    encoder = FanEncoder().eval().to(dev)
    g = torch.Generator().manual_seed(1)
    img = (torch.rand(1, 3, 512, 512, generator=g) * 2 - 1).to(dev)
    crop = (torch.rand(args.frames, 3, 224, 224, generator=g) * 2 - 1).to(dev)
    cams = orbit_camera(10.0, 5.0)[None].expand(args.frames, -1).to(dev)
    shape = torch.zeros(args.frames, 300, device=dev)
    expr = torch.zeros(args.frames, 100, device=dev)
    pose = torch.tensor([[0.1, 0.2, 0.0, 0.1, 0.0, 0.0]], device=dev).expand(args.frames, -1)
    eyes = torch.zeros(args.frames, 6, device=dev)
    out = {}
    with torch.no_grad():
        feats, t_source = _timed(lambda: model.encode_source(img), dev)
        motion, t_motion = _timed(lambda: encoder.motion_code(crop), dev)
        src_motion = motion[:1]
        field, t_field = _timed(lambda: model.head_pose_field(shape, expr, pose, eyes), dev)
        _, t_planes = _timed(lambda: model.planes(feats, src_motion.expand(args.frames, -1), motion), dev)
        for r in (64, 128):
            gen = torch.Generator(device=dev).manual_seed(0)
            _, t = _timed(lambda: model.synthesis(feats, src_motion, motion, cams, deformer=field,
                                                  neural_rendering_resolution=r, generator=gen), dev)
            out[f"synthesis_s_per_frame_neural{r}"] = round(t / args.frames, 3)
            out[f"frame_s_neural{r}"] = round((t + t_motion + t_field) / args.frames, 3)
        a = torch.randn(1024, 1024, device=dev)
        _, t_mm = _timed(lambda: a @ a, dev, 10)
    gflops = 2 * 1024 ** 3 / t_mm / 1e9
    print(json.dumps({
        **info, "weights": "released file" if args.weights else "random, released sizes",
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "load_s": None if t_load is None else round(t_load, 2), "source_encoders_s": round(t_source, 3),
        "motion_code_s_per_frame": round(t_motion / args.frames, 3),
        "deformer_s_per_frame": round(t_field / args.frames, 3),
        "triplanes_s_per_frame": round(t_planes / args.frames, 3),
        **out, "baseline_matmul_gflops": round(gflops, 1),
        "ratio_frame128_to_matmul": round(out["frame_s_neural128"] / t_mm, 1)}))


if __name__ == "__main__":
    main()
