"""OmniAvatar's generator (``TriPlaneGenerator``, Xu et al. CVPR 2023) run by headsplat's own code from the
authors' persistence pickle, without running the pickled code.

z (and the camera label, scaled by ``c_scale``: 0 unless the pickle says otherwise) -> w (truncated towards
``w_avg``) -> a StyleGAN2 backbone at 256² whose ``32 * 3 * triplane_depth`` channels are three "volume planes".
Each sample point is warped into the canonical space by the implicit 3DMM (``renderer.im3dmm``, conditioned on the
206 controls), which also gives a prior SDF; the volume planes are sampled trilinearly at the canonical point;
the pose-conditioned decoder (the last 106 controls: expression, neck, jaw) gives density and 32 features;
density is ``sigmoid(-sdf / beta) / beta`` of the prior SDF plus the decoder's (with ``delta_geom``). The render is
composited over an optional background network and super-resolved.

Conventions, stated here once:

- label rows (``ffhq_labels.npy``, and ``c`` everywhere): 16 camera-to-world values (row-major 4×4), 9 normalised
  intrinsics (row-major 3×3, focal and centre in image widths), then the 206 controls
  (:data:`CONTROLS`: shape 100, expression 100, neck 3, jaw 3); only the first ``c_dim`` values reach the mapping.
- cameras: OpenCV (x right, y down, looking along +z; :data:`~headsplat.models.eg3d.OPENCV`), world +y up, the
  head at ``avg_camera_pivot``; :func:`look_at_camera` is the reference's ``LookAtPoseSampler``.
- volume planes: coordinate orders (x, y, z), (y, z, x), (x, z, y) for grid_sample's (width, height, depth)
  (:data:`~headsplat.models.eg3d.XYZ_YZX_XZY`), over a cube of side ``box_warp``.
- samples: ``ray_start``/``ray_end`` from ``rendering_kwargs`` (numbers or the box's entry/exit); the released
  script's deterministic sampling (``det_sampling``) is the default here.

Quirks of the reference, reproduced:

- [x] the im3dmm's *own* first output is the prior SDF on the rendering path; the template SDF is not queried.
- [x] without ``delta_geom`` the prior SDF does not change the density (the decoder's density is used alone).
- [x] the marcher keeps colours in [0, 1]; ``* 2 - 1`` is applied after the background, if the decoder's
      activation is sigmoid; the mask is ``opacity * 1.002 - 0.001``.
- [x] the SR's noise mode is ``rendering_kwargs['superresolution_noise_mode']``, the backbone's the caller's.
- [ ] the decoder's pose perturbation (``pose_perturb_magtinude``; the released script sets it to 0, and the
      reference still draws ``randn_like`` noise times 0): not drawn here.
- [ ] ``with_sdf``, ``absorption`` and ``force_background``: refused (the reference's ``with_sdf`` sampler takes
      only 4-D planes, so it cannot run with volume planes).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from headsplat.core.errors import ArgumentError, InputError, ShapeError
from headsplat.models.eg3d.rendering import (
    OPENCV,
    XYZ_YZX_XZY,
    ImportanceRenderer,
    RenderOptions,
    sample_from_volplanes,
    sample_rays,
)
from headsplat.models.eg3d.stylegan2 import FullyConnectedLayer, Generator, SynthesisNetwork, ToRGBLayer
from headsplat.models.eg3d.superresolution import build_superresolution
from headsplat.models.omniavatar.im3dmm import IGRModel, sdf_density
from headsplat.models.persistence import read_eg3d_network
from headsplat.models.weights import load_strict

CLASS_NAME = "TriPlaneGenerator"
N_CAMERA = 25  # cam2world 16 + intrinsics 9 at the start of a label row
#: the controls after the camera values, in order (name, size)
CONTROLS: tuple[tuple[str, int], ...] = (("shape", 100), ("expression", 100), ("neck", 3), ("jaw", 3))
N_CONTROLS = sum(n for _, n in CONTROLS)  # 206
N_POSE = 106  # the decoder's conditioning: the last 106 controls (expression, neck, jaw)
#: normalised intrinsics of the released script: ``--cfg ffhq`` and the README's ``--cfg ffhq_3dmm`` (any other)
FFHQ_FOCAL, FFHQ_3DMM_FOCAL = 4.2647, 1015.0 / 224.0
PLANE_CHANNELS = 32  # channels of each slice of a volume plane, and of the decoder's features

#: ``rendering_kwargs`` for the default configuration: the keys the reference reads. Values the repository does
#: not state (the released pickle holds them) are EG3D FFHQ-512's or assumptions, marked "assumed".
DEFAULT_RENDERING: dict = {
    "triplane_depth": 3,  # assumed
    "feature_dim": N_CONTROLS,
    "im3dmm_path": "im3dmm.pth",  # the reference loads the MLPs from these files; here: non-empty = present
    "template_sdf_path": "template_sdf.pth",
    "intermediate_dims": [512] * 8,  # assumed
    "template_intermediate_dims": [256] * 8,  # assumed
    "skip_connection_layers": [4],  # assumed
    "bbox": [[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]],  # assumed
    "with_sdf": False,
    "delta_geom": True,  # assumed
    "use_background": True,  # assumed
    "with_torgb": False,  # assumed
    "decoder_lr_mul": 1.0,
    "decoder_activation": "sigmoid",
    "pose_perturb_magtinude": 0.0,  # (sic)
    "pose_embed": False,  # assumed
    "superresolution_module": "training.superresolution.SuperresolutionHybrid8XDC",
    "sr_antialias": True,
    "superresolution_noise_mode": "none",
    "c_gen_conditioning_zero": False,
    "c_scale": 1.0,  # EG3D's (the reference reads 0 when the key is absent)
    "depth_resolution": 48,
    "depth_resolution_importance": 48,
    "ray_start": 2.25,  # this and the camera keys below: EG3D FFHQ's
    "ray_end": 3.3,
    "box_warp": 1.0,
    "disparity_space_sampling": False,
    "clamp_mode": "softplus",
    "avg_camera_radius": 2.7,
    "avg_camera_pivot": [0.0, 0.0, 0.2],
    "det_sampling": True,  # the released script's setting
}


@dataclass(frozen=True)
class OmniAvatarConfig:
    """The generator's construction arguments (the pickle's ``init_args``/``init_kwargs``; defaults: EG3D FFHQ-512's
    training configuration with :data:`DEFAULT_RENDERING`)."""
    z_dim: int = 512  # latent z
    c_dim: int = 25  # label values fed to the mapping (the camera)
    w_dim: int = 512  # latent w
    img_resolution: int = 512  # output side
    img_channels: int = 3  # output channels
    sr_num_fp16_res: int = 0  # > 0: super-resolution in float16 on CUDA
    mapping_kwargs: dict = field(default_factory=lambda: {"num_layers": 2})  # MappingNetwork's extra arguments
    rendering_kwargs: dict = field(default_factory=lambda: dict(DEFAULT_RENDERING))  # as pickled
    sr_kwargs: dict = field(default_factory=lambda: {"channel_base": 32768, "channel_max": 512,
                                                     "fused_modconv_default": "inference_only"})
    synthesis_kwargs: dict = field(default_factory=lambda: {"channel_base": 32768, "channel_max": 512,
                                                            "fused_modconv_default": "inference_only",
                                                            "num_fp16_res": 0, "conv_clamp": None})
    neural_rendering_resolution: int = 64  # the volume render's side when a call gives none

    @classmethod
    def from_init_kwargs(cls, kwargs: dict, args: tuple = ()) -> "OmniAvatarConfig":
        """From the pickle's constructor arguments: positional ``(z_dim, c_dim, w_dim, img_resolution,
        img_channels)``, named ones; the rest (the reference's ``**synthesis_kwargs``) go to the backbone."""
        names = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
        kw = {**dict(zip(names, args)), **kwargs}
        own = set(cls.__dataclass_fields__) - {"synthesis_kwargs"}
        return cls(**{k: v for k, v in kw.items() if k in own},
                   synthesis_kwargs={k: v for k, v in kw.items() if k not in own})


@dataclass(frozen=True)
class OmniAvatarOutput:
    """One synthesis. image: (B, img_channels, R, R) super-resolved, about [-1, 1]. image_raw: (B, 3, r, r) the
    neural render's RGB. features: (B, 32, r, r) the feature image fed to super-resolution. depth: (B, 1, r, r).
    mask: (B, 1, r, r) opacity, ``* 1.002 - 0.001`` as the reference returns it."""
    image: torch.Tensor
    image_raw: torch.Tensor
    features: torch.Tensor
    depth: torch.Tensor
    mask: torch.Tensor


def look_at_camera(yaw: float, pitch: float, pivot, radius: float, device=None) -> torch.Tensor:
    """The reference's ``LookAtPoseSampler.sample`` without noise: a (1, 4, 4) OpenCV camera-to-world on the sphere
    of ``radius`` round ``pivot``, looking at it, world +y up. ``yaw = pitch = pi / 2`` is the frontal camera (on
    the +z side of the pivot)."""
    pivot = torch.as_tensor(pivot, dtype=torch.float32, device=device)
    v = min(max(pitch, 1e-5), math.pi - 1e-5) / math.pi
    phi = math.acos(1 - 2 * v)
    origin = torch.tensor([radius * math.sin(phi) * math.cos(math.pi - yaw), radius * math.cos(phi),
                           radius * math.sin(phi) * math.sin(math.pi - yaw)], device=device)
    forward = F.normalize(pivot - origin, dim=-1)
    up = torch.tensor([0.0, 1.0, 0.0], device=device)
    right = -F.normalize(torch.linalg.cross(up, forward), dim=-1)
    up = F.normalize(torch.linalg.cross(forward, right), dim=-1)
    out = torch.eye(4, device=device)
    out[:3, :3] = torch.stack((right, up, forward), -1)
    out[:3, 3] = origin
    return out[None]


def make_label(cam2world: torch.Tensor, intrinsics: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4), (B, 3, 3) normalised, (B, 206) -> (B, 231) label rows (the layout of ``ffhq_labels.npy``)."""
    if controls.shape[-1] != N_CONTROLS:
        raise ShapeError(f"controls: expected (B, {N_CONTROLS}), got {tuple(controls.shape)}")
    b = controls.shape[0]
    return torch.cat([cam2world.reshape(b, 16), intrinsics.reshape(b, 9), controls], 1)


class PoseOSGDecoder(nn.Module):
    """OmniAvatar's decoder: the planes' mean feature, concatenated with ``pose_net`` of the last 106 controls
    (FC + softplus to 32; ``pose_embed`` feeds ``[sin πc, cos πc, c]``), -> ``sigma_net`` (FC 64, softplus,
    FC 1 + 32). Colour activation: sigmoid (MipNeRF's clamping), ``lrelu`` or none."""

    def __init__(self, n_features: int, options: dict, n_pose_features: int = 0):
        super().__init__()
        self.hidden_dim = 64
        self.n_pose_features = n_pose_features
        lr = options["decoder_lr_mul"]
        n_pose = 0
        self.pose_embed = bool(options.get("pose_embed", False))
        self.pose_net = None
        if n_pose_features > 0:
            n_in = 3 * n_pose_features if self.pose_embed else n_pose_features
            self.pose_net = nn.Sequential(FullyConnectedLayer(n_in, n_features, lr_multiplier=lr), nn.Softplus())
            n_pose = n_features
        self.sigma_net = nn.Sequential(FullyConnectedLayer(n_features + n_pose, self.hidden_dim, lr_multiplier=lr),
                                       nn.Softplus(),
                                       FullyConnectedLayer(self.hidden_dim, 1 + options["decoder_output_dim"],
                                                           lr_multiplier=lr))
        self.activation = options.get("decoder_activation") or "sigmoid"

    def forward(self, sampled_features: torch.Tensor, controls: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """(N, 3, M, C) plane features, (N, >= 106) controls -> ``{'rgb': (N, M, 32), 'sigma': (N, M, 1)}``."""
        x = sampled_features.mean(1)
        n, m, c = x.shape
        x = x.reshape(n * m, c)
        if self.pose_net is not None:
            if controls is None:
                raise ArgumentError("controls", "this decoder is conditioned on the controls; none given")
            pose = controls[:, -self.n_pose_features:]
            if self.pose_embed:
                pose = torch.cat([torch.sin(math.pi * pose), torch.cos(math.pi * pose), pose], -1)
            x = torch.cat([x, self.pose_net(pose).repeat_interleave(m, 0)], -1)
        out = self.sigma_net(x).reshape(n, m, -1)
        sigma, rgb = out[..., :1], out[..., 1:]
        if self.activation == "sigmoid":
            rgb = torch.sigmoid(rgb) * (1 + 2 * 0.001) - 0.001
        elif self.activation == "lrelu":
            rgb = F.leaky_relu(rgb, 0.2) * math.sqrt(2)
        return {"rgb": rgb, "sigma": sigma}


@dataclass(frozen=True)
class VolumeScene:
    """What the renderer samples: volume planes (N, 3, 32 * depth, H, W) and the controls (N, 206) or None."""
    planes: torch.Tensor
    controls: torch.Tensor | None
    depth: int
    prior_only: bool = False  # density from the prior SDF alone (the reference's ``return_prior``)


class OmniAvatarRenderer(ImportanceRenderer):
    """EG3D's importance renderer with OmniAvatar's point model: the im3dmm warp and prior SDF, volume planes, the
    pose-conditioned decoder, the SDF density. Keys: ``sigmoid_beta``, ``template_sdf.*``, ``im3dmm.*``."""

    def __init__(self, rk: dict):
        super().__init__(XYZ_YZX_XZY)
        for key in ("with_sdf", "absorption", "force_background"):
            if rk.get(key, False):
                raise ArgumentError(f"rendering_kwargs.{key}", "not supported (see the module's quirks)")
        self.delta_geom = bool(rk.get("delta_geom", False))
        self.template_sdf = None
        if rk.get("template_sdf_path"):
            self.template_sdf = IGRModel(rk["template_intermediate_dims"], rk["skip_connection_layers"], rk["bbox"],
                                         feature_dim=0, output_dim=1)
        self.im3dmm = None
        if rk.get("im3dmm_path"):
            self.im3dmm = IGRModel(rk["intermediate_dims"], rk["skip_connection_layers"], rk["bbox"],
                                   feature_dim=rk["feature_dim"], output_dim=4, template_sdf=self.template_sdf)
            self.sigmoid_beta = nn.Parameter(0.001 * torch.ones(1))

    def warp(self, points: torch.Tensor, controls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, M, 3) world points, (N, F) controls -> canonical points (N, M, 3), prior SDF (N, M, 1)."""
        feats = controls[:, None, :].expand(-1, points.shape[1], -1)
        out = self.im3dmm(points, feats)
        return out[..., 1:4], out[..., :1]

    def run_model(self, planes: VolumeScene, decoder, coordinates, directions, opts: RenderOptions,
                  generator: torch.Generator | None = None) -> dict:
        scene = planes
        prior = None
        if self.im3dmm is not None and scene.controls is not None and scene.controls.shape[-1] > 0:
            with torch.no_grad():
                coordinates, prior = self.warp(coordinates, scene.controls)
        feats = sample_from_volplanes(scene.planes, coordinates, opts.box_warp, scene.depth, self.plane_axes)
        out = decoder(feats, scene.controls)
        if prior is not None:
            prior_sigma = sdf_density(prior, self.sigmoid_beta)
            if scene.prior_only:
                out["sigma"] = prior_sigma
            elif self.delta_geom:
                out["sigma"] = prior_sigma + out["sigma"]
        if opts.density_noise > 0:
            out["sigma"] = out["sigma"] + torch.randn(out["sigma"].shape, device=out["sigma"].device,
                                                      generator=generator) * opts.density_noise
        return out


class OmniAvatar(nn.Module):
    """The generator (keys as the released ``G_ema``'s ``state_dict()``)."""

    def __init__(self, cfg: OmniAvatarConfig = OmniAvatarConfig()):
        super().__init__()
        self.cfg = cfg
        rk = cfg.rendering_kwargs
        self.triplane_depth = int(rk["triplane_depth"])
        has_3dmm = bool(rk.get("im3dmm_path"))
        self.feature_dim = int(rk.get("feature_dim", N_CONTROLS)) if has_3dmm else 0
        self.renderer = OmniAvatarRenderer(rk)
        self.backbone = Generator(cfg.z_dim, cfg.c_dim, cfg.w_dim, img_resolution=256,
                                  img_channels=PLANE_CHANNELS * 3 * self.triplane_depth,
                                  mapping_kwargs=cfg.mapping_kwargs, **cfg.synthesis_kwargs)
        self.superresolution = build_superresolution(
            str(rk.get("superresolution_module", "")), channels=PLANE_CHANNELS, img_resolution=cfg.img_resolution,
            sr_num_fp16_res=cfg.sr_num_fp16_res, sr_antialias=rk["sr_antialias"], img_channels=cfg.img_channels,
            **cfg.sr_kwargs)
        self.decoder = PoseOSGDecoder(PLANE_CHANNELS, {"decoder_lr_mul": rk.get("decoder_lr_mul", 1),
                                                       "decoder_output_dim": PLANE_CHANNELS,
                                                       "decoder_activation": rk["decoder_activation"],
                                                       "pose_embed": rk.get("pose_embed", False)},
                                      N_POSE if has_3dmm else 0)
        self.bcg_synthesis = None
        if rk.get("use_background", False):
            bcg = {**cfg.synthesis_kwargs, "channel_base": cfg.synthesis_kwargs["channel_base"] // 2}
            self.bcg_synthesis = SynthesisNetwork(cfg.w_dim, img_resolution=self.superresolution.input_resolution,
                                                  img_channels=PLANE_CHANNELS, **bcg)
        self.torgb = ToRGBLayer(PLANE_CHANNELS, 3, cfg.w_dim) if rk.get("with_torgb", False) else None

    # -- construction from the released file -------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "OmniAvatar":
        """The released ``G_ema`` read with :func:`~headsplat.models.persistence.read_network_pickle` (nothing in
        the file runs), built from its ``init_args``/``init_kwargs`` (``rendering_kwargs`` and the neural
        rendering resolution from the pickled object, which training updates), loaded strictly.

        Raises:
            InputError: a refused or unreadable pickle, another network class, or keys/shapes that differ.
        """
        net, kwargs = read_eg3d_network(path, CLASS_NAME, "OmniAvatar")
        nrr = net.record.state.get("neural_rendering_resolution")
        if isinstance(nrr, int):
            kwargs["neural_rendering_resolution"] = nrr
        try:
            model = cls(OmniAvatarConfig.from_init_kwargs(kwargs, net.init_args))
        except (ArgumentError, KeyError, TypeError) as e:
            raise InputError(f"{path}: its init_kwargs do not build the network ({type(e).__name__}: {e})") from None
        load_strict(model, net.state_dict, path)
        return model.to(device).eval()

    # -- the network -------------------------------------------------------------------------------------------
    def render_options(self, **overrides) -> RenderOptions:
        """The ``rendering_kwargs`` as :class:`RenderOptions` (colours kept in [0, 1]; deterministic sampling as
        ``det_sampling`` says, on unless the pickle turns it off)."""
        rk = dict(self.cfg.rendering_kwargs)
        if isinstance(rk.get("box_warp"), (list, tuple)):  # per-axis box sides (x, y, z)
            rk["box_warp"] = tuple(float(v) for v in rk["box_warp"])
        return RenderOptions.from_kwargs(rk, rgb_to_signed=False,
                                         **{"deterministic": bool(rk.get("det_sampling", True)), **overrides})

    def prior_sdf(self, points: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        """The implicit 3DMM's prior signed distance (world units; the rendering path's ``warp`` output, so
        differentiable in the points): (R, K, 3) world points under (R, 206) control rows -> (R, K).

        Raises:
            ArgumentError: the pickle has no implicit 3DMM (``im3dmm_path`` unset).
        """
        if self.renderer.im3dmm is None:
            raise ArgumentError("rendering_kwargs.im3dmm_path", "this network has no implicit 3DMM (no prior SDF)")
        return self.renderer.warp(points, controls)[1][..., 0]

    def mapping(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, need_repeat: bool = True) -> torch.Tensor:
        """z: (B, z_dim), c: (B, >= c_dim) label rows -> ws (B, num_ws, w_dim) (``need_repeat`` False: (B, w_dim)).
        The camera label is multiplied by ``c_scale`` (0 when the pickle has none: no camera conditioning)."""
        rk = self.cfg.rendering_kwargs
        cam = c[..., :self.cfg.c_dim]
        if rk.get("c_gen_conditioning_zero", False):
            cam = torch.zeros_like(cam)
        return self.backbone.mapping(z, cam * rk.get("c_scale", 0), truncation_psi=truncation_psi,
                                     truncation_cutoff=truncation_cutoff, need_repeat=need_repeat)

    def planes(self, ws: torch.Tensor, noise_mode: str = "const", res_out: torch.Tensor | None = None,
               res_skip: torch.Tensor | None = None) -> torch.Tensor:
        """ws (B, num_ws, w_dim) -> volume planes (B, 3, 32 * triplane_depth, 256, 256)."""
        p = self.backbone.synthesis(ws, res_out=res_out, res_skip=res_skip, noise_mode=noise_mode)
        return p.view(len(p), 3, PLANE_CHANNELS * self.triplane_depth, p.shape[-2], p.shape[-1])

    def synthesis(self, ws: torch.Tensor, c: torch.Tensor, neural_rendering_resolution: int | None = None,
                  noise_mode: str = "const", ws_bcg: torch.Tensor | None = None, sr_ws: torch.Tensor | None = None,
                  res_out: torch.Tensor | None = None, res_skip: torch.Tensor | None = None, prior_only: bool = False,
                  options: RenderOptions | None = None, generator: torch.Generator | None = None,
                  planes: torch.Tensor | None = None) -> OmniAvatarOutput:
        """Render ws at the cameras and controls of label rows ``c``.

        Args:
            ws: (B, num_ws, w_dim). c: (B, 25 + 206) label rows (module docstring).
            neural_rendering_resolution: the volume render's side (None: the configuration's).
            noise_mode: the backbone's and background's StyleGAN noise (``const``: the released script's).
            options: the sampling (None: :meth:`render_options`). generator: random draws of non-deterministic
                sampling.
            planes: :meth:`planes` of ``ws`` computed once (they depend on ws only, not on the camera or
                controls), or None.
        """
        r = neural_rendering_resolution or self.cfg.neural_rendering_resolution
        rk = self.cfg.rendering_kwargs
        if c.ndim != 2 or c.shape[1] < N_CAMERA + self.feature_dim:
            raise ShapeError(f"c: expected (B, {N_CAMERA + self.feature_dim}) label rows, got {tuple(c.shape)}")
        n = c.shape[0]
        cam2world, intrinsics = c[:, :16].view(-1, 4, 4), c[:, 16:25].view(-1, 3, 3)
        controls = c[:, c.shape[1] - self.feature_dim:] if self.feature_dim else None
        origins, dirs = sample_rays(cam2world, intrinsics, r, camera=OPENCV)
        if planes is None:
            planes = self.planes(ws, noise_mode, res_out, res_skip)
        scene = VolumeScene(planes, controls, self.triplane_depth, prior_only)
        out = self.renderer(scene, self.decoder, origins, dirs, options or self.render_options(), generator=generator)
        features = out.features.permute(0, 2, 1).reshape(n, -1, r, r).contiguous()
        depth = out.depth.permute(0, 2, 1).reshape(n, 1, r, r)
        opacity = out.weights.permute(0, 2, 1).reshape(n, 1, r, r)
        if self.bcg_synthesis is not None:
            wb = (ws if ws_bcg is None else ws_bcg)[:, :self.bcg_synthesis.num_ws]
            bcg = self.bcg_synthesis(wb, noise_mode=noise_mode)
            bcg = F.interpolate(bcg, size=(r, r), mode="bilinear", align_corners=False,
                                antialias=rk["sr_antialias"])
            features = features + (1 - opacity) * bcg
        if self.decoder.activation == "sigmoid":
            features = features * 2 - 1
        if self.torgb is not None:
            rgb = self.torgb(features, ws[:, -1], fused_modconv=False).to(torch.float32)
        else:
            rgb = features[:, :3]
        image = self.superresolution(rgb, features, ws if sr_ws is None else sr_ws,
                                     noise_mode=rk["superresolution_noise_mode"])
        return OmniAvatarOutput(image, rgb, features, depth, opacity * (1 + 2 * 0.001) - 0.001)

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, **synthesis_kwargs) -> OmniAvatarOutput:
        """z (B, z_dim), label rows c (B, 231) -> the render (mapping, then :meth:`synthesis`)."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, c, **synthesis_kwargs)
