"""StyleGAN/EG3D "persistence" network pickles read without running them: every object becomes an inert record.

NVlabs' ``legacy.load_network_pkl`` unpickles these files with the plain :mod:`pickle` module, and
``torch_utils.persistence._reconstruct_persistent_obj`` ``exec``'s the Python source embedded in each persistent
object (``module_src``). Here the same stream is read by a :class:`pickle.Unpickler` whose ``find_class`` knows
a short list of globals:

- ``torch_utils.persistence._reconstruct_persistent_obj`` builds a :class:`PickledObject` holding the class
  name, the pickled ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, ``_init_args``, ``_init_kwargs``,
  ...) and ``module_src`` as text, never compiled;
- tensors: ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` and ``torch.storage._load_from_bytes``,
  whose inner bytes are read with ``torch.load(weights_only=True)``; numpy arrays, torch dtypes, ``set``,
  ``collections.OrderedDict``, ``dnnlib``'s ``EasyDict`` (a dict);
- classes pickled by reference from packages that hold networks (``torch.nn.modules``, timm,
  segmentation_models_pytorch, the authors' ``training``/``models`` packages): a :class:`PickledObject` too,
  named by module and class, nothing imported.

Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) is refused with a one-line
:class:`~headsplat.core.errors.InputError` naming it, before anything of it is looked up.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from headsplat.core.errors import InputError

#: module prefixes whose classes a network pickle may name by reference (represented inertly, never imported)
BY_REFERENCE = ("torch.nn.modules.", "torch.nn.parameter", "timm.", "segmentation_models_pytorch.",
                "torchvision.models.", "training.", "models.", "dnnlib.")
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # protocol 2 pickles name these


class _Refused(pickle.UnpicklingError):
    """A global the reader does not take (the message is its dotted name)."""


@dataclass(eq=False)
class PickledObject:
    """One object of the pickle, as data: a persistent object (its class's source embedded) or an instance of a
    class pickled by reference.

    Attributes:
        module: the class's module for by-reference classes; ``""`` for persistent ones (their module is the
            embedded source).
        name: the class name.
        state: the pickled ``__dict__`` (for an ``nn.Module``: ``_parameters``, ``_buffers``, ``_modules``,
            ``_non_persistent_buffers_set``, ``training`` and its own attributes).
        module_src: the embedded source (persistent objects only), text that is never compiled.
        version: ``torch_utils.persistence``'s format version (persistent objects only).
        args: constructor arguments recorded by the pickle (by-reference objects built by a call).
    """
    module: str
    name: str
    state: dict = field(default_factory=dict)
    module_src: str | None = None
    version: int | None = None
    args: tuple = ()

    @property
    def persistent(self) -> bool:
        return self.module_src is not None

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}" if self.module else self.name

    def __setstate__(self, state) -> None:  # pickle's BUILD: (dict) or (dict, slots)
        if isinstance(state, tuple) and len(state) == 2:
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"{self.qualname}: state is a {type(state).__name__}, not a dict")
        self.state.update(state)

    def __repr__(self) -> str:
        kind = "persistent" if self.persistent else "by reference"
        return f"PickledObject({self.qualname}, {kind}, {len(self.state)} fields)"


class _ClassRef:
    """Base of the stand-ins for classes named by reference: calling one (``REDUCE``) or ``__new__`` (``NEWOBJ``)
    makes a :class:`PickledObject`; the stand-in itself is what an attribute holding the class gets."""
    pickled_module = ""
    pickled_name = ""

    def __new__(cls, *args, **kwargs):
        return PickledObject(cls.pickled_module, cls.pickled_name, args=args + ((kwargs,) if kwargs else ()))


_CLASS_REFS: dict[tuple[str, str], type] = {}


def _class_ref(module: str, name: str) -> type:
    key = (module, name)
    if key not in _CLASS_REFS:
        _CLASS_REFS[key] = type(name, (_ClassRef,), {"pickled_module": module, "pickled_name": name,
                                                     "__module__": __name__, "__qualname__": f"ref:{module}.{name}"})
    return _CLASS_REFS[key]


class _EasyDict(dict):
    """``dnnlib.util.EasyDict`` as a plain dict subclass (its pickled attribute state, if any, is dropped)."""

    def __setstate__(self, state) -> None:
        pass


# -- safe stand-ins for the globals a network pickle names ------------------------------------------------------
def _reconstruct_persistent_obj(meta) -> PickledObject:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        kind = meta.get("type") if isinstance(meta, dict) else type(meta).__name__
        raise pickle.UnpicklingError(f"persistent object of type {kind!r}; only 'class' is known")
    src, name, state = meta.get("module_src"), meta.get("class_name"), meta.get("state")
    if not isinstance(src, str) or not isinstance(name, str) or not isinstance(state, dict):
        raise pickle.UnpicklingError("persistent object without a text module_src, a class_name and a dict state")
    return PickledObject("", name, state=dict(state), module_src=src, version=meta.get("version"))


def _load_from_bytes(b):
    if not isinstance(b, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"storage bytes are a {type(b).__name__}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage deprecation: the stored format is what it is
        try:
            storage = torch.load(io.BytesIO(bytes(b)), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise pickle.UnpicklingError(f"a tensor storage is not plain data ({first})") from None
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError(f"a tensor storage holds a {type(storage).__name__}")
    return storage


def _check_ints(what: str, *values) -> None:
    for v in values:
        seq = v if isinstance(v, (tuple, list, torch.Size)) else (v,)
        if not all(isinstance(i, int) for i in seq):
            raise pickle.UnpicklingError(f"{what}: sizes, strides and offsets must be integers")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError(f"a tensor is built on a {type(storage).__name__}, not a storage")
    _check_ints("tensor", storage_offset, size, stride)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch._utils._rebuild_tensor_v2(storage, storage_offset, tuple(size), tuple(stride), False,
                                               collections.OrderedDict())


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"a parameter holds a {type(data).__name__}")
    return data.detach()


_TENSOR_BUILDERS = (_rebuild_tensor_v2, _rebuild_parameter)


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in _TENSOR_BUILDERS or not isinstance(args, tuple):
        raise pickle.UnpicklingError("a tensor subclass is rebuilt by something other than a tensor builder")
    return func(*args)


def _codecs_encode(text, encoding="utf-8"):  # protocol 2 writes bytes as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode of something other than latin-1 text")
    return text.encode("latin1")


def _np_reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("a numpy array of another class than ndarray")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_scalar(dtype, obj=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(obj, bytes):
        raise pickle.UnpicklingError("a numpy scalar that is not plain bytes of a numeric dtype")
    return np.frombuffer(obj, dtype=dtype, count=1)[0]


def _np_dtype(spec, align=False, copy=False):
    if not isinstance(spec, str):
        raise pickle.UnpicklingError("a numpy dtype not named by a string")
    return np.dtype(spec, align, copy)


def _copyreg_reconstructor(cls, base, state):
    if not (isinstance(cls, type) and issubclass(cls, _ClassRef)):
        raise pickle.UnpicklingError("copyreg._reconstructor of a class that is not named by reference")
    return cls()


_DTYPES = {n for n in dir(torch) if isinstance(getattr(torch, n, None), torch.dtype)}
_SAFE: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch._utils", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): torch.Tensor,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): _codecs_encode,
    ("copyreg", "_reconstructor"): _copyreg_reconstructor,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _np_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
}
_REFUSED_IN_ALLOWED = ("torch_utils.",)  # the loader's own machinery (``_src_to_module`` exec's source)


class _NetworkUnpickler(pickle.Unpickler):
    def __init__(self, file, by_reference: tuple[str, ...]):
        super().__init__(file)
        self.by_reference = by_reference

    def find_class(self, module: str, name: str):
        module = _PY2_MODULES.get(module, module)
        if (module, name) in _SAFE:
            return _SAFE[(module, name)]
        if module == "torch" and name in _DTYPES:
            return getattr(torch, name)
        if (not module.startswith(_REFUSED_IN_ALLOWED) and "." not in name and not name.startswith("__")
                and any(module.startswith(p) or module == p.rstrip(".") for p in self.by_reference)):
            return _class_ref(module, name)
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not used by network pickles")


def load(path: str | os.PathLike, by_reference: tuple[str, ...] = BY_REFERENCE) -> Any:
    """The whole pickle (for a network pickle: ``{'G': ..., 'D': ..., 'G_ema': ..., 'training_set_kwargs': ...,
    ...}``) with every object an inert :class:`PickledObject`, tensors as CPU tensors. Nothing in the file is
    imported or executed.

    Args:
        path: the ``.pkl`` file.
        by_reference: module prefixes whose classes may be named by reference.

    Raises:
        InputError: one line: the global the file names that is not a network's (``refused to load: unpickling
            it would call os.system``), or why the file is not a readable pickle.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _NetworkUnpickler(f, tuple(by_reference)).load()
    except _Refused as e:
        raise InputError(f"{path}: refused to load: unpickling it would call {e} (not a class or tensor of a "
                         "network pickle)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{path}: not a readable network pickle ({first})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None


def _plain(x):
    """EasyDicts as dicts, recursively through dicts, lists and tuples (records and tensors as they are)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_plain(v) for v in x)
    return x


def _is_module(obj) -> bool:
    return isinstance(obj, PickledObject) and isinstance(obj.state.get("_modules"), dict)


def module_state_dict(obj: PickledObject, prefix: str = "", where: str = "") -> dict[str, torch.Tensor]:
    """The keys and tensors ``obj.state_dict()`` would give for a pickled ``nn.Module``: per module its
    parameters, then its persistent buffers (those not in ``_non_persistent_buffers_set``; ``None`` entries
    skipped), then its children in order.

    Raises:
        InputError: ``obj`` (or a child) is not a pickled ``nn.Module``, or holds a non-tensor parameter.
    """
    if not _is_module(obj):
        raise InputError(f"{where or 'object'}: {prefix or 'the object'} is not a pickled torch module")
    out: dict[str, torch.Tensor] = {}
    skip = obj.state.get("_non_persistent_buffers_set") or set()
    for kind in ("_parameters", "_buffers"):
        for name, t in (obj.state.get(kind) or {}).items():
            if t is None or (kind == "_buffers" and name in skip):
                continue
            if not isinstance(t, torch.Tensor):
                raise InputError(f"{where or 'object'}: {prefix + name} is a {type(t).__name__}, not a tensor")
            out[prefix + name] = t
    for name, child in obj.state["_modules"].items():
        if child is not None:
            out.update(module_state_dict(child, f"{prefix}{name}.", where))
    return out


@dataclass(frozen=True)
class PickledNetwork:
    """One network of a persistence pickle, as data.

    Attributes:
        state_dict: the keys and tensors of the network's ``state_dict()``.
        class_name: the network's class (``TriPlaneGenerator``).
        init_args: its constructor's positional arguments as pickled.
        init_kwargs: its constructor's keyword arguments (``rendering_kwargs`` and the sizes), EasyDicts as dicts.
        record: the network's inert record (attributes that are neither parameters nor buffers, sources).
    """
    state_dict: dict[str, torch.Tensor]
    class_name: str
    init_args: tuple
    init_kwargs: dict
    record: PickledObject


def read_network_pickle(path: str | os.PathLike, entry: str = "G_ema",
                        by_reference: tuple[str, ...] = BY_REFERENCE) -> PickledNetwork:
    """The ``entry`` network (``G_ema``: the one inference uses) of a persistence pickle, read without running
    it: its state dict and its construction arguments.

    Raises:
        InputError: a refused global (named), an unreadable file, no ``entry``, or ``entry`` not a persistent
            torch module.
    """
    data = load(path, by_reference)
    if not isinstance(data, dict) or entry not in data:
        found = ", ".join(sorted(map(str, data))) if isinstance(data, dict) else type(data).__name__
        raise InputError(f"{path}: no {entry!r} network in the pickle (found {found})")
    net = data[entry]
    if not (_is_module(net) and net.persistent):
        raise InputError(f"{path}: {entry!r} is not a persistent torch module ({net!r})")
    args = net.state.get("_init_args", ())
    kwargs = net.state.get("_init_kwargs", {})
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise InputError(f"{path}: {entry!r} has no readable init_args/init_kwargs")
    return PickledNetwork(module_state_dict(net, where=str(path)), net.name, tuple(_plain(list(args))),
                          _plain(dict(kwargs)), net)


def walk(obj, visit: Callable[[PickledObject], None], _seen: set | None = None) -> None:
    """Call ``visit`` on every :class:`PickledObject` reachable from ``obj`` (once each)."""
    seen = set() if _seen is None else _seen
    if isinstance(obj, PickledObject):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        visit(obj)
        walk(obj.state, visit, seen)
        walk(obj.args, visit, seen)
    elif isinstance(obj, dict):
        for v in obj.values():
            walk(v, visit, seen)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            walk(v, visit, seen)


def describe(path: str | os.PathLike) -> list[str]:
    """One line per class in the pickle, for review: ``persistent NAME (N objects) source sha256 HEX`` or
    ``by reference MODULE.NAME (N objects)``; sorted."""
    counts: dict[tuple, int] = collections.Counter()

    def visit(o: PickledObject) -> None:
        src = hashlib.sha256(o.module_src.encode()).hexdigest() if o.persistent else None
        counts[(o.persistent, o.qualname, src)] += 1

    walk(load(path), visit)
    return sorted(f"persistent {q} ({n} objects) source sha256 {s}" if p else f"by reference {q} ({n} objects)"
                  for (p, q, s), n in counts.items())


def read_eg3d_network(path: str | os.PathLike, class_name: str, model: str) -> tuple[PickledNetwork, dict]:
    """The ``G_ema`` of an EG3D-family pickle (:func:`read_network_pickle`) and the keyword arguments that build it:
    its ``init_kwargs`` with the ``rendering_kwargs`` the pickled object holds merged over theirs (training
    updates the object's, and the reference's scripts copy them onto the network they rebuild).

    Raises:
        InputError: as :func:`read_network_pickle`, or a network of another class than ``class_name`` (``model``:
            the model's name in the message).
    """
    net = read_network_pickle(path)
    if net.class_name != class_name:
        raise InputError(f"{path}: G_ema is a {net.class_name}, not {model}'s {class_name}")
    kwargs = dict(net.init_kwargs)
    pickled_rk = net.record.state.get("rendering_kwargs")
    if isinstance(pickled_rk, dict):
        kwargs["rendering_kwargs"] = {**kwargs.get("rendering_kwargs", {}), **dict(pickled_rk)}
    return net, kwargs
