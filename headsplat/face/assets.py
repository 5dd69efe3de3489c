"""Find and verify the face models bundled inside the ``mediapipe`` wheel, without importing it.

The legacy face-mesh, face-detection and selfie-segmentation solutions ship their ``.tflite`` models in
mediapipe wheels up to 0.10.21; later wheels dropped them. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from headsplat.core.errors import MissingDependencyError

SUPPORTED = ">=0.10.14,<=0.10.21"
INSTALL_HINT = ("install the face models with: pip install --no-deps 'mediapipe" + SUPPORTED + "' "
                "(headsplat already installs the few packages they need)")

REQUIRED = {
    "face_mesh_model": "modules/face_landmark/face_landmark_with_attention.tflite",
    "face_mesh_graph": "modules/face_landmark/face_landmark_front_cpu.binarypb",
    "face_detection_short": "modules/face_detection/face_detection_short_range.tflite",
    "face_detection_full": "modules/face_detection/face_detection_full_range_sparse.tflite",
    "selfie_segmentation": "modules/selfie_segmentation/selfie_segmentation.tflite",
    "selfie_segmentation_graph": "modules/selfie_segmentation/selfie_segmentation_cpu.binarypb",
}


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


@dataclass(frozen=True)
class MediaPipeAssets:
    """Where the bundled models are.

    Attributes:
        version: the installed mediapipe version.
        root: the package folder.
        files: model name -> absolute path (every entry of :data:`REQUIRED`).
    """

    version: str
    root: Path
    files: dict


def find_mediapipe_assets() -> MediaPipeAssets:
    """Locate mediapipe and check that every model headsplat uses is inside it.

    Raises:
        MissingDependencyError: mediapipe is missing, outside the supported range, or lacks a model file.
    """
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"mediapipe is not installed: {INSTALL_HINT}")
    root = Path(list(spec.submodule_search_locations)[0])
    try:
        version = importlib.metadata.version("mediapipe")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    v = _version_tuple(version)
    if not (_version_tuple("0.10.14") <= v <= _version_tuple("0.10.21")):
        raise MissingDependencyError(
            f"mediapipe {version} does not bundle the legacy face-mesh models; {INSTALL_HINT}")
    files = {k: root / rel for k, rel in REQUIRED.items()}
    missing = [str(p) for p in files.values() if not p.is_file() or p.stat().st_size == 0]
    if missing:
        raise MissingDependencyError(f"mediapipe {version} at {root} lacks {missing[0]}; {INSTALL_HINT}")
    return MediaPipeAssets(version, root, files)


def import_solutions():
    """Import mediapipe's legacy solution modules after verifying the assets; returns
    (face_mesh, face_detection, selfie_segmentation) modules."""
    find_mediapipe_assets()
    import os

    # mediapipe's C++ side logs through glog; keep its info lines out of the user's terminal.
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        from mediapipe.python.solutions import face_detection, face_mesh, selfie_segmentation
    except ImportError as e:
        raise MissingDependencyError(f"mediapipe could not be imported ({e}); {INSTALL_HINT}") from None
    return face_mesh, face_detection, selfie_segmentation
