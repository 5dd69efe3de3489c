"""The fit's state, loss and result: density plans keep every per-Gaussian tensor in step; results are frozen."""

from dataclasses import FrozenInstanceError, fields

import pytest
import torch

from headsplat.avatar.config import CreateConfig
from headsplat.avatar.fit import PER_GAUSSIAN_PARAMS, FitResult, FitState
from headsplat.splat.binding import init_per_triangle, triangle_frames
from headsplat.splat.deformation import new_deformation
from headsplat.splat.density import DensityPlan


def _state(n_per_triangle=3):
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    f = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    gs = init_per_triangle(v, f, k=n_per_triangle).with_sh_degree(1)
    n = len(gs)
    g = torch.Generator().manual_seed(0)
    field = new_deformation(n, 5, rank=4, hidden=7, generator=g)
    interior, surface, rim = (torch.arange(n) % m == 0 for m in (3, 4, 5))
    st = FitState.start(gs, CreateConfig(), triangle_frames(v, f), field, interior, surface, rim, gradient_stats=True)
    # one step, so that every parameter has Adam moments to carry
    loss = sum((p * torch.randn(p.shape, generator=g)).sum() for p in st.params.values())
    st.step(loss, max_anisotropy=4.0)
    return st


def test_every_per_gaussian_tensor_of_the_state_is_taken_by_a_plan():
    """A tensor field added to FitState must be marked as per-Gaussian (or be one apply rebuilds)."""
    st = _state()
    n = len(st)
    for f in fields(st):
        value = getattr(st, f.name)
        if isinstance(value, torch.Tensor) and f.name != "neighbours":
            assert f.metadata.get("rows"), f.name
            assert len(value) == n, f.name
    for name, p in st.params.items():
        assert (name in PER_GAUSSIAN_PARAMS) == (len(p) == n), name


def test_apply_keeps_parameters_moments_and_masks_in_step():
    st = _state()
    n = len(st)
    before = {f.name: getattr(st, f.name) for f in fields(st) if f.metadata.get("rows")}
    params = {k: v.detach().clone() for k, v in st.params.items()}
    moments = {k: st.optimizer.state[v]["exp_avg"].clone() for k, v in st.params.items()}
    # prune 1 and 4, keep the rest, clone 2, split 5 into two children
    kept = torch.tensor([i for i in range(n) if i not in (1, 4, 5)])
    source = torch.cat([kept, torch.tensor([2, 5, 5])])
    m = len(source)
    fresh = torch.arange(m) >= len(kept)
    offset = torch.zeros(m, 3)
    offset[-2:] = torch.tensor([[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]])
    delta = torch.zeros(m)
    delta[-2:] = -0.5
    shared = st.params["w1"]
    st.apply(DensityPlan(source, offset, delta, fresh))

    assert len(st) == m and st.added == 3 and st.pruned == 3
    for name, t in before.items():
        assert torch.equal(getattr(st, name), t[source]), name
    assert torch.equal(st.origin, source)
    assert st.params["w1"] is shared
    for name in PER_GAUSSIAN_PARAMS:
        p = st.params[name]
        expected = params[name][source]
        if name == "local_means":
            expected = expected + offset
        elif name == "local_log_scales":
            expected = expected + delta[:, None]
        assert torch.equal(p.detach(), expected), name
        assert p.requires_grad and p.is_leaf
        state = st.optimizer.state[p]
        assert torch.equal(state["exp_avg"][~fresh], moments[name][source[~fresh]]), name
        assert not state["exp_avg"][fresh].any() and not state["exp_avg_sq"][fresh].any(), name
        assert any(p is q for group in st.optimizer.param_groups for q in group["params"]), name
    assert st.neighbours.shape[0] == m and int(st.neighbours.max()) < m
    assert len(st.grad_stats.total) == m and not st.grad_stats.count.any()


def test_the_bounds_hold_the_interior_after_a_step():
    st = _state()
    inside = st.interior
    ls, op = st.params["local_log_scales"], st.params["opacity_logits"]
    assert (ls[inside] <= st.max_log_scales[inside]).all()
    assert (op[inside] >= st.min_opacity_logits[inside]).all()
    gs, field = st.result()
    assert len(gs) == len(field) == len(st)
    assert not field.basis[inside, :, 3:].any()


def test_fit_result_is_frozen():
    st = _state()
    gs, field = st.result()
    res = FitResult(gs, field, st.origin, {}, (1.0, 0.5), {"iterations": 2})
    with pytest.raises(FrozenInstanceError):
        res.losses = ()
    moved = res.to("cpu")
    assert moved is not res and torch.equal(moved.origin, res.origin)
