"""Load official FLAME model files (2020, 2023, 2023 Open) safely: no chumpy, nothing executed from the file.

The official files are Python 2 pickles holding numpy arrays, chumpy ``Ch`` objects (arrays wrapped in an
autodiff class) and a scipy sparse joint regressor. A restricted unpickler allows only the globals those need
and refuses any other with an error that names it; ``Ch`` objects and sparse matrices are read into stand-ins
and turned into plain arrays, so neither chumpy nor scipy's classes are instantiated by the file.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headsplat.core.errors import InputError
from headsplat.core.fileio import check_input_file
from headsplat.core.validate import resolve_user_file

N_JOINTS = 5  # global, neck, jaw, left eye, right eye


class _ChStandIn:
    """What a pickled ``chumpy.ch.Ch`` becomes: its state, from which the array ``x`` is taken."""

    def __setstate__(self, state):
        self.state = state


class _SparseStandIn:
    """What a pickled scipy sparse matrix becomes: its state (data, indices, indptr, shape)."""

    def __setstate__(self, state):
        self.state = state


def _reconstructor(cls, base, state):
    """``copy_reg._reconstructor`` limited to the stand-ins (old-protocol pickles of Ch and sparse)."""
    if cls not in (_ChStandIn, _SparseStandIn) or base is not object:
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r} from {base!r}")
    return object.__new__(cls)


def _numpy_global(name: str):
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return getattr(multiarray, name)


_SPARSE_MODULES = ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr",
                   "scipy.sparse.coo", "scipy.sparse._coo")
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_global("_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_global("_reconstruct"),
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_global("scalar"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_global("scalar"),
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("chumpy.ch", "Ch"): lambda: _ChStandIn,
    ("copy_reg", "_reconstructor"): lambda: _reconstructor,
    ("copyreg", "_reconstructor"): lambda: _reconstructor,
    ("__builtin__", "object"): lambda: object,
    ("builtins", "object"): lambda: object,
    ("__builtin__", "set"): lambda: set,
    ("builtins", "set"): lambda: set,
    ("collections", "OrderedDict"): lambda: dict,
    # Python 3 protocol-2 pickles (a re-saved file) write byte strings as _codecs.encode(text, "latin1").
    ("_codecs", "encode"): lambda: _latin1_encode,
}


def _latin1_encode(text, encoding="latin1"):
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module in _SPARSE_MODULES and name in ("csc_matrix", "csr_matrix", "coo_matrix"):
            return _SparseStandIn
        make = _ALLOWED.get((module, name))
        if make is None:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}: not something a FLAME file holds")
        return make()


@dataclass(frozen=True)
class FlameModelData:
    """The arrays of a FLAME model file.

    Attributes:
        v_template: (V, 3) float32 template vertices, metres.
        faces: (F, 3) int64.
        shapedirs: (V, 3, S) identity directions (S up to 300).
        exprdirs: (V, 3, E) expression directions (E up to 100).
        posedirs: (P, V * 3) pose-corrective directions, P = 9 × (joints − 1) (smplx layout).
        J_regressor: (J, V) dense joint regressor.
        parents: (J,) int64 parent joint, −1 for the root.
        weights: (V, J) skinning weights.
        version: what the file looks like ("FLAME 2020", "FLAME 2023", "FLAME 2023 (no jaw)",
            "FLAME 2023 Open" or "FLAME (version not recognised)").
        path: where it was read from.
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    exprdirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    parents: np.ndarray
    weights: np.ndarray
    version: str
    path: str

    @property
    def n_vertices(self) -> int:
        return self.v_template.shape[0]


def _to_array(value, key: str, path: Path) -> np.ndarray:
    if isinstance(value, _ChStandIn):
        state = value.state if isinstance(value.state, dict) else {}
        if "x" not in state:
            raise InputError(f"{path}: '{key}' is a chumpy object without its array ('x'); the file is damaged")
        value = state["x"]
    if isinstance(value, _SparseStandIn):
        return _sparse_to_dense(value, key, path)
    try:
        return np.asarray(value)
    except Exception as e:  # noqa: BLE001 - any failure here means a damaged entry
        raise InputError(f"{path}: '{key}' is not an array ({type(value).__name__}: {e})") from None


def _sparse_to_dense(value: _SparseStandIn, key: str, path: Path) -> np.ndarray:
    import scipy.sparse as sp

    st = value.state if isinstance(value.state, dict) else {}
    shape = st.get("_shape", st.get("shape"))
    try:
        fmt = st.get("format", "csc")
        if fmt == "coo" or "row" in st:
            m = sp.coo_matrix((np.asarray(st["data"]), (np.asarray(st["row"]), np.asarray(st["col"]))), shape=shape)
        else:
            cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
            m = cls((np.asarray(st["data"]), np.asarray(st["indices"]), np.asarray(st["indptr"])), shape=shape)
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(f"{path}: '{key}' is a damaged sparse matrix ({type(e).__name__}: {e})") from None
    return np.asarray(m.todense())


def detect_version(path: Path, raw: dict, n_expr: int) -> str:
    """The FLAME release a file looks like, from its official file name and contents."""
    name = path.name.lower()
    if path.suffix.lower() == ".pt":
        return "FLAME 2020 (converted, .pt)"
    if re.fullmatch(r"(generic|male|female)_model\.pkl", name):
        return "FLAME 2020"
    if "2023" in name and "open" in name:
        return "FLAME 2023 Open"
    if "2023" in name and "no_jaw" in name:
        return "FLAME 2023 (no jaw)"
    if "2023" in name:
        return "FLAME 2023"
    chumpy = isinstance(raw.get("shapedirs"), _ChStandIn)
    return "FLAME 2020 (by content)" if chumpy and n_expr == 100 else "FLAME (version not recognised)"


def _read_pickle(p: Path) -> dict:
    """The top-level dict of an official FLAME pickle, read without chumpy or arbitrary globals."""
    try:
        with open(p, "rb") as f:
            raw = _RestrictedUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        if str(e).startswith("refusing"):
            raise InputError(f"{p}: {e}") from None
        raise InputError(f"{p}: not a readable FLAME model file ({e})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise InputError(f"{p}: not a readable FLAME model file ({type(e).__name__}: {e})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{p}: not a FLAME model file (holds a {type(raw).__name__}, not a dict)")
    return raw


def _read_converted(p: Path) -> dict:
    """The arrays of a converted FLAME file (a torch file with FLAME's arrays under "flame_model"), as numpy."""
    import torch

    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{p}: not a readable converted FLAME file ({first})") from None
    model = obj.get("flame_model") if isinstance(obj, dict) else None
    if not isinstance(model, dict):
        raise InputError(f"{p}: not a converted FLAME file (expected a dict with a 'flame_model' entry)")
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in model.items()}


def load_flame_file(path: str | os.PathLike, n_shape: int = 300, n_expr: int = 100) -> FlameModelData:
    """Read and validate an official FLAME model file.

    Args:
        path: the ``.pkl`` file; or a ``.pt`` holding FLAME's arrays under ``"flame_model"`` (GAGAvatar's
            converted ``FLAME_with_eye.pt``), read with ``torch.load(weights_only=True)``.
        n_shape: identity directions to keep (at most what the file has, 300 in official files).
        n_expr: expression directions to keep (at most 100).

    Raises:
        InputError: missing, not a pickle, a disallowed global (named), or wrong keys/shapes (stated).
    """
    p = check_input_file(path)
    raw = _read_converted(p) if p.suffix.lower() == ".pt" else _read_pickle(p)
    needed = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")
    missing = [k for k in needed if k not in raw]
    if missing:
        raise InputError(f"{p}: not a FLAME model file: missing {', '.join(missing)}")
    a = {k: _to_array(raw[k], k, p) for k in needed}
    v = a["v_template"]
    if v.ndim != 2 or v.shape[1] != 3:
        raise InputError(f"{p}: v_template has shape {v.shape}, expected (V, 3)")
    nv = v.shape[0]

    def expect(key, shape):
        got = a[key].shape
        if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise InputError(f"{p}: {key} has shape {got}, expected {want}")

    expect("f", (None, 3))
    expect("shapedirs", (nv, 3, None))
    expect("J_regressor", (N_JOINTS, nv))
    expect("kintree_table", (2, N_JOINTS))
    expect("weights", (nv, N_JOINTS))
    expect("posedirs", (nv, 3, 9 * (N_JOINTS - 1)))
    faces = a["f"].astype(np.int64)
    if faces.min() < 0 or faces.max() >= nv:
        raise InputError(f"{p}: faces index vertices outside 0..{nv - 1}")
    total = a["shapedirs"].shape[2]
    file_shape = min(300, total - 100) if total > 100 else total
    file_expr = total - file_shape
    if n_shape > file_shape or n_expr > file_expr:
        raise InputError(f"{p}: has {file_shape} shape and {file_expr} expression directions; asked for "
                         f"{n_shape} and {n_expr}")
    sd = a["shapedirs"].astype(np.float32)
    parents = a["kintree_table"][0].astype(np.int64)
    parents[0] = -1
    return FlameModelData(
        v_template=v.astype(np.float32), faces=faces, shapedirs=sd[:, :, :n_shape],
        exprdirs=sd[:, :, file_shape:file_shape + n_expr],
        posedirs=a["posedirs"].astype(np.float32).reshape(nv * 3, -1).T.copy(),
        J_regressor=a["J_regressor"].astype(np.float32), parents=parents,
        weights=a["weights"].astype(np.float32), version=detect_version(p, raw, file_expr), path=str(p))


ENV_VAR = "HEADSPLAT_FLAME_MODEL"
CONFIG_KEY = "flame_model"


def resolve_flame_model(path: str | os.PathLike | None = None) -> Path:
    """Where the user's FLAME file is: ``path`` if given, else ``$HEADSPLAT_FLAME_MODEL``, else
    ``"flame_model"`` in the per-user config file (:func:`~headsplat.core.validate.resolve_user_file`). Never a
    path relative to the working directory by default; whether the file exists is :func:`load_flame_file`'s check.

    Raises:
        InputError: none of them is set (the message says how to set one).
    """
    return resolve_user_file(path, ENV_VAR, CONFIG_KEY, "FLAME model file", "--flame-model PATH", kind=None,
                             example="/path/to/flame2023_Open.pkl", see="docs/flame.md")
