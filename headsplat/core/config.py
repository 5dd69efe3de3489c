"""The per-user settings file, where users name the files they bring (FLAME, released weights)."""

from __future__ import annotations

import os
from pathlib import Path


def config_file() -> Path:
    """The per-user settings file: ``$XDG_CONFIG_HOME/headsplat/config.json`` (``~/.config`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "headsplat" / "config.json"
