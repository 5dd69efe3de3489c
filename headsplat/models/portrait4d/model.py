"""Portrait4D-v2's reconstructor (``TriPlaneReconstructorNeutralize``) run by headsplat's own code from the
released persistence pickle, without running the pickled code.

One source image and two motion codes (the source's and the driver's, PD-FGC's 548-d embeddings) make
triplanes; they are volume-rendered at a camera through a deformation of space (the head-pose deformer, passed in
as a function), composited over the background network's image, and super-resolved with the constant style
``w_avg``.

Conventions, stated here once (see :mod:`headsplat.models.eg3d.rendering`): cameras look down -z with y up
(:data:`~headsplat.models.eg3d.OPENGL`), intrinsics normalised; planes are (x, y), (y, z), (z, x)
(:data:`~headsplat.models.eg3d.XY_YZ_ZX`); samples span the camera's depth of the origin ± half the box
(``auto-plane``), one stratified jitter per image for all rays.

Quirks of the reference, reproduced:

- [x] composited features stay in [0, 1] through the marcher, then ``T_bg * sigmoid(background)`` is added and
      the whole feature image mapped to [-1, 1] before super-resolution (``image_raw`` = its first 3 channels).
- [x] the background is resized to the neural resolution bilinearly without antialiasing.
- [x] the super-resolution's styles are ``w_avg`` for every layer (noise mode from ``rendering_kwargs``).
- [x] only neural resolutions up to 128 render: above that the reference picks an empty plane list.
- [x] the head-pose deformer from the checkpoint's ``deformer.*`` tensors (kept in
      :attr:`Portrait4D.deformer_state`): :meth:`Portrait4D.head_pose_field` gives the function ``synthesis``
      takes (:mod:`.flame`, :mod:`.deformer`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from headsplat.core.errors import ArgumentError, InputError
from headsplat.models.eg3d.rendering import (
    OPENGL,
    XY_YZ_ZX,
    ImportanceRenderer,
    RenderOptions,
    SplitOSGDecoder,
    sample_rays,
)
from headsplat.models.eg3d.superresolution import build_superresolution
from headsplat.models.persistence import read_eg3d_network
from headsplat.models.portrait4d.encoders import (
    DecoderTriplane,
    EncoderBG,
    EncoderCanonical,
    EncoderDetail,
    EncoderGlobal,
)
from headsplat.models.portrait4d.flame import HeadPoseDeformer
from headsplat.models.weights import load_strict

CLASS_NAME = "TriPlaneReconstructorNeutralize"
DEFORMER_PREFIX = "deformer."


@dataclass(frozen=True)
class Portrait4DSizes:
    """The networks' widths: the released ones by default; smaller ones make the tiny configurations of tests
    (headsplat's own; the released pickle has no such argument). ``canonical_dims`` is 4 x ``global_channels``
    (the canonical encoder pixel-shuffles its tokens back to the global features' width)."""
    resnet_width: int = 64  # the global encoder's ResNet34: widths 1, 2, 4, 8 x this
    global_channels: int = 256  # DeepLabV3's output, the canonical encoder's input
    canonical_dims: int = 1024  # the canonical encoder's token width
    canonical_heads: int = 4
    motion_hidden: int = 512  # the motion codes' mapping width
    motion_tokens: int = 8  # motion codes as motion_tokens² tokens
    triplane_dims: int = 1024  # the triplane decoder's token width
    triplane_width: int = 256  # its convolutions' width
    background_width: int = 64  # the background U-Net's: 1, 2, 4, 8 x this
    sr_widths: tuple | None = None  # the super-resolution blocks' channels (None: the module's own)

    def __post_init__(self):
        if self.canonical_dims != 4 * self.global_channels or self.triplane_dims % 4:
            raise ArgumentError("sizes", f"canonical_dims must be 4 x global_channels and triplane_dims a multiple "
                                         f"of 4: {self}")


@dataclass(frozen=True)
class SourceFeatures:
    """What the reconstructor computes from the source image alone (once per avatar): global (B, C, 64, 64) and
    detail (B, 96, 256, 256) features, and the background (B, 32, 512, 512) after its sigmoid (None without a
    background network)."""
    global_features: torch.Tensor
    detail: torch.Tensor
    background: torch.Tensor | None


@dataclass(frozen=True)
class Portrait4DConfig:
    """The reconstructor's construction arguments (the pickle's ``init_kwargs``; defaults: the released v2)."""
    img_resolution: int = 512  # output side
    mot_dims: int = 548  # motion code: eyes 6 + emotion 30 + mouth 512
    w_dim: int = 512  # the super-resolution's style width (w_avg)
    sr_num_fp16_res: int = 0  # > 0: super-resolution in float16 on CUDA
    has_background: bool = True  # a background network composited behind the head
    has_superresolution: bool = True  # 8x super-resolution (else the decoder gives RGB)
    num_blocks_neutral: int = 4  # canonicalisation cross blocks
    num_blocks_motion: int = 4  # reenactment cross blocks
    motion_map_layers: int = 2  # MLP layers on each motion code
    neural_rendering_resolution: int = 64  # the default neural resolution (the released script renders 128)
    rendering_kwargs: dict = field(default_factory=dict)  # the reference's rendering options, as pickled
    sr_kwargs: dict = field(default_factory=dict)  # the super-resolution's extra arguments
    sizes: Portrait4DSizes = Portrait4DSizes()  # headsplat's: the released widths unless a test's tiny ones

    @classmethod
    def from_init_kwargs(cls, kwargs: dict) -> "Portrait4DConfig":
        names = set(cls.__dataclass_fields__)
        out = {k: v for k, v in kwargs.items() if k in names}
        if isinstance(out.get("sizes"), dict):
            out["sizes"] = Portrait4DSizes(**out["sizes"])
        return cls(**out)

    def to_dict(self) -> dict:
        """JSON-serialisable (an avatar records the configuration it was made with)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["sizes"] = dict(vars(self.sizes))
        return d


@dataclass(frozen=True)
class Portrait4DOutput:
    """One synthesis. image: (B, 3, R, R) super-resolved, in [-1, 1]. image_raw: (B, 3, r, r) the neural
    render's RGB (with background). features: (B, 32, r, r) the feature image fed to super-resolution.
    depth: (B, 1, r, r). transmittance: (B, 1, r, r) the background's share."""
    image: torch.Tensor
    image_raw: torch.Tensor
    features: torch.Tensor
    depth: torch.Tensor
    transmittance: torch.Tensor


def world_to_camera(cam2world: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4) rigid camera-to-world -> its inverse (transpose of the rotation)."""
    rot_t = cam2world[:, :3, :3].transpose(1, 2)
    out = torch.eye(4, dtype=cam2world.dtype, device=cam2world.device).repeat(cam2world.shape[0], 1, 1)
    out[:, :3, :3] = rot_t
    out[:, :3, 3:] = -rot_t @ cam2world[:, :3, 3:]
    return out


class Portrait4D(nn.Module):
    """The reconstructor's networks (keys as the released ``G_ema``'s, ``deformer.*`` excepted)."""

    def __init__(self, cfg: Portrait4DConfig = Portrait4DConfig()):
        super().__init__()
        self.cfg = cfg
        rk = cfg.rendering_kwargs
        sz = cfg.sizes
        self.register_buffer("w_avg", torch.zeros([cfg.w_dim]))
        self.encoder_global = EncoderGlobal(decoder_channels=sz.global_channels, width=sz.resnet_width)
        self.encoder_detail = EncoderDetail()
        self.encoder_canonical = EncoderCanonical(in_chans=sz.global_channels, embed_dims=sz.canonical_dims,
                                                  num_heads=sz.canonical_heads, mot_dims_hidden=sz.motion_hidden,
                                                  H_y=sz.motion_tokens, W_y=sz.motion_tokens,
                                                  num_blocks_neutral=cfg.num_blocks_neutral,
                                                  num_blocks_motion=cfg.num_blocks_motion, mot_dims=cfg.mot_dims,
                                                  mapping_layers=cfg.motion_map_layers)
        self.generator_triplane = DecoderTriplane(embed_dims=sz.triplane_dims, width=sz.triplane_width)
        self.renderer = ImportanceRenderer(XY_YZ_ZX)
        if cfg.has_background:
            self.background = EncoderBG(width=sz.background_width)
        self.superresolution = None
        if cfg.has_superresolution:
            name = str(rk.get("superresolution_module", "")).replace("models.stylegan.superresolution",
                                                                     "training.superresolution")
            self.superresolution = build_superresolution(name, channels=32, img_resolution=cfg.img_resolution,
                                                         sr_num_fp16_res=cfg.sr_num_fp16_res,
                                                         sr_antialias=rk.get("sr_antialias", True),
                                                         **({} if sz.sr_widths is None else
                                                            {"widths": tuple(sz.sr_widths)}), **cfg.sr_kwargs)
        self.decoder = SplitOSGDecoder(32, {"decoder_lr_mul": rk.get("decoder_lr_mul", 1),
                                            "decoder_output_dim": 32 if cfg.has_superresolution else 3})
        self.deformer_state: dict[str, torch.Tensor] = {}  # the checkpoint's deformer buffers (FLAME x3)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "Portrait4D":
        """The released ``G_ema`` read with :func:`~headsplat.models.persistence.read_network_pickle` (nothing in
        the file runs), built from its ``init_kwargs`` (``rendering_kwargs`` from the pickled object, as the
        reference's script copies them), matched strictly except for ``deformer.*``, kept in
        :attr:`deformer_state`.

        Raises:
            InputError: a refused or unreadable pickle, another network class, or keys/shapes that differ.
        """
        net, kwargs = read_eg3d_network(path, CLASS_NAME, "Portrait4D")
        try:
            model = cls(Portrait4DConfig.from_init_kwargs(kwargs))
        except (ArgumentError, TypeError) as e:
            raise InputError(f"{path}: its init_kwargs do not build the network ({e})") from None
        state = {k: v for k, v in net.state_dict.items() if not k.startswith(DEFORMER_PREFIX)}
        load_strict(model, state, path)
        model.deformer_state = {k[len(DEFORMER_PREFIX):]: v.to(device) for k, v in net.state_dict.items()
                                if k.startswith(DEFORMER_PREFIX)}
        return model.to(device).eval()

    def head_pose_field(self, shape: torch.Tensor, expression: torch.Tensor, pose: torch.Tensor,
                        eye_pose: torch.Tensor, smooth_th: float = 3e-3) -> Callable[[torch.Tensor], torch.Tensor]:
        """The reference's ``_deformer``: the head-pose deformation for FLAME parameters (shape (B, 300) of the
        source, expression (B, 100), neck + jaw pose (B, 6) and eyes (B, 6) of the driver), from the
        checkpoint's deformer tensors.

        Raises:
            InputError: the checkpoint had no (complete) deformer.
        """
        deformer = HeadPoseDeformer(self.deformer_state, box_warp=self.cfg.rendering_kwargs.get("box_warp", 1.3))
        return deformer.field(shape, expression, pose, eye_pose, smooth_th=smooth_th)

    def render_options(self, **overrides) -> RenderOptions:
        """The pickled ``rendering_kwargs`` as :class:`RenderOptions` (colours kept in [0, 1])."""
        return RenderOptions.from_kwargs(self.cfg.rendering_kwargs, rgb_to_signed=False, **overrides)

    def encode_source(self, image: torch.Tensor) -> SourceFeatures:
        """(B, 3, 512, 512) source in [-1, 1] -> what every synthesis of that source reuses."""
        background = torch.sigmoid(self.background(image)) if self.cfg.has_background else None
        return SourceFeatures(self.encoder_global(image), self.encoder_detail(image), background)

    def planes(self, source: torch.Tensor | SourceFeatures, motion_source: torch.Tensor, motion: torch.Tensor,
               motion_scale: float = 1.0) -> torch.Tensor:
        """(B, 3, 512, 512) source in [-1, 1] (or its :meth:`encode_source`), (B, mot_dims) motion codes ->
        (B, 3, 32, 256, 256) triplanes."""
        feats = source if isinstance(source, SourceFeatures) else self.encode_source(source)
        canonical = self.encoder_canonical(feats.global_features, motion, motion_source, scale=motion_scale)
        p = self.generator_triplane(canonical[1], feats.detail)
        return p.view(len(p), -1, 32, p.shape[-2], p.shape[-1])

    def synthesis(self, image: torch.Tensor | SourceFeatures, motion_source: torch.Tensor, motion: torch.Tensor,
                  camera: torch.Tensor,
                  deformer: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  neural_rendering_resolution: int = 128, motion_scale: float = 1.0, noise_mode: str | None = None,
                  generator: torch.Generator | None = None) -> Portrait4DOutput:
        """Render the source driven by ``motion`` at ``camera``.

        Args:
            image: (B, 3, 512, 512) aligned source in [-1, 1], or its :meth:`encode_source` (computed once for
                many syntheses). motion_source, motion: (B, mot_dims).
            camera: (B, 25): camera-to-world (16, this package's convention) and normalised intrinsics (9).
            deformer: observed points (B, S, 3) -> canonical points; None: identity (no head-pose deformation).
            neural_rendering_resolution: the volume render's side (<= 128, see the quirks).
            noise_mode: the super-resolution's noise; None: ``rendering_kwargs['superresolution_noise_mode']``.
            generator: the renderer's random draws (None: torch's global generator in the reference's order).
        """
        r = neural_rendering_resolution
        if r > 128:
            raise ArgumentError("neural_rendering_resolution", f"{r}: the released network renders at most 128²")
        feats = image if isinstance(image, SourceFeatures) else self.encode_source(image)
        n = motion.shape[0]
        if feats.global_features.shape[0] != n:  # one source for a batch of drivers
            feats = SourceFeatures(*(None if t is None else t.expand(n, *t.shape[1:])
                                     for t in (feats.global_features, feats.detail, feats.background)))
        cam2world, intrinsics = camera[:, :16].view(-1, 4, 4), camera[:, 16:25].view(-1, 3, 3)
        cam_z = world_to_camera(cam2world)[:, 2, 3]
        planes = self.planes(feats, motion_source.expand(n, -1), motion, motion_scale)
        background = 0.0
        if feats.background is not None:
            background = feats.background
            if background.shape[-1] != r:
                background = F.interpolate(background, size=(r, r), mode="bilinear")
        origins, dirs = sample_rays(cam2world, intrinsics, r, camera=OPENGL)
        out = self.renderer(planes, self.decoder, origins, dirs, self.render_options(), cam_z=cam_z,
                            deformer=deformer, generator=generator)
        features = out.features.permute(0, 2, 1).reshape(n, -1, r, r).contiguous()
        depth = out.depth.permute(0, 2, 1).reshape(n, 1, r, r)
        t_bg = out.transmittance.permute(0, 2, 1).reshape(n, 1, r, r)
        features = 2 * (features + t_bg * background) - 1
        rgb = features[:, :3]
        image_sr = rgb
        if self.superresolution is not None:
            ws = self.w_avg.reshape(1, 1, -1).repeat(n, 1, 1)
            mode = noise_mode or self.cfg.rendering_kwargs.get("superresolution_noise_mode", "none")
            image_sr = self.superresolution(rgb, features, ws, noise_mode=mode)
        return Portrait4DOutput(image_sr, rgb, features, depth, t_bg)
