"""The tracking pipeline: frames -> landmarks -> fitted rig parameters -> :class:`Tracking`."""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from headsplat.core.camera import project_points
from headsplat.core.chunks import chunks
from headsplat.core.errors import InputError, NoFaceError
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.face.align import crop_from_landmarks
from headsplat.face.indices import interocular
from headsplat.face.landmarks import N_LANDMARKS, LandmarkDetector
from headsplat.media.frames import FrameSource
from headsplat.rig.base import HeadRig
from headsplat.rig.open_rig import VERSION, OpenRig
from headsplat.track.fit import FitConfig, fit_landmarks
from headsplat.track.offsets import OffsetConfig, fit_offsets, fold_into_shapes
from headsplat.track.photometric import face_flow_residuals
from headsplat.track.shots import ShotConfig, content_change, detect_shots, thumbnail
from headsplat.track.tracking import Tracking

PER_FRAME = ("expression", "rotation", "translation")  # the rig arguments of Tracking.params with a frame axis


class MissingFacesWarning(UserWarning):
    """Some frames of a video had no face; their parameters were interpolated."""


@dataclass(frozen=True)
class Detections:
    """What the face front end found in every frame of a source.
    Attributes:
        landmarks: (T, 478, 3) float32 the followed face's landmarks (NaN where none).
        found: (T,) bool.
        times: (T,) float64 frame times in seconds.
        changes: (T,) float32 colour-content change from the previous frame (0 for the first).
    """
    landmarks: np.ndarray
    found: np.ndarray
    times: np.ndarray
    changes: np.ndarray


def detect_landmarks(source: FrameSource, face: int = 0, quiet: bool = False,
                     shot_cfg: ShotConfig = ShotConfig(), device: str = "cpu") -> Detections:
    """Landmarks of one followed face in every frame, and the frame-to-frame content change (for cuts); the face
    networks run on ``device``."""
    mode = "video" if source.kind == "video" else "image"
    lms, found, times, changes = [], [], [], []
    previous = None
    with LandmarkDetector(mode=mode, face=face, device=device) as det, \
            tqdm(total=source.n_frames or None, desc="landmarks", unit="frame", disable=quiet, leave=False) as bar:
        for frame in source:
            thumb = thumbnail(frame.rgb)
            change = content_change(previous, thumb) if previous is not None else 0.0
            if change > shot_cfg.content_cut:
                det.new_shot()  # a likely cut: the followed person may be elsewhere, or replaced
            previous = thumb
            lm = det(frame.rgb)
            lms.append(lm.points if lm is not None else np.full((N_LANDMARKS, 3), np.nan, np.float32))
            found.append(lm is not None)
            times.append(frame.time_s)
            changes.append(change)
            bar.update(1)
    return Detections(np.stack(lms), np.array(found), np.array(times, np.float64), np.array(changes, np.float32))


def track_source(source: FrameSource, face: int = 0, fov_deg: float | None = None, crop_size: int = 512,
                 rig: HeadRig | None = None, quiet: bool = False, config: FitConfig | None = None,
                 device: str = "cpu") -> Tracking:
    """Track a face through an image, a folder of images or a video.
    Args:
        source: the frames.
        face: which face when there are several (0: the largest).
        fov_deg: fix the horizontal field of view instead of estimating it.
        crop_size: side of the recorded square crops.
        rig: the head rig to fit (default: a new :class:`OpenRig`; or a
            :class:`~headsplat.rig.flame.head.FlameHead`).
        quiet: no progress bars.
        config: fitter settings.
        device: where the face networks run (``"cpu"`` or ``"cuda"``).

    Raises:
        NoFaceError: no face in the image, or in any frame.
    """
    rig = rig or OpenRig()
    cfg = config or FitConfig()
    if fov_deg is not None:
        cfg = FitConfig(**{**cfg.__dict__, "fov_deg": fov_deg})
    det = detect_landmarks(source, face, quiet, device=device)
    lms, found, times = det.landmarks, det.found, det.times
    if not found.any():
        what = "" if source.kind == "image" else " any frame of"
        raise NoFaceError(f"no face found in{what} {source.path}" + (f" (face {face} requested)" if face else ""))
    if (~found).any() and len(found) > 1:
        warnings.warn(f"{source.path}: no face in {int((~found).sum())} of {len(found)} frames; "
                      "their parameters were interpolated", MissingFacesWarning, stacklevel=2)
    width, height = source.size
    video = source.kind == "video"
    shots = detect_shots(det.changes, lms, found) if video else None
    tracking = fit_sequence(lms, found, times, width, height, float(source.fps), rig, temporal=video,
                            cfg=cfg, crop_size=crop_size, quiet=quiet, source=str(Path(source.path)), shots=shots)
    if video and rig.kind == "open" and cfg.offsets is not None:
        tracking = free_face_motion(source, tracking, rig, cfg.offsets, quiet)
    return tracking


def free_face_motion(source: FrameSource, tracking: Tracking, rig: OpenRig, cfg: OffsetConfig = OffsetConfig(),
                     quiet: bool = False) -> Tracking:
    """A tracked video (open rig, landmark fit) with its free face offsets (:func:`face_offsets`), their share
    that the lid and brow shapes make folded into those coefficients
    (:func:`~headsplat.track.offsets.fold_into_shapes`)."""
    offsets = face_offsets(source, tracking, rig, cfg, quiet)
    expression, offsets = fold_into_shapes(rig, tracking.identity, tracking.identity_scale, tracking.expression,
                                           offsets, tracking.rotation)
    return replace(tracking, expression=expression, offsets=offsets)


def face_offsets(source: FrameSource, tracking: Tracking, rig: OpenRig, cfg: OffsetConfig = OffsetConfig(),
                 quiet: bool = False) -> np.ndarray:
    """(T, 478, 3) the open rig's free face offsets of a tracked video: a second pass over its frames measures,
    by optical flow, where the face's surface moved beyond the rig's shapes
    (:func:`~headsplat.track.photometric.face_flow_residuals`), and :func:`~headsplat.track.offsets.fit_offsets`
    turns that into smooth per-vertex displacements."""
    head = copy.deepcopy(rig).double()
    p = tracking.params(dtype=torch.float64)
    rotation = axis_angle_to_matrix(p["rotation"]).numpy()
    lm = np.where(tracking.found[:, None, None], tracking.landmarks[..., :2], np.nan)
    iod = interocular(lm)
    iod = np.where(np.isfinite(iod), iod, np.nanmedian(iod))
    offsets = np.zeros((len(tracking), 478, 3))
    for k in range(cfg.passes):  # analysis by synthesis: each pass measures what the previous left
        with torch.no_grad():  # a chunk of frames at a time: the rig's per-frame intermediates are large
            points = np.concatenate([
                head(**{**p, **{n: p[n][f] for n in PER_FRAME}}, face_only=True,
                     offsets=torch.from_numpy(offsets[f])).vertices.numpy() for f in chunks(len(tracking))])
        frames = (f.rgb for f in tqdm(source, total=len(tracking), desc=f"face motion {k + 1}/{cfg.passes}",
                                      unit="frame", disable=quiet, leave=False))
        residuals, weights = face_flow_residuals(frames, tracking, points, rig.face_mesh_triangles)
        offsets = offsets + fit_offsets(points, rotation, tracking.focal, residuals, weights, tracking.found, iod,
                                        tracking.identity_scale, rig, tracking.shots, cfg)
    return offsets.astype(np.float32)


def fit_sequence(landmarks: np.ndarray, found: np.ndarray, times: np.ndarray, width: int, height: int, fps: float,
                 rig: HeadRig, temporal: bool, cfg: FitConfig | None = None, crop_size: int = 512, quiet: bool = False,
                 source: str = "", desc: str = "fitting", shots: np.ndarray | None = None,
                 fit_to: np.ndarray | None = None) -> Tracking:
    """Fit ``rig`` to landmarks already detected: (T, 478, 3) pixels (NaN where ``found`` (T,) is False),
    frame ``times`` (T,) in seconds; ``temporal`` smooths a video's frames together, within each of the
    ``shots`` (T,) (default: one shot). ``fit_to``: other landmarks of the same layout to fit instead (the
    detections stay what the tracking records)."""
    with tqdm(total=len(found), desc=desc, unit="frame", disable=quiet, leave=False) as bar:
        res = fit_landmarks(landmarks if fit_to is None else fit_to, found, width, height, rig, temporal=temporal,
                            cfg=cfg or FitConfig(), progress=bar.update, shots=shots)
    return _tracking_from_fit(res, rig, landmarks, found, width, height, fps, times, crop_size, source, shots)


def _tracking_from_fit(res, rig: HeadRig, lms, found, width, height, fps, times, crop_size, source, shots) -> Tracking:
    # Crops from the fitted rig's landmarks (steadier than the detections), detections where the rig has none.
    pts = np.where(np.isfinite(res.reprojected), res.reprojected, lms[..., :2])
    crops = np.stack([crop_from_landmarks(p, crop_size).matrix for p in pts])
    return Tracking(rig=rig.kind, width=width, height=height, fps=fps, focal=res.focal,
                    identity=res.identity, identity_scale=res.identity_scale,
                    expression_names=tuple(rig.expression_names), rotation=res.rotation,
                    translation=res.translation, expression=res.expression, landmarks=lms.astype(np.float32),
                    found=found, fit_error=res.fit_error, crops=crops, crop_size=crop_size, times=times,
                    source=source, extra=rig_record(rig), shots=shots)


def rig_record(rig: HeadRig) -> dict:
    """What a tracking or avatar file records about its rig beyond the kind (FLAME: which model file)."""
    if rig.kind == "flame":
        return {"flame": rig.describe()}

    return {"open": {"version": VERSION}}


def refit_tracking(tracking: Tracking, rig: HeadRig, quiet: bool = False, path: str | os.PathLike | None = None
                   ) -> Tracking:
    """The same sequence fitted with another rig, from the landmarks the tracking file stores (its camera's
    field of view is kept): how a FLAME ``.track`` drives an open-rig avatar and the other way round.

    Raises:
        InputError: the file holds no landmarks to re-fit (nothing was detected in any frame).
    """
    name = path or tracking.source or "tracking"
    if not tracking.found.any() or not np.isfinite(tracking.landmarks[tracking.found]).all():
        raise InputError(f"{name}: made with the {tracking.rig} rig and holds no landmarks to re-fit with the "
                         f"{rig.kind} rig; track the driver video again with --rig {rig.kind}")
    fov = tracking.camera(torch.float64).fov_x_deg
    temporal = len(tracking) > 1 and bool(np.all(np.diff(tracking.times) > 0))
    # An open-rig video track read more than its detections (the free offsets, blinks that close): re-fit
    # its own posed face.
    fit_to = rig_landmarks(tracking, OpenRig()) if tracking.rig == "open" and tracking.offsets is not None else None
    return fit_sequence(tracking.landmarks, tracking.found, tracking.times, tracking.width, tracking.height,
                        tracking.fps, rig, temporal=temporal, cfg=FitConfig(fov_deg=fov),
                        crop_size=tracking.crop_size, quiet=quiet, source=tracking.source, desc="re-fitting",
                        shots=tracking.shots, fit_to=fit_to)


def rig_landmarks(tracking: Tracking, rig: OpenRig) -> np.ndarray:
    """(T, 478, 3) a track's posed rig face (its free offsets included) as MediaPipe-style landmarks: pixels
    (x, y) in the tracked frames and relative depth (z: pixels on the x scale, nearer is smaller, centred per
    frame); NaN where no face was found. ``rig``: the rig the track was made with."""
    head = copy.deepcopy(rig).double()
    with torch.no_grad():
        points = head(**tracking.params(dtype=torch.float64, with_offsets=True), face_only=True).vertices
    cam = tracking.camera(torch.float64)
    uv, z = project_points(points, cam.viewmat, cam.K)
    depth = (z - z.mean(-1, keepdim=True)) * float(tracking.focal) / z.mean(-1, keepdim=True)
    out = torch.cat([uv, depth[..., None]], -1).numpy()
    out[~tracking.found] = np.nan
    return out
