import pytest
import torch

from headsplat.core.errors import ShapeError
from headsplat.splat.binding import init_per_triangle
from headsplat.splat.gaussians import GaussianSet, concatenate, prune, rgb_to_sh_dc, select, sh_degree_of


def _free(n=6, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GaussianSet(torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g),
                       torch.randn(n, generator=g), torch.randn(n, k, 3, generator=g))


def _tetra():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    f = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return v, f


def test_select_prune_concatenate_keep_every_tensor_in_step():
    gs = _free()
    keep = torch.tensor([True, False, True, True, False, False])
    sub = select(gs, keep)
    assert len(sub) == 3
    for name, t in sub.tensors():
        assert torch.equal(t, getattr(gs, name)[keep]), name
    pr = prune(gs, ~keep)
    assert torch.equal(pr.sh, sub.sh)
    both = concatenate([sub, select(gs, torch.tensor([5, 1]))])
    assert torch.equal(both.means[3:], gs.means[[5, 1]]) and both.opacity_logits.shape == (5,)


def test_concatenate_refuses_different_sh_degree_and_fields():
    with pytest.raises(ShapeError, match="SH degrees differ"):
        concatenate([_free(k=4), _free(k=1)])
    v, f = _tetra()
    with pytest.raises(ShapeError, match="different fields"):
        concatenate([_free(k=1), init_per_triangle(v, f)])


def test_shape_errors_name_the_field():
    gs = _free()
    with pytest.raises(ShapeError, match=r"quats: expected shape \(6, 4\), got \(5, 4\)"):
        GaussianSet(gs.means, gs.quats[:5], gs.log_scales, gs.opacity_logits, gs.sh)
    with pytest.raises(ShapeError, match="1, 4, 9 or 16"):
        GaussianSet(gs.means, gs.quats, gs.log_scales, gs.opacity_logits, torch.zeros(6, 5, 3))
    with pytest.raises(ShapeError, match="missing"):
        GaussianSet(gs.means, gs.quats, gs.log_scales, gs.opacity_logits, gs.sh,
                    parent=torch.zeros(6, dtype=torch.long))


def test_to_dtype_keeps_parent_integer_and_activations():
    v, f = _tetra()
    gs = init_per_triangle(v, f, k=2, opacity=0.3).to(dtype=torch.float64)
    assert gs.means.dtype == torch.float64 and gs.parent.dtype == torch.int64
    assert torch.allclose(gs.opacities, torch.full((8,), 0.3, dtype=torch.float64))
    assert sh_degree_of(16) == 3 and gs.with_sh_degree(2).sh.shape == (8, 9, 3)
    assert torch.equal(gs.with_sh_degree(2).with_sh_degree(0).sh, gs.sh)


def test_rgb_to_sh_dc_renders_back_the_colour():
    rgb = torch.tensor([0.1, 0.5, 0.9])
    assert torch.allclose(0.28209479177387814 * rgb_to_sh_dc(rgb) + 0.5, rgb)

