"""Released weights, safely: where the user keeps them, reading them without executing code, strict matching.

headsplat never downloads weights. A file is found from an explicit path, an environment variable or a key of
the per-user config file (as for FLAME); ``.pt``/``.pth``/``.ckpt`` files are read with
``torch.load(weights_only=True)`` (no arbitrary code), ``.safetensors`` with safetensors.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from pathlib import Path

import torch

from headsplat.core.errors import InputError
from headsplat.core.validate import read_safetensors, resolve_user_file

_LISTED = 4  # key names quoted in an error before "and N more"


def resolve_weights(path: str | os.PathLike | None, env_var: str, config_key: str, what: str, flag: str = "--weights"
                    ) -> Path:
    """The weights file: ``path`` if given, else ``$env_var``, else ``config_key`` in the user config file
    (:func:`~headsplat.core.validate.resolve_user_file`).

    Raises:
        InputError: none is set, or the file does not exist (the message says how to set one).
    """
    return resolve_user_file(path, env_var, config_key, f"{what} weights", f"{flag} FILE", kind="file",
                             see="docs/learned-models.md")


def read_checkpoint(path: str | os.PathLike, mmap: bool = False) -> dict:
    """The object stored in a checkpoint, read without executing code (``mmap``: tensors memory-mapped from the
    file instead of read into memory, for multi-GB checkpoints in torch's zip format).

    Raises:
        InputError: unreadable, or it needs arbitrary code to load (not a weights file we accept).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        text = str(e)
        match = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if match:
            raise InputError(f"{path}: refused to load: unpickling it would run code (it names {match.group(1)}); "
                             "headsplat only reads checkpoints of plain tensors") from None
        reason = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
        first = reason.group(1).strip() if reason else (text.strip().splitlines()[0] if text.strip()
                                                           else type(e).__name__)
        raise InputError(f"{path}: not a readable checkpoint ({first})") from None


def key_mismatch(expected: dict[str, tuple], found: dict[str, torch.Tensor]) -> list[str]:
    """Problems between the expected key -> shape layout and a state dict, one message per kind (empty: none)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if tuple(found[k].shape) != tuple(expected[k]))

    def listed(keys):
        head = ", ".join(keys[:_LISTED])
        return head + (f" and {len(keys) - _LISTED} more" if len(keys) > _LISTED else "")

    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {listed(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {listed(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} keys of the wrong shape: " + listed(
            [f"{k} {tuple(found[k].shape)} (expected {tuple(expected[k])})" for k in wrong]))
    return problems


def layout(module: torch.nn.Module) -> dict[str, tuple]:
    """A module's state-dict layout: key -> shape."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Copy ``state`` into ``module`` if their keys and shapes are identical.

    Raises:
        InputError: one line naming the file, the missing and unexpected keys, and wrong shapes.
    """
    problems = key_mismatch(layout(module), state)
    if problems:
        raise InputError(f"{path}: weights do not match the model: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file (recorded in outputs instead of the weights themselves)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
