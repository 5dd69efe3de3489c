import json

import pytest
import torch
from safetensors.torch import save_file

from headsplat.core.errors import InputError
from headsplat.splat.binding import init_per_triangle
from headsplat.splat.store import load_gaussians, save_gaussians


def _bound():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    f = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return init_per_triangle(v, f, k=3, sh_degree=2)


def test_round_trip_keeps_every_field_and_the_header(tmp_path):
    gs = _bound()
    save_gaussians(tmp_path / "g.safetensors", gs, header={"rig": "open", "note": "é"})
    back, header = load_gaussians(tmp_path / "g.safetensors")
    assert header == {"rig": "open", "note": "é"}
    assert back.is_bound
    for name, t in gs.tensors():
        assert torch.equal(getattr(back, name), t), name


def test_refuses_newer_foreign_and_truncated_files(tmp_path):
    p = tmp_path / "g.safetensors"
    save_gaussians(p, _bound())
    raw = p.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:-40])
    with pytest.raises(InputError, match="cut.safetensors: not a readable safetensors file"):
        load_gaussians(tmp_path / "cut.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(InputError, match="model.safetensors: safetensors file without a headsplat header"):
        load_gaussians(tmp_path / "model.safetensors")
    meta = {"format": "headsplat.gaussians", "version": 99}
    save_file({"means": torch.zeros(1, 3)}, str(tmp_path / "new.safetensors"), metadata={"headsplat": json.dumps(meta)})
    with pytest.raises(InputError, match="format version 99 is newer"):
        load_gaussians(tmp_path / "new.safetensors")
