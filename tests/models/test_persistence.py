"""The persistence-pickle reader on pickles built here in the released structure (no reference code): persistent
objects with embedded source, classes by reference, EasyDicts; and hostile variants whose payloads must not run.

The pickles are written the way ``torch_utils.persistence`` writes them: a persistent object reduces to
``(torch_utils.persistence._reconstruct_persistent_obj, (meta,))`` with ``meta = dict(type='class', version=6,
module_src=..., class_name=..., state=obj.__dict__)``; the two stand-in modules exist only while pickling.
"""

import builtins
import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from conftest import persistent_reduce, reconstruct_persistent_obj
from torch import nn

from headsplat.core.errors import InputError
from headsplat.models import persistence
from headsplat.models.persistence import PickledObject, describe, load, read_network_pickle

SOURCE = "import torch\nclass Generator(torch.nn.Module):\n    pass\n"


class _EasyDict(dict):
    pass


@pytest.fixture
def stand_ins(monkeypatch, torch_utils_stand_in):
    """``torch_utils.persistence`` and ``dnnlib.util`` as the pickler must find them (by name only)."""
    dn, dnu = types.ModuleType("dnnlib"), types.ModuleType("dnnlib.util")
    _EasyDict.__module__, _EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    dnu.EasyDict = _EasyDict
    dn.util = dnu
    for name, mod in (("dnnlib", dn), ("dnnlib.util", dnu)):
        monkeypatch.setitem(sys.modules, name, mod)


class _Pickler(pickle.Pickler):
    """Modules flagged ``_persistent_src`` pickle as persistent objects; everything else as pickle does."""

    def reducer_override(self, obj):
        src = getattr(type(obj), "_persistent_src", None)
        if isinstance(obj, nn.Module) and src is not None:
            return persistent_reduce(type(obj).__name__, dict(obj.__dict__), src)
        return NotImplemented


def _dump(obj, path, protocol=4):
    with open(path, "wb") as f:
        _Pickler(f, protocol=protocol).dump(obj)
    return path


class Layer(nn.Module):
    _persistent_src = SOURCE

    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n, 3))
        self.bias = None
        self.register_buffer("resample_filter", torch.ones(4, 4) / 16)
        self.register_buffer("scratch", torch.zeros(2), persistent=False)
        self.weight_gain = 0.5
        self._init_args, self._init_kwargs = (n,), {}


class Generator(nn.Module):
    _persistent_src = SOURCE

    def __init__(self):
        super().__init__()
        self.mapping = Layer(4)
        self.decoder = nn.Sequential(nn.Linear(3, 2), nn.Softplus())  # by reference, as OSGDecoder's net
        self.w_avg = nn.Parameter(torch.arange(5.0))
        self.plane_axes = torch.eye(3)  # a plain attribute, not state
        self.act_layer = nn.GELU  # a class held as a value
        self.view = self.w_avg.detach()[1:4]  # a view sharing the parameter's storage
        self.stats = np.arange(3, dtype=np.float32)
        self._init_args = ()
        self._init_kwargs = {"z_dim": 512, "rendering_kwargs": _EasyDict(box_warp=1.3, ray_start="auto",
                                                                          c_scale=1.0, depth_resolution=48),
                             "mapping_kwargs": _EasyDict(num_layers=2)}


def _network_pickle(tmp_path, protocol=4):
    torch.manual_seed(0)
    g = Generator()
    _dump({"G": g, "D": Layer(2), "G_ema": g, "training_set_kwargs": _EasyDict(resolution=512),
           "augment_pipe": None}, tmp_path / "network.pkl", protocol)
    return g


# -- the released structure ------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, 4])
def test_reads_g_ema_state_dict_and_init_kwargs(tmp_path, stand_ins, protocol):
    g = _network_pickle(tmp_path, protocol)
    net = read_network_pickle(tmp_path / "network.pkl")
    expected = g.state_dict()
    assert list(net.state_dict) == list(expected)  # torch's order: own params, buffers, then children
    assert "mapping.scratch" not in net.state_dict and "plane_axes" not in net.state_dict
    for k, v in expected.items():
        assert net.state_dict[k].dtype == v.dtype and torch.equal(net.state_dict[k], v), k
    assert net.class_name == "Generator" and net.init_args == ()
    assert net.init_kwargs == {"z_dim": 512, "mapping_kwargs": {"num_layers": 2},
                               "rendering_kwargs": {"box_warp": 1.3, "ray_start": "auto", "c_scale": 1.0,
                                                    "depth_resolution": 48}}
    rec = net.record
    assert rec.persistent and rec.module_src == SOURCE and rec.version == 6
    assert torch.equal(rec.state["plane_axes"], torch.eye(3))
    assert torch.equal(rec.state["view"], g.w_avg.detach()[1:4])
    np.testing.assert_array_equal(rec.state["stats"], np.arange(3, dtype=np.float32))
    seq = rec.state["_modules"]["decoder"]
    assert not seq.persistent and seq.qualname == "torch.nn.modules.container.Sequential"
    assert rec.state["act_layer"].pickled_name == "GELU"  # a class value stays a stand-in, never imported


def test_describe_lists_classes_and_source_hash(tmp_path, stand_ins):
    _network_pickle(tmp_path)
    lines = describe(tmp_path / "network.pkl")
    assert any(line.startswith("persistent Layer (2 objects) source sha256 ") for line in lines)
    assert "by reference torch.nn.modules.linear.Linear (1 objects)" in lines


def test_persistent_object_tree_has_records_not_classes(tmp_path, stand_ins):
    _network_pickle(tmp_path)
    data = load(tmp_path / "network.pkl")
    assert isinstance(data["G_ema"], PickledObject) and data["G"] is data["G_ema"]
    assert data["training_set_kwargs"] == {"resolution": 512}


def test_missing_entry_and_non_module_entry(tmp_path, stand_ins):
    _dump({"G": 1}, tmp_path / "a.pkl")
    with pytest.raises(InputError, match="no 'G_ema' network in the pickle"):
        read_network_pickle(tmp_path / "a.pkl")
    _dump({"G_ema": [1, 2]}, tmp_path / "b.pkl")
    with pytest.raises(InputError, match="'G_ema' is not a persistent torch module"):
        read_network_pickle(tmp_path / "b.pkl")
    (tmp_path / "c.pkl").write_bytes(b"\x80\x04garbage")
    with pytest.raises(InputError, match="not a readable network pickle"):
        load(tmp_path / "c.pkl")


# -- hostile pickles -------------------------------------------------------------------------------------------
def test_payload_in_module_src_never_runs(tmp_path, stand_ins):
    marker = tmp_path / "pwned"

    class Evil(nn.Module):
        _persistent_src = f"open({str(marker)!r}, 'w').write('ran')\nclass Evil: pass\n"

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(2))
            self._init_args, self._init_kwargs = (), {}

    _dump({"G_ema": Evil()}, tmp_path / "evil.pkl")
    net = read_network_pickle(tmp_path / "evil.pkl")
    assert not marker.exists()
    assert "pwned" in net.record.module_src and torch.equal(net.state_dict["w"], torch.ones(2))
    describe(tmp_path / "evil.pkl")
    assert not marker.exists()


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("func, args", [
    (os.system, ("touch {marker}",)),
    (builtins.eval, ("open({marker!r}, 'w')",)),
    (builtins.exec, ("open({marker!r}, 'w')",)),
    (subprocess.Popen, (["touch", "{marker}"],)),
    (builtins.getattr, ("text", "upper")),
    (torch.load, ("{marker}",)),
])
def test_reduce_calling_a_function_is_refused_by_name(tmp_path, stand_ins, func, args):
    marker = tmp_path / "pwned"
    args = tuple(a.format(marker=str(marker)) if isinstance(a, str) else
                 [x.format(marker=str(marker)) for x in a] if isinstance(a, list) else a for a in args)
    g = Generator()
    g.payload = _Reduce(func, args)  # hidden in a persistent object's state, as an attack would be
    _dump({"G_ema": g}, tmp_path / "evil.pkl")
    name = f"{func.__module__}.{func.__qualname__}"
    with pytest.raises(InputError) as err:
        read_network_pickle(tmp_path / "evil.pkl")
    msg = str(err.value)
    assert "\n" not in msg and f"refused to load: unpickling it would call {name} " in msg
    assert not marker.exists()


def test_loader_machinery_is_refused(tmp_path, stand_ins):
    fake = types.FunctionType(reconstruct_persistent_obj.__code__, {}, "_src_to_module")
    fake.__module__, fake.__qualname__ = "torch_utils.persistence", "_src_to_module"
    sys.modules["torch_utils.persistence"]._src_to_module = fake
    _dump({"G_ema": _Reduce(fake, ("print(1)",))}, tmp_path / "evil.pkl")
    with pytest.raises(InputError, match=r"would call torch_utils\.persistence\._src_to_module "):
        load(tmp_path / "evil.pkl")


def test_hostile_tensor_storage_is_refused(tmp_path, stand_ins):
    marker = tmp_path / "pwned"
    inner = pickle.dumps(_Reduce(os.system, (f"touch {marker}",)))
    _dump({"G_ema": _Reduce(persistence._load_from_bytes, (inner,))}, tmp_path / "evil.pkl")
    # the stand-in's own name is not one a file may use: only torch.storage._load_from_bytes reads bytes
    with pytest.raises(InputError, match="refused to load"):
        load(tmp_path / "evil.pkl")

    class Store:
        def __reduce__(self):
            return torch.storage._load_from_bytes, (inner,)

    _dump({"G_ema": Store()}, tmp_path / "evil2.pkl")
    with pytest.raises(InputError, match="a tensor storage is not plain data"):
        load(tmp_path / "evil2.pkl")
    assert not marker.exists()


def test_unknown_by_reference_module_is_refused(tmp_path, stand_ins):
    _dump({"G_ema": types.SimpleNamespace(a=1)}, tmp_path / "ns.pkl")
    with pytest.raises(InputError, match=r"would call types\.SimpleNamespace "):
        load(tmp_path / "ns.pkl")
