"""View sets: views of one person that a generator (a learned model, or the oracle of the tests) made, with the
camera and rig parameters of each, for ``create --views``.

    VIEWS/
      views.json    {"format": "headsplat.views", "version": 1 (2 when cropped), "rig": "open"|"flame",
                     "cropped": false|true, "generator": {"name": ..., ...provenance},
                     "views": [{"image": "000000.png", "kind": "real"|"generated"}, ...]}
      views.track   a headsplat .track with one frame per view, in the same order: the shared identity,
                    each view's head rotation, translation and expression (the parameters the generator was
                    conditioned on), the camera (one focal and frame size for all views, principal point at the
                    centre, at the origin: the head moves) and ``crops`` (frame pixels -> image pixels)
      000000.png    the views: RGB, or RGBA where alpha is the generator's foreground matte (then no matting
                    is run on that view). Not cropped: each image is the whole frame (its crop is the
                    identity). Cropped: each image is its frame's crop (``crop_size`` square, ``crops[i]``), as
                    generators that see a head crop of a larger virtual frame (CAP4D) make them.

Rig parameters are relative to the track's identity; ``create`` poses the rig with it for these views.
Written atomically (the folder appears complete or not at all).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from headsplat.core.errors import InputError
from headsplat.core.fileio import atomic_dir, read_format_json
from headsplat.track.tracking import Tracking

FORMAT = "headsplat.views"
VERSION = 2  # version 2 adds "cropped"; sets without crops are still written as version 1
KINDS = ("real", "generated")


@dataclass
class ViewSet:
    """A view set read from its folder.

    Attributes:
        folder: where it lives. tracking: one frame per view. images: the image paths, in order.
        kinds: "real" or "generated" per view. generator: the generator's name and provenance.
        cropped: each image is its frame's crop (``tracking.crops``), not the whole frame.
    """

    folder: Path
    tracking: Tracking
    images: list[Path]
    kinds: list[str]
    generator: dict
    cropped: bool = False

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of every image."""
        if self.cropped:
            return self.tracking.crop_size, self.tracking.crop_size
        return self.tracking.height, self.tracking.width

    def __len__(self) -> int:
        return len(self.images)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """View ``i``: (H, W, 3) uint8 RGB and its (H, W) float32 matte in [0, 1] when the file has alpha."""
        p = self.images[i]
        try:
            with Image.open(p) as im:
                im.load()
                arr = np.asarray(im.convert("RGBA") if im.mode in ("RGBA", "LA", "P", "PA") else im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise InputError(f"{p}: not a readable image ({type(e).__name__}: {e})") from None
        h, w = self.image_size
        if arr.shape[:2] != (h, w):
            raise InputError(f"{p}: {arr.shape[1]}x{arr.shape[0]}, the view set's track says {w}x{h}")
        if arr.shape[2] == 4:
            return np.ascontiguousarray(arr[..., :3]), arr[..., 3].astype(np.float32) / 255
        return np.ascontiguousarray(arr), None


def generated_tracking(rig: str, width: int, height: int, focal: float, identity, identity_scale: float,
                       expression_names, rotation, translation, expression, source: str, extra: dict,
                       crops: np.ndarray | None = None, crop_size: int | None = None) -> Tracking:
    """A view set's track of generated views: their parameters and camera, no landmarks (every view counts as
    found, with no fit error).

    Args:
        rotation, translation, expression: (N, 3), (N, 3), (N, E) per view. crops: (N, 2, 3) frame -> image
            transforms of a cropped set, ``crop_size`` their side (default: the whole image, ``width`` square).
    """
    n = len(rotation)
    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    return Tracking(rig=rig, width=width, height=height, fps=1.0, focal=float(focal), identity=f32(identity),
                    identity_scale=float(identity_scale), expression_names=tuple(expression_names),
                    rotation=f32(rotation), translation=f32(translation), expression=f32(expression),
                    landmarks=np.full((n, 478, 3), np.nan, np.float32), found=np.ones(n, bool),
                    fit_error=np.zeros(n, np.float32),
                    crops=np.tile(np.eye(2, 3), (n, 1, 1)) if crops is None else np.asarray(crops, np.float64),
                    crop_size=int(width if crop_size is None else crop_size), times=np.arange(n, dtype=np.float64),
                    source=source, extra=dict(extra))


def write_view_set(folder: str | os.PathLike, images: list[np.ndarray], tracking: Tracking, kinds: list[str],
                   generator: dict, cropped: bool = False) -> Path:
    """Write a view set atomically.

    Args:
        images: (H, W, 3) or (H, W, 4) uint8 (alpha: the foreground matte) per view, all of the track's frame
            size, or, ``cropped``, of its crop size (each image is ``tracking.crops[i]`` of its frame).
        tracking: one frame per view.
        kinds: "real" or "generated" per view.
        generator: JSON-serialisable; ``name`` names the generator.
    """
    if not (len(images) == len(tracking) == len(kinds)):
        raise ValueError(f"{len(images)} images, {len(tracking)} tracked views and {len(kinds)} kinds")
    bad = sorted(set(kinds) - set(KINDS))
    if bad:
        raise ValueError(f"view kinds must be {' or '.join(KINDS)}, got {bad}")
    entries = []
    h, w = (tracking.crop_size, tracking.crop_size) if cropped else (tracking.height, tracking.width)
    with atomic_dir(folder) as tmp:
        for i, (img, kind) in enumerate(zip(images, kinds)):
            if img.dtype != np.uint8 or img.shape[:2] != (h, w):
                raise ValueError(f"view {i}: expected uint8 {h}x{w}, got {img.dtype} {img.shape}")
            name = f"{i:06d}.png"
            Image.fromarray(img).save(tmp / name, format="PNG")
            entries.append({"image": name, "kind": kind})
        tracking.save(tmp / "views.track")
        meta = {"format": FORMAT, "version": VERSION if cropped else 1, "rig": tracking.rig, "cropped": bool(cropped),
                "generator": generator, "views": entries}
        (tmp / "views.json").write_text(json.dumps(meta, indent=1))
    return Path(folder)


def read_view_set(folder: str | os.PathLike) -> ViewSet:
    """Read a view set's index and track (images are read one at a time, by :meth:`ViewSet.load`).

    Raises:
        InputError: not a view set folder, a newer format, or an index that disagrees with its track or files.
    """
    p = Path(folder)
    meta_path = p / "views.json"
    if not p.is_dir() or not meta_path.is_file():
        raise InputError(f"{p}: not a view set (expected a folder with views.json and views.track)")
    meta = read_format_json(meta_path, p, "view set", FORMAT, VERSION, kind="index")
    tracking = Tracking.load(p / "views.track")
    views = meta.get("views", [])
    if len(views) != len(tracking):
        raise InputError(f"{p}: views.json lists {len(views)} views, views.track holds {len(tracking)}")
    if not views:
        raise InputError(f"{p}: the view set is empty")
    kinds = [v.get("kind") for v in views]
    bad = sorted({str(k) for k in kinds} - set(KINDS))
    if bad:
        raise InputError(f"{p}: view kinds must be {' or '.join(KINDS)}, found {bad}")
    images = [p / str(v.get("image", "")) for v in views]
    missing = [i.name for i in images if not i.is_file()]
    if missing:
        raise InputError(f"{p}: missing view image(s) {missing[:5]}")
    if meta.get("rig") != tracking.rig:
        raise InputError(f"{p}: views.json says rig {meta.get('rig')!r}, views.track {tracking.rig!r}")
    return ViewSet(p, tracking, images, kinds, dict(meta.get("generator", {})), bool(meta.get("cropped", False)))
