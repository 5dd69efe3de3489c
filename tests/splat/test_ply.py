import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from headsplat.core.errors import InputError
from headsplat.splat.gaussians import GaussianSet
from headsplat.splat.ply import read_ply, write_ply


def _set(n, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GaussianSet(torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g),
                       torch.randn(n, generator=g), torch.randn(n, k, 3, generator=g))


@pytest.mark.parametrize("k", [1, 4, 9, 16])
def test_round_trip_is_lossless(tmp_path, k):
    gs = _set(257, k)
    write_ply(tmp_path / "a.ply", gs)
    back = read_ply(tmp_path / "a.ply")
    for name, t in gs.tensors():
        assert torch.equal(getattr(back, name), t), name
    assert not list(tmp_path.glob(".a.ply*")), "temporary file left behind"


def test_loads_a_file_written_the_way_the_reference_3dgs_code_writes_it(tmp_path):
    # The reference implementation stores features_dc (N, 1, 3) and features_rest (N, 15, 3) transposed to
    # channel-major before flattening, names attributes in this order, and writes binary with plyfile.
    n = 50
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    f_dc = rng.normal(size=(n, 1, 3)).astype(np.float32)
    f_rest = rng.normal(size=(n, 15, 3)).astype(np.float32)
    opac = rng.normal(size=(n, 1)).astype(np.float32)
    scale = rng.normal(size=(n, 3)).astype(np.float32)
    rot = rng.normal(size=(n, 4)).astype(np.float32)
    names = ["x", "y", "z", "nx", "ny", "nz"] + [f"f_dc_{i}" for i in range(3)] + [f"f_rest_{i}" for i in range(45)]
    names += ["opacity"] + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    attrs = np.concatenate([xyz, np.zeros_like(xyz), f_dc.transpose(0, 2, 1).reshape(n, -1),
                            f_rest.transpose(0, 2, 1).reshape(n, -1), opac, scale, rot], axis=1)
    elements = np.empty(n, dtype=[(a, "f4") for a in names])
    elements[:] = list(map(tuple, attrs))
    PlyData([PlyElement.describe(elements, "vertex")]).write(str(tmp_path / "ref.ply"))

    gs = read_ply(tmp_path / "ref.ply")
    assert gs.sh_degree == 3
    assert np.array_equal(gs.sh[:, 0].numpy(), f_dc[:, 0])
    assert np.array_equal(gs.sh[:, 1:].numpy(), f_rest)
    assert np.array_equal(gs.quats.numpy(), rot) and np.array_equal(gs.opacity_logits.numpy(), opac[:, 0])
    # and what we write has the same header, property for property
    write_ply(tmp_path / "ours.ply", gs)
    ours = PlyData.read(str(tmp_path / "ours.ply"))["vertex"].data.dtype.names
    assert list(ours) == names


def test_bad_files_raise_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="missing.ply: file not found"):
        read_ply(tmp_path / "missing.ply")
    (tmp_path / "junk.ply").write_bytes(b"not a ply at all")
    with pytest.raises(InputError, match="junk.ply: not a readable PLY"):
        read_ply(tmp_path / "junk.ply")
    pts = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(pts, "vertex")]).write(str(tmp_path / "cloud.ply"))
    with pytest.raises(InputError, match="cloud.ply: not a 3D Gaussian Splatting PLY: missing properties f_dc_0"):
        read_ply(tmp_path / "cloud.ply")
    write_ply(tmp_path / "ok.ply", _set(100, 4))
    data = (tmp_path / "ok.ply").read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.ply: not a readable PLY"):
        read_ply(tmp_path / "cut.ply")
