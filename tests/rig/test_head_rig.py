"""Both rigs satisfy the HeadRig protocol: every member it names exists on each, with a usable value."""

import copy
import inspect

import numpy as np
import pytest
import torch

from headsplat.core.errors import ArgumentError
from headsplat.rig.base import HeadRig, RigOutput
from headsplat.rig.factory import make_rig
from headsplat.rig.flame.head import FlameHead
from headsplat.rig.open_rig import OpenRig


def _members() -> set[str]:
    """The protocol's own members: its annotated attributes, properties and methods (``__call__`` included)."""
    own = {n for n, v in vars(HeadRig).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    return own | set(HeadRig.__annotations__) | {"__call__"}


@pytest.fixture(scope="module")
def flame(flame_head_file, tmp_path_factory):
    return FlameHead.from_file(flame_head_file, n_shape=20, n_expr=10, cache_dir=tmp_path_factory.mktemp("cache"))


def test_the_protocol_names_what_the_pipelines_use():
    assert _members() == {
        "kind", "expression_names", "frame_iterations", "triangles", "mouth_triangles", "mouth_upper",
        "mouth_material", "surface_bound", "eye_rims", "eyeball_triangles", "n_expressions", "identity_shape",
        "fit_points", "expression_prior_weights", "expression_lower_bounds", "expression_smoothing_weights",
        "point_weights", "neutral_landmarks", "triangle_parts", "landmarks", "__call__", "to"}


def test_both_rigs_are_head_rigs_with_every_member(rig, flame):
    for r in (rig, flame):
        assert isinstance(r, HeadRig)
        for name in _members():
            assert hasattr(r, name), f"{type(r).__name__} lacks {name}"
        for name in ("landmarks", "expression_prior_weights", "triangle_parts", "to"):
            assert callable(getattr(r, name))
    assert not isinstance(object(), HeadRig)


def test_protocol_methods_take_the_arguments_both_rigs_take(rig, flame):
    want = list(inspect.signature(HeadRig.landmarks).parameters)
    for r in (rig, flame):
        assert list(inspect.signature(r.landmarks).parameters) == want[1:]
        assert list(inspect.signature(r.forward).parameters)[:5] == ["identity", "scale", "expression", "rotation",
                                                                       "translation"]


@pytest.mark.parametrize("which", ["open", "flame"])
def test_members_have_the_documented_shapes_and_a_posed_rig_comes_out(rig, flame, which):
    r = rig if which == "open" else flame
    E = r.n_expressions
    assert r.kind == which and len(r.expression_names) == E and r.frame_iterations > 0
    n_avatar = len(r.triangles) + len(r.mouth_triangles)
    assert r.triangles.shape[1] == 3 and r.mouth_triangles.shape[1] == 3
    assert r.mouth_upper.shape == r.mouth_material.shape == (len(r.mouth_triangles),)
    for t in (r.surface_bound, r.eye_rims, r.eyeball_triangles, r.triangle_parts()):
        assert t.shape == (n_avatar,)
    for t in (r.expression_prior_weights(), r.expression_lower_bounds(), r.expression_smoothing_weights()):
        assert t.shape == (E,)
    assert r.point_weights().shape == (478,) and r.neutral_landmarks().shape == (478, 3)
    assert isinstance(r.fit_points, np.ndarray) and r.fit_points.max() < 478
    args = (torch.zeros(r.identity_shape), torch.tensor(1.0), torch.zeros(E), torch.zeros(3), torch.zeros(3))
    out = r(*args)
    assert isinstance(out, RigOutput) and out.vertices.shape[-1] == 3
    assert int(torch.cat([r.triangles, r.mouth_triangles]).max()) < out.vertices.shape[0]
    assert r.landmarks(*args).shape == (478, 3)
    moved = copy.deepcopy(r).to(torch.float64)  # ``to`` works in place: not on the shared fixture
    assert isinstance(moved, HeadRig) and moved.triangles.dtype == torch.int64
    assert moved(*(a.double() for a in args)).vertices.dtype == torch.float64


def test_make_rig_refuses_an_unknown_rig_by_the_rig_parameter():
    assert isinstance(make_rig("open"), OpenRig)
    with pytest.raises(ArgumentError, match="^rig: unknown value 'smplx'; choose open or flame$") as info:
        make_rig("smplx")
    assert info.value.param == "rig"
