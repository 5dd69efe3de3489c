"""Frames a chunk at a time: the steps that treat a video's frames independently (tracking's per-frame solves and
rig evaluations, the transfer of a driver's face offsets) run on slices of it, so their working memory
(Jacobians, per-expression fields: up to about 1 MB a frame) is that of one chunk, not of the whole video, and
their results are those of the whole batch."""

from __future__ import annotations

from typing import Iterator

FRAME_CHUNK = 64  # frames a chunk


def chunks(n: int, size: int | None = None) -> Iterator[slice]:
    """Slices covering ``range(n)`` in order, ``size`` frames each (default :data:`FRAME_CHUNK`; the last may be
    shorter)."""
    size = size or FRAME_CHUNK
    for a in range(0, n, size):
        yield slice(a, min(n, a + size))
