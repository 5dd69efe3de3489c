"""The folder of an avatar made by a learned model (``--method gagavatar``, ``--method portrait4d``): what every
such method writes and reads the same way.

    NAME.avatar/
      avatar.json             format, version, "method", "rig", the method's settings
      source.safetensors      the method's tensors
      source.png              what the network saw of the photo
      preview.png             the avatar from the source view (optional)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from headsplat.avatar.avatar import FORMAT
from headsplat.core.errors import InputError
from headsplat.core.fileio import atomic_dir, read_format_json
from headsplat.core.validate import read_safetensors
from headsplat.media.image import read_image_uint8, write_png

VERSION = 2


def write_model_avatar(path: str | os.PathLike, meta: dict, tensors: dict[str, torch.Tensor], source: np.ndarray,
                       preview: np.ndarray | None = None) -> Path:
    """Write the folder atomically: ``meta`` (format and version added), ``tensors`` (float32),
    ``source`` and ``preview`` (H, W, 3) uint8."""
    path = Path(path)
    with atomic_dir(path) as tmp:
        (tmp / "avatar.json").write_text(json.dumps({"format": FORMAT, "version": VERSION, **meta}, indent=1))
        save_file({k: v.float().contiguous().cpu() for k, v in tensors.items()}, str(tmp / "source.safetensors"))
        write_png(tmp / "source.png", source)
        if preview is not None:
            write_png(tmp / "preview.png", preview)
    return path


def read_model_avatar(path: str | os.PathLike, method: str, label: str, names: tuple[str, ...]
                      ) -> tuple[dict, dict[str, torch.Tensor], np.ndarray]:
    """(avatar.json, the tensors, source.png) of a ``method`` avatar folder (``label``: the model's name in
    messages).

    Raises:
        InputError: a missing or newer avatar.json, another method, a missing file, or a missing tensor of
            ``names``.
    """
    p = Path(path)
    meta = read_format_json(p / "avatar.json", p, "avatar", FORMAT, VERSION)
    if meta.get("method") != method:
        raise InputError(f"{p}: not a {label} avatar (method {meta.get('method', 'headsplat')!r})")
    for name in ("source.safetensors", "source.png"):
        if not (p / name).is_file():
            raise InputError(f"{p}: incomplete avatar: {name} is missing")
    tensors = read_safetensors(p / "source.safetensors")
    for k in names:
        if k not in tensors:
            raise InputError(f"{p / 'source.safetensors'}: missing tensor {k}")
    return meta, tensors, read_image_uint8(p / "source.png")
