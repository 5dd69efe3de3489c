"""The benchmarks' stopwatch (imported by the scripts beside it: ``python benchmarks/NAME.py`` puts this folder
on the import path)."""

from __future__ import annotations

import time

import torch


def timed(fn, device: torch.device, repeat: int = 1):
    """(the last result of ``fn()``, seconds per call) over ``repeat`` calls, CUDA work waited for."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, (time.perf_counter() - t0) / repeat
