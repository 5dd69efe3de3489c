"""The bundled face networks as MediaPipe's graphs run them, on batches of images: detection (letterboxed
whole image, anchors, weighted NMS, boxes mapped back), landmarks in given ROIs (crop, mesh with attention,
refinement, projection back, face-presence score) and the selfie matte (resized back to the image).

The crops are computed as MediaPipe's CPU graphs compute them (OpenCV 4's fixed-point bilinear warp,
:mod:`headsplat.face.warp`); crops and networks run on ``device`` (CPU threads or CUDA), a batch at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import cv2
import numpy as np
import torch

from headsplat.core.threads import cpu_threads
from headsplat.core.validate import check_device
from headsplat.face.nets.blazeface import FULL_RANGE, SHORT_RANGE, BlazeFace, decode_detections, ssd_anchors
from headsplat.face.nets.facemesh import FaceMeshNet
from headsplat.face.nets.selfie import SelfieSegmenter
from headsplat.face.roi import (
    NormRect,
    crop_matrix,
    pad_rect,
    pixel_roi,
    project_detection,
    project_landmarks,
    tensor_to_image_matrix,
)
from headsplat.face.warp import warp_perspective

MESH_SIZE = 192  # FaceLandmarkCpu's input tensor side
PRESENCE_THRESHOLD = 0.5  # FaceLandmarkCpu's ThresholdingCalculator (the solution's min_tracking_confidence)


@dataclass(frozen=True)
class Detection:
    """One face found by a detector, in normalised image coordinates.

    Attributes:
        box: (4,) float32 xmin, ymin, xmax, ymax.
        keypoints: (6, 2) float32 x, y: right eye, left eye, nose tip, mouth centre, right and left ear tragion.
        score: in [0, 1].
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float


@dataclass(frozen=True)
class MeshResult:
    """Landmarks found in ROIs.

    Attributes:
        points: (N, 478, 3) float32 normalised to the image: x / W, y / H, z / W (MediaPipe's
            ``NormalizedLandmarkList``).
        presence: (N,) float32 face-presence score in [0, 1]; the landmarks count as a face at
            :data:`PRESENCE_THRESHOLD` and above.
    """

    points: np.ndarray
    presence: np.ndarray


def _to_tensor(crops: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """(B, H, W, 3) float32 from uint8 crops, scaled as ImageToTensor's ``convertTo`` (v * scale + offset)."""
    lo, hi = value_range
    return crops.to(torch.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)


class FaceNets:
    """MediaPipe's face detector, face mesh and selfie segmenter, each built on first use.

    Args:
        device: ``"cpu"`` or ``"cuda"`` for the crops and the networks.
        batch_size: the most images a network sees at once.
        threads: CPU threads for the networks (PyTorch's intra-op threads, set while they run and restored
            after). One by default: these networks are small, and on a busy machine (video decoding beside
            them, other processes) PyTorch's thread pool waits on descheduled threads: measured 20 ms a face mesh
            on one thread against 450 ms on two, with two other processes busy on the two cores.
    """

    def __init__(self, device: str = "cpu", batch_size: int = 16, threads: int | None = 1):
        self.device = check_device(device)
        self.batch_size = int(batch_size)
        self.threads = threads
        self._nets: dict[str, torch.nn.Module] = {}
        self._anchors: dict[int, torch.Tensor] = {}  # detector input size -> its SSD anchors

    def _net(self, key: str) -> torch.nn.Module:
        if key not in self._nets:
            build = {"short": lambda: BlazeFace(full_range=False), "full": lambda: BlazeFace(full_range=True),
                     "mesh": FaceMeshNet, "selfie": lambda: SelfieSegmenter(landscape=False),
                     "selfie_landscape": lambda: SelfieSegmenter(landscape=True)}[key]
            self._nets[key] = build().eval().to(self.device)
        return self._nets[key]

    def _crops(self, images: Sequence[np.ndarray], matrices: Sequence[np.ndarray], out_w: int, out_h: int,
               border_zero: bool) -> torch.Tensor:
        """(N, out_h, out_w, 3) uint8 on the device: ``images[i]`` through ``matrices[i]`` ((3, 3) image to
        crop pixels); consecutive entries of the same image are cropped together."""
        out, i = [], 0
        while i < len(images):
            j = i + 1
            while j < len(images) and images[j] is images[i]:
                j += 1
            img = torch.from_numpy(np.require(images[i], np.uint8, ['C', 'W'])).to(self.device)
            out.append(warp_perspective(img, np.stack(matrices[i:j]), out_w, out_h, border_zero))
            i = j
        return torch.cat(out)

    def _run(self, key: str, crops: torch.Tensor):
        """The network's outputs for (N, H, W, 3) uint8 crops, a batch at a time (a list of per-batch outputs)."""
        net = self._net(key)
        outs = []
        with torch.inference_mode():
            for i in range(0, len(crops), self.batch_size):
                outs.append(net(_to_tensor(crops[i:i + self.batch_size], net.input_range)))
        return outs

    def detect(self, images: Sequence[np.ndarray], full_range: bool = False,
               min_scores: Sequence[float] = (0.5,)) -> list[list[list[Detection]]]:
        """MediaPipe's FaceDetection graph on whole images: each letterboxed into the network's square (black
        borders), decoded with its anchors and weighted NMS, mapped back to the image.

        Args:
            images: (H, W, 3) uint8 each.
            full_range: the full-range detector (192 px input) instead of the short-range one (128 px).
            min_scores: score thresholds; the network runs once and each threshold is decoded separately (NMS
                merges differ with the threshold).
        Returns:
            result[i][k]: the detections of image ``i`` at threshold ``min_scores[k]``, best first.
        """
        with cpu_threads(self.threads, self.device):
            return self._detect_impl(images, full_range, min_scores)

    def landmarks(self, images: Sequence[np.ndarray], rects: Sequence[NormRect]) -> MeshResult:
        """FaceLandmarkCpu: the 478 refined landmarks in each ROI (``images[i]`` through ``rects[i]``; the same
        image may appear several times, consecutively, and is then cropped once for all its ROIs).

        Args:
            images: (H, W, 3) uint8 each; rects: one :class:`NormRect` per image.
        """
        with cpu_threads(self.threads, self.device):
            return self._landmarks_impl(images, rects)

    def segment(self, images: Sequence[np.ndarray], landscape: bool = False) -> list[np.ndarray]:
        """SelfieSegmentationCpu: each image resized (warped, no aspect kept) to the network's input, its
        foreground probability resized back bilinearly.

        Returns:
            (H, W) float32 in [0, 1] per image.
        """
        with cpu_threads(self.threads, self.device):
            return self._segment_impl(images, landscape)

    # -- detection -------------------------------------------------------------------------------------------
    def _detect_impl(self, images: Sequence[np.ndarray], full_range: bool = False,
               min_scores: Sequence[float] = (0.5,)) -> list[list[list[Detection]]]:
        config = FULL_RANGE if full_range else SHORT_RANGE
        size = config.input_size
        if not len(images):
            return []
        warps, matrices = [], []
        for rgb in images:
            h, w = rgb.shape[:2]
            roi = pad_rect(NormRect.whole(), w, h, size, size)
            warps.append(crop_matrix(roi, size, size))
            matrices.append(tensor_to_image_matrix(roi, w, h))
        crops = self._crops(images, warps, size, size, border_zero=True)
        if size not in self._anchors:  # one set per detector, not per call
            self._anchors[size] = ssd_anchors(config)
        anchors = self._anchors[size]
        result: list[list[list[Detection]]] = [[] for _ in images]
        i = 0
        for out in self._run("full" if full_range else "short", crops):
            out = type(out)(out.regressors.float().cpu(), out.logits.float().cpu())
            per_threshold = [decode_detections(out, replace(config, min_score=float(s)), anchors)
                             for s in min_scores]
            for b in range(out.logits.shape[0]):
                for found in per_threshold:
                    dets = []
                    for box, kp, score in zip(found[b].boxes.numpy(), found[b].keypoints.numpy(),
                                              found[b].scores.numpy()):
                        pbox, pkp = project_detection(box, kp, matrices[i])
                        dets.append(Detection(pbox, pkp, float(score)))
                    result[i].append(dets)
                i += 1
        return result

    # -- landmarks -------------------------------------------------------------------------------------------
    def _landmarks_impl(self, images: Sequence[np.ndarray], rects: Sequence[NormRect]) -> MeshResult:
        if len(images) != len(rects):
            raise ValueError(f"rects: expected one per image ({len(images)}), got {len(rects)}")
        if not len(images):
            return MeshResult(np.zeros((0, 478, 3), np.float32), np.zeros(0, np.float32))
        crops = self._crops(images, [crop_matrix(pixel_roi(r, rgb.shape[1], rgb.shape[0]), MESH_SIZE, MESH_SIZE)
                                     for rgb, r in zip(images, rects)], MESH_SIZE, MESH_SIZE, border_zero=False)
        net = self._net("mesh")
        points, presence = [], []
        for out in self._run("mesh", crops):
            points.append((net.refine(out) / MESH_SIZE).float().cpu().numpy())
            presence.append(torch.sigmoid(out.face_logit).float().cpu().numpy())
        pts = np.concatenate(points)
        projected = np.stack([project_landmarks(p, r) for p, r in zip(pts, rects)])
        return MeshResult(projected, np.concatenate(presence).astype(np.float32))

    # -- matte -----------------------------------------------------------------------------------------------
    def _segment_impl(self, images: Sequence[np.ndarray], landscape: bool = False) -> list[np.ndarray]:
        out_w, out_h = (256, 144) if landscape else (256, 256)
        if not len(images):
            return []
        crops = self._crops(images, [crop_matrix(pixel_roi(NormRect.whole(), rgb.shape[1], rgb.shape[0]), out_w, out_h)
                                     for rgb in images], out_w, out_h, border_zero=True)
        masks = [m for out in self._run("selfie_landscape" if landscape else "selfie", crops)
                 for m in out.float().cpu().numpy()]
        return [np.clip(cv2.resize(m, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
                for m, rgb in zip(masks, images)]
