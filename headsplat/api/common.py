"""What the command groups share: output path checks and the inputs as a list of paths."""

from __future__ import annotations

import os
from pathlib import Path

from headsplat.core.errors import OutputError
from headsplat.core.fileio import check_writable


def check_output(path: str | os.PathLike, suffixes: tuple[str, ...], what: str, replaces: str | None = None
                 ) -> Path:
    """The output path, checked: its suffix, a writable folder to go in. ``replaces``: for outputs that are
    folders, the file that marks one of their kind (``avatar.json``): an existing folder with it is replaced
    (atomically, by the writer), any other existing folder is refused."""
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise OutputError(f"{p}: {what} must end in {' or '.join(suffixes)}")
    if replaces is not None and p.is_dir():
        if not (p / replaces).is_file():
            raise OutputError(f"{p}: exists and is not {what} (no {replaces}); choose another name")
        check_writable(p.parent / f"{p.name}.new")
        return p
    check_writable(p)
    return p


def as_paths(inputs) -> list[Path]:
    """One path or several (None: none), as a list of paths."""
    if inputs is None:
        return []
    return [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
