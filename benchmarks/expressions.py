"""Expression capture round trip: the open rig textured with a real photo (skimage's astronaut) performs known
blinks, a wink, squints, wide eyes, brow raises, lip shapes, a lopsided smile and a roving gaze with head
turns; the video is
tracked back. Prints JSON: per control, the correlation of the recovered coefficient with the known one and
the largest recovered value; the eye- and mouth-opening correlations of the tracked rig's landmarks with the
rendered rig's (the image-plane truth); the mean per-vertex image-plane error of the fitted face, in pixels and
in inter-ocular distances; the tracking time beside a baseline measured in the same run (a 256x256 matmul
loop, for comparing machines).

With ``--reenact``, also self-reenactment with paste-back (``headsplat eval reenact``) on a rendered 100-frame clip
of the astronaut with known blinks (both eyes, a half wink), raised brows, talking and a smile: face PSNR/SSIM and
the eye-opening (blink), mouth-opening and expression correlations of the output with the ground truth, beside the
2D-warp baseline.

    python benchmarks/expressions.py [--frames 150] [--reenact]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _baseline_s() -> float:
    """Seconds of a fixed CPU workload (float64 512x512 matmuls, the tracker's kind of arithmetic), median of 3."""
    a = torch.randn(512, 512, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        b = a
        for _ in range(40):
            b = torch.tanh(b @ a * 0.01)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def performance(n: int, fps: float = 25.0) -> dict:
    t = np.arange(n) / fps

    def bump(c, w=0.12):
        return np.clip(1 - np.abs(t - c) / w, 0, 1).astype(np.float32)

    d = n / fps
    return {
        "head_yaw": (15 * np.sin(2 * np.pi * t / d)).astype(np.float32),
        "head_pitch": (5 * np.sin(2 * np.pi * 2 * t / d)).astype(np.float32),
        "blink_left": bump(0.1 * d) + bump(0.5 * d) + bump(0.8 * d, 0.2),
        "blink_right": bump(0.1 * d) + bump(0.5 * d),  # the third is a wink of the left eye
        "squint_left": 0.8 * bump(0.3 * d, 0.4), "squint_right": 0.8 * bump(0.3 * d, 0.4),
        "wide_left": bump(0.65 * d, 0.3), "wide_right": bump(0.65 * d, 0.3),
        "brows_up": 0.9 * bump(0.65 * d, 0.3),
        "brow_inner_up_left": 0.9 * bump(0.2 * d, 0.3), "brow_inner_up_right": 0.9 * bump(0.2 * d, 0.3),
        "jaw_open": (0.6 * np.clip(np.sin(2 * np.pi * t / 0.8), 0, None) * (t > 0.7 * d)).astype(np.float32),
        "smile_left": 0.9 * bump(0.4 * d, 0.4),  # lopsided smile
        "lips_funnel": 0.9 * bump(0.9 * d, 0.25),
        "lips_press": 0.9 * bump(0.25 * d, 0.25),
        "gaze_yaw": (0.8 * np.sin(2 * np.pi * t / 1.2)).astype(np.float32),
    }


def reenactment_clip(n: int = 100, fps: float = 25.0) -> dict:
    """The self-reenactment clip's controls: both eyes blink twice, then a half wink and a right blink, brows
    rise, the jaw talks for two seconds, a smile, the head turns a little."""
    t = np.arange(n) / fps

    def bump(c, w=0.12):
        return np.clip(1 - np.abs(t - c) / w, 0, 1).astype(np.float32)

    return {"head_yaw": (12 * np.sin(2 * np.pi * t / 4)).astype(np.float32),
            "jaw_open": (0.8 * np.clip(np.sin(2 * np.pi * t / 0.8), 0, None) * (t < 2.0)).astype(np.float32),
            "blink_left": bump(0.6) + bump(2.2) + 0.5 * bump(3.2, 0.4),
            "blink_right": bump(0.6) + bump(2.2) + bump(3.6),
            "smile": 0.8 * bump(2.8, 0.4), "brows_up": 0.9 * bump(1.4, 0.3)}


def reenact(tmp: Path) -> dict:
    """Self-reenactment with paste-back on the rendered clip: the report's summary for headsplat and the 2D warp."""
    from skimage import data

    from headsplat import api

    video = tmp / "reenact.mp4"
    api.render_posed_photo(data.astronaut(), video, controls=reenactment_clip(), quiet=True)
    rep = api.eval_reenact(video, tmp / "report", quiet=True)
    keys = ("psnr_face", "ssim_face", "blink_corr", "mouth_corr", "expression_corr", "apd_deg")
    return {m: {k: round(rep["summary"][m][k], 3) for k in keys} for m in ("headsplat", "2D warp")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--reenact", action="store_true", help="also the self-reenactment figures (about 2 min more)")
    args = ap.parse_args()
    from skimage import data

    from headsplat.api import render_posed_photo
    from headsplat.core.camera import intrinsics_from_fov, project_points, world_to_opencv
    from headsplat.eval.metrics import correlation, eye_opening, mouth_opening
    from headsplat.face.indices import interocular
    from headsplat.media import open_frames
    from headsplat.rig.controls import controls_to_params
    from headsplat.rig.open_rig import OpenRig
    from headsplat.track import track_source

    rig = OpenRig()
    perf = performance(args.frames)
    baseline = _baseline_s()
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "performance.mp4"
        truth = render_posed_photo(data.astronaut(), video, controls=perf, quiet=True, rig=rig)
        t0 = time.perf_counter()
        tr = track_source(open_frames(video), rig=rig, quiet=True)
        track_s = time.perf_counter() - t0
    names = list(rig.expression_names)
    known, _ = controls_to_params({k: v for k, v in perf.items() if not k.startswith("head_")}, names, args.frames)
    known = known.numpy()
    per_control = {}
    for k in names:
        if known[:, names.index(k)].std() > 1e-3:
            e = tr.expression[:, names.index(k)]
            per_control[k] = {"correlation": round(correlation(e, known[:, names.index(k)]), 3),
                              "recovered_range": round(float(e.max() - e.min()), 3),
                              "known_range": round(float(np.ptp(known[:, names.index(k)])), 3)}
    # Image-plane truth: the rendered rig's face vertices, against the tracked rig's.
    with torch.no_grad():
        K = intrinsics_from_fov(30.0, truth.size, truth.size)
        gt_v = rig(torch.from_numpy(truth.identity), torch.tensor(truth.identity_scale),
                   torch.from_numpy(truth.expression), torch.from_numpy(truth.rotation),
                   torch.from_numpy(truth.translation), face_only=True).vertices
        gt_uv = project_points(gt_v.double(), world_to_opencv().double(), K.double())[0].numpy()
        p = tr.params()
        cam = tr.camera()
        fit_v = rig(**p, face_only=True).vertices
        fit_uv = project_points(fit_v.double(), cam.viewmat.double(), cam.K.double())[0].numpy()
    err = np.linalg.norm(fit_uv[:, :468] - gt_uv[:, :468], axis=-1)
    iod = interocular(gt_uv)
    reenactment = None
    if args.reenact:
        with tempfile.TemporaryDirectory() as tmp:
            reenactment = reenact(Path(tmp))
    print(json.dumps({
        "frames": args.frames,
        "self_reenactment": reenactment,
        "controls": per_control,
        "eye_opening_correlation": round(correlation(eye_opening(fit_uv), eye_opening(gt_uv)), 3),
        "mouth_opening_correlation": round(correlation(mouth_opening(fit_uv), mouth_opening(gt_uv)), 3),
        "detected_eye_opening_correlation": round(correlation(eye_opening(tr.landmarks), eye_opening(gt_uv)), 3),
        "vertex_error_px": round(float(err.mean()), 2),
        "vertex_error_iod": round(float((err.mean(1) / iod).mean()), 4),
        "track_s": round(track_s, 1), "baseline_s": round(baseline, 2),
        "track_over_baseline": round(track_s / baseline, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
