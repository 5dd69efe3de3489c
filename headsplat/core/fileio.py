"""Atomic file writes (a temporary sibling, then a rename: no half-written output is ever left) and the checks
of input files and of versioned headsplat formats."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from headsplat.core.errors import InputError, OutputError


def check_input_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path, raising :class:`InputError` when it is missing, a folder or empty."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, expected a file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty")
    return p


def check_writable(path: Path) -> Path:
    """Raise :class:`OutputError` unless ``path`` can be created: its folder exists and is writable and
    it is not a folder itself. Returns the folder."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"{path}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: output folder {parent} is not writable")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, expected a file path")
    return parent


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on failure delete it.

    The temporary name keeps the file's suffix (``suffix`` overrides it) so that writers that pick a format
    from the extension still work.
    """
    path = Path(path)
    parent = check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
                               dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes private files; outputs get the usual mode
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (an existing folder is
    swapped out only after the new one is complete), on failure it is removed."""
    path = Path(path)
    parent = check_writable(path) if not path.is_dir() else path.parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes private folders; outputs get the usual mode
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_format(header, where: str | os.PathLike, what: str, fmt: str, version: int, noun: str | None = None
                 ) -> dict:
    """``header`` (the parsed JSON of a versioned headsplat file or folder ``where`` of type ``what``), checked: a
    JSON object of format ``fmt`` and of a version at most ``version``.

    Args:
        noun: how the message names it in ``"not a headsplat NOUN"`` (default ``what``: ``"avatar"``; a
            tracking file says ``"tracking file"`` there and ``"tracking format version"`` after).

    Raises:
        InputError: another format, or a newer version than this headsplat reads.
    """
    if not isinstance(header, dict) or header.get("format") != fmt:
        found = header.get("format") if isinstance(header, dict) else None
        raise InputError(f"{where}: not a headsplat {noun or what} (format {found!r})")
    if int(header.get("version", 0)) > version:
        raise InputError(f"{where}: {what} format version {header['version']} is newer than this headsplat reads "
                         f"({version}); upgrade headsplat")
    return header


def read_format_json(path: Path, folder: Path, what: str, fmt: str, version: int, kind: str = "header") -> dict:
    """The JSON ``kind`` (header, index) of a versioned headsplat folder ``folder`` of type ``what`` (avatar,
    view set), checked: readable, of format ``fmt``, of a version at most ``version`` (:func:`check_format`).

    Raises:
        InputError: corrupt JSON, another format, or a newer version than this headsplat reads.
    """

    try:
        meta = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: corrupt {what} {kind} ({e})") from None
    return check_format(meta, folder, what, fmt, version)
