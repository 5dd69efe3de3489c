"""MediaPipe's BlazeFace face detectors (short range 128x128, full range 192x192) as PyTorch modules.

:class:`BlazeFace` is the network (raw per-anchor regressions and score logits); :func:`decode_detections`
is what MediaPipe's FaceDetection graph does after it (SSD anchors, box decoding, weighted NMS). Letterboxing
an image into the input and mapping the boxes back are the caller's.
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


# -- anchors, box decoding and weighted non-maximum suppression (MediaPipe's FaceDetection graph steps) --------
@dataclass(frozen=True)
class DetectorConfig:
    """How MediaPipe turns a BlazeFace network's outputs into faces (its SsdAnchors, TensorsToDetections and
    NonMaxSuppression options for that model).

    Attributes:
        input_size: the network's square input side in pixels; also the regressors' scale.
        strides: one per SSD layer; consecutive layers of the same stride share one feature map.
        interpolated_anchor: each layer adds a second anchor (the anchor size is fixed, so only the count
            matters).
        anchor_offset: anchor centres sit at (cell + offset) / feature-map size.
        min_score: detections scoring below this (after the sigmoid) are dropped.
        score_clip: logits are clipped to +-this before the sigmoid.
        nms_threshold: detections overlapping the best one by more than this IoU are merged into it.
    """

    input_size: int
    strides: tuple[int, ...]
    interpolated_anchor: bool
    anchor_offset: float = 0.5
    min_score: float = 0.5
    score_clip: float = 100.0
    nms_threshold: float = 0.3


SHORT_RANGE = DetectorConfig(input_size=128, strides=(8, 16, 16, 16), interpolated_anchor=True, min_score=0.5)
FULL_RANGE = DetectorConfig(input_size=192, strides=(4,), interpolated_anchor=False, min_score=0.6)


@dataclass(frozen=True)
class FaceDetections:
    """Faces found in one image, best first, in the network input's normalised coordinates (0..1, x right,
    y down; for a letterboxed input the caller maps them back).

    Attributes:
        boxes: (N, 4) xmin, ymin, xmax, ymax.
        keypoints: (N, 6, 2) x, y: right eye, left eye, nose tip, mouth centre, right ear tragion, left ear
            tragion (MediaPipe's order; "right" is the person's right).
        scores: (N,) in [0, 1].
    """

    boxes: torch.Tensor
    keypoints: torch.Tensor
    scores: torch.Tensor


def ssd_anchors(config: DetectorConfig) -> torch.Tensor:
    """(A, 2) anchor centres x, y in 0..1, in the order the network emits its per-anchor outputs."""
    centres = []
    i = 0
    while i < len(config.strides):
        j = i
        while j < len(config.strides) and config.strides[j] == config.strides[i]:
            j += 1
        per_cell = (j - i) * (2 if config.interpolated_anchor else 1)
        side = -(-config.input_size // config.strides[i])
        ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                                indexing="ij")
        xy = torch.stack([(xs + config.anchor_offset) / side, (ys + config.anchor_offset) / side], -1)
        centres.append(xy.reshape(-1, 1, 2).expand(-1, per_cell, 2).reshape(-1, 2))
        i = j
    return torch.cat(centres)


def decode_detections(out: BlazeFaceOutput, config: DetectorConfig,
                      anchors: torch.Tensor | None = None) -> list[FaceDetections]:
    """Boxes, keypoints and scores from the network's outputs, after MediaPipe's weighted NMS; one entry
    per image of the batch.

    Args:
        out: the network's outputs, regressors (B, A, 16) and logits (B, A).
        anchors: (A, 2) from :func:`ssd_anchors` (computed when omitted).
    """
    if anchors is None:
        anchors = ssd_anchors(config)
    anchors = anchors.to(out.regressors)
    if out.regressors.shape[-2] != anchors.shape[0]:
        raise ValueError(f"regressors: expected {anchors.shape[0]} anchors for this config, "
                         f"got {out.regressors.shape[-2]}")
    s = float(config.input_size)
    raw = out.regressors
    centre = raw[..., 0:2] / s + anchors
    size = raw[..., 2:4] / s
    boxes = torch.cat([centre - size / 2, centre + size / 2], -1)
    keypoints = raw[..., 4:16].reshape(*raw.shape[:-1], 6, 2) / s + anchors[:, None, :]
    scores = torch.sigmoid(out.logits.clamp(-config.score_clip, config.score_clip))
    result = []
    for b in range(raw.shape[0]):
        keep = (scores[b] >= config.min_score) & (size[b] >= 0).all(-1)  # NaN sizes fail too
        result.append(weighted_nms(boxes[b][keep], keypoints[b][keep], scores[b][keep], config.nms_threshold))
    return result


def _iou(boxes: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    lo = torch.maximum(boxes[:, :2], box[:2])
    hi = torch.minimum(boxes[:, 2:], box[2:])
    wh = (hi - lo).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    union = area(boxes) + area(box) - inter
    overlapping = (wh > 0).all(-1)
    return torch.where(overlapping & (union > 0), inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def weighted_nms(boxes: torch.Tensor, keypoints: torch.Tensor, scores: torch.Tensor,
                 threshold: float) -> FaceDetections:
    """MediaPipe's WEIGHTED non-maximum suppression: the best remaining detection absorbs every remaining
    one overlapping it by more than ``threshold`` IoU (itself included); its box and keypoints become their
    score-weighted mean, its score stays its own.

    Args:
        boxes: (N, 4) xmin, ymin, xmax, ymax; keypoints: (N, K, 2); scores: (N,).
    """
    order = torch.argsort(scores, descending=True, stable=True)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = torch.arange(len(scores), device=scores.device)
    out_boxes, out_keypoints, out_scores = [], [], []
    while len(remaining):
        top = remaining[0]
        similar = _iou(boxes[remaining], boxes[top]) > threshold
        members = remaining[similar]
        box, kp = boxes[top], keypoints[top]
        if len(members):
            w = scores[members]
            total = w.sum()
            box = (boxes[members] * w[:, None]).sum(0) / total
            kp = (keypoints[members] * w[:, None, None]).sum(0) / total
        out_boxes.append(box)
        out_keypoints.append(kp)
        out_scores.append(scores[top])
        if not len(members):
            break  # as MediaPipe: a pass that absorbs nothing (a degenerate best box) ends the search
        remaining = remaining[~similar]
    if not out_scores:
        return FaceDetections(boxes.new_zeros(0, 4), keypoints.new_zeros(0, keypoints.shape[1], 2),
                              scores.new_zeros(0))
    return FaceDetections(torch.stack(out_boxes), torch.stack(out_keypoints), torch.stack(out_scores))
