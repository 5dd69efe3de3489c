"""MediaPipe's face mesh with attention (468 mesh points refined by lips, eyes and irises) as a PyTorch module.

The attention model crops its own feature map around the lips and both eyes (MediaPipe's custom ops
``Landmarks2TransformMatrix``, ``TransformTensorBilinear``, ``TransformLandmarks``, reimplemented in
:mod:`headsplat.face.nets.graph`) and regresses those regions again at higher resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from headsplat.face.nets.graph import ConvertedNetwork

N_MESH = 468
N_REFINED = 478


@dataclass(frozen=True)
class FaceMeshOutput:
    """The network's outputs, in input-crop pixels (x right, y down; z the model's relative depth, in the
    same pixel units, smaller nearer the camera).

    Attributes:
        mesh: (B, 468, 3).
        lips: (B, 80, 2); left_eye, right_eye: (B, 71, 2); left_iris, right_iris: (B, 5, 2) (centre first).
        face_logit: (B,) face-presence score before the sigmoid.
    """

    mesh: torch.Tensor
    lips: torch.Tensor
    left_eye: torch.Tensor
    right_eye: torch.Tensor
    left_iris: torch.Tensor
    right_iris: torch.Tensor
    face_logit: torch.Tensor


class FaceMeshNet(ConvertedNetwork):
    """The face-landmark-with-attention network (``face_landmark_with_attention.tflite``).

    Args:
        data_dir, weights: see :class:`ConvertedNetwork`.

    Input: ``(B, 192, 192, 3)`` float32 RGB crop in ``input_range`` ([0, 1], as MediaPipe's graph feeds it).
    """

    input_range = (0.0, 1.0)

    def __init__(self, data_dir: Path | None = None, weights: bool = True):
        super().__init__("face_landmark_with_attention", data_dir, weights)
        crops = [op for op in self.ops if op["op"] == "CUSTOM:Landmarks2TransformMatrix"]
        # The regions' mesh indices are the crop ops' landmark subsets (lips, left eye, right eye), which
        # are also where MediaPipe writes the refined points back.
        lips, left, right = (torch.tensor(op["subset_idxs"]) for op in crops)
        self.register_buffer("lips_index", lips, persistent=False)
        self.register_buffer("left_eye_index", left, persistent=False)
        self.register_buffer("right_eye_index", right, persistent=False)

    def forward(self, image: torch.Tensor) -> FaceMeshOutput:
        mesh, lips, left_eye, right_eye, left_iris, right_iris, flag = self.run_graph(image)
        b = image.shape[0]
        return FaceMeshOutput(mesh.reshape(b, N_MESH, 3), lips.reshape(b, 80, 2), left_eye.reshape(b, 71, 2),
                              right_eye.reshape(b, 71, 2), left_iris.reshape(b, 5, 2), right_iris.reshape(b, 5, 2),
                              flag.reshape(b))

    def refine(self, out: FaceMeshOutput) -> torch.Tensor:
        """The 478 landmarks MediaPipe reports, from the network's outputs (its ``LandmarksRefinement`` step):
        lips and eyes replace the mesh's x, y at their indices; the irises become points 468-477, at the mean
        depth of their eye's contour (the eye region's first 16 points).

        Returns:
            (B, 478, 3) in input-crop pixels.
        """
        b = out.mesh.shape[0]
        pts = torch.cat([out.mesh, out.mesh.new_zeros(b, N_REFINED - N_MESH, 3)], 1)
        for index, xy in ((self.lips_index, out.lips), (self.left_eye_index, out.left_eye),
                          (self.right_eye_index, out.right_eye)):
            pts[:, index, :2] = xy
        for first, index, xy in ((468, self.left_eye_index, out.left_iris), (473, self.right_eye_index,
                                                                          out.right_iris)):
            pts[:, first:first + 5, :2] = xy
            pts[:, first:first + 5, 2] = out.mesh[:, index[:16], 2].mean(1, keepdim=True)
        return pts
