"""CAP4D's MMDM (UNet + autoencoder) in headsplat's own code: the released checkpoint's layout, safe strict loading,
the frame logic the weights were trained with, and the stochastic I/O sampler driving a tiny MMDM end to end.

Module equivalence with the authors' code on shared random weights (full size, 16² latents, 8 frames, run locally
outside the repository): UNet 7e-6, autoencoder 1.4e-6 largest relative error (see the issue note).
"""

import json
import math
from importlib import resources

import pytest
import torch

from headsplat.core.errors import InputError
from headsplat.models import sampling
from headsplat.models.cap4d.model import MMDM, MMDMConfig, guided_eps
from headsplat.models.cap4d.unet import UNetConfig, timestep_embedding


def _tiny(seed=0, cfg=None):
    torch.manual_seed(seed)
    m = MMDM(cfg or MMDMConfig.tiny()).eval()
    with torch.no_grad():  # zero-initialised layers would hide mistakes
        g = torch.Generator().manual_seed(seed + 1)
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return m


def _inputs(b=1, v=8, s=8, n_ref=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, v, 4, s, s, generator=g)
    z = torch.randn(b, v, 4, s, s, generator=g)
    mask = torch.zeros(b, v, dtype=torch.bool)
    mask[:, :n_ref] = True
    cond = torch.randn(b, v, s, s, 50, generator=g)
    t = torch.randint(0, 1000, (b, v), generator=g)
    return x, t, z, mask, cond


def test_full_size_state_dict_equals_the_released_checkpoint_layout():
    data = json.loads(resources.files("headsplat.models.cap4d").joinpath("checkpoint_layout.json").read_text())
    with torch.device("meta"):
        m = MMDM()
    mine = {k: list(v.shape) for k, v in m.state_dict().items()}
    assert mine == data["tensors"] and len(mine) == 824
    unet = sum(math.prod(s) for k, s in mine.items() if k.startswith("model.diffusion_model."))
    vae = sum(math.prod(s) for k, s in mine.items() if k.startswith("first_stage_model."))
    assert round(unet / 1e6) == 816 and round(vae / 1e6) == 84
    # 11 of the 16 attention blocks attend across the 8 frames: the 32², 16² and middle levels
    frames = [mod.transformer_blocks[0].attn1.frames for mod in m.modules() if hasattr(mod, "transformer_blocks")]
    assert len(frames) == 16 and frames.count(8) == 11


def test_checkpoint_round_trip_strict_errors_and_the_conditioning_buffers_ignored(tmp_path):
    m = _tiny()
    state = dict(m.state_dict())
    state["cond_stage_model.pos_encoding.freqs"] = torch.ones(7)
    torch.save(state, tmp_path / "mmdm.ckpt")
    loaded = MMDM.from_pretrained(tmp_path / "mmdm.ckpt", cfg=m.cfg)
    x, t, z, mask, cond = _inputs()
    with torch.no_grad():
        assert torch.equal(m.unet(x, t, z, mask, cond), loaded.unet(x, t, z, mask, cond))
    torch.save({"state_dict": state}, tmp_path / "lightning.ckpt")  # Lightning's wrapping is read too
    MMDM.from_pretrained(tmp_path / "lightning.ckpt", cfg=m.cfg)
    del state["first_stage_model.quant_conv.bias"]
    state["model.diffusion_model.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.ckpt")
    with pytest.raises(InputError) as e:
        MMDM.from_pretrained(tmp_path / "bad.ckpt", cfg=m.cfg)
    assert "\n" not in str(e.value)
    assert "1 missing keys: first_stage_model.quant_conv.bias" in str(e.value)
    assert "1 unexpected keys: model.diffusion_model.extra" in str(e.value)


def test_reference_frames_return_their_added_noise_and_carry_no_prediction():
    m = _tiny()
    x, t, z, mask, cond = _inputs()
    with torch.no_grad():
        out = m.unet(x, t, z, mask, cond)
        torch.testing.assert_close(out[:, :3], x[:, :3] - z[:, :3])
        # what a reference's noisy input was does not matter: it is replaced by its clean latent
        x2 = x.clone()
        x2[:, 0] += 5
        out2 = m.unet(x2, t, z, mask, cond)
    torch.testing.assert_close(out2[:, 3:], out[:, 3:])


def test_frames_attend_to_each_other_only_in_3d_levels():
    x, t, z, mask, cond = _inputs(n_ref=1)
    mixed = _tiny()  # level 2 (mult 2) and the middle block attend across frames
    per_frame = _tiny(cfg=MMDMConfig(unet=UNetConfig(model_channels=32, channel_mult=(1, 1), num_res_blocks=1,
                                                     attention_resolutions=(1, 2), num_head_channels=16,
                                                     norm_groups=8)))
    z2 = z.clone()
    z2[:, 0] += 1.0  # change the reference's clean latent
    with torch.no_grad():
        for model, crosses in ((mixed, True), (per_frame, False)):
            a, b = model.unet(x, t, z, mask, cond), model.unet(x, t, z2, mask, cond)
            changed = (a[:, 1:] - b[:, 1:]).abs().max() > 1e-4
            assert bool(changed) == crosses


def test_timestep_embedding_is_cosines_then_sines():
    e = timestep_embedding(torch.tensor([0.0, 7.0]), 8)
    freqs = torch.exp(-math.log(10000) * torch.arange(4) / 4)
    torch.testing.assert_close(e[1], torch.cat([torch.cos(7 * freqs), torch.sin(7 * freqs)]))
    torch.testing.assert_close(e[0], torch.cat([torch.ones(4), torch.zeros(4)]))


def test_autoencoder_shapes_and_posterior():
    m = _tiny()
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        mean, logvar = m.vae.encode(img)
        rec = m.vae.decode(mean)
    assert mean.shape == logvar.shape == (2, 4, 16, 16) and rec.shape == (2, 3, 32, 32)
    assert logvar.min() >= -30 and logvar.max() <= 20


def test_stochastic_io_sampling_with_a_tiny_mmdm_runs_and_is_reproducible():
    m = _tiny()
    n_ref, n_gen = 2, 12
    refs = torch.randn(n_ref, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    cond = torch.randn(n_ref + n_gen, 8, 8, 50, generator=torch.Generator().manual_seed(2))
    eps = guided_eps(m.unet, cond, refs, cfg_scale=2.0)
    sched = sampling.cap4d_schedule()
    calls = []
    out = sampling.stochastic_io_sample(eps, refs, n_gen, sched, 5, seed=0, progress=lambda i, n: calls.append(i))
    again = sampling.stochastic_io_sample(eps, refs, n_gen, sched, 5, seed=0)
    assert out.shape == (n_gen, 4, 8, 8) and torch.isfinite(out).all() and torch.equal(out, again)
    assert calls == [1, 2, 3, 4, 5]
    assert not torch.equal(out, sampling.stochastic_io_sample(eps, refs, n_gen, sched, 5, seed=1))


def test_doctor_recognises_an_mmdm_checkpoint(tmp_path):
    from headsplat.models.registry import identify, released_layout

    layout, _ = released_layout("CAP4D MMDM")
    keys = sorted(layout)[:700]  # most of its names, with stand-in tensors: identified by name, faults listed
    torch.save({k: torch.zeros(1) for k in keys}, tmp_path / "cap4d_mmdm_100k.ckpt")
    name, problems, n = identify(tmp_path / "cap4d_mmdm_100k.ckpt")
    assert name == "CAP4D MMDM" and n == 700
    assert any("124 missing keys" in p for p in problems) and any("wrong shape" in p for p in problems)


def test_the_mmdm_runs_in_bfloat16_close_to_float32():
    """bf16 weights and activations (the GPU setting): the norms compute in float32 with float32 parameters
    (they failed with mixed dtypes before) and the outputs stay close to float32's."""
    m = _tiny()
    x, t, z, mask, cond = _inputs()
    with torch.no_grad():
        ref = m.unet(x, t, z, mask, cond)
        m16 = m.to(torch.bfloat16)
        out = m16.unet(x.bfloat16(), t, z.bfloat16(), mask, cond.bfloat16())
        img = m16.vae.decode(m16.vae.encode(torch.rand(1, 3, 32, 32, dtype=torch.bfloat16))[0])
    assert out.dtype == torch.bfloat16 and img.dtype == torch.bfloat16 and torch.isfinite(img.float()).all()
    assert float((out.float() - ref).abs().max() / ref.abs().max()) < 0.05
