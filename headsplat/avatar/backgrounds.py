"""What a rendered avatar is shown over: the avatar photo's background (its person removed), white, black or
nothing (transparent), and the compositing of a premultiplied render over it."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from headsplat.avatar.animate import straight_rgb8
from headsplat.avatar.avatar import Avatar
from headsplat.avatar.composite import background_plate
from headsplat.rig.base import HeadRig

BACKGROUNDS = ("source", "white", "black", "transparent")


def cover(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` scaled to cover (width, height) and cropped at its centre."""
    h, w = img.shape[:2]
    s = max(size[0] / w, size[1] / h)
    big = cv2.resize(img, (max(size[0], round(w * s)), max(size[1], round(h * s))),
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y0, x0 = (big.shape[0] - size[1]) // 2, (big.shape[1] - size[0]) // 2
    return np.ascontiguousarray(big[y0:y0 + size[1], x0:x0 + size[0]])


def background_image(avatar: Avatar, rig: HeadRig, background: str, size: tuple[int, int]) -> np.ndarray | None:
    """The (height, width, 3) uint8 background of ``background`` at ``size``; None for transparent.
    ``source``: the avatar's photo with its person's head removed (:func:`background_plate`), so a turning
    head never shows a second, ghost head behind it."""
    if background == "source":
        return cover(background_plate(avatar, rig), size)
    if background == "white":
        return np.full((size[1], size[0], 3), 255, np.uint8)
    if background == "black":
        return np.zeros((size[1], size[0], 3), np.uint8)
    return None


def compose(rgb: torch.Tensor, alpha: torch.Tensor, bg: np.ndarray | None) -> np.ndarray:
    """(H, W, 3) uint8 of a premultiplied render ``rgb`` (H, W, 3) with ``alpha`` (H, W, 1) over ``bg``; with no
    background, (H, W, 4) straight RGBA."""
    rgb8 = (rgb.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    a = alpha.clamp(0, 1).cpu().numpy()
    if bg is None:  # transparent: premultiplied render -> straight RGBA
        return np.concatenate([straight_rgb8(rgb, alpha.clamp(0, 1)), (a * 255 + 0.5).astype(np.uint8)], -1)
    return (rgb8 + (1 - a) * bg + 0.5).clip(0, 255).astype(np.uint8)
