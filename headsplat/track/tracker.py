"""The tracking pipeline: frames -> landmarks -> fitted rig parameters -> :class:`Tracking`."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from headsplat.core.errors import NoFaceError
from headsplat.face.align import crop_from_landmarks
from headsplat.face.landmarks import N_LANDMARKS, LandmarkDetector
from headsplat.media.frames import FrameSource
from headsplat.rig.open_rig import OpenRig
from headsplat.track.fit import FitConfig, fit_landmarks
from headsplat.track.tracking import Tracking


class MissingFacesWarning(UserWarning):
    """Some frames of a video had no face; their parameters were interpolated."""


def detect_landmarks(source: FrameSource, face: int = 0, quiet: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Landmarks of every frame: (T, 478, 3) float32 (NaN where none), found (T,) bool, times (T,)."""
    mode = "video" if source.kind == "video" else "image"
    lms, found, times = [], [], []
    with LandmarkDetector(mode=mode, face=face) as det, \
            tqdm(total=source.n_frames or None, desc="landmarks", unit="frame", disable=quiet, leave=False) as bar:
        for frame in source:
            lm = det(frame.rgb)
            lms.append(lm.points if lm is not None else np.full((N_LANDMARKS, 3), np.nan, np.float32))
            found.append(lm is not None)
            times.append(frame.time_s)
            bar.update(1)
    return np.stack(lms), np.array(found), np.array(times, np.float64)


def track_source(source: FrameSource, face: int = 0, fov_deg: float | None = None, crop_size: int = 512,
                 rig: OpenRig | None = None, quiet: bool = False, config: FitConfig | None = None) -> Tracking:
    """Track a face through an image, a folder of images or a video.

    Args:
        source: the frames.
        face: which face when there are several (0: the largest).
        fov_deg: fix the horizontal field of view instead of estimating it.
        crop_size: side of the recorded square crops.
        rig: the rig to fit (default: a new :class:`OpenRig`).
        quiet: no progress bars.
        config: fitter settings.

    Raises:
        NoFaceError: no face in the image, or in any frame.
    """
    rig = rig or OpenRig()
    cfg = config or FitConfig()
    if fov_deg is not None:
        cfg = FitConfig(**{**cfg.__dict__, "fov_deg": fov_deg})
    lms, found, times = detect_landmarks(source, face, quiet)
    if not found.any():
        what = "" if source.kind == "image" else " any frame of"
        raise NoFaceError(f"no face found in{what} {source.path}" + (f" (face {face} requested)" if face else ""))
    if (~found).any() and len(found) > 1:
        warnings.warn(f"{source.path}: no face in {int((~found).sum())} of {len(found)} frames; "
                      "their parameters were interpolated", MissingFacesWarning, stacklevel=2)
    width, height = source.size
    with tqdm(total=len(found), desc="fitting", unit="frame", disable=quiet, leave=False) as bar:
        res = fit_landmarks(lms, found, width, height, rig, temporal=source.kind == "video", cfg=cfg,
                            progress=bar.update)
    crops = np.stack([crop_from_landmarks(p, crop_size).matrix for p in res.reprojected])
    return Tracking(rig=rig.kind, width=width, height=height, fps=float(source.fps), focal=res.focal,
                    identity_offsets=res.identity_offsets, identity_scale=res.identity_scale,
                    expression_names=tuple(rig.expression_names), rotation=res.rotation,
                    translation=res.translation, expression=res.expression, landmarks=lms.astype(np.float32),
                    found=found, fit_error=res.fit_error, crops=crops, crop_size=crop_size, times=times,
                    source=str(Path(source.path)))
