"""Rendering N-channel features with precomputed colours (``rasterize``), and covariances from non-unit
quaternions as the 3DGS CUDA rasterizer builds them (GAGAvatar's weights rely on it)."""

import pytest
import torch

from headsplat.core.errors import ShapeError
from headsplat.render.projection import covariances_3d, view_colors
from headsplat.render.rasterize import rasterize, render

from .scenes import front_camera, random_scene


def _features_and_grads(gs, colors, cam, backend, normalize_quats, background):
    leaves = [t.detach().clone().requires_grad_(True) for t in (gs.means, gs.quats, gs.scales, gs.opacities, colors)]
    out = rasterize(*leaves, cam, background=background, backend=backend, normalize_quats=normalize_quats)
    w = torch.randn(out.rgb.shape, generator=torch.Generator().manual_seed(5), dtype=out.rgb.dtype)
    grads = torch.autograd.grad((out.rgb * w).sum() + out.alpha.sum(), leaves)
    return out, grads


@pytest.mark.parametrize("normalize_quats", [True, False])
def test_cpu_matches_reference_for_32_channels_values_and_gradients(normalize_quats):
    gs = random_scene(250, 11)
    quats = gs.quats * torch.rand(len(gs), 1, dtype=gs.quats.dtype, generator=torch.Generator().manual_seed(2)) * 1.5
    gs = gs.map(lambda n, t: quats if n == "quats" else t)
    colors = torch.randn(len(gs), 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    bg = torch.linspace(-1, 1, 32, dtype=torch.float64)
    cam = front_camera(40, 36)
    ref, g_ref = _features_and_grads(gs, colors, cam, "torch", normalize_quats, bg)
    cpu, g_cpu = _features_and_grads(gs, colors, cam, "cpu", normalize_quats, bg)
    assert ref.rgb.shape == (36, 40, 32) and ref.alpha.max() > 0.5
    assert (ref.rgb - cpu.rgb.double()).abs().max() < 1e-5 * ref.rgb.abs().max()
    for name, a, b in zip(("means", "quats", "scales", "opacities", "colors"), g_ref, g_cpu):
        assert a.abs().max() > 0, name
        assert (a - b.double()).abs().max() / a.abs().max() < 2e-5, name


def test_rgb_render_is_rasterize_of_its_view_colours():
    gs = random_scene(100, 4)
    cam = front_camera(24, 24)
    a = render(gs, cam, background=0.3, backend="torch")
    colors = view_colors(gs.means, gs.sh, cam.viewmat)
    b = rasterize(gs.means, gs.quats, gs.scales, gs.opacities, colors, cam, background=0.3, backend="torch")
    assert torch.equal(a.rgb, b.rgb)


def test_unnormalised_covariance_is_the_3dgs_formula():
    # 3DGS computeCov3D: glm::mat3 R built column-major from the raw (r, x, y, z) = q (no normalisation);
    # M = S * R; Sigma = transpose(M) * M.
    q = torch.tensor([[0.3, -0.2, 0.05, 0.4], [2.0, 0.5, -1.0, 0.2]], dtype=torch.float64)
    s = torch.tensor([[0.1, 0.02, 0.05], [0.3, 0.1, 0.2]], dtype=torch.float64)
    for qi, si, cov in zip(q, s, covariances_3d(q, s, normalize_quats=False)):
        r, x, y, z = qi
        glm_cols = torch.stack([
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - r * z), 2 * (x * z + r * y)]),
            torch.stack([2 * (x * y + r * z), 1 - 2 * (x * x + z * z), 2 * (y * z - r * x)]),
            torch.stack([2 * (x * z - r * y), 2 * (y * z + r * x), 1 - 2 * (x * x + y * y)])])
        R = glm_cols.T  # glm's constructor fills columns
        M = torch.diag(si) @ R
        torch.testing.assert_close(cov, M.T @ M)
    # with unit quaternions both options agree, with non-unit ones they differ
    unit = q / q.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(covariances_3d(unit, s, False), covariances_3d(q, s, True))
    assert not torch.allclose(covariances_3d(q, s, False), covariances_3d(q, s, True))


def test_feature_background_must_match_the_channels():
    gs = random_scene(10, 0)
    with pytest.raises(ShapeError, match=r"background: expected shape \(5\), got \(3,\)"):
        rasterize(gs.means, gs.quats, gs.scales, gs.opacities, torch.rand(10, 5, dtype=torch.float64),
                  front_camera(8, 8), background=torch.zeros(3, dtype=torch.float64))
