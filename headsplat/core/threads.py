"""PyTorch's intra-op CPU threads, set for a block of work and restored after."""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def cpu_threads(threads: int | None, device: torch.device | str = "cpu"):
    """Within the block, PyTorch's intra-op threads are ``threads`` when ``device`` is the CPU (``None``: as they
    are); the previous count comes back after, whatever happens in the block."""
    before = torch.get_num_threads()
    if threads is not None and torch.device(device).type == "cpu":
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
