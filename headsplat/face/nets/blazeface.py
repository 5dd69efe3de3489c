"""MediaPipe's BlazeFace face detectors (short range 128x128, full range 192x192) as PyTorch modules.

The network only: its raw per-anchor regressions and score logits. Anchor generation, box decoding and
non-maximum suppression are MediaPipe graph steps outside the network (not here yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from headsplat.face.nets.graph import ConvertedNetwork


@dataclass(frozen=True)
class BlazeFaceOutput:
    """Raw detector outputs for A anchors (896 short range, 2304 full range).

    Attributes:
        regressors: (B, A, 16): box centre offset x, y, width, height, then six keypoints (x, y), in input
            pixels relative to the anchor, as the graph emits them.
        logits: (B, A) face score before the sigmoid.
    """

    regressors: torch.Tensor
    logits: torch.Tensor


class BlazeFace(ConvertedNetwork):
    """A BlazeFace detector network.

    Short range: a 5x5 stem, then BlazeBlocks (3x3 depthwise + pointwise, residual; on stride 2 the shortcut
    is max-pooled and channel-padded), heads on the 16x16 (2 anchors a cell) and 8x8 (6) maps. Full range:
    an encoder of explicitly padded 3x3 depthwise + pointwise blocks (weights stored sparse), a feature
    pyramid upsampled bilinearly to 48x48, heads through depth-to-space (one anchor a cell).

    Args:
        full_range: the full-range model (192x192 input, faces up to 5 m) instead of the short-range one.
        data_dir, weights: see :class:`ConvertedNetwork`.

    Input: ``(B, H, W, 3)`` float32 RGB in ``input_range`` ([-1, 1], as MediaPipe's graph feeds it).
    """

    input_range = (-1.0, 1.0)

    def __init__(self, full_range: bool = False, data_dir: Path | None = None, weights: bool = True):
        name = "face_detection_full_range" if full_range else "face_detection_short_range"
        super().__init__(name, data_dir, weights)

    def forward(self, image: torch.Tensor) -> BlazeFaceOutput:
        regressors, logits = self.run_graph(image)
        return BlazeFaceOutput(regressors, logits[..., 0])
