"""The per-user settings file, where users name the files they bring (FLAME, released weights)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from headsplat.core.errors import InputError


def config_file() -> Path:
    """The per-user settings file: ``$XDG_CONFIG_HOME/headsplat/config.json`` (``~/.config`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "headsplat" / "config.json"


def configured_path(path: str | os.PathLike | None, env_var: str, config_key: str) -> Path | None:
    """A user-supplied path: ``path`` if given, else ``$env_var``, else ``config_key`` of the settings file;
    None when none is set.

    Raises:
        InputError: the settings file is not valid JSON.
    """
    if path:
        return Path(path).expanduser()
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser()
    cfg = config_file()
    if cfg.is_file():
        try:
            value = json.loads(cfg.read_text()).get(config_key)
        except (json.JSONDecodeError, AttributeError) as e:
            raise InputError(f"{cfg}: not a valid headsplat config file ({e})") from None
        if value:
            return Path(value).expanduser()
    return None
