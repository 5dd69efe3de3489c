"""gsplat (CUDA) against the pure-torch reference. Skipped without a CUDA GPU and gsplat."""

import pytest
import torch

from headsplat.render.rasterize import render, resolve_backend

from .scenes import front_camera, random_scene

pytestmark = pytest.mark.cuda
PARAMS = ("means", "quats", "log_scales", "opacity_logits", "sh")


def _have_gsplat() -> bool:
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


needs_gpu = pytest.mark.skipif(not _have_gsplat(), reason="needs a CUDA GPU and gsplat (pip install 'headsplat[cuda]')")


def test_auto_picks_gsplat_on_cuda_and_cpu_otherwise():
    assert resolve_backend("auto", torch.device("cpu")) == "cpu"
    assert resolve_backend("auto", torch.device("cuda", 0)) == "gsplat"


def test_gsplat_on_cpu_tensors_is_a_clear_error():
    # the device is checked before gsplat is imported, so this is the error with or without gsplat installed
    with pytest.raises(ValueError, match="backend 'gsplat' needs CUDA tensors"):
        render(random_scene(5, 0, dtype=torch.float32), front_camera(16, 16, dtype=torch.float32), backend="gsplat")


def _run(gs, cam, backend, device):
    gs = gs.to(device, torch.float32).map(lambda n, t: t.detach().requires_grad_(t.is_floating_point()))
    out = render(gs, cam.to(device, torch.float32), background=torch.tensor([0.2, 0.3, 0.4], device=device),
                 backend=backend)
    g = torch.Generator().manual_seed(3)
    w = torch.randn(out.rgb.shape, generator=g).to(device)
    wa = torch.randn(out.alpha.shape, generator=g).to(device)
    loss = (out.rgb * w).sum() + (out.alpha * wa).sum()
    grads = torch.autograd.grad(loss, [getattr(gs, p) for p in PARAMS])
    return out, dict(zip(PARAMS, (x.cpu() for x in grads)))


@needs_gpu
@pytest.mark.parametrize("seed", [0, 1])
def test_gsplat_matches_reference(seed):
    # Opacities kept at or below 0.99: above it gsplat's own 0.999 cap differs from ours (see gsplat_backend).
    gs = random_scene(300, seed)
    gs = gs.map(lambda n, t: t.clamp_max(4.5) if n == "opacity_logits" else t)
    cam = front_camera(70, 45)
    ref, g_ref = _run(gs, cam, "torch", "cpu")
    gpu, g_gpu = _run(gs, cam, "gsplat", "cuda")
    for field in ("rgb", "alpha", "depth"):
        err = (getattr(ref, field) - getattr(gpu, field).cpu()).abs().max()
        assert err < 1e-4, f"{field}: {err:.2e}"
    for p in PARAMS:
        err = (g_ref[p] - g_gpu[p]).abs().max() / g_ref[p].abs().max()
        assert err < 1e-3, f"{p}: relative gradient error {err:.2e}"


@needs_gpu
@pytest.mark.parametrize("normalize_quats", [True, False])
def test_gsplat_matches_reference_for_32_feature_channels(normalize_quats):
    from headsplat.render.rasterize import rasterize

    gs = random_scene(300, 5, dtype=torch.float32)
    quats = gs.quats * 0.3  # non-unit: the two covariance options differ
    colors = torch.randn(len(gs), 32, generator=torch.Generator().manual_seed(1))
    cam = front_camera(64, 48, dtype=torch.float32)
    ref = rasterize(gs.means, quats, gs.scales, gs.opacities, colors, cam, backend="torch",
                    normalize_quats=normalize_quats)
    dev = torch.device("cuda")
    gpu = rasterize(gs.means.to(dev), quats.to(dev), gs.scales.to(dev), gs.opacities.to(dev), colors.to(dev),
                    cam.to(dev), backend="gsplat", normalize_quats=normalize_quats)
    assert gpu.rgb.shape == (48, 64, 32)
    assert (gpu.rgb.cpu() - ref.rgb).abs().max() < 1e-3 * ref.rgb.abs().max()
