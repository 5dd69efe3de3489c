"""CAP4D MMDM cost (issue: CAP4D from released weights). Prints JSON lines.

    python benchmarks/cap4d.py                         # CPU, random weights at the released size, 512² (64² latents)
    python benchmarks/cap4d.py --device cuda --dtype bf16
    python benchmarks/cap4d.py --latent 32             # a quicker CPU figure at 256²

Measured: one model call (the conditional and unconditional branches of 8 frames: 16 frames through the UNet), the
autoencoder's encode and decode of one image, peak memory; projected: the time of each generation preset
(debug 28 views / 10 steps, low 210 / 50, medium 420 / 50, high 840 / 100, one reference: groups of 7). Baseline in
the same run: a fixed matmul (GFLOP/s), since machines of this kind vary between sessions.
"""

from __future__ import annotations

import argparse
import json
import resource

import torch
from timing import timed

PRESETS = {"debug": (28, 10), "low": (210, 50), "medium": (420, 50), "high": (840, 100)}




def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--latent", type=int, default=64, help="latent side (64: 512² images)")
    ap.add_argument("--references", type=int, default=1)
    args = ap.parse_args()
    from headsplat.models.cap4d.model import MMDM

    dev = torch.device(args.device)
    dt = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    model = MMDM().to(dev, dt).eval()
    s, v = args.latent, model.cfg.unet.frames
    x = torch.randn(2, v, 4, s, s, device=dev, dtype=dt)
    z = torch.zeros_like(x)
    mask = torch.zeros(2, v, dtype=torch.bool, device=dev)
    mask[:, :args.references] = True
    cond = torch.randn(2, v, s, s, 50, device=dev, dtype=dt)
    t = torch.full((2, v), 501, device=dev)
    with torch.no_grad():
        if dev.type == "cuda":
            model.unet(x, t, z, mask, cond)  # warm-up
        _, t_call = timed(lambda: model.unet(x, t, z, mask, cond), dev)
        img = torch.rand(1, 3, 8 * s, 8 * s, device=dev, dtype=dt) * 2 - 1
        (mean, _), t_enc = timed(lambda: model.vae.encode(img), dev)
        _, t_dec = timed(lambda: model.vae.decode(mean), dev)
        a = torch.randn(1024, 1024, device=dev)
        _, t_mm = timed(lambda: [a @ a for _ in range(10)], dev)
    peak = (torch.cuda.max_memory_allocated() / 2 ** 30 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    group = v - args.references
    projected = {name: round(steps * (-(-n // group)) * t_call + n * t_dec, 1)
                 for name, (n, steps) in PRESETS.items()}
    print(json.dumps({
        "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu", "dtype": args.dtype,
        "threads": torch.get_num_threads(), "image_size": 8 * s, "frames_per_call": v,
        "model_call_s": round(t_call, 2), "vae_encode_s": round(t_enc, 3), "vae_decode_s": round(t_dec, 3),
        "peak_memory_gib": round(peak, 2), "baseline_matmul_gflops": round(10 * 2 * 1024 ** 3 / t_mm / 1e9, 1),
        "projected_preset_s": projected}))


if __name__ == "__main__":
    main()
