"""Compose test footage from frames: place a frame on a larger canvas (zoom, pan), inset a second picture,
and give an mp4 a phone's display rotation. Used to build in-the-wild drivers with known content."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np


def place(frame: np.ndarray, size: tuple[int, int], scale: float, centre: tuple[float, float],
          fill: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 ``frame`` scaled by ``scale`` with its centre at ``centre`` (fractions of the canvas)
    on a ``size`` (width, height) canvas. The surround is the frame itself, stretched and blurred (no black
    borders), or the grey level ``fill`` (for small frames: a stretched face would be a detector's best find)."""
    w, h = size
    if fill is None:
        bg = cv2.GaussianBlur(cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR), (0, 0), 25)
    else:
        bg = np.full((h, w, 3), fill, np.uint8)
    fh, fw = frame.shape[:2]
    m = np.array([[scale, 0, centre[0] * w - scale * fw / 2], [0, scale, centre[1] * h - scale * fh / 2]])
    warped = cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    inside = cv2.warpAffine(np.full((fh, fw), 255, np.uint8), m, (w, h), flags=cv2.INTER_NEAREST)
    return np.where(inside[..., None] > 0, warped, bg)


def inset(canvas: np.ndarray, picture: np.ndarray, x: int, y: int, height: int) -> np.ndarray:
    """``canvas`` with ``picture`` resized to ``height`` px (aspect kept) pasted with its top-left at (x, y)."""
    width = round(picture.shape[1] * height / picture.shape[0])
    out = canvas.copy()
    out[y:y + height, x:x + width] = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)
    return out


def set_display_rotation(path: str | os.PathLike, clockwise_quarter_turns: int = 1) -> Path:
    """Give an mp4 the display matrix a phone writes when held upright (``1``: shown turned 90 degrees
    clockwise, as phones record portrait video), by rewriting its first track header's matrix in place."""
    p = Path(path)
    data = bytearray(p.read_bytes())
    i = data.find(b"tkhd")
    if i < 0 or data[i + 4] != 0:
        raise ValueError(f"{p}: no version-0 track header to rewrite")
    one, minus_one, w = 0x00010000, 0xFFFF0000, 0x40000000
    a, b, c, d = {0: (one, 0, 0, one), 1: (0, one, minus_one, 0), 2: (minus_one, 0, 0, minus_one),
                  3: (0, minus_one, one, 0)}[clockwise_quarter_turns % 4]
    # tkhd (version 0): type, then 40 bytes (version/flags, times, ids, duration, layer...) before the matrix.
    data[i + 44:i + 80] = struct.pack(">9I", a, b, 0, c, d, 0, 0, 0, w)
    p.write_bytes(bytes(data))
    return p
