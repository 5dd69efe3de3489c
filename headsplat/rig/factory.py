"""Choosing a head rig by name: the open rig (default, no licensed asset) or FLAME from the user's file."""

from __future__ import annotations

import os

from headsplat.core.errors import InputError

RIG_KINDS = ("open", "flame")


def make_rig(kind: str = "open", flame_model: str | os.PathLike | None = None,
             flame_embedding: str | os.PathLike | None = None):
    """The head rig called ``kind``.

    Args:
        kind: ``"open"`` or ``"flame"``.
        flame_model: FLAME file (default: ``$HEADSPLAT_FLAME_MODEL`` or the per-user config; see
            :func:`~headsplat.rig.flame.loader.resolve_flame_model`). Only used for ``"flame"``.
        flame_embedding: a MediaPipe landmark embedding .npz overriding the computed one (FLAME only).

    Raises:
        InputError: unknown kind; FLAME asked for but no model file configured, or the file is unusable.
    """
    if kind == "open":
        from headsplat.rig.open_rig import OpenRig

        return OpenRig()
    if kind == "flame":
        from headsplat.rig.flame.head import FlameHead
        from headsplat.rig.flame.loader import resolve_flame_model

        return FlameHead.from_file(resolve_flame_model(flame_model), embedding=flame_embedding)
    raise InputError(f"unknown rig {kind!r}; choose {' or '.join(RIG_KINDS)}")
