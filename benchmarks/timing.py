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


def machine(device: torch.device) -> dict:
    """What a benchmark ran on: the device's name, PyTorch's CPU threads and its version."""
    return {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def matmul_seconds(device: torch.device) -> float:
    """Seconds per 1024² float32 matmul on ``device`` (10 timed): the baseline beside a benchmark's figures,
    since machines of this kind vary up to 3x between sessions (``2 * 1024 ** 3`` flops)."""
    a = torch.randn(1024, 1024, device=device)
    return timed(lambda: a @ a, device, 10)[1]
