"""GAGAvatar (Chu & Harada, NeurIPS 2024) run by headsplat's own code from the authors' released checkpoint.

One forward pass turns a source portrait into Gaussians: one per FLAME vertex (placed at the driven FLAME
vertices at every frame) and two per feature pixel (lifted from a plane facing the source camera, one each
way along its normal). They are splatted as 32 feature channels and a StyleUNet refines the features into RGB.

Attribute names and ``state_dict()`` keys equal the released checkpoint's (``percep_loss.*``, the training
loss's networks, excluded). Quirks the weights were trained with, reproduced and tested:

- [x] f1 (the global feature) is the first *patch* token of DINOv2's last block, not its class token.
- [x] DINOv2 sees the source at 518² ImageNet-normalised; the DPT head also concatenates that normalised
      image, resized bilinearly with antialiasing, to each of its four levels.
- [x] vertex Gaussians: quaternions L2-normalised over the Gaussian axis (``F.normalize`` default dim 1 on
      (B, N, 4)); pixel Gaussians: colour sigmoid over the first three pixel columns of all 32 channels
      (``colors[..., :3]`` on (B, 32, H, W)); see :mod:`.generators`.
- [x] covariances from the non-unit quaternions as given (the 3DGS CUDA rasterizer does not normalise).
- [x] the harmonic view encoding is of the source camera's direction only (the same for every Gaussian).
- [x] the refiner's noise inputs are fresh normal noise per call (``noise="random"``); ``"stored"`` uses the
      checkpoint's noise buffers for reproducible output.
- [ ] not reproduced: the 3DGS rasterizer's tile coverage (a 3σ square per Gaussian) and near plane (0.2);
      headsplat draws each Gaussian over its exact alpha ≥ 1/255 ellipse. The two differ only where a
      Gaussian's alpha is below 0.011 · opacity, and no Gaussian comes near 0.2 units of the camera (~9).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from headsplat.core.errors import InputError
from headsplat.models.gagavatar.conventions import FOCAL, render_camera, source_plane
from headsplat.models.gagavatar.encoder import EncoderConfig, SourceEncoder
from headsplat.models.gagavatar.generators import FEATURE_CHANNELS, HarmonicEncoder, PixelGaussians, VertexGaussians
from headsplat.models.gagavatar.refiner import RefinerConfig, StyleUNet
from headsplat.models.gagavatar.vit import ViTConfig
from headsplat.models.weights import load_strict, read_checkpoint
from headsplat.render.rasterize import rasterize

EXCLUDED_PREFIXES = ("percep_loss.",)  # training-only networks stored in the released checkpoint
CONFIG_ENTRY = "headsplat_config"  # optional: the GagaConfig of a checkpoint that is not the released size


@dataclass(frozen=True)
class GagaConfig:
    """Sizes of a GAGAvatar network (defaults: the released model)."""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    refiner: RefinerConfig = field(default_factory=RefinerConfig)
    n_vertices: int = 5023  # FLAME's vertex count: one Gaussian each
    vertex_dim: int = 256  # learned per-vertex feature (``head_base``)
    source_size: int = 518  # the source image as the encoder sees it
    render_size: int = 512  # rendered feature maps and refined image
    focal: float = FOCAL

    @property
    def plane_size(self) -> int:
        """Side of the local feature map f0 (one pixel Gaussian per pixel per side)."""
        return 8 * (self.source_size // self.encoder.vit.patch_size)

    @classmethod
    def tiny(cls, n_vertices: int = 5023) -> "GagaConfig":
        """A small network with the same structure, for tests (random weights only)."""
        vit = ViTConfig(img_size=56, patch_size=14, embed_dim=32, depth=4, num_heads=2)
        return cls(encoder=EncoderConfig(vit=vit, out_dims=(8, 16, 32, 32), hidden_dim=16, output_dim=16),
                   refiner=RefinerConfig(size=32, num_style_feat=32, num_mlp=2, channel_divisor=8),
                   n_vertices=n_vertices, vertex_dim=16, source_size=56, render_size=32)

    def to_dict(self) -> dict:
        return {"encoder": {"vit": vars(self.encoder.vit), **{f.name: getattr(self.encoder, f.name)
                                                             for f in fields(self.encoder) if f.name != "vit"}},
                "refiner": vars(self.refiner),
                **{f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("encoder", "refiner")}}

    @classmethod
    def from_dict(cls, d: dict) -> "GagaConfig":
        enc = dict(d["encoder"])
        enc["vit"] = ViTConfig(**enc["vit"])
        enc["out_dims"] = tuple(enc["out_dims"])
        rest = {k: v for k, v in d.items() if k not in ("encoder", "refiner")}
        return cls(encoder=EncoderConfig(**enc), refiner=RefinerConfig(**d["refiner"]), **rest)


@dataclass
class SourceGaussians:
    """The person's Gaussians from one source image, before driving (batch B).
    Attributes:
        colors: (B, N, 32) feature channels (RGB first). opacities: (B, N, 1). scales: (B, N, 3).
        rotations: (B, N, 4) w x y z, not unit for the vertex Gaussians (see the quirks).
        xyz: (B, N, 3) positions; rows ``[:n_vertices]`` are zeros, replaced by the driven FLAME vertices at
            every frame.
        n_vertices: the number of vertex Gaussians (the first rows).
    """
    colors: torch.Tensor
    opacities: torch.Tensor
    scales: torch.Tensor
    rotations: torch.Tensor
    xyz: torch.Tensor
    n_vertices: int

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in ("colors", "opacities", "scales", "rotations", "xyz")}

    def to(self, device=None, dtype=None) -> "SourceGaussians":
        return SourceGaussians(**{k: v.to(device=device, dtype=dtype) for k, v in self.tensors().items()},
                               n_vertices=self.n_vertices)


class GAGAvatar(nn.Module):
    """The network; see the module docstring. Inputs: a source image and its camera; FLAME vertices and
    cameras of the frames to render."""
    def __init__(self, cfg: GagaConfig = GagaConfig()):
        super().__init__()
        self.cfg = cfg
        self.base_model = SourceEncoder(cfg.encoder)
        self.harmo_encoder = HarmonicEncoder(4)
        d = self.harmo_encoder.out_dim
        self.head_base = nn.Parameter(torch.randn(cfg.n_vertices, cfg.vertex_dim))
        self.gs_generator_g = VertexGaussians(cfg.vertex_dim + cfg.encoder.vit.embed_dim, d)
        self.gs_generator_l0 = PixelGaussians(cfg.encoder.output_dim, d)
        self.gs_generator_l1 = PixelGaussians(cfg.encoder.output_dim, d)
        self.upsampler = StyleUNet(cfg.refiner)

    # -- loading ----------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        cfg: GagaConfig | None = None) -> "GAGAvatar":
        """Load the released checkpoint (``{'model': state_dict, 'meta_cfg': ...}``, or a bare state dict,
        ``.pt`` or ``.safetensors``) without executing code, strictly. The network's size: ``cfg``, else the
        checkpoint's ``headsplat_config`` entry (tiny test models), else the released model's.

        Raises:
            InputError: unreadable file, or missing/unexpected keys or wrong shapes (named on one line).
        """
        obj = read_checkpoint(path)
        state = model_state(obj, path)
        if cfg is None and isinstance(obj, dict) and isinstance(obj.get(CONFIG_ENTRY), dict):
            try:
                cfg = GagaConfig.from_dict(obj[CONFIG_ENTRY])
            except (KeyError, TypeError, ValueError) as e:
                raise InputError(f"{path}: invalid {CONFIG_ENTRY!r} entry ({type(e).__name__}: {e})") from None
        model = cls(cfg or GagaConfig())
        load_strict(model, state, path)
        return model.to(device).eval()

    # -- the reference's stages ---------------------------------------------------------------------------------
    def reconstruct(self, image: torch.Tensor, transform: torch.Tensor) -> SourceGaussians:
        """The person's Gaussians from a source image (the reference's cached part of ``forward_expression``).
        Args:
            image: (B, 3, S, S) source in [0, 1], S = ``cfg.source_size``, matted onto black.
            transform: (B, 3, 4) the source camera's ``[R|T]`` (PyTorch3D style, see :mod:`.conventions`).
        """
        b = image.shape[0]
        f0, f1 = self.base_model(image)
        plane_points, plane_dirs = source_plane(transform, self.cfg.plane_size, self.cfg.focal)
        direnc = self.harmo_encoder(plane_dirs)
        n = self.cfg.n_vertices
        g = self.gs_generator_g(torch.cat([self.head_base[None].expand(b, -1, -1),
                                           f1[:, None].expand(-1, n, -1)], -1), direnc)
        g["xyz"] = image.new_zeros(b, n, 3)
        l0 = self.gs_generator_l0(f0, direnc)
        l1 = self.gs_generator_l1(f0, direnc)
        l0["xyz"] = plane_points + l0["positions"] * plane_dirs[:, None]
        l1["xyz"] = plane_points - l1["positions"] * plane_dirs[:, None]
        cat = {k: torch.cat([g[k], l0[k], l1[k]], 1) for k in g}
        return SourceGaussians(**cat, n_vertices=n)

    def render(self, gaussians: SourceGaussians, vertices: torch.Tensor, transform: torch.Tensor,
               backend: str = "auto", with_alpha: bool = False):
        """:func:`render_features` at this network's size and focal length."""
        return render_features(gaussians, vertices, transform, self.cfg.render_size, self.cfg.focal, backend,
                               with_alpha)

    def refine(self, features: torch.Tensor, noise: str = "random", generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """(F, 32, R, R) features -> (F, 3, R, R) RGB in (0, 1)."""
        return self.upsampler(features, noise=noise, generator=generator)


def render_features(gaussians: SourceGaussians, vertices: torch.Tensor, transform: torch.Tensor, size: int,
                    focal: float = FOCAL, backend: str = "auto", with_alpha: bool = False):
    """Splat the 32 feature channels with the vertex Gaussians at ``vertices`` (needs no weights).
    Args:
        gaussians: from :meth:`GAGAvatar.reconstruct` (batch B, or 1 shared by every frame).
        vertices: (F, n_vertices, 3) driven FLAME vertices in the reference's units (metres × 5).
        transform: (F, 3, 4) cameras ``[R|T]``.
        size: output side R. focal: the reference's focal length (half-image units).

    Returns:
        (F, 32, R, R) features on a black background; with ``with_alpha`` also the coverage (F, R, R).
    """
    frames, alphas = [], []
    for i in range(vertices.shape[0]):
        j = i if gaussians.xyz.shape[0] > 1 else 0
        xyz = torch.cat([vertices[i], gaussians.xyz[j, gaussians.n_vertices:]], 0)
        cam = render_camera(transform[i], size, focal)
        out = rasterize(xyz, gaussians.rotations[j], gaussians.scales[j], gaussians.opacities[j, :, 0],
                        gaussians.colors[j], cam, background=0.0, backend=backend, normalize_quats=False)
        frames.append(out.rgb.permute(2, 0, 1))
        alphas.append(out.alpha[..., 0])
    return (torch.stack(frames), torch.stack(alphas)) if with_alpha else torch.stack(frames)


def model_state(obj, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The network's tensors from a loaded checkpoint object, training-only entries removed."""
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path}: not a GAGAvatar checkpoint (expected a dict with a 'model' state dict)")
    return {k: v for k, v in obj.items() if not k.startswith(EXCLUDED_PREFIXES)}


__all__ = ["FEATURE_CHANNELS", "GAGAvatar", "GagaConfig", "SourceGaussians", "model_state"]
