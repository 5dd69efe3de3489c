"""The field's reenactment protocols on any video.

Self-reenactment: the avatar is built from one frame (or given), driven by the same video's tracked
parameters with paste-back, and each other frame is compared with the real one, next to two baselines on the
same frames. Cross-reenactment: an avatar of one person driven by another's video; identity should stay the
source's and motion should follow the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from tqdm import tqdm

from headsplat.core.camera import project_points
from headsplat.eval import metrics as M
from headsplat.eval.baselines import warp_face
from headsplat.eval.identity import SAME_PERSON_DISTANCE, IdentityEncoder, cosine_similarity, descriptor_distance
from headsplat.face.landmarks import N_LANDMARKS, LandmarkDetector
from headsplat.media.frames import FrameSource
from headsplat.rig.base import HeadRig
from headsplat.track.fit import FitConfig
from headsplat.track.tracker import fit_sequence
from headsplat.track.tracking import Tracking


@dataclass
class Stream:
    """Per-frame measurements of one method's output frames against the ground truth.

    Attributes:
        name: the method (``headsplat``, ``source frame``, ``2D warp``, ``driver frames``).
        landmarks: (T, 478, 3) detected in the output (NaN where none).
        descriptors: (T, 128) identity descriptors (NaN where no face).
        image: per-frame image metrics by name (``psnr_face``...), (T,) each, NaN where not measured.
    """

    name: str
    landmarks: list = field(default_factory=list)
    descriptors: list = field(default_factory=list)
    image: dict = field(default_factory=dict)

    def add_image_metric(self, key: str, value: float) -> None:
        self.image.setdefault(key, []).append(value)


class StreamMeasurer:
    """Landmarks (video-mode detector, as for the ground truth) and identity descriptors of one output
    stream, frame by frame."""

    def __init__(self, name: str, encoder: IdentityEncoder, mode: str = "video"):
        self.stream = Stream(name)
        self._encoder = encoder
        self._detector = LandmarkDetector(mode=mode)

    def add(self, rgb: np.ndarray) -> np.ndarray:
        """Measure one (H, W, 3) uint8 output frame; returns its (478, 3) landmarks (NaN when no face)."""
        lm = self._detector(rgb)
        pts = lm.points if lm is not None else np.full((N_LANDMARKS, 3), np.nan, np.float32)
        self.stream.landmarks.append(pts)
        self.stream.descriptors.append(self._encoder(rgb, pts))
        return pts

    def close(self) -> Stream:
        self._detector.close()
        return self.stream


def face_region(rig: HeadRig, tracking: Tracking, t: int) -> np.ndarray:
    """(H, W) bool: the convex hull of the tracked rig's landmarks (its fitted points) in frame ``t``."""
    cam = tracking.camera()
    with torch.no_grad():
        lms = rig.landmarks(**tracking.params(frames=slice(t, t + 1)))[0, rig.fit_points]
    uv, _ = project_points(lms, cam.viewmat, cam.K)
    mask = np.zeros((tracking.height, tracking.width), np.uint8)
    hull = cv2.convexHull((uv.numpy() - 0.5).astype(np.float32))
    cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
    return mask.astype(bool)


def fit_stream(stream: Stream, like: Tracking, rig: HeadRig, quiet: bool = True) -> Tracking | None:
    """Fit ``rig`` to a stream's landmarks with the ground truth's camera (its field of view), so parameters
    are comparable with ``like``'s."""
    lms = np.stack(stream.landmarks).astype(np.float32)
    found = np.isfinite(lms).all(axis=(1, 2))
    if not found.any():
        return None
    fov = like.camera(torch.float64).fov_x_deg
    return fit_sequence(lms, found, like.times[: len(lms)], like.width, like.height, like.fps, rig,
                        temporal=len(lms) > 1, cfg=FitConfig(fov_deg=fov), quiet=quiet,
                        source=f"{stream.name} output")


def _nanmean(x) -> float:
    x = np.asarray(x, np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


#: How much a reference series must vary (std) before following it is measured: mouth/eye opening as a fraction
#: of the mouth/eye width, expression coefficients, head angles in degrees.
MIN_STD = {"opening": 0.01, "coefficient": 0.01, "angle_deg": 1.0}


def motion_figures(out_lms: np.ndarray, ref_lms: np.ndarray, out_track: Tracking | None,
                   ref_track: Tracking, self_reenactment: bool) -> dict:
    """Motion-following figures of an output against the reference (ground truth or driver), frame for frame:
    (T, 478, 3) landmarks of each and their trackings (``out_track`` None: no face was found in the output).

    Self-reenactment adds the absolute distances (landmark NME/AKD, expression distance, pose angle); both
    give correlations of mouth opening, eye opening (blinks), yaw and pitch, and of each expression
    coefficient (mean over the coefficients the reference moves)."""
    o, r = out_lms, ref_lms
    res = {"face_found": float(np.isfinite(o).all(axis=(1, 2)).mean())}
    # Below these the reference does not really move (landmark noise), and a correlation would measure noise.
    res["mouth_corr"] = M.correlation(M.mouth_opening(o), M.mouth_opening(r), min_std=MIN_STD["opening"])
    res["blink_corr"] = M.correlation(M.eye_opening(o), M.eye_opening(r), min_std=MIN_STD["opening"])
    if self_reenactment:
        akd, nme = M.landmark_errors(o, r)
        res["akd_px"], res["nme"] = _nanmean(akd), _nanmean(nme)
    if out_track is None:
        return res
    oe, re = out_track.expression, ref_track.expression
    moving = re.std(0) > MIN_STD["coefficient"]
    res["expression_corr"] = _nanmean([M.correlation(oe[:, j], re[:, j]) for j in np.flatnonzero(moving)])
    oy, op = M.yaw_pitch_deg(out_track.rotation)
    ry, rp = M.yaw_pitch_deg(ref_track.rotation)
    res["yaw_corr"] = M.correlation(oy, ry, min_std=MIN_STD["angle_deg"])
    res["pitch_corr"] = M.correlation(op, rp, min_std=MIN_STD["angle_deg"])
    if self_reenactment:
        res["aed"] = _nanmean(M.expression_distance(oe, re))
        res["apd_deg"] = _nanmean(M.rotation_angle_deg(out_track.rotation, ref_track.rotation))
    return res


def identity_figures(descriptors: np.ndarray, reference: np.ndarray) -> dict:
    """Mean cosine similarity (CSIM-style) and dlib distance of (T, 128) descriptors to (T or 1, 128)
    references, and the share of frames judged the same person (distance < 0.6)."""
    d = descriptor_distance(descriptors, reference)
    ok = np.isfinite(d)
    return {"csim": _nanmean(cosine_similarity(descriptors, reference)), "id_distance": _nanmean(d),
            "same_person": float((d[ok] < SAME_PERSON_DISTANCE).mean()) if ok.any() else float("nan")}


SELF_METHODS = ("headsplat", "source frame", "2D warp")


@dataclass
class ReenactResult:
    """Self- or cross-reenactment measurements.

    Attributes:
        kind: ``"self"`` or ``"cross"``.
        frames: indices of the evaluated frames in the video.
        summary: per method, figure name -> value (means over ``frames``; NaN where undefined).
        per_frame: per method, figure name -> (len(frames),) series; ``"ground truth"`` (or ``"driver"``)
            holds the reference's mouth and eye opening.
        shots: one entry per shot of the video: ``{"shot", "first", "last", "frames", "figures"}``, figures
            per method (per-frame means, and mouth/blink correlations within the shot).
    """

    kind: str
    frames: list
    summary: dict
    per_frame: dict
    shots: list = field(default_factory=list)


def _image_row(stream: Stream, img: np.ndarray, gt: np.ndarray, region: np.ndarray) -> None:
    stream.add_image_metric("psnr", M.psnr(img, gt))
    stream.add_image_metric("psnr_face", M.psnr(img, gt, region))
    s = M.ssim_image(img, gt)
    stream.add_image_metric("ssim", M.masked_mean(s))
    stream.add_image_metric("ssim_face", M.masked_mean(s, region))


def self_reenactment(rig: HeadRig, tracking: Tracking, source: FrameSource, reference: int, source_image: np.ndarray,
                     source_landmarks: np.ndarray, exclude: set, encoder: IdentityEncoder,
                     renderers: dict, max_frames: int | None = None, on_frame=None,
                     quiet: bool = False) -> ReenactResult:
    """Re-render every evaluated frame of the video an avatar should reproduce and measure it.

    Args:
        rig: the rig ``tracking`` was made with.
        tracking: the video's tracking (the ground truth's parameters and landmarks).
        source: the video's frames.
        reference: the frame whose expression the avatar's reference expression stands for.
        source_image: (H, W, 3) uint8 source for the baselines, at the video's size; ``source_landmarks``
            (478, 2+) its landmarks.
        exclude: frames not evaluated (those the avatar was made from).
        encoder: the identity model.
        renderers: row name -> ``render(t, ground_truth) -> output`` (H, W, 3) uint8, frame ``t`` re-rendered
            into the real frame (the first is the main row, e.g. a one-shot avatar's may follow).
        max_frames: evaluate at most this many frames (the first ones after ``exclude``).
        on_frame: called as ``on_frame(t, ground_truth, output)`` with uint8 frames (the side-by-side video).
    """
    rows = list(renderers)
    measurers = {name: StreamMeasurer(name, encoder) for name in (*rows, *SELF_METHODS[1:])}
    gt_desc, frames = [], []
    total = min(len(tracking), max_frames or len(tracking))
    for frame in progress(source, total, "evaluating", quiet):
        t = frame.index
        if t >= len(tracking) or (max_frames and len(frames) >= max_frames):
            break
        if t in exclude or not tracking.found[t]:
            continue
        frames.append(t)
        gt = frame.rgb
        region = face_region(rig, tracking, t)
        outs = {name: render(t, gt) for name, render in renderers.items()}
        outs.update({"source frame": source_image,
                     "2D warp": warp_face(source_image, source_landmarks, tracking.landmarks[t])})
        for name, img in outs.items():
            measurers[name].add(img)
            _image_row(measurers[name].stream, img, gt, region)
        gt_desc.append(encoder(gt, tracking.landmarks[t]))
        if on_frame is not None:
            on_frame(t, gt, outs[rows[0]])
    if not frames:
        raise ValueError("no frame left to evaluate: every frame was excluded or had no face")
    streams = {name: m.close() for name, m in measurers.items()}
    truth = tracking.select(np.asarray(frames))
    gt_lms = truth.landmarks
    gt_desc = np.stack(gt_desc)
    summary, per_frame = {}, {}
    for name, st in streams.items():
        lms = np.stack(st.landmarks)
        desc = np.stack(st.descriptors)
        fitted = fit_stream(st, truth, rig)
        row = {k: _nanmean(v) for k, v in st.image.items()}
        row.update(identity_figures(desc, gt_desc))
        row.update(motion_figures(lms, gt_lms, fitted, truth, self_reenactment=True))
        summary[name] = row
        akd, nme = M.landmark_errors(lms, gt_lms)
        per_frame[name] = {**{k: np.asarray(v) for k, v in st.image.items()},
                           "csim": cosine_similarity(desc, gt_desc), "nme": nme,
                           "mouth": M.mouth_opening(lms), "eyes": M.eye_opening(lms), "yaw": _yaw(fitted, lms)}
    per_frame["ground truth"] = {"mouth": M.mouth_opening(gt_lms), "eyes": M.eye_opening(gt_lms),
                                 "yaw": _yaw(truth, gt_lms)}
    return ReenactResult("self", frames, summary, per_frame,
                         shot_figures(per_frame, frames, tracking.shots, "ground truth"))


def cross_reenactment(avatar, rig: HeadRig, driver: Tracking, driver_source: FrameSource | None, render_frame,
                      source_descriptor: np.ndarray, encoder: IdentityEncoder, max_frames: int | None = None,
                      on_frame=None, quiet: bool = False) -> ReenactResult:
    """Measure an avatar driven by another person: identity against the source, motion against the driver.

    Args:
        avatar, rig: the avatar and its rig (``driver`` is tracked with the same rig).
        driver: the driver's tracking.
        driver_source: the driver's frames, for the "driver frames" reference row (its identity to the source).
        render_frame: ``render_frame(t) -> (H, W, 3) uint8`` output frame ``t``.
        source_descriptor: (128,) the source's identity descriptor.
        on_frame: called as ``on_frame(t, driver_frame_or_None, output)``.
    """
    n = min(len(driver), max_frames or len(driver))
    out = StreamMeasurer("headsplat", encoder)
    frames = list(range(n))
    driver_desc = []
    it = iter(driver_source) if driver_source is not None else None
    for t in progress(frames, n, "evaluating", quiet):
        img = render_frame(t)
        out.add(img)
        d = next(it).rgb if it is not None else None
        if d is not None:
            driver_desc.append(encoder(d, driver.landmarks[t]))
        if on_frame is not None:
            on_frame(t, d, img)
    st = out.close()
    lms = np.stack(st.landmarks)
    desc = np.stack(st.descriptors)
    like = driver.select(np.asarray(frames))
    # The output is framed like the avatar, so its camera (not the driver's) is the one to fit with.
    fitted = fit_stream(st, _with_camera(like, avatar), rig)
    row = identity_figures(desc, source_descriptor[None])
    row.update(motion_figures(lms, like.landmarks, fitted, like, self_reenactment=False))
    summary = {"headsplat": row}
    per_frame = {"headsplat": {"csim": cosine_similarity(desc, source_descriptor[None]),
                               "mouth": M.mouth_opening(lms), "eyes": M.eye_opening(lms), "yaw": _yaw(fitted, lms)},
                 "driver": {"mouth": M.mouth_opening(like.landmarks), "eyes": M.eye_opening(like.landmarks),
                            "yaw": _yaw(like, like.landmarks)}}
    if driver_desc:
        dd = np.stack(driver_desc)
        summary["driver frames"] = identity_figures(dd, source_descriptor[None])
        per_frame["driver frames"] = {"csim": cosine_similarity(dd, source_descriptor[None])}
    return ReenactResult("cross", frames, summary, per_frame,
                         shot_figures(per_frame, frames, driver.shots, "driver"))


def _yaw(tracking: Tracking | None, lms: np.ndarray) -> np.ndarray:
    """(T,) head yaw in degrees of a tracked stream (NaN throughout when nothing could be tracked)."""
    if tracking is None:
        return np.full(len(lms), np.nan)
    return M.yaw_pitch_deg(tracking.rotation)[0]


#: Per-frame series whose correlation with the reference's is reported per shot: (series, figure, MIN_STD key).
SHOT_CORRELATIONS = (("mouth", "mouth_corr", "opening"), ("eyes", "blink_corr", "opening"),
                     ("yaw", "yaw_corr", "angle_deg"))


def shot_figures(per_frame: dict, frames: list, shots: np.ndarray, reference: str) -> list:
    """Per-shot figures: for each shot (``shots`` (T,) of the whole video, indexed by ``frames``), every
    method's per-frame series averaged over the shot's evaluated frames, and the correlation of its mouth and
    eye opening and head yaw with the ``reference``'s (``"ground truth"`` or ``"driver"``) within the shot."""
    ids = np.asarray(shots)[np.asarray(frames)]
    out = []
    for k in np.unique(ids):
        sel = np.flatnonzero(ids == k)
        figures = {}
        for name, series in per_frame.items():
            if name == reference:
                continue
            paired = [c for c in SHOT_CORRELATIONS if c[0] in series and c[0] in per_frame[reference]]
            row = {key: _nanmean(np.asarray(v, np.float64)[sel]) for key, v in series.items()
                   if key not in [c[0] for c in SHOT_CORRELATIONS]}
            for key, out_key, kind in paired:
                if len(sel) > 2:
                    row[out_key] = M.correlation(np.asarray(series[key])[sel],
                                                 np.asarray(per_frame[reference][key])[sel], min_std=MIN_STD[kind])
            figures[name] = row
        out.append({"shot": int(k), "first": int(frames[sel[0]]), "last": int(frames[sel[-1]]),
                    "frames": len(sel), "figures": figures})
    return out


def _with_camera(tracking: Tracking, avatar) -> Tracking:
    """``tracking`` with the avatar camera's size and focal length (for fitting frames rendered through it)."""
    from dataclasses import replace

    cam = avatar.camera
    return replace(tracking, width=cam.width, height=cam.height, focal=float(cam.K[0, 0]))


def progress(iterable, total: int, desc: str, quiet: bool):
    return tqdm(iterable, total=total, desc=desc, unit="frame", disable=quiet, leave=False)
