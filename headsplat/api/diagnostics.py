"""``headsplat doctor``: what headsplat can use on this machine."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import torch

from headsplat.core.config import configured_path
from headsplat.core.errors import InputError, MissingDependencyError
from headsplat.face.assets import bundled_face_models
from headsplat.models.cap4d.assets import CONFIG_KEY, ENV, load_assets
from headsplat.models.registry import LAYOUTS, identify
from headsplat.rig.flame.loader import load_flame_file, resolve_flame_model


def doctor(flame_model: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
           cap4d_assets: str | os.PathLike | None = None) -> list[tuple[str, str, bool]]:
    """What headsplat can use here: (item, detail, ok) rows. ``flame_model`` (or the configured FLAME file)
    is loaded and described; without one FLAME is reported as not configured (it is optional). ``weights``:
    which released model the file is and whether its layout is complete (one row per problem).
    ``cap4d_assets`` (or the configured folder): CAP4D's assets, read and checked (optional)."""
    rows = [("headsplat", importlib.metadata.version("headsplat"), True),
            ("python", platform.python_version(), True),
            ("torch", f"{torch.__version__} (threads: {torch.get_num_threads()})", True),
            ("device", f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu", True)]
    for pkg in ("numpy", "opencv-python-headless", "av", "numba"):
        try:
            rows.append((pkg, importlib.metadata.version(pkg), True))
        except importlib.metadata.PackageNotFoundError:
            rows.append((pkg, "not installed", False))
    try:
        rows += [(f"face model {m.name}", f"sha256 {m.sha256[:16]} (from mediapipe {m.source.get('version', '?')} "
                  f"{Path(m.source.get('file', '?')).name})", True) for m in bundled_face_models()]
    except MissingDependencyError as e:
        rows.append(("face models", str(e), False))
    try:
        import gsplat  # noqa: F401

        rows.append(("gsplat", importlib.metadata.version("gsplat"), True))
    except ImportError:
        rows.append(("gsplat", "not installed (optional, CUDA only: pip install headsplat[cuda])", True))
    rows.append(_flame_row(flame_model))
    rows.append(_cap4d_assets_row(cap4d_assets))
    if weights is not None:
        rows += _weights_rows(weights)
    return rows


def _weights_rows(path) -> list[tuple[str, str, bool]]:

    try:
        name, problems, n = identify(path)
    except InputError as e:
        return [("weights", str(e), False)]
    if name is None:
        return [("weights", f"{path}: {n} tensors, not the layout of a model headsplat runs "
                 f"({', '.join(LAYOUTS)})", False)]
    if not problems:
        return [("weights", f"{path}: {name} checkpoint, layout complete ({n} tensors)", True)]
    return [("weights", f"{path}: {name} checkpoint with {p}", False) for p in problems]


def _flame_row(flame_model) -> tuple[str, str, bool]:

    try:
        path = resolve_flame_model(flame_model)
    except InputError:
        return ("FLAME model", "not configured (optional; see docs/flame.md)", True)
    try:
        d = load_flame_file(path)
    except InputError as e:
        return ("FLAME model", str(e), False)
    return ("FLAME model", f"{d.version}: {d.n_vertices} vertices, {len(d.faces)} faces, "
            f"{d.shapedirs.shape[-1]} shape and {d.exprdirs.shape[-1]} expression coefficients ({path})", True)


def _cap4d_assets_row(folder) -> tuple[str, str, bool]:

    if configured_path(folder, ENV, CONFIG_KEY) is None:
        return ("CAP4D assets", "not configured (optional; see docs/learned-models.md)", True)
    try:
        a = load_assets(folder)
    except InputError as e:
        return ("CAP4D assets", str(e), False)
    return ("CAP4D assets", f"{a.n_flame_vertices} + 200 template vertices, {len(a.head_vertices)} head vertices, "
            f"{len(a.expressions)} generation expressions ({a.folder})", True)
