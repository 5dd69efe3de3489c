"""The fit's image losses: SSIM's separable blur as banded matrices equals a replicate-padded Gaussian
convolution, values and gradients, borders included."""

import torch
import torch.nn.functional as F

from headsplat.avatar.losses import _window, blur_matrix, ssim_map


def _conv_ssim(a, b, window=11, sigma=1.5):
    """SSIM by depthwise convolutions with replicate padding (the textbook form)."""
    g = _window(window, sigma, a.dtype, a.device)
    k = (g[:, None] * g[None, :])[None, None].repeat(15, 1, 1, 1)
    x, y = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
    stats = torch.cat([x, y, x * x, y * y, x * y], 1)
    pad = window // 2
    mx, my, exx, eyy, exy = F.conv2d(F.pad(stats, (pad,) * 4, mode="replicate"), k, groups=15).split(3, 1)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * (exy - mx * my) + c2)) / \
        ((mx * mx + my * my + c1) * (exx - mx * mx + eyy - my * my + c2))
    return s[0].mean(0)


def test_blur_matrix_rows_sum_to_one_and_repeat_the_edges():
    m = blur_matrix(20, 11, 1.5, torch.float64)
    assert torch.allclose(m.sum(1), torch.ones(20, dtype=torch.float64))
    g = _window(11, 1.5, torch.float64, None)
    assert torch.isclose(m[0, 0], g[:6].sum())  # the first sample stands in for the five padded before it
    assert torch.allclose(m[10, 5:16], g)


def test_ssim_map_equals_the_convolution_form_with_its_gradient():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(37, 53, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    b = (a.detach() + 0.1 * torch.randn(37, 53, 3, generator=gen, dtype=torch.float64)).clamp(0, 1)
    w = torch.rand(37, 53, generator=gen, dtype=torch.float64)
    ours, ref = ssim_map(a, b), _conv_ssim(a, b)
    assert torch.allclose(ours, ref, atol=1e-12)
    (g_ours,) = torch.autograd.grad((ours * w).sum(), a)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), a)
    assert torch.allclose(g_ours, g_ref, atol=1e-12)
    assert ssim_map(b, b).min() > 1 - 1e-9
