"""PD-FGC's motion encoder (Wang et al., CVPR 2023) as Portrait4D uses it: a FAN hourglass on a 224² face crop
and four heads; Portrait4D's motion code is ``eye (6) | emotion (30) | mouth feature (512)`` = 548 values.

Attribute names are the keys of the authors' ``motion_model.pth`` (``FanEncoder``). Its BatchNorms run in
inference mode (running statistics from the file).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from headsplat.core.errors import InputError
from headsplat.models.weights import key_mismatch, layout, read_checkpoint

MOTION_DIMS = 6 + 30 + 512


def _conv3x3(i: int, o: int) -> nn.Conv2d:
    return nn.Conv2d(i, o, 3, stride=1, padding=1, bias=False)


class ConvBlock(nn.Module):
    """FAN's residual block: three pre-activated 3x3 convolutions (out/2, out/4, out/4) concatenated, plus the
    (pre-activated 1x1) shortcut."""

    def __init__(self, in_planes: int, out_planes: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = _conv3x3(in_planes, out_planes // 2)
        self.bn2 = nn.BatchNorm2d(out_planes // 2)
        self.conv2 = _conv3x3(out_planes // 2, out_planes // 4)
        self.bn3 = nn.BatchNorm2d(out_planes // 4)
        self.conv3 = _conv3x3(out_planes // 4, out_planes // 4)
        self.downsample = None
        if in_planes != out_planes:
            self.downsample = nn.Sequential(nn.BatchNorm2d(in_planes), nn.ReLU(True),
                                            nn.Conv2d(in_planes, out_planes, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o1 = self.conv1(F.relu(self.bn1(x)))
        o2 = self.conv2(F.relu(self.bn2(o1)))
        o3 = self.conv3(F.relu(self.bn3(o2)))
        res = self.downsample(x) if self.downsample is not None else x
        return torch.cat((o1, o2, o3), 1) + res


class HourGlass(nn.Module):
    """A recursive hourglass of ``depth`` levels of 256-channel blocks (``b1_L``, ``b2_L``, ``b3_L``, and
    ``b2_plus_1`` at the bottom)."""

    def __init__(self, num_modules: int, depth: int, num_features: int):
        super().__init__()
        self.num_modules, self.depth, self.features = num_modules, depth, num_features
        self._make(depth)

    def _make(self, level: int) -> None:
        self.add_module(f"b1_{level}", ConvBlock(256, 256))
        self.add_module(f"b2_{level}", ConvBlock(256, 256))
        if level > 1:
            self._make(level - 1)
        else:
            self.add_module(f"b2_plus_{level}", ConvBlock(256, 256))
        self.add_module(f"b3_{level}", ConvBlock(256, 256))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        up = self._modules[f"b1_{level}"](x)
        low = self._modules[f"b2_{level}"](F.max_pool2d(x, 2, stride=2))
        low = self._level(level - 1, low) if level > 1 else self._modules[f"b2_plus_{level}"](low)
        low = self._modules[f"b3_{level}"](low)
        return up + F.interpolate(low, size=up.shape[2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth, x)


class FAN(nn.Module):
    """(B, 3, 224, 224) -> (B, 512): FAN's stem and one hourglass, 68 heatmap channels, a strided 3x3 to one
    28² map, ReLU, a linear layer (the reference's ``FAN_use``)."""

    def __init__(self):
        super().__init__()
        self.num_modules = 1
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = ConvBlock(64, 128)
        self.conv3 = ConvBlock(128, 128)
        self.conv4 = ConvBlock(128, 256)
        self.m0 = HourGlass(1, 4, 256)
        self.top_m_0 = ConvBlock(256, 256)
        self.conv_last0 = nn.Conv2d(256, 256, 1)
        self.l0 = nn.Conv2d(256, 68, 1)
        self.bn_end0 = nn.BatchNorm2d(256)
        self.conv6 = nn.Conv2d(68, 1, 3, 2, 1)
        self.fc = nn.Linear(28 * 28, 512)
        self.bn5 = nn.BatchNorm2d(68)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv2(F.relu(self.bn1(self.conv1(x)))), 2)
        x = self.conv4(self.conv3(x))
        ll = self.bn_end0(self.conv_last0(self.top_m_0(self.m0(x))))
        net = self.conv6(F.relu(self.bn5(self.l0(F.relu(ll)))))
        return self.fc(F.relu(net.view(-1, net.shape[-2] * net.shape[-1])))


def _head(out: int) -> tuple[nn.Sequential, nn.Sequential]:
    return (nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.BatchNorm1d(512), nn.Linear(512, 512)),
            nn.Sequential(nn.ReLU(), nn.Linear(512, out)))


class FanEncoder(nn.Module):
    """PD-FGC's motion encoder: FAN features -> head pose (6), eyes (6), emotion (30) embeddings and the mouth
    feature (512)."""

    def __init__(self, pose_dim: int = 6, eye_dim: int = 6):
        super().__init__()
        self.model = FAN()
        self.to_mouth, self.mouth_embed = _head(512 - pose_dim - eye_dim)
        self.to_headpose, self.headpose_embed = _head(pose_dim)
        self.to_eye, self.eye_embed = _head(eye_dim)
        self.to_emo, self.emo_embed = _head(30)
        self.ignored_keys: list[str] = []  # keys of the weights file this network does not have

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "FanEncoder":
        """``motion_model.pth`` (a state dict, read with ``weights_only``). Every key of the network must be
        there with its shape; keys the network lacks are listed in :attr:`ignored_keys` (the reference loads
        this file with ``strict=False``).

        Raises:
            InputError: unreadable, or missing or mis-shaped keys (named on one line).
        """
        obj = read_checkpoint(path)
        if not isinstance(obj, dict):
            raise InputError(f"{path}: not a state dict")
        model = cls()
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        expected = layout(model)
        problems = key_mismatch(expected, {k: v for k, v in tensors.items() if k in expected})
        if problems:
            raise InputError(f"{path}: weights do not match PD-FGC's motion encoder: " + "; ".join(problems))
        model.load_state_dict({k: tensors[k] for k in expected}, strict=True)
        model.ignored_keys = sorted(set(tensors) - set(expected))
        return model.to(device).eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, 224, 224) crop in [-1, 1] -> head pose (B, 6), eyes (B, 6), emotion (B, 30), mouth (B, 512)."""
        x = self.model(x)
        pose = self.headpose_embed(self.to_headpose(x))
        return pose, self.eye_embed(self.to_eye(x)), self.emo_embed(self.to_emo(x)), self.to_mouth(x)

    def motion_code(self, crop: torch.Tensor) -> torch.Tensor:
        """Portrait4D's motion code of a 224² crop: (B, 548) = eyes, emotion, mouth."""
        _, eye, emo, mouth = self(crop)
        return torch.cat([eye, emo, mouth], -1)


def motion_from_images(encoder: FanEncoder, images: torch.Tensor, landmarks: torch.Tensor,
                       reverse_y: bool = False) -> torch.Tensor:
    """The reference's ``get_motion_feature``: (B, 3, H, W) images in [-1, 1] and their (B, 68, 2) pixel
    landmarks -> (B, 548) motion codes (crop of :func:`~headsplat.models.portrait4d.crop.motion_crop`)."""
    from headsplat.models.portrait4d.crop import motion_crop

    return encoder.motion_code(motion_crop(images, landmarks, reverse_y))
