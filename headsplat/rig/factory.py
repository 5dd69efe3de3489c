"""Choosing a head rig by name: the open rig (default, no licensed asset) or FLAME from the user's file."""

from __future__ import annotations

import os

from headsplat.core.validate import check_choice
from headsplat.rig.base import HeadRig

RIG_KINDS = ("open", "flame")


def make_rig(kind: str = "open", flame_model: str | os.PathLike | None = None,
             flame_embedding: str | os.PathLike | None = None) -> HeadRig:
    """The head rig called ``kind``.

    Args:
        kind: ``"open"`` or ``"flame"``.
        flame_model: FLAME file (default: ``$HEADSPLAT_FLAME_MODEL`` or the per-user config; see
            :func:`~headsplat.rig.flame.loader.resolve_flame_model`). Only used for ``"flame"``.
        flame_embedding: a MediaPipe landmark embedding .npz overriding the computed one (FLAME only).

    Raises:
        ArgumentError: unknown kind (named ``rig``: the commands' parameter and flag this comes from).
        InputError: FLAME asked for but no model file configured, or the file is unusable.
    """
    check_choice("rig", kind, RIG_KINDS)
    if kind == "open":
        from headsplat.rig.open_rig import OpenRig  # each rig's modules load only when that rig is asked for

        return OpenRig()
    from headsplat.rig.flame.head import FlameHead
    from headsplat.rig.flame.loader import resolve_flame_model

    return FlameHead.from_file(resolve_flame_model(flame_model), embedding=flame_embedding)
