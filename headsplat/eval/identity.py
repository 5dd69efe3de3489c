"""Face identity embeddings for evaluation: dlib's ResNet face descriptor (128-d, trained for face
verification; two photos of one person lie closer than 0.6) with the weights the `face-recognition-models`
package ships. Offline, no compiling: ``pip install headsplat[eval]``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from headsplat.core.errors import MissingDependencyError

#: dlib's verification threshold: descriptors of one person are closer than this (99.38% on LFW).
SAME_PERSON_DISTANCE = 0.6
MODEL_NAME = "dlib_face_recognition_resnet_model_v1"
_INSTALL = "install the evaluation extra: pip install 'headsplat[eval]' (dlib-bin and face-recognition-models)"


def _models_dir() -> Path:
    # The package's own __init__ needs pkg_resources (gone from recent setuptools); only its files are needed,
    # so locate them without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the identity metric needs face-recognition-models: {_INSTALL}")
    d = Path(list(spec.submodule_search_locations)[0]) / "models"
    if not (d / f"{MODEL_NAME}.dat").is_file():
        raise MissingDependencyError(f"{d}: face-recognition-models is installed without its model files; "
                                     f"reinstall it: {_INSTALL}")
    return d


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of (..., D) embeddings (the CSIM of the papers, which use ArcFace embeddings)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance of (..., D) descriptors; below :data:`SAME_PERSON_DISTANCE` means one person."""
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)


class IdentityEncoder:
    """Face descriptors of faces located by our own landmarks (so the face measured is the face tracked).

    The face box from the 478 landmarks goes to dlib's 5-point shape predictor, which aligns a 150 px chip
    the way dlib's descriptor was trained on; the descriptor is computed on that chip.

    Raises:
        MissingDependencyError: dlib or the model files are not installed.
    """

    name = MODEL_NAME

    def __init__(self):
        try:
            import dlib
        except ImportError as e:
            raise MissingDependencyError(f"the identity metric needs dlib: {_INSTALL}") from e
        d = _models_dir()
        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(str(d / f"{MODEL_NAME}.dat"))
        self.version = getattr(dlib, "__version__", "unknown")

    def __call__(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(128,) float64 descriptor of the face at ``landmarks`` (478, 2+) in the (H, W, 3) uint8 image;
        NaN when the landmarks are missing (NaN)."""
        pts = np.asarray(landmarks, np.float64)[:, :2]
        if not np.isfinite(pts).all():
            return np.full(128, np.nan)
        # dlib's detector boxes are square, from the brows to the chin: match that from the landmarks.
        lo, hi = pts.min(0), pts.max(0)
        c, side = (lo + hi) / 2, float((hi - lo).max()) * 0.9
        box = self._dlib.rectangle(int(round(c[0] - side / 2)), int(round(c[1] - side / 2)),
                                   int(round(c[0] + side / 2)), int(round(c[1] + side / 2)))
        img = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
        shape = self._shape(img, box)
        return np.asarray(self._net.compute_face_descriptor(img, shape), np.float64)
