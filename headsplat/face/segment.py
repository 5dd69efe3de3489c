"""Foreground matte (person vs background) from MediaPipe's bundled selfie-segmentation model."""

from __future__ import annotations

import warnings

import numpy as np

from headsplat.face.assets import import_solutions


class Matter:
    """Soft foreground mattes: ``Matter()(rgb) -> (H, W) float32 in [0, 1]``.

    Args:
        landscape: use the landscape model (faster, 144x256) instead of the general one (256x256).
    """

    def __init__(self, landscape: bool = False):
        _, _, selfie = import_solutions()
        self._model = selfie.SelfieSegmentation(model_selection=1 if landscape else 0)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W) float32 foreground probability."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            res = self._model.process(np.ascontiguousarray(rgb))
        return np.clip(res.segmentation_mask.astype(np.float32), 0.0, 1.0)

    def close(self) -> None:
        self._model.close()

    def __enter__(self) -> "Matter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
