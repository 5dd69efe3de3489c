"""Still images: decode any common format to 8-bit RGB with EXIF orientation applied; write PNG atomically."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from headsplat.core.errors import InputError
from headsplat.core.fileio import atomic_path, check_input_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


def _to_rgb8(im: Image.Image) -> np.ndarray:
    """PIL image in any mode -> (H, W, 3) uint8. Transparent pixels are composited over white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        if im.mode == "F":
            top = 1.0 if a.max() <= 1.0 else a.max()
        g = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "La", "RGBa"):
        im = im.convert("RGBA")
        a = np.asarray(im).astype(np.float32)
        alpha = a[..., 3:4] / 255.0
        rgb = a[..., :3] * alpha + 255.0 * (1 - alpha)
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def read_image_uint8(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, EXIF orientation applied.

    Grayscale, RGBA (over white), palette, 16-bit and float images are converted.

    Raises:
        InputError: missing, empty, corrupt or unsupported file.
    """
    p = check_input_file(path)
    try:
        with Image.open(p) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            rgb = _to_rgb8(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{p}: not a readable image ({type(e).__name__}: {e})") from None
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise InputError(f"{p}: image is too small ({rgb.shape[1]}x{rgb.shape[0]})")
    return rgb


def to_float(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (H, W, 3) float32 tensor in [0, 1]."""
    rgb = np.ascontiguousarray(rgb) if rgb.flags.writeable else rgb.copy()
    return torch.from_numpy(rgb).float().div_(255.0)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """(H, W, C) float tensor in [0, 1] -> (H, W, C) uint8 array (rounded, clamped)."""
    return (img.detach().float().clamp(0, 1).mul(255).add(0.5)).to(torch.uint8).cpu().numpy()


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a (H, W, 3) float32 tensor in [0, 1] (sRGB), EXIF orientation applied."""
    return to_float(read_image_uint8(path))


def write_png(path: str | os.PathLike, img: torch.Tensor | np.ndarray) -> None:
    """Write (H, W, 3|4) float in [0, 1] or uint8 to a PNG file atomically."""
    arr = to_uint8(img) if isinstance(img, torch.Tensor) else np.asarray(img)
    if arr.dtype != np.uint8:
        raise TypeError(f"write_png: expected uint8 or a float tensor, got {arr.dtype}")
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
