"""The MMDM as released: the denoising UNet and the autoencoder under latent diffusion's names, loaded safely and
strictly from the authors' ``cap4d_mmdm_100k.ckpt``, and the ε function the stochastic I/O sampler calls.

The conditioning maps are built by :mod:`.conditioning` from a mesh posed by :mod:`.flame`, for the frames of
:mod:`.views`; ``headsplat generate --model cap4d`` (:mod:`headsplat.avatar.generators.cap4d`) runs it all.

A ``.ckpt`` is converted once into a safetensors file of the network's tensors in the user's cache
(``$HEADSPLAT_CACHE_DIR``, else ``$XDG_CACHE_HOME/headsplat``, else ``~/.cache/headsplat``), read from then on
without unpickling.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from headsplat.core.errors import InputError
from headsplat.core.fileio import atomic_path
from headsplat.core.validate import read_safetensors_with_metadata
from headsplat.models.cap4d.unet import MMDMUNet, UNetConfig
from headsplat.models.cap4d.vae import AutoencoderKL, VAEConfig
from headsplat.models.weights import load_strict, read_checkpoint

#: Entries of the released file that are not network weights: the conditioning module's derived buffers
#: (recomputed by headsplat from CAP4D's assets).
EXCLUDED_PREFIXES = ("cond_stage_model.",)
#: A checkpoint entry (beside the state dict) holding :meth:`MMDMConfig.to_dict`: only headsplat's own small test
#: checkpoints have one; the released file is the full-size default.
CONFIG_ENTRY = "headsplat_config"


@dataclass(frozen=True)
class MMDMConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    resolution: int = 512  # image side; latents are resolution / downsampling

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.vae.ch_mult) - 1)

    @property
    def latent_size(self) -> int:
        return self.resolution // self.downsampling

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MMDMConfig":
        def tup(c):
            return {k: tuple(v) if isinstance(v, list) else v for k, v in c.items()}
        return cls(unet=UNetConfig(**tup(d["unet"])), vae=VAEConfig(**tup(d["vae"])),
                   resolution=int(d.get("resolution", 512)))

    @classmethod
    def tiny(cls) -> "MMDMConfig":
        """The same structure, small: for tests (random weights only)."""
        return cls(unet=UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                                   attention_resolutions=(1, 2), num_head_channels=16, norm_groups=8),
                   vae=VAEConfig(ch=16, ch_mult=(1, 2), num_res_blocks=1, norm_groups=8), resolution=64)


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
                        dtype: torch.dtype = torch.float32, cfg: MMDMConfig | None = None,
                        cache: bool = False) -> "MMDM":
        """Load the released checkpoint (a raw state dict, or Lightning's ``{"state_dict": ...}``; or its cached
        safetensors conversion) without executing code (memory-mapped), strictly: missing, unexpected or
        mis-shaped tensors are named.

        Args:
            cfg: the network's size (default: the checkpoint's ``headsplat_config`` entry, else the released one).
            cache: convert a ``.ckpt``/``.pt`` once into safetensors in the user's cache and read that.
        """
        path = Path(path)
        state, stored_cfg = _read_state(path, cache)
        with torch.device("meta"):
            model = cls(cfg or stored_cfg or MMDMConfig())
        model = model.to_empty(device="cpu")
        load_strict(model, state, path)
        return model.to(device=device, dtype=dtype).eval()


def cache_folder() -> Path:
    base = os.environ.get("HEADSPLAT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "headsplat")
    return Path(base)


def _cached_name(path: Path) -> Path:
    st = path.stat()
    return cache_folder() / "cap4d" / f"{path.stem}-{st.st_size}-{int(st.st_mtime)}.safetensors"


def _read_state(path: Path, cache: bool) -> tuple[dict, MMDMConfig | None]:
    """(network tensors, stored config) of a checkpoint, through the safetensors cache when asked."""
    cached = _cached_name(path) if cache and path.suffix != ".safetensors" else None
    if cached is not None and cached.is_file():
        return _read_state(cached, False)
    if path.suffix == ".safetensors":
        state, meta = read_safetensors_with_metadata(path)
        cfg = MMDMConfig.from_dict(json.loads(meta[CONFIG_ENTRY])) if CONFIG_ENTRY in meta else None
    else:
        obj = read_checkpoint(path, mmap=True)
        cfg = MMDMConfig.from_dict(obj[CONFIG_ENTRY]) if isinstance(obj, dict) and \
            isinstance(obj.get(CONFIG_ENTRY), dict) else None
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise InputError(f"{path}: not an MMDM checkpoint (expected a state dict)")
        state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor) and not k.startswith(EXCLUDED_PREFIXES)}
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        meta = {CONFIG_ENTRY: json.dumps(cfg.to_dict())} if cfg is not None else None
        with atomic_path(cached) as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=meta)
    return state, cfg


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
