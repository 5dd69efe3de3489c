"""Every backend against the pure-torch reference: images and gradients of every Gaussian parameter.

Tolerances: the reference runs in float64, the CPU backend computes in float32. Images agree to 1e-5
(relative to the largest value, for depth). Gradients agree to 2e-5 of the largest gradient of that parameter;
measured errors are about 1e-6 (random scene) and 2e-6 (opaque, early-stopping scene, where the backward pass
recovers transmittance by dividing by 1 - alpha, as gsplat does).
"""

import pytest
import torch

from headsplat.core.errors import ArgumentError
from headsplat.render.rasterize import render
from headsplat.splat.gaussians import GaussianSet

from .scenes import front_camera, random_scene

PARAMS = ("means", "quats", "log_scales", "opacity_logits", "sh")


def _render_and_grads(gs: GaussianSet, cam, backend: str, seed: int = 7):
    gs = gs.map(lambda name, t: t.detach().clone().requires_grad_(True))
    out = render(gs, cam, background=torch.tensor([0.2, 0.3, 0.4]), backend=backend)
    g = torch.Generator().manual_seed(seed)
    w_rgb = torch.randn(out.rgb.shape, generator=g, dtype=out.rgb.dtype)
    w_a = torch.randn(out.alpha.shape, generator=g, dtype=out.rgb.dtype)
    w_d = torch.randn(out.depth.shape, generator=g, dtype=out.rgb.dtype)
    loss = (out.rgb * w_rgb).sum() + (out.alpha * w_a).sum() + 0.1 * (out.depth * w_d).sum()
    grads = torch.autograd.grad(loss, [getattr(gs, p) for p in PARAMS])
    return out, dict(zip(PARAMS, grads))


def _compare(gs, cam, grad_rtol):
    ref, g_ref = _render_and_grads(gs, cam, "torch")
    cpu, g_cpu = _render_and_grads(gs, cam, "cpu")
    assert ref.alpha.max() > 0.5, "scene draws nothing: the test would prove nothing"
    for field in ("rgb", "alpha", "depth"):
        a, b = getattr(ref, field), getattr(cpu, field)
        assert a.shape == b.shape
        assert (a - b.double()).abs().max() < 1e-5 * max(1.0, a.abs().max().item()), field
    for p in PARAMS:
        scale = g_ref[p].abs().max()
        assert scale > 0, p
        err = (g_ref[p] - g_cpu[p].double()).abs().max() / scale
        assert err < grad_rtol, f"{p}: relative gradient error {err:.2e}"


@pytest.mark.parametrize("seed", [0, 1])
def test_cpu_matches_reference_on_a_random_scene_with_partial_tiles(seed):
    _compare(random_scene(300, seed), front_camera(70, 45), grad_rtol=2e-5)


def test_cpu_matches_reference_where_pixels_saturate_and_stop_early():
    # Opaque, layered Gaussians: exercises the 0.99 alpha cap and the 1e-4 transmittance stop.
    gs = random_scene(400, 3, opacity_bias=5.0, spread=0.05)
    _compare(gs, front_camera(48, 48), grad_rtol=2e-5)


def test_cpu_matches_reference_with_culled_huge_and_offscreen_gaussians():
    gs = random_scene(200, 4, k=16)
    means = gs.means.clone()
    means[:5, 2] = 0.7  # behind the camera (camera at z = 0.6 looking towards -z)
    means[5:10, 2] = 0.595  # in front of the camera but nearer than the near plane
    means[10:15, 0] = 0.5  # far off to the side
    log_scales = gs.log_scales.clone()
    log_scales[15:18] = -1.5  # bigger than the image
    gs = GaussianSet(means, gs.quats, log_scales, gs.opacity_logits, gs.sh)
    _compare(gs, front_camera(40, 56), grad_rtol=2e-5)


def test_empty_scene_renders_background_and_zero_gradients():
    gs = random_scene(10, 5)
    gs = gs.map(lambda name, t: t + torch.tensor([0.0, 0.0, 5.0], dtype=t.dtype) if name == "means" else t)
    for backend in ("torch", "cpu"):
        out, grads = _render_and_grads(gs, front_camera(20, 20), backend)
        assert torch.allclose(out.rgb, torch.tensor([0.2, 0.3, 0.4], dtype=out.rgb.dtype).expand(20, 20, 3))
        assert all(g.abs().max() == 0 for g in grads.values())


def test_reference_gradcheck_float64():
    gs = random_scene(6, 8, spread=0.03).map(lambda n, t: t.requires_grad_(True) if t.is_floating_point() else t)
    cam = front_camera(12, 10, distance=0.35)

    def fn(means, quats, log_scales, opacity_logits, sh):
        out = render(GaussianSet(means, quats, log_scales, opacity_logits, sh), cam, background=0.5, backend="torch")
        return out.rgb, out.alpha, out.depth

    assert torch.autograd.gradcheck(fn, tuple(getattr(gs, p) for p in PARAMS), eps=1e-6, atol=1e-5)


def test_unknown_backend_is_refused():
    with pytest.raises(ArgumentError, match="backend: unknown value 'vulkan'; choose auto, cpu, torch or gsplat"):
        render(random_scene(3, 0), front_camera(8, 8), backend="vulkan")


def test_background_gradient_matches_reference():
    gs = random_scene(100, 9)
    grads = {}
    for backend in ("torch", "cpu"):
        bg = torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64, requires_grad=True)
        out = render(gs, front_camera(30, 20), background=bg, backend=backend)
        (out.rgb * torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64)).sum().backward()
        grads[backend] = bg.grad
    assert torch.allclose(grads["torch"], grads["cpu"].double(), rtol=1e-5)
    assert grads["torch"].abs().min() > 0


def test_non_finite_gaussians_are_culled_not_crashing():
    gs = random_scene(50, 10, dtype=torch.float32)
    means = gs.means.clone()
    means[0] = float("nan")
    means[1, 0] = float("inf")
    log_scales = gs.log_scales.clone()
    log_scales[2] = float("inf")
    bad = GaussianSet(means, gs.quats, log_scales, gs.opacity_logits, gs.sh)
    good = GaussianSet(means[3:], gs.quats[3:], log_scales[3:], gs.opacity_logits[3:], gs.sh[3:])
    cam = front_camera(32, 32, dtype=torch.float32)
    out = render(bad, cam, backend="cpu")
    assert torch.isfinite(out.rgb).all()
    assert torch.allclose(out.rgb, render(good, cam, backend="cpu").rgb)
