"""EG3D's shared layer on tiny configurations: the image ops against direct computations (scipy's upfirdn, an
explicit per-sample convolution), the key layout released weights need, ray geometry in both camera conventions,
the plane-axes conventions, and the renderer against the analytic transmittance of a constant-density field.

Equivalence with the authors' code on shared random weights is measured outside the repository (the reference
code is never committed); the recorded outputs in ``tests/data/eg3d_reference_tiny.safetensors`` come from it.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from headsplat.core.errors import ArgumentError, ShapeError
from headsplat.models.eg3d import ops, rendering, stylegan2, superresolution
from headsplat.models.eg3d.rendering import EG3D_PLANES, OPENCV, OPENGL, XY_YZ_ZX, RenderOptions
from headsplat.models.weights import layout, load_strict

DATA = Path(__file__).resolve().parents[1] / "data"


# -- ops --------------------------------------------------------------------------------------------------------
def _scipy_upfirdn2d(x: np.ndarray, taps: np.ndarray, up: int, down: int) -> np.ndarray:
    """Full separable upfirdn along H then W (scipy convolves, as upfirdn2d with flip_filter=False)."""
    y = scipy.signal.upfirdn(taps, x, up, down, axis=-2)
    return scipy.signal.upfirdn(taps, y, up, down, axis=-1)


@pytest.mark.parametrize("up, down", [(1, 1), (2, 1), (1, 2), (3, 2)])
@pytest.mark.parametrize("taps", [[1.0, 3.0, 3.0, 1.0], [0.5, -1.0, 2.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]])
def test_upfirdn2d_equals_scipy_upfirdn(up, down, taps):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    k = len(taps)
    f = ops.setup_filter(taps, normalize=False).double()  # 2-D outer product, or separable for 8 taps
    ours = ops.upfirdn2d(x, f, up=up, down=down, padding=k - 1).numpy()
    ref = _scipy_upfirdn2d(x.numpy(), np.asarray(taps), up, down)
    h, w = ref.shape[-2:]  # zero insertion after the last pixel adds (up - 1) trailing outputs scipy omits
    np.testing.assert_allclose(ours[..., :h, :w], ref, rtol=1e-12, atol=1e-12)


def test_setup_filter_normalises_and_upsample2d_keeps_a_constant():
    f = ops.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and torch.isclose(f.sum(), torch.tensor(1.0))
    assert ops.setup_filter(list(range(1, 9))).shape == (8,)  # long 1-D filters stay separable
    x = torch.full((1, 2, 6, 6), 0.7)
    up = ops.upsample2d(x, f)
    assert up.shape == (1, 2, 12, 12)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 0.7))
    down = ops.downsample2d(x, f)
    assert down.shape == (1, 2, 3, 3) and torch.isclose(down[0, 0, 1, 1], torch.tensor(0.7))
    with pytest.raises(ShapeError):
        ops.upfirdn2d(torch.zeros(3, 4, 4), f)


def test_bias_act_defaults_and_clamp():
    x = torch.linspace(-3, 3, 13).reshape(1, 13)
    b = torch.zeros(13)
    torch.testing.assert_close(ops.bias_act(x, b, act="lrelu", dim=1), F.leaky_relu(x, 0.2) * math.sqrt(2))
    assert ops.bias_act(x, act="linear", gain=2, clamp=1.5).abs().max() == 1.5
    with pytest.raises(ShapeError):
        ops.bias_act(x, torch.zeros(3))


@pytest.mark.parametrize("up, down, k", [(1, 1, 3), (2, 1, 3), (1, 2, 3), (2, 1, 1), (1, 2, 1)])
def test_conv2d_resample_equals_pad_filter_conv_decimate(up, down, k):
    """The definition: pad once (the convolution's and the filter's padding), zero-insert and filter, convolve
    (valid), decimate; in float64. The fast paths (transposed or strided convolutions) must agree."""
    torch.manual_seed(1)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    w = torch.randn(5, 4, k, k, dtype=torch.float64)
    f = ops.setup_filter([1, 3, 3, 1]).double()
    ours = ops.conv2d_resample(x, w, f, up=up, down=down, padding=k // 2)
    p0 = p1 = k // 2
    if up > 1:
        p0, p1 = p0 + (4 + up - 1) // 2, p1 + (4 - up) // 2
    if down > 1:
        p0, p1 = p0 + (4 - down + 1) // 2, p1 + (4 - down) // 2
    y = ops.upfirdn2d(x, f if up > 1 or down > 1 else None, up=up, padding=[p0, p1, p0, p1], gain=up ** 2)
    y = F.conv2d(y, w)[..., ::down, ::down]
    assert ours.shape == (2, 5, 8 * up // down, 8 * up // down)
    torch.testing.assert_close(ours, y, rtol=1e-10, atol=1e-10)


# -- StyleGAN2 --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv2d_equals_an_explicit_per_sample_convolution(fused, demodulate):
    torch.manual_seed(2)
    x = torch.randn(3, 4, 7, 7, dtype=torch.float64)
    weight = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    styles = torch.randn(3, 4, dtype=torch.float64)
    noise = torch.randn(3, 1, 7, 7, dtype=torch.float64)
    ours = stylegan2.modulated_conv2d(x, weight, styles, noise=noise, padding=1, demodulate=demodulate,
                                      fused_modconv=fused)
    for b in range(3):
        wb = weight * styles[b].reshape(1, -1, 1, 1)
        if demodulate:
            wb = wb / (wb.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        ref = F.conv2d(x[b:b + 1], wb, padding=1) + noise[b:b + 1]
        torch.testing.assert_close(ours[b:b + 1], ref, rtol=1e-10, atol=1e-10)


def test_demodulated_output_has_unit_weight_norm_per_output_channel():
    """Demodulation makes the output of white noise unit variance, whatever the styles' scale."""
    torch.manual_seed(3)
    x = torch.randn(1, 16, 64, 64, dtype=torch.float64)
    w = torch.randn(4, 16, 3, 3, dtype=torch.float64)
    y = stylegan2.modulated_conv2d(x, w, torch.full((1, 16), 100.0, dtype=torch.float64), padding=1)
    assert torch.allclose(y[..., 2:-2, 2:-2].std(dim=(2, 3)), torch.ones(1, 4, dtype=torch.float64), atol=0.05)


def _tiny_generator(seed=0):
    torch.manual_seed(seed)
    g = stylegan2.Generator(16, 25, 32, img_resolution=16, img_channels=12, mapping_kwargs={"num_layers": 2},
                            channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=None).eval()
    with torch.no_grad():  # zero-initialised biases and noise strengths would hide mistakes
        gen = torch.Generator().manual_seed(seed + 1)
        for p in g.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
        g.mapping.w_avg.copy_(torch.randn(32, generator=gen) * 0.1)
    return g


def test_generator_shapes_num_ws_and_fused_equals_unfused():
    g = _tiny_generator()
    assert g.num_ws == 1 + 2 + 2 + 1 and g.synthesis.block_resolutions == [4, 8, 16]
    z, c = torch.randn(2, 16), torch.randn(2, 25)
    with torch.no_grad():
        ws = g.mapping(z, c, truncation_psi=0.7)
        assert ws.shape == (2, 6, 32)
        a = g.synthesis(ws, noise_mode="const", fused_modconv=True)
        b = g.synthesis(ws, noise_mode="const", fused_modconv=False)
    assert a.shape == (2, 12, 16, 16)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ShapeError):
        g.synthesis(ws[:, :3])
    with pytest.raises(ArgumentError, match="noise_mode"):
        g.synthesis(ws, noise_mode="fixed")


def test_truncation_pulls_towards_w_avg():
    g = _tiny_generator()
    z, c = torch.randn(2, 16), torch.randn(2, 25)
    with torch.no_grad():
        full, none = g.mapping(z, c), g.mapping(z, c, truncation_psi=0.0)
        cut = g.mapping(z, c, truncation_psi=0.0, truncation_cutoff=3)
    torch.testing.assert_close(none, g.mapping.w_avg.expand_as(none))
    torch.testing.assert_close(cut[:, 3:], full[:, 3:])


def test_recorded_reference_outputs():
    """Outputs of the authors' code (recorded outside the repository) on this file's seeded tiny weights."""
    from safetensors.torch import load_file

    rec = load_file(DATA / "eg3d_reference_tiny.safetensors")
    g = _tiny_generator()
    with torch.no_grad():
        ws = g.mapping(rec["z"], rec["c"], truncation_psi=0.7)
        img = g.synthesis(ws, noise_mode="const")
        torch.testing.assert_close(ws, rec["ws"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(img, rec["synthesis"], rtol=1e-5, atol=1e-5)
        dec = _tiny_decoder()
        out = rendering.ImportanceRenderer()(rec["planes"], dec, rec["ray_origins"], rec["ray_directions"],
                                            _TINY_RENDER, generator=torch.Generator().manual_seed(0))
        ref_origins, ref_dirs = rendering.sample_rays(rec["cam2world"], rec["intrinsics"], 8)
    torch.testing.assert_close(ref_origins, rec["ray_origins"])
    torch.testing.assert_close(ref_dirs, rec["ray_directions"])
    torch.testing.assert_close(out.features, rec["render_features"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.depth, rec["render_depth"], rtol=1e-5, atol=1e-5)


_TINY_RENDER = RenderOptions(ray_start=2.25, ray_end=3.3, box_warp=1.0, depth_resolution=8,
                             depth_resolution_importance=8)  # random draws: generator seeded 0


def _tiny_decoder(seed=5):
    torch.manual_seed(seed)
    dec = rendering.OSGDecoder(8, {"decoder_lr_mul": 1.0, "decoder_output_dim": 4}).eval()
    with torch.no_grad():
        for p in dec.parameters():
            p.add_(torch.randn(p.shape) * 0.1)
    return dec


# -- released layout --------------------------------------------------------------------------------------------
def test_superresolution_8xdc_layout_is_the_released_one():
    with torch.device("meta"):
        sr = superresolution.SuperresolutionHybrid8XDC(32, 512, sr_num_fp16_res=4, sr_antialias=True)
    lay = layout(sr)
    params = sum(p.numel() for p in sr.parameters())
    assert params == 1_649_578  # counted on the reference code
    assert lay["block0.conv0.weight"] == (256, 32, 3, 3) and lay["block0.conv0.noise_const"] == (256, 256)
    assert lay["block1.torgb.weight"] == (3, 128, 1, 1) and "resample_filter" not in lay
    assert lay["block1.resample_filter"] == (4, 4)
    with pytest.raises(ArgumentError, match="512"):
        superresolution.SuperresolutionHybrid8XDC(32, 256, 0, True)


def test_decoders_keys_and_strict_loading():
    dec = rendering.OSGDecoder(32, {"decoder_lr_mul": 1.0, "decoder_output_dim": 32})
    assert list(dec.state_dict()) == ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]
    split = rendering.SplitOSGDecoder(32, {"decoder_lr_mul": 1.0, "decoder_output_dim": 32})
    assert list(split.state_dict()) == ["net.0.weight", "net.0.bias", "out_sigma.weight", "out_sigma.bias",
                                        "out_rgb.weight", "out_rgb.bias"]
    other = rendering.OSGDecoder(32, {"decoder_lr_mul": 1.0, "decoder_output_dim": 32})
    load_strict(other, dec.state_dict(), "x.pkl")
    f = torch.randn(1, 3, 10, 32)
    torch.testing.assert_close(other(f)["rgb"], dec(f)["rgb"])
    with pytest.raises(Exception, match="missing keys: net.2.bias"):
        load_strict(other, {k: v for k, v in dec.state_dict().items() if k != "net.2.bias"}, "x.pkl")


def test_synthesis_block_without_upsampling_keeps_resolution():
    blk = stylegan2.SynthesisBlockNoUp(8, 8, w_dim=16, resolution=8, img_channels=3, is_last=True)
    x, img = blk(torch.randn(1, 8, 8, 8), torch.randn(1, 3, 8, 8), torch.randn(1, 3, 16), noise_mode="none")
    assert x.shape == (1, 8, 8, 8) and img.shape == (1, 3, 8, 8)


# -- rays and planes --------------------------------------------------------------------------------------------
def _K(f=2.0):
    return torch.tensor([[[f, 0.0, 0.5], [0.0, f, 0.5], [0.0, 0.0, 1.0]]])


@pytest.mark.parametrize("camera, forward, up_sign", [(OPENCV, 1.0, -1.0), (OPENGL, -1.0, 1.0)])
def test_rays_point_through_pixel_centres(camera, forward, up_sign):
    res, f = 8, 2.0
    origins, dirs = rendering.sample_rays(torch.eye(4)[None], _K(f), res, camera=camera)
    assert origins.shape == dirs.shape == (1, 64, 3) and torch.all(origins == 0)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(1, 64))
    d = dirs[0].reshape(res, res, 3)  # (row, column)
    assert torch.all(d[..., 2] * forward > 0)  # the camera looks along +z (OpenCV) or -z (OpenGL)
    u = d[..., 0] / d[..., 2].abs() * f + 0.5  # back to normalised pixel coordinates
    centres = (torch.arange(res) + 0.5) / res
    torch.testing.assert_close(u, centres[None].expand(res, res))  # columns run along the camera's +x
    v_up = d[..., 1] / d[..., 2].abs() * f  # image rows run down: the camera's y grows down (OpenCV) or up
    torch.testing.assert_close(v_up * up_sign * -1 + 0.5, centres[:, None].expand(res, res))


def test_rays_follow_the_camera_pose():
    c2w = torch.eye(4)
    c2w[:3, :3] = torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # +z of the camera = world +x
    c2w[:3, 3] = torch.tensor([-2.0, 0.3, 0.1])
    origins, dirs = rendering.sample_rays(c2w[None], _K(), 2)
    torch.testing.assert_close(origins[0, 0], c2w[:3, 3])
    assert torch.all(dirs[0, :, 0] > 0.9)


def test_ray_box_limits():
    o = torch.tensor([[0.0, 0.0, -3.0], [0.0, 2.0, -3.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    near, far = rendering.ray_box_limits(o, d, 1.0)
    torch.testing.assert_close(near[0], torch.tensor([2.5]))
    torch.testing.assert_close(far[0], torch.tensor([3.5]))
    assert near[1].item() == -1 and far[1].item() == -2  # a miss


def _ramp_planes(w=16):
    """Three 1-channel planes whose value is grid_sample's x coordinate (the plane's first axis)."""
    ramp = (2 * torch.arange(w) + 1) / w - 1
    return ramp.reshape(1, 1, 1, 1, w).expand(1, 3, 1, w, w).contiguous()


@pytest.mark.parametrize("axes, first", [(EG3D_PLANES, (0, 0, 2)), (XY_YZ_ZX, (0, 1, 2))])
def test_plane_axes_conventions(axes, first):
    pts = torch.tensor([[[0.1, -0.2, 0.3], [-0.25, 0.15, 0.05]]])
    feats = rendering.sample_from_planes(_ramp_planes(), pts, box_warp=2.0, plane_axes=axes)  # (1, 3, 2, 1)
    for p, k in enumerate(first):
        torch.testing.assert_close(feats[0, p, :, 0], pts[0, :, k])


def test_plane_projection_is_eg3d_inverse_axes():
    """EG3D's ``coordinates @ inverse(generate_planes())[..., :2]`` gives (x, y), (x, z), (z, x)."""
    axes = torch.tensor([[[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[1, 0, 0], [0, 0, 1], [0, 1, 0]],
                         [[0, 0, 1], [1, 0, 0], [0, 1, 0]]], dtype=torch.float32)
    pts = torch.randn(2, 5, 3)
    ref = torch.stack([pts @ torch.linalg.inv(a) for a in axes], 1)[..., :2].reshape(6, 5, 2)
    torch.testing.assert_close(rendering.project_onto_planes(pts, EG3D_PLANES), ref)


# -- sampling and the renderer ----------------------------------------------------------------------------------
def test_sample_pdf_deterministic_uniform_is_linspace():
    bins = torch.linspace(0, 1, 11).expand(2, 11)
    s = rendering.sample_pdf(bins, torch.ones(2, 10), 5, deterministic=True)
    torch.testing.assert_close(s, torch.linspace(0, 1, 5).expand(2, 5), atol=1e-5, rtol=0)
    peaked = torch.zeros(2, 10)
    peaked[:, 3] = 1.0
    s = rendering.sample_pdf(bins, peaked, 64, generator=torch.Generator().manual_seed(0))
    assert ((s > 0.3) & (s < 0.4)).float().mean() > 0.99


class _Constant(torch.nn.Module):
    def __init__(self, sigma, rgb):
        super().__init__()
        self.sigma, self.rgb = sigma, torch.tensor(rgb)

    def forward(self, feats, dirs):
        n, _, m, _ = feats.shape
        return {"rgb": self.rgb.expand(n, m, -1), "sigma": torch.full((n, m, 1), self.sigma)}


@pytest.mark.parametrize("importance", [0, 16])
def test_renderer_on_constant_density_matches_analytic_transmittance(importance):
    sigma, near, far = 1.7, 2.0, 3.2
    origins, dirs = rendering.sample_rays(torch.eye(4)[None], _K(), 4)
    opts = RenderOptions(ray_start=near, ray_end=far, depth_resolution=32, depth_resolution_importance=importance,
                         deterministic=True, box_warp=10.0)
    out = rendering.ImportanceRenderer()(torch.zeros(1, 3, 2, 4, 4), _Constant(sigma, [0.2, 0.6, 0.9]), origins,
                                         dirs, opts)
    density = F.softplus(torch.tensor(sigma - 1))  # the marcher's activation
    transmittance = torch.exp(-density * (far - near))
    torch.testing.assert_close(out.transmittance, transmittance.expand(1, 16, 1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.weights, 1 - out.transmittance)
    rgb = torch.tensor([0.2, 0.6, 0.9]) * (1 - transmittance) * 2 - 1
    torch.testing.assert_close(out.features, rgb.expand(1, 16, 3), rtol=1e-5, atol=1e-6)
    # the expected depth of an exponential truncated to [near, far]
    t = far - near
    mean = near + 1 / density - t * transmittance / (1 - transmittance)
    torch.testing.assert_close(out.depth, mean.expand(1, 16, 1), rtol=0, atol=2e-3)
    assert out.depths.shape == (1, 16, 32 + importance, 1) and torch.all(out.depths.diff(dim=2) >= 0)


def test_renderer_random_draws_follow_the_generator():
    origins, dirs = rendering.sample_rays(torch.eye(4)[None], _K(), 4)
    planes = torch.randn(1, 3, 8, 8, 8)
    opts = RenderOptions(ray_start=-0.4, ray_end=0.4, depth_resolution=6, depth_resolution_importance=6)
    dec = _tiny_decoder()
    run = [rendering.ImportanceRenderer()(planes, dec, origins, dirs, opts, generator=torch.Generator().manual_seed(s))
           for s in (1, 1, 2)]
    assert torch.equal(run[0].features, run[1].features) and not torch.equal(run[0].depths, run[2].depths)


def test_auto_plane_sampling_repeats_one_jitter_for_all_rays():
    origins, dirs = rendering.sample_rays(torch.eye(4)[None], _K(), 4, camera=OPENGL)
    opts = RenderOptions(ray_start="auto-plane", ray_end="auto-plane", box_warp=1.3, depth_resolution=5,
                         depth_resolution_importance=0, rgb_to_signed=False)
    out = rendering.ImportanceRenderer(XY_YZ_ZX)(torch.zeros(1, 3, 2, 4, 4), _Constant(0.0, [0.5]), origins, dirs,
                                                 opts, cam_z=torch.tensor([-4.2]))
    assert torch.all(out.depths == out.depths[:, :1]) and out.depths.min() >= 4.2 - 0.65
    assert out.depths.max() <= 4.2 + 0.65 + 1.3 / 4
    with pytest.raises(ArgumentError, match="cam_z"):
        rendering.ImportanceRenderer()(torch.zeros(1, 3, 2, 4, 4), _Constant(0.0, [0.5]), origins, dirs, opts)


def test_gradients_of_the_ops_and_modulated_conv_in_float64():
    torch.manual_seed(4)
    f = ops.setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ops.upfirdn2d(t, f, up=2, down=1, padding=[2, 1, 2, 1]), (x,))
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    s = torch.randn(1, 2, dtype=torch.float64, requires_grad=True)
    for up in (1, 2):
        assert torch.autograd.gradcheck(
            lambda a, b, c: stylegan2.modulated_conv2d(a, b, c, padding=1, up=up, resample_filter=f,
                                                       flip_weight=up == 1), (x, w, s))
    assert torch.autograd.gradcheck(lambda t: ops.bias_act(t, act="lrelu", clamp=1.0), (x,))


@pytest.mark.parametrize("up, fused", [(1, True), (1, False), (2, True), (2, False)])
def test_float16_modulated_conv_prenormalisation_keeps_the_result(up, fused):
    """In float16 (CUDA's use_fp16 blocks) weights and styles are pre-scaled against overflow; demodulation
    makes that invisible up to half precision."""
    torch.manual_seed(5)
    x, w, s = torch.randn(2, 8, 9, 9), torch.randn(6, 8, 3, 3), torch.randn(2, 8) * 30
    f = ops.setup_filter([1, 3, 3, 1])
    ref = stylegan2.modulated_conv2d(x, w, s, padding=1, up=up, resample_filter=f, flip_weight=up == 1,
                                     fused_modconv=fused)
    half = stylegan2.modulated_conv2d(x.half(), w, s, padding=1, up=up, resample_filter=f, flip_weight=up == 1,
                                      fused_modconv=fused)
    assert half.dtype == torch.float16
    assert float((half.float() - ref).abs().max() / ref.abs().max()) < 5e-3


def test_volume_planes_sample_each_plane_in_its_coordinate_order():
    """OmniAvatar's volume planes: a plane whose value is its grid_sample x coordinate returns, per plane, the
    point's first coordinate in that plane's order (x, y, x for XYZ_YZX_XZY)."""
    w, depth = 16, 3
    ramp = (2 * torch.arange(w) + 1) / w - 1
    planes = ramp.reshape(1, 1, 1, 1, 1, w).expand(1, 3, 1, depth, w, w).reshape(1, 3, depth, w, w).contiguous()
    pts = torch.tensor([[[0.1, -0.2, 0.3], [-0.25, 0.15, 0.05]]])
    feats = rendering.sample_from_volplanes(planes, pts, box_warp=2.0, depth=depth)
    assert feats.shape == (1, 3, 2, 1)
    for p, k in enumerate((0, 1, 0)):
        torch.testing.assert_close(feats[0, p, :, 0], pts[0, :, k])


def test_omniavatar_options_need_repeat_residual_injection_and_sr_channels():
    g = _tiny_generator()
    z, c = torch.randn(2, 16), torch.randn(2, 25)
    with torch.no_grad():
        w = g.mapping(z, c, need_repeat=False)
        torch.testing.assert_close(w, g.mapping(z, c)[:, 0])
        ws = g.mapping(z, c)
        base = g.synthesis(ws, noise_mode="const")
        res_out, res_skip = torch.zeros(2, 8, 16, 16), torch.full((2, 12, 16, 16), 0.5)
        shifted = g.synthesis(ws, res_out=res_out, res_skip=res_skip, noise_mode="const")
        torch.testing.assert_close(shifted, base + 0.5)  # the 16² block is the last here: the image gains 0.5
        torch.testing.assert_close(g.synthesis(ws, res_out=res_out, noise_mode="const"), base)  # both or neither
    with torch.device("meta"):
        sr = superresolution.SuperresolutionHybrid8XDC(32, 512, 0, True, img_channels=5)
    assert layout(sr)["block1.torgb.weight"] == (5, 128, 1, 1)
