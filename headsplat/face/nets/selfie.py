"""MediaPipe's selfie segmenter (general 256x256 and landscape 144x256) as a PyTorch module."""

from __future__ import annotations

from pathlib import Path

import torch

from headsplat.face.nets.graph import ConvertedNetwork


class SelfieSegmenter(ConvertedNetwork):
    """Person-vs-background probability for an RGB image at the network's size.

    A MobileNetV3-style encoder (hard-swish, squeeze-and-excitation with global average pooling) and a
    decoder of bilinear upsampling with attention gates, ending in a transposed convolution with bias
    (MediaPipe's ``Convolution2DTransposeBias``) and a sigmoid.

    Args:
        landscape: the landscape model (144x256 input) instead of the general one (256x256).
        data_dir, weights: see :class:`ConvertedNetwork`.

    Input: ``(B, H, W, 3)`` float32 RGB in ``input_range`` ([0, 1], as MediaPipe's graph feeds it).
    Output: ``(B, H, W)`` float32 foreground probability.
    """

    input_range = (0.0, 1.0)

    def __init__(self, landscape: bool = False, data_dir: Path | None = None, weights: bool = True):
        name = "selfie_segmentation_landscape" if landscape else "selfie_segmentation"
        super().__init__(name, data_dir, weights)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        (mask,) = self.run_graph(image)
        return mask[..., 0]
