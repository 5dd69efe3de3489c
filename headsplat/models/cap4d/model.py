"""The MMDM as released: the denoising UNet and the autoencoder under latent diffusion's names, loaded safely and
strictly from the authors' ``cap4d_mmdm_100k.ckpt``, and the ε function the stochastic I/O sampler calls.

The conditioning maps are built by :mod:`.conditioning` from a mesh posed by :mod:`.flame`. Not yet here (the rest
of the CAP4D issue): headsplat's FLAME tracking converted to CAP4D's parameters, and ``headsplat generate --model
cap4d``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from headsplat.core.errors import InputError
from headsplat.models.cap4d.unet import MMDMUNet, UNetConfig
from headsplat.models.cap4d.vae import AutoencoderKL, VAEConfig
from headsplat.models.weights import load_strict, read_checkpoint

#: Entries of the released file that are not network weights: the conditioning module's derived buffers
#: (recomputed by headsplat from CAP4D's assets).
EXCLUDED_PREFIXES = ("cond_stage_model.",)


@dataclass(frozen=True)
class MMDMConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)

    @classmethod
    def tiny(cls) -> "MMDMConfig":
        """The same structure, small: for tests (random weights only)."""
        return cls(unet=UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                                   attention_resolutions=(1, 2), num_head_channels=16, norm_groups=8),
                   vae=VAEConfig(ch=16, ch_mult=(1, 2), num_res_blocks=1, norm_groups=8))


class _Wrapper(nn.Module):
    def __init__(self, unet: MMDMUNet):
        super().__init__()
        self.diffusion_model = unet


class MMDM(nn.Module):
    """``model.diffusion_model`` (:class:`MMDMUNet`) and ``first_stage_model`` (:class:`AutoencoderKL`)."""

    def __init__(self, cfg: MMDMConfig = MMDMConfig()):
        super().__init__()
        self.cfg = cfg
        self.model = _Wrapper(MMDMUNet(cfg.unet))
        self.first_stage_model = AutoencoderKL(cfg.vae)

    @property
    def unet(self) -> MMDMUNet:
        return self.model.diffusion_model

    @property
    def vae(self) -> AutoencoderKL:
        return self.first_stage_model

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, cfg: MMDMConfig | None = None) -> "MMDM":
        """Load the released checkpoint (a raw state dict, or Lightning's ``{"state_dict": ...}``) without
        executing code (memory-mapped), strictly: missing, unexpected or mis-shaped tensors are named."""
        obj = read_checkpoint(path, mmap=True)
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise InputError(f"{path}: not an MMDM checkpoint (expected a state dict)")
        state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor) and not k.startswith(EXCLUDED_PREFIXES)}
        with torch.device("meta"):
            model = cls(cfg or MMDMConfig())
        model = model.to_empty(device="cpu")
        load_strict(model, state, path)
        return model.to(device=device, dtype=dtype).eval()


def guided_eps(unet: MMDMUNet, condition: torch.Tensor, references: torch.Tensor, cfg_scale: float = 2.0,
               uncondition: torch.Tensor | None = None):
    """The ε function of :func:`headsplat.models.sampling.stochastic_io_sample` for an MMDM: each call runs the
    unconditional and conditional branches in one batch of 2 × V frames (references first) and applies
    classifier-free guidance, ε = ε_u + s (ε_c − ε_u).

    Args:
        condition: (N_ref + N_gen, h, w, 50) conditioning maps, references first.
        references: (N_ref, 4, h, w) clean reference latents (scaled).
        uncondition: maps of the unconditional branch (default: zeros, as CAP4D's); its reference latents are
            zeroed too.
    """
    n_ref = references.shape[0]
    unc = torch.zeros_like(condition) if uncondition is None else uncondition

    def eps(x: torch.Tensor, t: int, refs: np.ndarray, gens: np.ndarray) -> torch.Tensor:
        dev, dt = next(unet.parameters()).device, next(unet.parameters()).dtype
        R = len(refs)
        rows = np.concatenate([refs, n_ref + gens])
        z = torch.cat([references[refs], torch.zeros_like(x[R:])])
        mask = torch.zeros(2, len(rows), dtype=torch.bool, device=dev)
        mask[:, :R] = True
        xx = torch.stack([x, x]).to(dev, dt)
        zz = torch.stack([z * 0, z]).to(dev, dt)
        cc = torch.stack([unc[rows], condition[rows]]).to(dev, dt)
        tt = torch.full((2, len(rows)), t, dtype=torch.long, device=dev)
        with torch.no_grad():
            out = unet(xx, tt, zz, mask, cc).float()
        e_u, e_c = out[0, R:], out[1, R:]
        return (e_u + cfg_scale * (e_c - e_u)).to(x)

    return eps
