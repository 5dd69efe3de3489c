"""Portrait4D-v2's reconstructor networks: the released layout (committed manifest), and properties of the parts
on small inputs (coordinate channels, the dilated ResNet's output stride, attention against PyTorch's, the motion
switch of the cross-attention blocks, output shapes).

Equivalence with the authors' code on shared random weights at the released sizes is measured outside the
repository (the reference code is never committed); see the issue's note for the figures.
"""

import json
from importlib import resources

import pytest
import torch
import torch.nn.functional as F

from headsplat.models.eg3d import SplitOSGDecoder, SuperresolutionHybrid8XDC
from headsplat.models.portrait4d import encoders, segformer
from headsplat.models.weights import layout


def _manifest():
    return json.loads(resources.files("headsplat.models.portrait4d").joinpath("checkpoint_layout.json").read_text())


def test_full_size_networks_have_the_released_layout():
    data = _manifest()
    assert data["n_tensors"] == len(data["tensors"]) and data["not_covered_prefixes"] == ["deformer."]
    with torch.device("meta"):
        parts = {"encoder_global.": encoders.EncoderGlobal(), "encoder_detail.": encoders.EncoderDetail(),
                 "encoder_canonical.": encoders.EncoderCanonical(num_blocks_neutral=4, num_blocks_motion=4,
                                                                 mot_dims=548, mapping_layers=2),
                 "generator_triplane.": encoders.DecoderTriplane(), "background.": encoders.EncoderBG(),
                 "superresolution.": SuperresolutionHybrid8XDC(32, 512, sr_num_fp16_res=4, sr_antialias=True),
                 "decoder.": SplitOSGDecoder(32, {"decoder_lr_mul": 1, "decoder_output_dim": 32})}
    ours = {"w_avg": (512,)}
    for prefix, module in parts.items():
        ours.update({prefix + k: v for k, v in layout(module).items()})
    assert list(ours) == list(data["tensors"])  # the order of G_ema.state_dict()
    assert ours == {k: tuple(v) for k, v in data["tensors"].items()}
    n_params = sum(p.numel() for m in parts.values() for p in m.parameters())
    assert n_params == 224_766_123  # the reference modules' counts (the deformer adds 9: FLAME's zero eye/neck poses)


def test_add_coords_appends_x_then_y():
    out = encoders.add_coords(torch.zeros(2, 3, 4, 5))
    assert out.shape == (2, 5, 4, 5)
    torch.testing.assert_close(out[0, 3, 0], torch.linspace(-1, 1, 5))  # x runs along the width
    torch.testing.assert_close(out[0, 4, :, 0], torch.linspace(-1, 1, 4))  # y down the height


def test_resnet_encoder_is_dilated_to_output_stride_8():
    enc = encoders.ResNet34Encoder()
    assert enc(torch.zeros(1, 5, 64, 64)).shape == (1, 512, 8, 8)
    for name, d in (("layer3", 2), ("layer4", 4)):
        convs = [m for m in getattr(enc, name).modules() if isinstance(m, torch.nn.Conv2d)]
        assert all(m.stride == (1, 1) and m.dilation[0] == (d if m.kernel_size[0] == 3 else m.dilation[0])
                   for m in convs)
        assert all(m.padding == (d, d) for m in convs if m.kernel_size == (3, 3))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules())


@pytest.mark.parametrize("sr_ratio", [1, 2])
def test_attention_equals_pytorch_attention_on_the_reduced_tokens(sr_ratio):
    torch.manual_seed(0)
    att = segformer.Attention(32, num_heads=4, qkv_bias=True, sr_ratio=sr_ratio).eval()
    x = torch.randn(2, 8 * 8, 32)
    src = x
    if sr_ratio > 1:
        src = att.norm(att.sr(x.transpose(1, 2).reshape(2, 32, 8, 8)).flatten(2).transpose(1, 2))
    q = att.q(x).reshape(2, -1, 4, 8).transpose(1, 2)
    k, v = att.kv(src).reshape(2, -1, 2, 4, 8).permute(2, 0, 3, 1, 4)
    ref = att.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, -1, 32))
    torch.testing.assert_close(att(x, 8, 8), ref, rtol=1e-5, atol=1e-6)


def test_cross_block_with_scale_zero_ignores_the_motion():
    torch.manual_seed(1)
    blk = segformer.BlockCross(32, 16, 2, 2, num_heads=2, mlp_ratio=2, qkv_bias=True).eval()
    x = torch.randn(1, 16, 32)
    a = blk(x, torch.randn(1, 4, 32), 4, 4, scale=0.0)
    b = blk(x, torch.randn(1, 4, 32), 4, 4, scale=0.0)
    c = blk(x, torch.randn(1, 4, 32), 4, 4, scale=1.0)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_small_canonical_encoder_and_triplane_decoder_shapes():
    torch.manual_seed(2)
    can = encoders.EncoderCanonical(img_size=8, in_chans=16, embed_dims=64, mot_dims=10, mot_dims_hidden=12, H_y=2,
                                    W_y=2, num_heads=2, num_blocks_neutral=1, num_blocks_motion=1,
                                    mapping_layers=2).eval()
    lr, sr = can(torch.randn(1, 16, 8, 8), torch.randn(1, 10), torch.randn(1, 10))
    assert lr.shape == (1, 16, 8, 8) and sr.shape == (1, 96, 32, 32)
    assert [k for k in can.state_dict() if k.startswith("maps.")] == ["maps.0.weight", "maps.0.bias",
                                                                      "maps.2.weight", "maps.2.bias"]
    with torch.no_grad():
        planes = encoders.DecoderTriplane(img_size=16)(sr[..., :16, :16], torch.randn(1, 96, 16, 16))
        assert planes.shape == (1, 96, 16, 16)
        assert encoders.EncoderBG()(torch.randn(1, 3, 32, 32)).shape == (1, 32, 32, 32)
        assert encoders.EncoderDetail()(torch.randn(1, 3, 32, 32)).shape == (1, 96, 16, 16)


# -- PD-FGC's motion encoder -----------------------------------------------------------------------------------
def test_motion_encoder_size_and_loading(tmp_path):
    from headsplat.core.errors import InputError
    from headsplat.models.portrait4d.motion import MOTION_DIMS, FanEncoder

    torch.manual_seed(3)
    enc = FanEncoder().eval()
    sd = enc.state_dict()
    assert len(sd) == 387 and sum(p.numel() for p in enc.parameters()) == 9_035_727  # as the reference's
    torch.save({**sd, "netG.unused": torch.zeros(1)}, tmp_path / "motion_model.pth")
    loaded = FanEncoder.from_pretrained(tmp_path / "motion_model.pth")
    assert loaded.ignored_keys == ["netG.unused"] and not loaded.training
    crop = torch.rand(2, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        code = loaded.motion_code(crop)
        pose, eye, emo, mouth = enc(crop)
    assert code.shape == (2, MOTION_DIMS) == (2, 548) and pose.shape == (2, 6)
    torch.testing.assert_close(code, torch.cat([eye, emo, mouth], -1))
    from headsplat.models.portrait4d.crop import motion_crop
    from headsplat.models.portrait4d.motion import motion_from_images

    img, lm = torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(1, 68, 2) * 40 + 12
    with torch.no_grad():
        torch.testing.assert_close(motion_from_images(loaded, img, lm), loaded.motion_code(motion_crop(img, lm)))
    torch.save({k: v for k, v in sd.items() if k != "to_eye.3.bias"}, tmp_path / "short.pth")
    with pytest.raises(InputError, match="1 missing keys: to_eye.3.bias"):
        FanEncoder.from_pretrained(tmp_path / "short.pth")
