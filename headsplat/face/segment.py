"""Foreground matte (person vs background) from MediaPipe's selfie-segmentation model, bundled with headsplat."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from headsplat.face.frontend import FaceNets


class Matter:
    """Soft foreground mattes: ``Matter()(rgb) -> (H, W) float32 in [0, 1]``.

    Args:
        landscape: use the landscape model (faster, 144x256) instead of the general one (256x256).
        device: where the network runs (``"cpu"`` or ``"cuda"``).
    """

    def __init__(self, landscape: bool = False, device: str = "cpu"):
        self.landscape = landscape
        self.nets = FaceNets(device=device)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W) float32 foreground probability."""
        return self.nets.segment([np.ascontiguousarray(rgb)], landscape=self.landscape)[0]

    def batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Mattes of several images, run through the network in batches."""
        return self.nets.segment([np.ascontiguousarray(rgb) for rgb in images], landscape=self.landscape)

    def close(self) -> None:
        """Release the network (it is rebuilt on the next call)."""
        self.nets = FaceNets(device=str(self.nets.device))

    def __enter__(self) -> "Matter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
