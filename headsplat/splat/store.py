"""The native Gaussian file: every tensor of a GaussianSet in safetensors, a JSON header in its metadata.

No pickle: loading reads tensors and JSON only. The header records the format name and version so that a
file from a newer headsplat is refused with a clear message rather than misread.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields

import torch
from safetensors.torch import save_file

from headsplat.core.errors import InputError
from headsplat.core.fileio import atomic_path, check_format, check_input_file
from headsplat.core.validate import read_safetensors_with_metadata
from headsplat.splat.gaussians import GaussianSet

FORMAT = "headsplat.gaussians"
VERSION = 1
_FIELDS = [f.name for f in fields(GaussianSet)]


def save_gaussians(path: str | os.PathLike, gaussians: GaussianSet, header: dict | None = None) -> None:
    """Write ``gaussians`` (and a JSON-serialisable ``header``) to a .safetensors file, atomically."""
    tensors = {name: t.detach().contiguous().cpu() for name, t in gaussians.tensors()}
    meta = {"format": FORMAT, "version": VERSION, "n_gaussians": len(gaussians), "sh_degree": gaussians.sh_degree,
            "header": header or {}}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"headsplat": json.dumps(meta)})


def load_gaussians(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[GaussianSet, dict]:
    """Read a file written by :func:`save_gaussians`. Returns the set and its header.

    Raises:
        InputError: missing, truncated or foreign file, or a newer format version.
    """
    p = check_input_file(path)
    tensors, metadata = read_safetensors_with_metadata(p, device)
    raw = metadata.get("headsplat")
    if raw is None:
        raise InputError(f"{p}: safetensors file without a headsplat header; not a headsplat Gaussian file")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: corrupt headsplat header ({e})") from None
    check_format(meta, p, "Gaussian file", FORMAT, VERSION)
    unknown = sorted(set(tensors) - set(_FIELDS))
    if unknown:
        raise InputError(f"{p}: unknown tensors {unknown}")
    try:
        gs = GaussianSet(**tensors)
    except (TypeError, ValueError) as e:
        raise InputError(f"{p}: inconsistent Gaussian tensors ({e})") from None
    return gs, meta.get("header", {})
