"""Portrait4D-v2 stage timings at the released size (issue: Portrait4D-v2 in headsplat). Prints one JSON line.

    python benchmarks/portrait4d.py                       # CPU, random weights at the released sizes
    python benchmarks/portrait4d.py --weights portrait4d-v2-vfhq512.pkl --device cuda --frames 4

Without ``--weights`` the network is built at the released configuration with random weights (the values of the
weights do not change the time) and its deformer gets the open rig's head as a stand-in mesh (FLAME's own
buffers are not shipped; the stand-in has more triangles than the released simplified mesh's 1394, so its
deformer time is an upper bound). Measured: the source's encoders (once
per avatar), and per 512² frame: PD-FGC's motion code, the head-pose deformer's grids, the triplanes
(canonical encoder + triplane decoder), and the volume render with super-resolution, at neural resolutions 64
and 128 (the released script's). Baseline in the same run (machine speed varies between sessions): a fixed
matmul (GFLOP/s); the ratio is a frame's time in units of that matmul.
"""

from __future__ import annotations

import argparse
import json

import torch
from timing import machine, matmul_seconds, timed

RENDERING = {"superresolution_module": "training.superresolution.SuperresolutionHybrid8XDC", "sr_antialias": True,
             "superresolution_noise_mode": "none", "decoder_lr_mul": 1.0, "clamp_mode": "softplus",
             "disparity_space_sampling": False, "depth_resolution": 48, "depth_resolution_importance": 48,
             "ray_start": "auto-plane", "ray_end": "auto-plane", "box_warp": 1.3, "c_scale": 1.0}


def _stand_in_deformer() -> dict[str, torch.Tensor]:
    """The open rig's head (x3, the deformer's scale) as the deformer's FLAME and simplified mesh."""
    from headsplat.rig.open_rig import OpenRig

    rig = OpenRig()
    faces = rig.triangles  # the head's (the mouth cavity is the avatar's, not the rig's triangles)
    nv = int(faces.max()) + 1
    v = rig.template[:nv].float() * 3
    weights = torch.zeros(nv, 5)
    weights[:, 1] = 1.0
    reg = torch.full((5, nv), 1.0 / nv)
    p = "flame_deform.flame_model."
    return {p + "v_template": v, p + "shapedirs": torch.randn(nv, 3, 400) * 1e-4,
            p + "posedirs": torch.zeros(36, 3 * nv), p + "J_regressor": reg,
            p + "parents": torch.tensor([-1, 0, 1, 1, 1]), p + "lbs_weights": weights,
            "flame_deform.simplify_idxs": torch.arange(nv)[:, None].repeat(1, 3),
            "flame_deform.simplify_baris": torch.tensor([[1.0, 0.0, 0.0]]).repeat(nv, 1),
            "flame_deform.simplify_faces": faces.long()}


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
    info = machine(dev)
    t_load = None
    if args.weights:
        model, t_load = timed(lambda: Portrait4D.from_pretrained(args.weights, device=dev), dev)
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
        feats, t_source = timed(lambda: model.encode_source(img), dev)
        motion, t_motion = timed(lambda: encoder.motion_code(crop), dev)
        src_motion = motion[:1]
        field, t_field = timed(lambda: model.head_pose_field(shape, expr, pose, eyes), dev)
        _, t_planes = timed(lambda: model.planes(feats, src_motion.expand(args.frames, -1), motion), dev)
        for r in (64, 128):
            gen = torch.Generator(device=dev).manual_seed(0)
            _, t = timed(lambda: model.synthesis(feats, src_motion, motion, cams, deformer=field,
                                                  neural_rendering_resolution=r, generator=gen), dev)
            out[f"synthesis_s_per_frame_neural{r}"] = round(t / args.frames, 3)
            out[f"frame_s_neural{r}"] = round((t + t_motion + t_field) / args.frames, 3)
        t_mm = matmul_seconds(dev)
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
