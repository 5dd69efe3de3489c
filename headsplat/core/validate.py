"""One validation helper module for public boundaries: shapes, choices, the files users bring, safetensors.

Every check raises a typed error whose message names the argument or file, what was expected and what was found.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Sequence, TypeVar

import torch
from safetensors import SafetensorError, safe_open

from headsplat.core.config import config_file, configured_path
from headsplat.core.errors import ArgumentError, InputError, ShapeError

T = TypeVar("T")

#: what :func:`resolve_user_file` requires to exist at the chosen path (None: nothing; the reader checks it)
UserPathKind = Literal["file", "folder", "file_or_folder"]
_KIND_NOUN = {"file": "file", "folder": "folder", "file_or_folder": "file or folder"}


def check_shape(name: str, x, expected: Sequence[int | str | None]) -> None:
    """Check the trailing dimensions of ``x`` against ``expected``.

    Args:
        name: argument name used in the error message.
        x: a tensor or array with a ``shape``.
        expected: trailing sizes; an int must match, a str or None matches any size. A leading ``"..."``
            allows any number of batch dimensions before the rest.

    Raises:
        ShapeError: with the expected and actual shapes.
    """
    shape = tuple(x.shape)
    exp = list(expected)
    batched = bool(exp) and exp[0] == "..."
    if batched:
        exp = exp[1:]
    ok = len(shape) >= len(exp) if batched else len(shape) == len(exp)
    if ok:
        tail = shape[len(shape) - len(exp):]
        ok = all(not isinstance(e, int) or e == s for e, s in zip(exp, tail))
    if not ok:
        want = "(" + ", ".join(str(e) for e in expected) + ")"
        raise ShapeError(f"{name}: expected shape {want}, got {shape}")


def _either(choices: Sequence) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    words = [str(c) for c in choices]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def check_choice(name: str, value: T, choices: Sequence[T]) -> T:
    """``value`` if it is one of ``choices``.

    Args:
        name: the Python parameter's name (the CLI maps it to its flag).
        value: the argument.
        choices: the accepted values, in the order the message lists them.

    Raises:
        ArgumentError: ``"preset: unknown value 'x'; choose fast or quality"``.
    """
    if value not in choices:
        raise ArgumentError(name, f"unknown value {value!r}; choose {_either(choices)}")
    return value


def resolve_user_file(path: str | os.PathLike | None, env_var: str, config_key: str, what: str, flag: str,
                      kind: UserPathKind | None = "file", example: str | None = None,
                      see: str = "docs/index.md") -> Path:
    """A file (or folder) the user brings (a FLAME model, released weights, a model's assets), found from
    ``path`` if given, else ``$env_var``, else ``config_key`` of the settings file
    (:func:`~headsplat.core.config.config_file`). Never a path relative to the working directory by default.

    Args:
        path: the explicit path (the flag's or the keyword's value); None or ``""`` looks further.
        env_var: the environment variable looked at next.
        config_key: the settings file's key looked at last.
        what: what it is, in messages: ``"no {what} given"``, ``"{path}: {what} file not found"``.
        flag: the CLI flag with its argument, in messages (``"--weights FILE"``).
        kind: what must be at the chosen path: a file, a folder, either; None: not checked here (the caller's
            reader reports a missing file itself).
        example: the settings file value shown in the message (default ``/path/to/file`` or ``/path/to/folder``).
        see: where the documentation says more (``"docs/flame.md"``).

    Raises:
        InputError: none of the three is set (the message says how to set each), the settings file is not valid
            JSON, or nothing of ``kind`` is at the chosen path.
    """
    chosen = configured_path(path, env_var, config_key)
    if chosen is None:
        shown = example or ("/path/to/folder" if kind == "folder" else "/path/to/file")
        raise InputError(f"no {what} given: pass {flag}, set {env_var}, or put "
                         f'{{"{config_key}": "{shown}"}} in {config_file()} (see {see})')
    if kind is not None:
        found = {"file": chosen.is_file(), "folder": chosen.is_dir(), "file_or_folder": chosen.exists()}[kind]
        if not found:
            raise InputError(f"{chosen}: {what} {_KIND_NOUN[kind]} not found")
    return chosen


def read_safetensors_with_metadata(path: str | os.PathLike, device: str | torch.device = "cpu"
                                   ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor of a safetensors file (on ``device``) and its string metadata (empty when it has none).

    Raises:
        InputError: ``"FILE: not a readable safetensors file (reason)"``: missing, truncated or not safetensors.
    """
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable safetensors file ({e})") from None
    return tensors, metadata


def read_safetensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, on ``device`` (no code is executed: safetensors holds tensors only).

    Raises:
        InputError: ``"FILE: not a readable safetensors file (reason)"``: missing, truncated or not safetensors.
    """
    return read_safetensors_with_metadata(path, device)[0]


def check_fov(fov: float | None) -> float | None:
    """A horizontal field of view in degrees given for a known camera (None: estimated), within 1..170.

    Raises:
        ArgumentError: outside that range (named ``fov``).
    """
    if fov is not None and not 1 <= fov <= 170:
        raise ArgumentError("fov", f"{fov:g} degrees: a field of view is between 1 and 170 degrees")
    return fov


def check_device(device: str) -> torch.device:
    """The ``torch.device`` of ``device`` ("cpu" or "cuda"), refusing CUDA when PyTorch sees no GPU.

    Raises:
        ArgumentError: another device (named ``device``), or CUDA without a visible GPU.
    """
    check_choice("device", device, ("cpu", "cuda"))
    if device == "cuda" and not torch.cuda.is_available():
        raise ArgumentError("device", "cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    return torch.device(device)
