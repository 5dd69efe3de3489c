"""Which released model a weights file is, by its layout (key names and shapes), for ``headsplat doctor``."""

from __future__ import annotations

import json
import os
from importlib import resources

import torch

from headsplat.core.errors import InputError
from headsplat.models.persistence import read_network_pickle
from headsplat.models.weights import key_mismatch, read_checkpoint

# model name -> (package holding its layout file, layout file); None: the layout is the network's own (a state
# dict the reference loads non-strictly, whose required keys are the network's)
LAYOUTS = {"GAGAvatar": ("headsplat.models.gagavatar", "checkpoint_layout.json"),
           "CAP4D MMDM": ("headsplat.models.cap4d", "checkpoint_layout.json"),
           "Portrait4D-v2": ("headsplat.models.portrait4d", "checkpoint_layout.json"),
           "OmniAvatar": ("headsplat.models.omniavatar", "checkpoint_layout.json"),
           "PD-FGC motion encoder": None}


def _network_layout(name: str) -> dict[str, tuple]:
    from headsplat.models.portrait4d.motion import FanEncoder
    from headsplat.models.weights import layout

    with torch.device("meta"):
        return layout({"PD-FGC motion encoder": FanEncoder}[name]())


def released_layout(name: str) -> tuple[dict[str, tuple], tuple[str, ...]]:
    """The released checkpoint's tensors (key -> shape) that the model uses, and the prefixes it ignores."""
    if LAYOUTS[name] is None:
        return _network_layout(name), ()
    package, filename = LAYOUTS[name]
    data = json.loads(resources.files(package).joinpath(filename).read_text())
    excluded = tuple(data.get("excluded_prefixes", ())) + tuple(data.get("not_covered_prefixes", ()))
    return ({k: tuple(v) for k, v in data["tensors"].items() if not k.startswith(excluded)}, excluded)


def identify(path: str | os.PathLike) -> tuple[str | None, list[str], int]:
    """(model name or None, problems with its layout, number of tensors) of a weights file.

    The model is the one whose released layout shares the most key names with the file (none when fewer than
    half of a layout's keys are there). Problems: missing, unexpected and mis-shaped keys (none: complete).

    Raises:
        InputError: the file cannot be read safely.
    """
    try:
        obj = read_checkpoint(path, mmap=True)
    except InputError as e:  # a StyleGAN persistence pickle (Portrait4D-v2, OmniAvatar): its G_ema, not run
        try:
            obj = read_network_pickle(path).state_dict
        except InputError:
            raise e from None
    if isinstance(obj, dict):
        for entry in ("model", "state_dict"):  # GAGAvatar's {"model": ...}, Lightning's {"state_dict": ...}
            if isinstance(obj.get(entry), dict):
                obj = obj[entry]
                break
    if not isinstance(obj, dict):
        raise InputError(f"{path}: not a checkpoint of tensors")
    tensors = {k: v for k, v in obj.items() if hasattr(v, "shape")}
    best, best_share = None, 0.0
    for name in LAYOUTS:
        layout, _ = released_layout(name)
        share = len(set(layout) & set(tensors)) / len(layout)
        if share > best_share:
            best, best_share = name, share
    if best is None or best_share < 0.5:
        return None, [], len(tensors)
    layout, excluded = released_layout(best)
    used = {k: v for k, v in tensors.items() if not k.startswith(excluded)}
    if LAYOUTS[best] is None:  # loaded non-strictly by the reference: keys the network lacks are no problem
        used = {k: v for k, v in used.items() if k in layout}
    return best, key_mismatch(layout, used), len(tensors)
