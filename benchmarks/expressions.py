"""Expression capture round trip: the open rig textured with a real photo (skimage's astronaut) performs known
blinks, a wink, squints, wide eyes, brow raises, lip shapes, a lopsided smile and a roving gaze with head
turns; the video is
tracked back. Prints JSON: per control, the correlation of the recovered coefficient with the known one and
the largest recovered value; the eye- and mouth-opening correlations of the tracked rig's landmarks with the
rendered rig's (the image-plane truth); the mean per-vertex image-plane error of the fitted face, in pixels and
in inter-ocular distances; the tracking time beside a baseline measured in the same run (a 256x256 matmul
loop, for comparing machines) and beside the same tracking without the free offsets.

The performance also carries a deformation no named shape makes (a one-sided sneer and an uneven brow knit,
``beyond_shapes_deformation``): ``free_deformation`` states how much of its image-plane motion the tracked rig
reproduces with the free face offsets (correlation, gain, error in that region with the shapes alone and with the
offsets).

With ``--cross``, also cross-reenactment: a driver (the astronaut's rig) with a wide-eyed surprise, a lopsided
smile and the sneer drives an avatar of another person (the insightface wheel's Tom Hanks); MediaPipe's landmarks on
the output against the driver's, each as motion since its first frame after a similarity alignment, in
inter-ocular distances: the landmark expression distance and the correlation of the two motions, per region, with
and without the free offsets; and the output tracked back by headsplat (shapes and offsets) against the driver's
known face motion, both in their own head frame (``tracked_face_motion_vs_known``).

With ``--reenact``, also self-reenactment with paste-back (``headsplat eval reenact``) on a rendered 100-frame clip
of the astronaut with known blinks (both eyes, a half wink), raised brows, talking and a smile: face PSNR/SSIM and
the eye-opening (blink), mouth-opening and expression correlations of the output with the ground truth, beside the
2D-warp baseline.

    python benchmarks/expressions.py [--frames 150] [--reenact] [--cross --insightface .test-assets/insightface]
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


def sneer_envelope(n: int, fps: float = 25.0) -> np.ndarray:
    """(n,) strength of the beyond-the-shapes deformation over the performance: one rise and fall."""
    t = np.arange(n) / fps
    d = n / fps
    return np.clip(1 - np.abs(t - 0.45 * d) / (0.15 * d), 0, 1)


def cross_clip(n: int = 75, fps: float = 25.0) -> dict:
    """The cross-reenactment driver's controls: a wide-eyed surprise (eyes wide, brows up, jaw dropped), then a
    lopsided smile; the head keeps still (a 2D alignment cannot take a head turn out of landmark motion)."""
    t = np.arange(n) / fps

    def bump(c, w):
        return np.clip(1 - np.abs(t - c) / w, 0, 1).astype(np.float32)
    d = n / fps
    return {"wide_left": bump(0.3 * d, 0.2 * d), "wide_right": bump(0.3 * d, 0.2 * d),
            "brows_up": bump(0.3 * d, 0.2 * d), "jaw_open": 0.5 * bump(0.3 * d, 0.2 * d),
            "smile_left": 0.9 * bump(0.75 * d, 0.2 * d)}


def _aligned_motion(lms: np.ndarray) -> np.ndarray:
    """(T, 468, 2) landmark motion since the first frame after a similarity alignment of each frame onto it,
    in inter-ocular distances (NaN for frames without a face)."""
    from headsplat.core.rotation import similarity_transform
    from headsplat.face.indices import interocular

    p = lms[:, :468, :2].astype(np.float64)
    ref = p[0]
    out = np.full_like(p, np.nan)
    for t in range(len(p)):
        if not np.isfinite(p[t]).all():
            continue
        s, R, shift = similarity_transform(p[t], ref)
        out[t] = (s * p[t] @ R.T + shift - ref) / interocular(ref[None])[0]
    return out


def _face_motion(rig, p: dict) -> np.ndarray:
    """(T, 468, 3) the face vertices' motion since the first frame in the head's own frame (no pose), in the
    template's inter-ocular distances, for open-rig parameters ``p`` (identity, scale, expression, offsets)."""
    from headsplat.face.indices import interocular

    T = p["expression"].shape[0]
    extra = {} if p.get("offsets") is None else {"offsets": p["offsets"]}
    with torch.no_grad():
        v = rig(p["identity"], p["scale"], p["expression"], torch.zeros(T, 3), torch.zeros(T, 3), face_only=True,
                **extra).vertices[:, :468].double().numpy() / float(p["scale"])
    unit = float(interocular(rig.template[None, :478, :2].double().numpy())[0])
    return (v - v[:1]) / unit


def cross(tmp: Path, insightface: Path, sneer: bool = True) -> dict:
    """Cross-reenactment of a rendered driver onto another person (see the module docstring)."""
    from dataclasses import replace

    from skimage import data

    from headsplat import api
    from headsplat.avatar.animate import driver_motion, render_avatar_frame
    from headsplat.face import indices as I
    from headsplat.face.landmarks import LandmarkDetector
    from headsplat.media import open_frames
    from headsplat.media.video import VideoWriter
    from headsplat.rig.controls import beyond_shapes_deformation
    from headsplat.rig.factory import make_rig
    from headsplat.rig.open_rig import OpenRig
    from headsplat.track import track_source

    rig = OpenRig()
    n = 75
    offsets = sneer_envelope(n)[:, None, None] * beyond_shapes_deformation(rig)[None] if sneer else None
    video = tmp / "driver.mp4"
    truth = api.render_posed_photo(data.astronaut(), video, controls=cross_clip(n), quiet=True, rig=rig,
                                   offsets=None if offsets is None else offsets.astype(np.float32))
    tr = track_source(open_frames(video), rig=rig, quiet=True)
    av = api.create(insightface / "Tom_Hanks_54745.png", tmp / "tom.avatar", preset="fast", quiet=True)
    r = make_rig(av.rig)
    driven = _aligned_motion(tr.landmarks)
    regions = {"brows": np.r_[I.LEFT_BROW, I.RIGHT_BROW], "eyes": np.r_[I.LEFT_EYE_UPPER, I.LEFT_EYE_LOWER,
                                                                        I.RIGHT_EYE_UPPER, I.RIGHT_EYE_LOWER],
               "mouth": np.asarray(I.LIPS_OUTER), "all": np.arange(468)}
    out = {}
    # The driver's known face motion in its own head frame (template inter-ocular units), against the output's as
    # headsplat's tracker reads it (shapes and free offsets): pose-free, and it sees what landmarks miss.
    known = _face_motion(rig, dict(identity=torch.from_numpy(truth.identity),
                                   scale=torch.tensor(truth.identity_scale),
                                   expression=torch.from_numpy(truth.expression),
                                   offsets=None if offsets is None else torch.from_numpy(offsets).float()))
    for name, track in (("with offsets", tr), ("shapes only", replace(tr, offsets=None))):
        motion = driver_motion(av, track, pose="none")
        lms = []
        output = tmp / f"output_{len(out)}.mp4"
        with LandmarkDetector(mode="image") as det, VideoWriter(output, fps=25.0) as writer:
            for t in range(n):
                o = render_avatar_frame(av, r, motion, t, av.camera, background=1.0)
                img = (o.rgb.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
                writer.write(img)
                lm = det(img)
                lms.append(lm.points if lm is not None else np.full((478, 3), np.nan, np.float32))
        got = _aligned_motion(np.stack(lms))
        ok = np.isfinite(got).all(axis=(1, 2))
        row = {"face_found": round(float(ok.mean()), 3)}
        for reg, idx in regions.items():
            a, b = got[ok][:, idx], driven[ok][:, idx]
            row[reg] = {"distance_iod": round(float(np.linalg.norm(a - b, axis=-1).mean()), 4),
                        "correlation": round(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]), 3)}
        read = track_source(open_frames(output), rig=rig, quiet=True)
        p = read.params(with_offsets=True)
        seen = _face_motion(rig, dict(identity=p["identity"], scale=p["scale"], expression=p["expression"],
                                      offsets=p.get("offsets")))
        row["tracked_face_motion_vs_known"] = {
            reg: {"distance_iod": round(float(np.linalg.norm(seen[:, idx] - known[:, idx], axis=-1).mean()), 4),
                  "correlation": round(float(np.corrcoef(seen[:, idx].ravel(), known[:, idx].ravel())[0, 1]), 3)}
            for reg, idx in regions.items()}
        out[name] = row
    return out


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
    ap.add_argument("--cross", action="store_true", help="also the cross-reenactment figures (about 2 min more)")
    ap.add_argument("--insightface", type=Path, default=Path(".test-assets/insightface"))
    args = ap.parse_args()
    from skimage import data

    from headsplat.api import render_posed_photo
    from headsplat.core.camera import intrinsics_from_fov, project_points, world_to_opencv
    from headsplat.eval.metrics import correlation, eye_opening, mouth_opening
    from headsplat.face.indices import interocular
    from headsplat.media import open_frames
    from headsplat.rig.controls import beyond_shapes_deformation, controls_to_params
    from headsplat.rig.open_rig import OpenRig
    from headsplat.track import track_source
    from headsplat.track.fit import FitConfig
    from headsplat.track.tracker import free_face_motion

    rig = OpenRig()
    perf = performance(args.frames)
    baseline = _baseline_s()
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "performance.mp4"
        field = sneer_envelope(args.frames)[:, None, None] * beyond_shapes_deformation(rig)[None]
        field = torch.from_numpy(field.astype(np.float32))
        truth = render_posed_photo(data.astronaut(), video, controls=perf, quiet=True, rig=rig, offsets=field)
        t0 = time.perf_counter()
        shapes = track_source(open_frames(video), rig=rig, quiet=True, config=FitConfig(offsets=None))
        landmarks_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        tr = free_face_motion(open_frames(video), shapes, rig, quiet=True)  # what track_source does by default
        offsets_s = time.perf_counter() - t0
    names = list(rig.expression_names)
    known, _ = controls_to_params({k: v for k, v in perf.items() if not k.startswith("head_")}, names, args.frames)
    known = known.numpy()
    per_control = {}
    for k in names:
        if known[:, names.index(k)].std() > 1e-3:
            e, e0 = tr.expression[:, names.index(k)], shapes.expression[:, names.index(k)]
            per_control[k] = {"correlation": round(correlation(e, known[:, names.index(k)]), 3),
                              "recovered_range": round(float(e.max() - e.min()), 3),
                              "known_range": round(float(np.ptp(known[:, names.index(k)])), 3),
                              "landmark_fit_correlation": round(correlation(e0, known[:, names.index(k)]), 3),
                              "landmark_fit_range": round(float(e0.max() - e0.min()), 3)}
    # Image-plane truth: the rendered rig's face vertices, against the tracked rig's.
    with torch.no_grad():
        K = intrinsics_from_fov(30.0, truth.size, truth.size)
        gt = dict(identity=torch.from_numpy(truth.identity), scale=torch.tensor(truth.identity_scale),
                  expression=torch.from_numpy(truth.expression), rotation=torch.from_numpy(truth.rotation),
                  translation=torch.from_numpy(truth.translation), face_only=True)
        cam = tr.camera()

        def uv(verts, viewmat, K):
            return project_points(verts.double(), viewmat.double(), K.double())[0].numpy()
        gt_uv = uv(rig(**gt, offsets=field).vertices, world_to_opencv(), K)
        gt_plain = uv(rig(**gt).vertices, world_to_opencv(), K)
        fit_uv = uv(rig(**shapes.params(), face_only=True).vertices, cam.viewmat, cam.K)
        fit_off = uv(rig(**tr.params(with_offsets=True), face_only=True).vertices, cam.viewmat, cam.K)
    err = np.linalg.norm(fit_uv[:, :468] - gt_uv[:, :468], axis=-1)
    err_off = np.linalg.norm(fit_off[:, :468] - gt_uv[:, :468], axis=-1)
    iod = interocular(gt_uv)
    field_px = np.linalg.norm(gt_uv - gt_plain, axis=-1)
    region = field_px.max(0) > 0.3 * field_px.max()
    known, found = (gt_uv - gt_plain)[:, region], (fit_off - fit_uv)[:, region]

    def region_error(u):  # motion since the first frame (the fitted identity differs from the truth's)
        return round(float(np.linalg.norm((u - u[0]) - (gt_uv - gt_uv[0]), axis=-1)[:, region].mean()), 3)
    free = {"field_px_max": round(float(field_px.max()), 2), "region_vertices": int(region.sum()),
            "correlation": round(float(np.corrcoef(known.ravel(), found.ravel())[0, 1]), 3),
            "gain": round(float((known * found).sum() / (known * known).sum()), 3),
            "region_error_px_shapes_only": region_error(fit_uv), "region_error_px_with_offsets": region_error(fit_off)}
    reenactment = crossed = None
    if args.reenact:
        with tempfile.TemporaryDirectory() as tmp:
            reenactment = reenact(Path(tmp))
    if args.cross:
        with tempfile.TemporaryDirectory() as tmp:
            crossed = cross(Path(tmp), args.insightface)
    print(json.dumps({
        "frames": args.frames,
        "self_reenactment": reenactment,
        "cross_reenactment": crossed,
        "free_deformation": free,
        "controls": per_control,
        "eye_opening_correlation": round(correlation(eye_opening(fit_uv), eye_opening(gt_uv)), 3),
        "eye_opening_correlation_with_offsets": round(correlation(eye_opening(fit_off), eye_opening(gt_uv)), 3),
        "mouth_opening_correlation": round(correlation(mouth_opening(fit_uv), mouth_opening(gt_uv)), 3),
        "mouth_opening_correlation_with_offsets": round(correlation(mouth_opening(fit_off), mouth_opening(gt_uv)),
                                                        3),
        "detected_eye_opening_correlation": round(correlation(eye_opening(tr.landmarks), eye_opening(gt_uv)), 3),
        "vertex_error_px": round(float(err.mean()), 2),
        "vertex_error_px_with_offsets": round(float(err_off.mean()), 2),
        "vertex_error_iod": round(float((err.mean(1) / iod).mean()), 4),
        "track_s": round(landmarks_s + offsets_s, 1), "baseline_s": round(baseline, 2),
        "track_over_baseline": round((landmarks_s + offsets_s) / baseline, 1),
        "landmark_fit_ms_per_frame": round(1000 * landmarks_s / args.frames, 1),
        "offsets_ms_per_frame": round(1000 * offsets_s / args.frames, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
