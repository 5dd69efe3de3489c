"""The face models bundled with headsplat (``headsplat/face/data``): MediaPipe's detector, face mesh and selfie
segmenter, converted once from the released ``.tflite`` files (Apache-2.0; see ``data/NOTICE``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from headsplat.core.errors import MissingDependencyError

DATA = Path(__file__).resolve().parent / "data"
MODELS = ("face_detection_short_range", "face_detection_full_range", "face_landmark_with_attention",
          "selfie_segmentation", "selfie_segmentation_landscape")


@dataclass(frozen=True)
class BundledModel:
    """One bundled network.

    Attributes:
        name: the model (file stem in ``data/``).
        path: its ``.safetensors`` file.
        sha256: of that file.
        source: the mediapipe file and version it was converted from, with that file's sha256.
    """

    name: str
    path: Path
    sha256: str
    source: dict


def bundled_face_models(data_dir: Path | None = None) -> list[BundledModel]:
    """Every bundled face model with its checksum.

    Raises:
        MissingDependencyError: a model's files are missing (a broken installation).
    """
    root = Path(data_dir) if data_dir is not None else DATA
    out = []
    for name in MODELS:
        weights, graph = root / f"{name}.safetensors", root / f"{name}.json"
        if not weights.is_file() or not graph.is_file():
            raise MissingDependencyError(f"{weights if not weights.is_file() else graph}: the bundled face model "
                                         "is missing; reinstall headsplat")
        source = json.loads(graph.read_text()).get("source", {})
        out.append(BundledModel(name, weights, hashlib.sha256(weights.read_bytes()).hexdigest(), source))
    return out
