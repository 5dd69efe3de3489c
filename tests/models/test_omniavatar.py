"""OmniAvatar's generator on tiny configurations: the released layout (committed manifest), the construction from a
pickle's ``init_kwargs`` through the persistence reader (strict, one-line errors), the implicit 3DMM's box and
template conventions, the SDF density, the decoder's conditioning, the camera helper, and a tiny full render
(shapes, finite, deterministic, and equal to the reference's recorded output).

Equivalence with the authors' code on shared random weights at the released sizes is measured outside the
repository (the reference code is never committed); ``tests/data/omniavatar_reference_tiny.safetensors`` holds the
reference's outputs for :func:`tiny_model`'s configuration with :func:`seeded_state`'s weights.
"""

import json
import math
import pickle
from importlib import resources
from pathlib import Path

import pytest
import torch
from conftest import write_persistence_pickle
from torch import nn

from headsplat.core.errors import ArgumentError, InputError, ShapeError
from headsplat.models.omniavatar import IGRModel, OmniAvatar, OmniAvatarConfig, look_at_camera, make_label, sdf_density
from headsplat.models.omniavatar.im3dmm import OUTSIDE_SPHERE_RADIUS
from headsplat.models.omniavatar.model import CLASS_NAME, DEFAULT_RENDERING, PoseOSGDecoder
from headsplat.models.weights import layout

DATA = Path(__file__).resolve().parents[1] / "data"
TINY_RENDERING = {**DEFAULT_RENDERING, "triplane_depth": 1, "intermediate_dims": [16, 16, 16],
                  "template_intermediate_dims": [8, 8, 8], "skip_connection_layers": [2],
                  "bbox": [[-0.45, -0.5, -0.45], [0.45, 0.5, 0.55]],
                  "superresolution_module": "training.superresolution.SuperresolutionHybrid2X",
                  "depth_resolution": 6, "depth_resolution_importance": 6}
TINY_INIT = {"z_dim": 16, "c_dim": 25, "w_dim": 512, "img_resolution": 128, "img_channels": 3, "sr_num_fp16_res": 0,
             "mapping_kwargs": {"num_layers": 2}, "rendering_kwargs": TINY_RENDERING,
             "sr_kwargs": {"channel_base": 256, "channel_max": 16, "fused_modconv_default": "inference_only"},
             "channel_base": 256, "channel_max": 16, "fused_modconv_default": "inference_only", "num_fp16_res": 0,
             "conv_clamp": None}
TINY_NRR = 16


def tiny_model() -> OmniAvatar:
    return OmniAvatar(OmniAvatarConfig.from_init_kwargs(TINY_INIT)).eval().requires_grad_(False)


def seeded_state(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights from one seeded generator, key by key in sorted order (the reference's module gets the same):
    StyleGAN weights N(0, 1) (their gains are applied in forward), the 3DMM's N(0, 1/fan_in), other tensors
    N(0, 0.1²) (affine biases about 1), ``sigmoid_beta`` 0.05; the template's second key path copies the first."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in sorted(model.state_dict().items()):
        if k.startswith("renderer.im3dmm._template_sdf."):
            continue
        if k == "renderer.sigmoid_beta":
            t = torch.full(v.shape, 0.05)
        elif v.ndim >= 2:
            t = torch.randn(v.shape, generator=g)
            if k.startswith("renderer."):
                t = t / math.sqrt(v.shape[1])
        else:
            t = torch.randn(v.shape, generator=g) * 0.1 + (1.0 if k.endswith("affine.bias") else 0.0)
        out[k] = t
    for k in list(out):
        if k.startswith("renderer.template_sdf."):
            out["renderer.im3dmm._template_sdf." + k[len("renderer.template_sdf."):]] = out[k]
    return out


def tiny_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """z (2, 16) and label rows (2, 231): two cameras round the default pivot, random controls."""
    g = torch.Generator().manual_seed(5)
    z = torch.randn(2, 16, generator=g)
    pivot = DEFAULT_RENDERING["avg_camera_pivot"]
    cams = torch.cat([look_at_camera(math.pi / 2 + y, math.pi / 2 + p, pivot, 2.7) for y, p in ((0.2, 0), (-0.3, 0.1))])
    k = torch.tensor([[4.2647, 0, 0.5], [0, 4.2647, 0.5], [0, 0, 1]]).expand(2, 3, 3)
    return z, make_label(cams, k, torch.randn(2, 206, generator=g) * 0.5)


# -- layout ------------------------------------------------------------------------------------------------------
def test_default_configuration_has_the_released_layout():
    data = json.loads(resources.files("headsplat.models.omniavatar").joinpath("checkpoint_layout.json").read_text())
    assert data["n_tensors"] == len(data["tensors"])
    with torch.device("meta"):
        model = OmniAvatar(OmniAvatarConfig())
    ours = layout(model)
    assert list(ours) == list(data["tensors"])  # the order of G_ema.state_dict()
    assert ours == {k: tuple(v) for k, v in data["tensors"].items()}
    assert sum(math.prod(s) for s in ours.values()) == data["n_values"]
    shared = [k for k in ours if k.startswith("renderer.template_sdf.")]
    assert shared and all("renderer.im3dmm._template_sdf." + k[22:] in ours for k in shared)
    assert ours["backbone.synthesis.b256.torgb.weight"] == (32 * 3 * DEFAULT_RENDERING["triplane_depth"], 128, 1, 1)
    assert ours["decoder.pose_net.0.weight"] == (32, 106) and ours["renderer.im3dmm.fc0.weight"][1] == 9 + 206


def test_the_template_is_one_module_under_two_key_paths():
    model = tiny_model()
    assert model.renderer.im3dmm._template_sdf is model.renderer.template_sdf
    model.load_state_dict(seeded_state(model), strict=True)
    assert torch.equal(model.state_dict()["renderer.im3dmm._template_sdf.fc0.weight"],
                       model.state_dict()["renderer.template_sdf.fc0.weight"])


def test_config_from_init_args_and_kwargs():
    cfg = OmniAvatarConfig.from_init_kwargs({k: v for k, v in TINY_INIT.items() if k not in ("z_dim", "c_dim")},
                                            args=(16, 25))
    assert cfg.z_dim == 16 and cfg.c_dim == 25 and cfg.img_resolution == 128
    assert cfg.synthesis_kwargs == {"channel_base": 256, "channel_max": 16, "fused_modconv_default": "inference_only",
                                    "num_fp16_res": 0, "conv_clamp": None}
    with pytest.raises(ArgumentError, match="superresolution_module"):
        OmniAvatar(OmniAvatarConfig.from_init_kwargs(
            {**TINY_INIT, "rendering_kwargs": {**TINY_RENDERING, "superresolution_module": "x.Y"}}))
    with pytest.raises(ArgumentError, match="with_sdf"):
        OmniAvatar(OmniAvatarConfig.from_init_kwargs({**TINY_INIT, "rendering_kwargs": {**TINY_RENDERING,
                                                                                        "with_sdf": True}}))


# -- parts -------------------------------------------------------------------------------------------------------
def test_sdf_density_is_a_scaled_sigmoid_of_the_negative_sdf():
    beta = torch.tensor([0.02])
    sdf = torch.tensor([-1.0, -0.01, 0.0, 0.01, 1.0])
    expected = torch.tensor([1 / (1 + math.exp(-s / 0.02)) / 0.02 for s in (1.0, 0.01, 0.0, -0.01, -1.0)])
    torch.testing.assert_close(sdf_density(sdf, beta), expected)
    assert sdf_density(torch.tensor([0.0]), beta).item() == pytest.approx(25.0)  # half of 1 / beta on the surface
    assert torch.all(sdf_density(sdf, beta)[:-1] > sdf_density(sdf, beta)[1:])  # denser inside (sdf < 0)


def test_im3dmm_outside_its_box_is_a_sphere_and_no_warp():
    template = IGRModel([8], [], [[-0.5] * 3, [0.5] * 3], output_dim=1)
    net = IGRModel([8, 8], [1], [[-0.5, -0.5, -0.5], [0.5, 0.5, 0.7]], feature_dim=4, output_dim=4,
                   template_sdf=template)
    with torch.no_grad():
        net.fc2.weight.zero_()
        net.fc2.bias.copy_(torch.tensor([0.3, 1.0, -1.0, 0.5]))
    pts = torch.tensor([[[0.0, 0.0, 0.0], [0.9, 0.0, 0.0], [0.0, 0.0, 0.65], [0.0, 0.0, -0.6]]])
    out = net(pts, torch.zeros(1, 4, 4))
    # inside: the MLP's SDF, and its canonical point mapped from the unit box back to world units
    torch.testing.assert_close(out[0, 0], torch.tensor([0.3, 0.5, -0.5, 0.5 * 0.6 + 0.1]))
    torch.testing.assert_close(out[0, 2], out[0, 0])
    for i in (1, 3):  # outside: the sphere's SDF and the point itself
        torch.testing.assert_close(out[0, i], torch.cat([pts[0, i].norm().reshape(1) - OUTSIDE_SPHERE_RADIUS,
                                                         pts[0, i]]))
    assert net.distance(pts, torch.zeros(1, 4, 4)).shape == (1, 4, 1)


def test_decoder_is_conditioned_on_the_last_106_controls_only():
    torch.manual_seed(0)
    dec = PoseOSGDecoder(32, {"decoder_lr_mul": 1, "decoder_output_dim": 32, "decoder_activation": "sigmoid"}, 106)
    feats = torch.randn(2, 3, 5, 32)
    controls = torch.randn(2, 206)
    other_shape = controls.clone()
    other_shape[:, :100] += 1  # shape codes
    other_jaw = controls.clone()
    other_jaw[:, -3:] += 1
    a, b, c = dec(feats, controls), dec(feats, other_shape), dec(feats, other_jaw)
    assert a["rgb"].shape == (2, 5, 32) and a["sigma"].shape == (2, 5, 1)
    assert torch.equal(a["sigma"], b["sigma"]) and not torch.allclose(a["sigma"], c["sigma"])
    assert torch.equal(controls[:, :100] + 1, other_shape[:, :100])  # the caller's controls are not modified
    with pytest.raises(ArgumentError, match="controls"):
        dec(feats, None)


def test_look_at_camera_puts_the_frontal_camera_on_plus_z_looking_at_the_pivot():
    c2w = look_at_camera(math.pi / 2, math.pi / 2, [0, 0, 0.2], 2.7)[0]
    torch.testing.assert_close(c2w[:3, 3], torch.tensor([0.0, 0.0, 2.7]), atol=1e-6, rtol=0)
    torch.testing.assert_close(c2w[:3, 2], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6, rtol=0)  # OpenCV +z forward
    torch.testing.assert_close(c2w[:3, 1], torch.tensor([0.0, -1.0, 0.0]), atol=1e-6, rtol=0)  # y down = world -y
    with pytest.raises(ShapeError):
        make_label(c2w[None], torch.eye(3)[None], torch.zeros(1, 100))


# -- the whole network -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeded_tiny():
    model = tiny_model()
    model.load_state_dict(seeded_state(model), strict=True)
    return model


@pytest.fixture(scope="module")
def tiny_render(seeded_tiny):
    z, c = tiny_inputs()
    with torch.no_grad():
        ws = seeded_tiny.mapping(z, c, truncation_psi=0.7, truncation_cutoff=14)
        return ws, seeded_tiny.synthesis(ws, c, neural_rendering_resolution=TINY_NRR)


def test_tiny_render_shapes_finite_deterministic(seeded_tiny, tiny_render):
    _, a = tiny_render
    assert a.image.shape == (2, 3, 128, 128) and a.image_raw.shape == (2, 3, 16, 16)
    assert a.features.shape == (2, 32, 16, 16) and a.depth.shape == a.mask.shape == (2, 1, 16, 16)
    assert all(torch.isfinite(t).all() for t in (a.image, a.features, a.depth, a.mask))
    assert a.mask.min() >= -0.001 and a.mask.max() <= 1.001
    lo, hi = TINY_RENDERING["ray_start"], TINY_RENDERING["ray_end"]
    assert a.depth.min() >= lo - 1e-4 and a.depth.max() <= hi + 1e-4
    z, c = tiny_inputs()
    runs = []
    for seed in (1, 2):  # deterministic sampling: nothing drawn, whatever the global generator holds
        torch.manual_seed(seed)
        with torch.no_grad():
            runs.append(seeded_tiny(z[1:], c[1:], truncation_psi=0.7, truncation_cutoff=14,
                                    neural_rendering_resolution=TINY_NRR))
    assert torch.equal(runs[0].image, runs[1].image) and torch.equal(runs[0].depth, runs[1].depth)
    # rows render independently (to float32 rounding: the seeded weights' activations run to about 1e5)
    assert (runs[0].image - a.image[1:]).abs().max() <= 1e-5 * a.image.abs().max()
    with pytest.raises(ShapeError):
        seeded_tiny.synthesis(seeded_tiny.mapping(z, c), c[:, :100])


def test_tiny_render_equals_the_reference_recording(tiny_render):
    from safetensors.torch import load_file

    rec = load_file(DATA / "omniavatar_reference_tiny.safetensors")
    _, c = tiny_inputs()
    torch.testing.assert_close(c, rec["c"], rtol=0, atol=1e-6)  # the camera helper as LookAtPoseSampler
    ws, out = tiny_render
    torch.testing.assert_close(ws, rec["ws"], rtol=1e-5, atol=1e-5)
    for name, ours in (("image_raw", out.image_raw), ("depth", out.depth), ("mask", out.mask),
                       ("image_sub4", out.image[..., ::4, ::4])):
        scale = rec[name].abs().max()
        assert (ours - rec[name]).abs().max() <= 1e-4 * scale, name


# -- from a pickle in the released structure -------------------------------------------------------------------
def write_pickle(path, obj: dict, init_kwargs: dict):
    """``obj`` as a released-structure pickle, an OmniAvatar root as ``TriPlaneGenerator`` with ``init_kwargs``
    and pickled attributes that differ from them (training updates ``rendering_kwargs`` and the neural
    rendering resolution on the object)."""
    state = {"rendering_kwargs": {**init_kwargs.get("rendering_kwargs", {}), "depth_resolution": 5},
             "neural_rendering_resolution": 12}
    return write_persistence_pickle(path, obj, OmniAvatar, CLASS_NAME, init_kwargs, state)


def test_from_pretrained_reads_a_released_structure_pickle(tmp_path, seeded_tiny):
    write_pickle(tmp_path / "omni.pkl", {"G": None, "D": None, "G_ema": seeded_tiny, "augment_pipe": None}, TINY_INIT)
    loaded = OmniAvatar.from_pretrained(tmp_path / "omni.pkl")
    for k, v in seeded_tiny.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    # the pickled object's attributes win over init_kwargs (training updates them)
    assert loaded.cfg.rendering_kwargs["depth_resolution"] == 5 and loaded.cfg.neural_rendering_resolution == 12


def test_from_pretrained_names_missing_and_unexpected_keys(tmp_path):
    model = tiny_model()
    model.extra = nn.Linear(1, 1)  # unexpected: extra.weight, extra.bias
    del model.renderer.sigmoid_beta  # missing
    write_pickle(tmp_path / "bad.pkl", {"G_ema": model}, TINY_INIT)
    with pytest.raises(InputError) as e:
        OmniAvatar.from_pretrained(tmp_path / "bad.pkl")
    msg = str(e.value)
    assert "\n" not in msg and "renderer.sigmoid_beta" in msg and "extra.weight" in msg


def test_from_pretrained_refuses_other_networks_and_bad_kwargs(tmp_path):
    model = tiny_model()
    write_pickle(tmp_path / "k.pkl", {"G_ema": model}, {**TINY_INIT, "rendering_kwargs": {"triplane_depth": 1}})
    with pytest.raises(InputError, match="init_kwargs do not build the network"):
        OmniAvatar.from_pretrained(tmp_path / "k.pkl")

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self._init_args, self._init_kwargs = (), {}

    Generator.__module__ = "headsplat.fake"
    write_pickle(tmp_path / "g.pkl", {"G_ema": Generator()}, {})
    with pytest.raises(InputError, match=f"G_ema is a Generator, not OmniAvatar's {CLASS_NAME}"):
        OmniAvatar.from_pretrained(tmp_path / "g.pkl")


def test_from_pretrained_never_runs_a_hostile_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (eval, ("__import__('os').getpid()",))

    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"G_ema": Evil()}, f)
    with pytest.raises(InputError, match="refused"):
        OmniAvatar.from_pretrained(tmp_path / "evil.pkl")


@pytest.mark.slow
def test_full_size_network_loads_from_a_released_structure_pickle_and_renders(tmp_path):
    init = {"z_dim": 512, "c_dim": 25, "w_dim": 512, "img_resolution": 512, "img_channels": 3, "sr_num_fp16_res": 4,
            "mapping_kwargs": {"num_layers": 2},
            "rendering_kwargs": {**DEFAULT_RENDERING, "depth_resolution": 8, "depth_resolution_importance": 8},
            "sr_kwargs": {"channel_base": 32768, "channel_max": 512, "fused_modconv_default": "inference_only"},
            "channel_base": 32768, "channel_max": 512, "fused_modconv_default": "inference_only", "num_fp16_res": 0,
            "conv_clamp": None}
    torch.manual_seed(0)
    model = OmniAvatar(OmniAvatarConfig.from_init_kwargs(init)).eval().requires_grad_(False)
    with torch.device("meta"):
        assert layout(model) == layout(OmniAvatar(OmniAvatarConfig()))  # the manifest's configuration
    write_pickle(tmp_path / "omni.pkl", {"G": None, "D": None, "G_ema": model, "augment_pipe": None}, init)
    loaded = OmniAvatar.from_pretrained(tmp_path / "omni.pkl")
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, 512, generator=g)
    k = torch.tensor([[4.5313, 0, 0.5], [0, 4.5313, 0.5], [0, 0, 1]])[None]
    c = make_label(look_at_camera(math.pi / 2, math.pi / 2, DEFAULT_RENDERING["avg_camera_pivot"], 2.7), k,
                   torch.randn(1, 206, generator=g))
    with torch.no_grad():
        opts = model.render_options()  # (the test's pickle says depth_resolution 5)
        a = model(z, c, truncation_psi=0.7, truncation_cutoff=14, neural_rendering_resolution=32, options=opts)
        b = loaded(z, c, truncation_psi=0.7, truncation_cutoff=14, neural_rendering_resolution=32, options=opts)
    assert a.image.shape == (1, 3, 512, 512) and a.features.shape == (1, 32, 32, 32)
    assert torch.equal(a.image, b.image) and torch.isfinite(a.image).all()


def test_doctor_names_an_omniavatar_pickle_and_its_layout_problems(tmp_path, seeded_tiny, capsys):
    from headsplat.cli.main import main

    write_pickle(tmp_path / "omni.pkl", {"G_ema": seeded_tiny}, TINY_INIT)
    assert main(["doctor", "--weights", str(tmp_path / "omni.pkl")]) == 1  # tiny: not the released sizes
    out = capsys.readouterr().out
    assert "OmniAvatar checkpoint with" in out and "keys of the wrong shape" in out and "Portrait4D" not in out
