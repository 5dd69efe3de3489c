"""Tracking: per-frame camera, head pose and expression plus shared identity, saved as .npz with a JSON
header (no pickle). The same structure serves drivers and avatar references."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from headsplat.core.camera import Camera, intrinsics_from_focal, world_to_opencv
from headsplat.core.errors import InputError
from headsplat.core.fileio import atomic_path, check_format
from headsplat.face.align import CropTransform

FORMAT = "headsplat.tracking"
VERSION = 2  # 2: "identity" (any rig) replaces version 1's "identity_offsets" (open rig)
_ARRAYS = ("identity", "rotation", "translation", "expression", "landmarks", "found", "fit_error",
           "crops", "times")


@dataclass
class Tracking:
    """Tracked head parameters of a sequence (one image is a sequence of one).

    World space is the canonical head space; the camera sits at the origin looking down -z
    (``viewmat = diag(1, -1, -1, 1)``), so a head with rotation 0 faces the camera.

    Attributes:
        rig: the rig kind the parameters belong to: ``"open"`` or ``"flame"`` (``extra["flame"]`` then names
            the model file: version, sha1, coefficient counts).
        width, height: frame size in pixels.
        fps: frame rate.
        focal: focal length in pixels (square pixels, principal point at the centre).
        identity: float32 identity: open rig (478, 3) offsets of the face vertices in metres; FLAME (S,) shape
            coefficients.
        identity_scale: identity scale factor.
        expression_names: names of the per-frame coefficients (FLAME: its expression coefficients, then jaw
            and eye rotations as axis-angle).
        rotation: (T, 3) float32 head rotation, axis-angle.
        translation: (T, 3) float32 head position, metres.
        expression: (T, E) float32 coefficients.
        landmarks: (T, 478, 3) float32 detected landmarks in pixels (NaN where no face was found).
        found: (T,) bool, a face was found in that frame (others are interpolated).
        fit_error: (T,) float32 mean distance between reprojected rig and landmarks, in pixels.
        crops: (T, 2, 3) float64 square-crop transforms (frame pixels -> crop pixels).
        crop_size: side of those crops in pixels.
        times: (T,) float64 frame times in seconds.
        source: the input's path, for provenance.
        shots: (T,) int32 shot index of each frame (0 for the first shot, +1 at each cut); all 0 when the
            source has no cuts (and in files written before shots were recorded).
        offsets: (T, 478, 3) float32 free displacements of the face vertices beyond the expression shapes, in
            the rig template's units (open-rig videos; None for images, FLAME and older files).
    """

    rig: str
    width: int
    height: int
    fps: float
    focal: float
    identity: np.ndarray
    identity_scale: float
    expression_names: tuple
    rotation: np.ndarray
    translation: np.ndarray
    expression: np.ndarray
    landmarks: np.ndarray
    found: np.ndarray
    fit_error: np.ndarray
    crops: np.ndarray
    crop_size: int
    times: np.ndarray
    source: str = ""
    extra: dict = field(default_factory=dict)
    shots: np.ndarray | None = None
    offsets: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.shots is None:
            self.shots = np.zeros(len(self.rotation), np.int32)

    @property
    def n_shots(self) -> int:
        return int(self.shots.max()) + 1 if len(self.shots) else 0

    def __len__(self) -> int:
        return len(self.rotation)

    @property
    def n_missing(self) -> int:
        return int((~self.found).sum())

    def camera(self, dtype=torch.float32) -> Camera:
        K = intrinsics_from_focal(torch.tensor(self.focal, dtype=torch.float64), self.width, self.height)
        return Camera(world_to_opencv().to(dtype), K.to(dtype), self.width, self.height)

    def params(self, frames=None, dtype=torch.float32, with_offsets: bool = False) -> dict:
        """Rig forward arguments for the given frames (all by default) as tensors; with ``with_offsets``, also
        the free face ``offsets`` when the file has them (the open rig's forward takes them)."""
        sl = slice(None) if frames is None else frames
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)  # noqa: E731
        p = dict(identity=t(self.identity), scale=t(self.identity_scale),
                 expression=t(self.expression[sl]), rotation=t(self.rotation[sl]),
                 translation=t(self.translation[sl]))
        if with_offsets and self.offsets is not None:
            p["offsets"] = t(self.offsets[sl])
        return p

    def select(self, frames: np.ndarray) -> "Tracking":
        """The tracking restricted to ``frames`` (indices or a boolean mask; per-frame arrays only)."""
        from dataclasses import replace

        idx = np.asarray(frames)
        return replace(self, rotation=self.rotation[idx], translation=self.translation[idx],
                       expression=self.expression[idx], landmarks=self.landmarks[idx], found=self.found[idx],
                       fit_error=self.fit_error[idx], crops=self.crops[idx], times=self.times[idx],
                       shots=self.shots[idx], offsets=None if self.offsets is None else self.offsets[idx])

    # -- files ------------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write atomically as .npz: arrays plus a JSON ``header`` (uint8 bytes), no pickled objects."""
        header = dict(format=FORMAT, version=VERSION, rig=self.rig, width=self.width, height=self.height,
                      fps=self.fps, focal=self.focal, identity_scale=self.identity_scale,
                      expression_names=list(self.expression_names), crop_size=self.crop_size,
                      source=self.source, n_frames=len(self), extra=self.extra)
        arrays = {k: np.asarray(getattr(self, k)) for k in _ARRAYS}
        arrays["shots"] = np.asarray(self.shots, np.int32)
        if self.offsets is not None:
            arrays["offsets"] = np.asarray(self.offsets, np.float32)
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tracking":
        """Read a file written by :meth:`save`.

        Raises:
            InputError: missing, corrupt, not a tracking file, or from a newer format version.
        """
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: tracking file not found")
        try:
            with np.load(p, allow_pickle=False) as d:
                header = json.loads(bytes(d["header"]).decode())
                arrays = {k: d[k] for k in _ARRAYS if k != "identity"}
                arrays["identity"] = d["identity"] if "identity" in d.files else d["identity_offsets"]  # v1
                arrays["shots"] = d["shots"].astype(np.int32) if "shots" in d.files else None  # optional
                arrays["offsets"] = d["offsets"].astype(np.float32) if "offsets" in d.files else None  # optional
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as e:
            raise InputError(f"{p}: not a headsplat tracking file ({type(e).__name__}: {e})") from None
        check_format(header, p, "tracking", FORMAT, VERSION, noun="tracking file")
        n = len(arrays["rotation"])
        if arrays["offsets"] is not None and arrays["offsets"].shape != (n, 478, 3):
            raise InputError(f"{p}: face offsets of shape {arrays['offsets'].shape}, expected ({n}, 478, 3)")
        return cls(rig=header["rig"], width=int(header["width"]), height=int(header["height"]),
                   fps=float(header["fps"]), focal=float(header["focal"]),
                   identity_scale=float(header["identity_scale"]),
                   expression_names=tuple(header["expression_names"]), crop_size=int(header["crop_size"]),
                   source=header.get("source", ""), extra=header.get("extra", {}), **arrays)


def crop_camera(tracking: Tracking, t: int, size: int) -> tuple[Camera, CropTransform]:
    """The pinhole camera of frame ``t``'s recorded (upright) crop, resampled to ``size`` px."""
    m = tracking.crops[t].astype(np.float64) * (size / tracking.crop_size)
    if abs(m[0, 1]) > 1e-9 or abs(m[1, 0]) > 1e-9:
        raise ValueError("rotated crops are not supported as cameras")
    full = tracking.camera(torch.float64)
    A = torch.tensor([[m[0, 0], 0.0, m[0, 2]], [0.0, m[1, 1], m[1, 2]], [0.0, 0.0, 1.0]], dtype=torch.float64)
    cam = Camera(full.viewmat.float(), (A @ full.K).float(), size, size)
    return cam, CropTransform(m, size)
