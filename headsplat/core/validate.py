"""One validation helper for public boundaries: shapes checked with expected vs actual in the message."""

from __future__ import annotations

from typing import Sequence

from headsplat.core.errors import ShapeError


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


def check_device(device: str):
    """The ``torch.device`` of ``device`` ("cpu" or "cuda"), refusing CUDA when PyTorch sees no GPU."""
    import torch

    from headsplat.core.errors import ArgumentError

    if device not in ("cpu", "cuda"):
        raise ArgumentError("device", f"unknown value {device!r}; choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ArgumentError("device", "cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    return torch.device(device)
