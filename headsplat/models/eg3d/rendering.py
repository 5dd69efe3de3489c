"""EG3D's volume rendering of triplanes: rays from cameras, features sampled from three axis-aligned planes,
the OSG decoder, stratified + importance sampling along rays, and the MipNeRF-style ray marcher.

Every convention the models differ in is a named argument, stated once at each model's boundary:

- ``camera``: :data:`OPENCV` (EG3D, OmniAvatar: camera x right, y down, looking along +z) or :data:`OPENGL`
  (Portrait4D: x right, y up, looking along -z). Intrinsics are normalised (focal and centre in image widths),
  pixel centres at ``(i + 0.5) / resolution``.
- ``plane_axes``: which two coordinates index each plane. :data:`EG3D_PLANES` reproduces EG3D's
  ``generate_planes`` + ``project_onto_planes`` (the projection multiplies by the *inverse* axes, so the planes
  are (x, y), (x, z), (z, x)); :data:`XY_YZ_ZX` is Portrait4D's (x, y), (y, z), (z, x).
- sample ranges (:class:`RenderOptions`): fixed near/far, ``"auto"`` (the ray's entry and exit of the box), or
  ``"auto-plane"`` (Portrait4D: the camera's depth of the origin ± half the box, one jitter for all rays).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from headsplat.core.errors import ArgumentError, ShapeError
from headsplat.models.eg3d.stylegan2 import FullyConnectedLayer

CameraConvention = Literal["opencv", "opengl"]
OPENCV: CameraConvention = "opencv"
OPENGL: CameraConvention = "opengl"
EG3D_PLANES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (2, 0))
XY_YZ_ZX: tuple[tuple[int, int], ...] = ((0, 1), (1, 2), (2, 0))
#: OmniAvatar's three volume planes: the coordinate orders (grid_sample's x, y, z = width, height, depth)
XYZ_YZX_XZY: tuple[tuple[int, int, int], ...] = ((0, 1, 2), (1, 2, 0), (0, 2, 1))


# -- rays -------------------------------------------------------------------------------------------------------
def sample_rays(cam2world: torch.Tensor, intrinsics: torch.Tensor, resolution: int,
                camera: CameraConvention = OPENCV) -> tuple[torch.Tensor, torch.Tensor]:
    """One ray per pixel of a ``resolution``² image, row-major (pixel (row i, column j) is ray ``i * R + j``).

    Args:
        cam2world: (N, 4, 4) camera-to-world. intrinsics: (N, 3, 3) normalised (fx, fy, cx, cy and skew in
            units of the image side). camera: the camera frame's convention (module docstring).

    Returns:
        origins (N, R², 3) (the camera centre), unit directions (N, R², 3).
    """
    if cam2world.shape[-2:] != (4, 4) or intrinsics.shape[-2:] != (3, 3):
        raise ShapeError(f"cam2world, intrinsics: expected (N, 4, 4) and (N, 3, 3), got {tuple(cam2world.shape)} "
                         f"and {tuple(intrinsics.shape)}")
    if camera not in (OPENCV, OPENGL):
        raise ArgumentError("camera", f"unknown value {camera!r}; choose opencv or opengl")
    n, dev = cam2world.shape[0], cam2world.device
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    cx, cy, sk = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None], intrinsics[:, 0, 1, None]
    idx = torch.arange(resolution, dtype=torch.float32, device=dev) * (1.0 / resolution) + (0.5 / resolution)
    v, u = torch.meshgrid(idx, idx, indexing="ij")
    u = u.reshape(1, -1).expand(n, -1)
    v = v.reshape(1, -1).expand(n, -1)
    z = torch.ones_like(u) if camera == OPENCV else -torch.ones_like(u)
    x = (u - cx + cy * sk / fy - sk * v / fy) / fx * z
    y = (v - cy) / fy * z
    if camera == OPENGL:  # z = -1 flipped the lift's x too; image x still runs along the camera's +x
        x = -x
    points = torch.stack((x, y, z, torch.ones_like(z)), -1)
    world = torch.bmm(cam2world, points.permute(0, 2, 1)).permute(0, 2, 1)[..., :3]
    centre = cam2world[:, :3, 3]
    dirs = F.normalize(world - centre[:, None], dim=2)
    return centre[:, None].repeat(1, dirs.shape[1], 1), dirs


def ray_box_limits(origins: torch.Tensor, dirs: torch.Tensor, box_side
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through the axis-aligned box at the origin (slab method); rays that miss
    get (-1, -2).

    Args:
        origins, dirs: (..., 3). box_side: the cube's side, or the box's three sides (x, y, z; OmniAvatar's
            ``box_warp`` may be one). Returns: near, far (..., 1).
    """
    shape = origins.shape[:-1]
    o = origins.detach().reshape(-1, 3)
    d = dirs.detach().reshape(-1, 3)
    half = torch.as_tensor(box_side, dtype=o.dtype, device=o.device).expand(3) / 2
    bounds = torch.stack([-half, half])
    inv = 1 / d
    sign = (inv < 0).long()
    lo = [(bounds.index_select(0, sign[:, k])[:, k] - o[:, k]) * inv[:, k] for k in range(3)]
    hi = [(bounds.index_select(0, 1 - sign[:, k])[:, k] - o[:, k]) * inv[:, k] for k in range(3)]
    valid = ~torch.logical_or(lo[0] > hi[1], lo[1] > hi[0])
    tmin, tmax = torch.max(lo[0], lo[1]), torch.min(hi[0], hi[1])
    valid &= ~torch.logical_or(tmin > hi[2], lo[2] > tmax)
    tmin, tmax = torch.max(tmin, lo[2]), torch.min(tmax, hi[2])
    tmin = torch.where(valid, tmin, torch.full_like(tmin, -1))
    tmax = torch.where(valid, tmax, torch.full_like(tmax, -2))
    return tmin.reshape(*shape, 1), tmax.reshape(*shape, 1)


# -- triplanes --------------------------------------------------------------------------------------------------
def project_onto_planes(coordinates: torch.Tensor, plane_axes=EG3D_PLANES) -> torch.Tensor:
    """(N, M, 3) points -> (N * P, M, 2) their coordinates in each of the P planes (``plane_axes``: the two
    coordinate indices of each plane)."""
    n, m, _ = coordinates.shape
    return torch.stack([coordinates[..., list(ax)] for ax in plane_axes], 1).reshape(n * len(plane_axes), m, 2)


def sample_from_planes(planes: torch.Tensor, coordinates: torch.Tensor, box_warp: float,
                       plane_axes=EG3D_PLANES, mode: str = "bilinear") -> torch.Tensor:
    """Bilinear features of points from triplanes (zero outside; ``align_corners=False``).

    Args:
        planes: (N, P, C, H, W). coordinates: (N, M, 3), the box of side ``box_warp`` mapped to [-1, 1].
        plane_axes: each plane's two coordinates (index 0 = grid_sample's x, i.e. the plane's width).

    Returns:
        (N, P, M, C).
    """
    n, p, c, h, w = planes.shape
    m = coordinates.shape[1]
    uv = project_onto_planes((2 / box_warp) * coordinates, plane_axes).unsqueeze(1)
    out = F.grid_sample(planes.reshape(n * p, c, h, w), uv.float(), mode=mode, padding_mode="zeros",
                        align_corners=False)
    return out.permute(0, 3, 2, 1).reshape(n, p, m, c)


def sample_from_volplanes(planes: torch.Tensor, coordinates: torch.Tensor, box_warp: float, depth: int,
                          plane_axes=XYZ_YZX_XZY, mode: str = "bilinear") -> torch.Tensor:
    """Trilinear features of points from "volume planes" (OmniAvatar): each of the P planes is a thin 3-D grid of
    ``depth`` slices, sampled at the point's coordinates in that plane's order (zeros outside,
    ``align_corners=False``).

    Args:
        planes: (N, P, C * depth, H, W), channel-major (C slowest). coordinates: (N, M, 3).

    Returns:
        (N, P, M, C).
    """
    n, p, cd, h, w = planes.shape
    c, m = cd // depth, coordinates.shape[1]
    vol = planes.reshape(n * p, c, depth, h, w)
    coords = (2 / torch.tensor(box_warp, device=coordinates.device, dtype=torch.float32)) * coordinates
    uvw = torch.stack([coords[..., list(ax)] for ax in plane_axes], 1).view(n * p, m, 3)
    out = F.grid_sample(vol, uvw[:, None, None].float(), mode=mode, padding_mode="zeros", align_corners=False)
    return out.permute(0, 4, 3, 2, 1).reshape(n, p, m, c)


class OSGDecoder(nn.Module):
    """EG3D's decoder: features averaged over the planes -> FC 64, softplus -> FC (1 + ``decoder_output_dim``);
    density raw, colour/features ``sigmoid * 1.002 - 0.001``."""

    def __init__(self, n_features: int, options: dict):
        super().__init__()
        self.hidden_dim = 64
        lr = options["decoder_lr_mul"]
        self.net = nn.Sequential(FullyConnectedLayer(n_features, self.hidden_dim, lr_multiplier=lr), nn.Softplus(),
                                 FullyConnectedLayer(self.hidden_dim, 1 + options["decoder_output_dim"],
                                                     lr_multiplier=lr))

    def forward(self, sampled_features: torch.Tensor, ray_directions: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """(N, P, M, C) -> ``{'rgb': (N, M, out), 'sigma': (N, M, 1)}``."""
        x = sampled_features.mean(1)
        n, m, c = x.shape
        x = self.net(x.reshape(n * m, c)).reshape(n, m, -1)
        return {"rgb": torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001, "sigma": x[..., 0:1]}


class SplitOSGDecoder(nn.Module):
    """Portrait4D's OSG decoder: FC 64 + softplus (``net``), then separate density (``out_sigma``) and
    colour/feature (``out_rgb``) heads; same activations as :class:`OSGDecoder`."""

    def __init__(self, n_features: int, options: dict):
        super().__init__()
        self.hidden_dim = 64
        lr = options["decoder_lr_mul"]
        self.net = nn.Sequential(FullyConnectedLayer(n_features, self.hidden_dim, lr_multiplier=lr), nn.Softplus())
        self.out_sigma = FullyConnectedLayer(self.hidden_dim, 1, lr_multiplier=lr)
        self.out_rgb = FullyConnectedLayer(self.hidden_dim, options["decoder_output_dim"], lr_multiplier=lr)

    def forward(self, sampled_features: torch.Tensor, ray_directions: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """(N, P, M, C) -> ``{'rgb': (N, M, out), 'sigma': (N, M, 1)}``."""
        x = sampled_features.mean(1)
        n, m, c = x.shape
        x = self.net(x.reshape(n * m, c))
        rgb, sigma = self.out_rgb(x).reshape(n, m, -1), self.out_sigma(x).reshape(n, m, -1)
        return {"rgb": torch.sigmoid(rgb) * (1 + 2 * 0.001) - 0.001, "sigma": sigma}


# -- sampling along rays ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderOptions:
    """How rays are sampled and composited (the reference's ``rendering_kwargs`` keys)."""
    ray_start: float | str = "auto"  # near distance, or "auto" (box entry) or "auto-plane" (see the module)
    ray_end: float | str = "auto"  # far distance (same choices as ray_start; both auto or both numbers)
    box_warp: float | tuple[float, float, float] = 1.0  # side of the cube the planes span (or the box's 3 sides)
    depth_resolution: int = 48  # coarse samples per ray
    depth_resolution_importance: int = 48  # fine samples per ray (0: coarse only)
    disparity_space_sampling: bool = False  # coarse samples uniform in 1/depth
    clamp_mode: str = "softplus"  # density activation: softplus(sigma - 1), the only one the marcher has
    white_back: bool = False  # composite onto white
    density_noise: float = 0.0  # normal noise added to densities (training; 0 at inference)
    deterministic: bool = False  # no jitter of coarse samples; importance samples at evenly spaced quantiles
    rgb_to_signed: bool = True  # composited colour * 2 - 1 (EG3D); False keeps [0, 1] (Portrait4D)

    @classmethod
    def from_kwargs(cls, kwargs: dict, **overrides) -> "RenderOptions":
        """From a pickle's ``rendering_kwargs`` (other keys, the model's own, ignored)."""
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{**{k: v for k, v in kwargs.items() if k in names}, **overrides})


def _rand_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``torch.rand_like(x)`` from ``generator``: drawn in ``x``'s memory order (its strides kept), as the
    reference's draws on its permuted depth tensors are."""
    return torch.empty_like(x).uniform_(0, 1, generator=generator)


def sample_stratified(n: int, m: int, ray_start, ray_end, depth_resolution: int, device: torch.device,
                      disparity_space_sampling: bool = False, deterministic: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Coarse depths: ``depth_resolution`` evenly spaced from ``ray_start`` to ``ray_end``, each jittered
    forward by up to one spacing (unless ``deterministic``).

    Args:
        ray_start, ray_end: floats, or (N, M', 1) tensors (M' = m or 1).

    Returns:
        (N, M', depth_resolution, 1) (M' = m for float limits).
    """
    d = depth_resolution
    if disparity_space_sampling:
        t = torch.linspace(0, 1, d, device=device).reshape(1, 1, d, 1).repeat(n, m, 1, 1)
        if not deterministic:
            t = t + _rand_like(t, generator) * (1.0 / (d - 1))
        return 1.0 / (1.0 / ray_start * (1.0 - t) + 1.0 / ray_end * t)
    if isinstance(ray_start, torch.Tensor):
        steps = torch.arange(d, dtype=torch.float32, device=device) / (d - 1)
        depths = (ray_start[None] + steps.reshape(-1, 1, 1, 1) * (ray_end - ray_start)[None]).permute(1, 2, 0, 3)
        delta = ((ray_end - ray_start) / (d - 1))[..., None]
    else:
        depths = torch.linspace(ray_start, ray_end, d, device=device).reshape(1, 1, d, 1).repeat(n, m, 1, 1)
        delta = (ray_end - ray_start) / (d - 1)
    if not deterministic:
        depths = depths + _rand_like(depths, generator) * delta
    return depths


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n_samples: int, deterministic: bool = False,
               eps: float = 1e-5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverse-transform samples of the piecewise-constant density ``weights`` over ``bins``.

    Args:
        bins: (R, S + 1) bin edges. weights: (R, S). deterministic: quantiles ``linspace(0, 1, n)``.

    Returns:
        (R, n_samples).
    """
    r, s = weights.shape
    weights = weights + eps
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    if deterministic:
        u = torch.linspace(0, 1, n_samples, device=bins.device).expand(r, n_samples)
    else:
        u = torch.rand(r, n_samples, device=bins.device, generator=generator)
    u = u.contiguous()
    inds = torch.searchsorted(cdf, u, right=True)
    idx = torch.stack([torch.clamp_min(inds - 1, 0), torch.clamp_max(inds, s)], -1).view(r, 2 * n_samples)
    cdf_g = torch.gather(cdf, 1, idx).view(r, n_samples, 2)
    bins_g = torch.gather(bins, 1, idx).view(r, n_samples, 2)
    denom = cdf_g[..., 1] - cdf_g[..., 0]
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])


def sample_importance(depths: torch.Tensor, weights: torch.Tensor, n_samples: int, deterministic: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Fine depths from the coarse pass: the marcher's weights max-pooled then averaged over neighbours (+0.01),
    sampled between coarse mid-points. depths: (N, M, S, 1), weights: (N, M, S - 1, 1) -> (N, M, n, 1)."""
    with torch.no_grad():
        n, m, s, _ = depths.shape
        z = depths.reshape(n * m, s)
        w = weights.reshape(n * m, -1)
        w = F.max_pool1d(w.unsqueeze(1).float(), 2, 1, padding=1)
        w = F.avg_pool1d(w, 2, 1).squeeze(1) + 0.01
        mid = 0.5 * (z[:, :-1] + z[:, 1:])
        out = sample_pdf(mid, w[:, 1:-1], n_samples, deterministic=deterministic, generator=generator)
        return out.detach().reshape(n, m, n_samples, 1)


@dataclass(frozen=True)
class MarchOutput:
    """Composited rays. rgb: (N, M, C). depth: (N, M, 1). weights: (N, M, S - 1, 1) per interval.
    transmittance: (N, M, 1) left after the last sample (the background's share)."""
    rgb: torch.Tensor
    depth: torch.Tensor
    weights: torch.Tensor
    transmittance: torch.Tensor


def march_rays(colors: torch.Tensor, densities: torch.Tensor, depths: torch.Tensor, clamp_mode: str = "softplus",
               white_back: bool = False, rgb_to_signed: bool = True) -> MarchOutput:
    """EG3D's ``MipRayMarcher2``: interval mid-point colours and densities, density ``softplus(sigma - 1)``,
    alpha compositing.

    Args:
        colors: (N, M, S, C). densities: (N, M, S, 1) raw. depths: (N, M, S, 1) sorted.
    """
    if clamp_mode != "softplus":
        raise ArgumentError("clamp_mode", f"unknown value {clamp_mode!r}; the ray marcher has only softplus")
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    colors_mid = (colors[:, :, :-1] + colors[:, :, 1:]) / 2
    densities_mid = F.softplus((densities[:, :, :-1] + densities[:, :, 1:]) / 2 - 1)
    depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2
    alpha = 1 - torch.exp(-densities_mid * deltas)
    shifted = torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], -2)
    weights = alpha * torch.cumprod(shifted, -2)[:, :, :-1]
    rgb = torch.sum(weights * colors_mid, -2)
    total = weights.sum(2)
    depth = torch.nan_to_num(torch.sum(weights * depths_mid, -2) / total, float("inf"))
    depth = torch.clamp(depth, torch.min(depths), torch.max(depths))
    if white_back:
        rgb = rgb + 1 - total
    if rgb_to_signed:
        rgb = rgb * 2 - 1
    return MarchOutput(rgb, depth, weights, 1 - total)


class MipRayMarcher2(nn.Module):
    """:func:`march_rays` as the reference's module (no state); ``options`` is a ``rendering_kwargs`` dict."""

    def forward(self, colors, densities, depths, options: dict) -> MarchOutput:
        return march_rays(colors, densities, depths, options.get("clamp_mode", "softplus"),
                          options.get("white_back", False), options.get("rgb_to_signed", True))


# -- the renderer -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderOutput:
    """Rendered rays. features: (N, M, C) composited decoder colour/features. depth: (N, M, 1).
    weights: (N, M, 1) total opacity. transmittance: (N, M, 1) = 1 - opacity. depths: (N, M, S, 1) all
    samples, sorted."""
    features: torch.Tensor
    depth: torch.Tensor
    weights: torch.Tensor
    transmittance: torch.Tensor
    depths: torch.Tensor


Decoder = Callable[[torch.Tensor, torch.Tensor], dict]


class ImportanceRenderer(nn.Module):
    """EG3D's two-pass volume renderer over triplanes (coarse stratified, fine importance samples, merged and
    sorted). No state: ``plane_axes`` is a convention (not a buffer: the reference keeps it as a plain attribute,
    so it is not in the state dict)."""

    def __init__(self, plane_axes=EG3D_PLANES):
        super().__init__()
        self.plane_axes = tuple(tuple(a) for a in plane_axes)
        self.ray_marcher = MipRayMarcher2()

    def run_model(self, planes, decoder: Decoder, coordinates, directions, opts: RenderOptions,
                  generator: torch.Generator | None = None) -> dict:
        feats = sample_from_planes(planes, coordinates, opts.box_warp, self.plane_axes)
        out = decoder(feats, directions)
        if opts.density_noise > 0:
            out["sigma"] = out["sigma"] + torch.randn(out["sigma"].shape, device=out["sigma"].device,
                                                      generator=generator) * opts.density_noise
        return out

    def _limits(self, origins, dirs, opts: RenderOptions, cam_z):
        if opts.ray_start == opts.ray_end == "auto":
            start, end = ray_box_limits(origins, dirs, opts.box_warp)
            valid = end > start
            if torch.any(valid).item():  # the reference fills misses with the *entry* range, kept as it is
                start = torch.where(valid, start, start[valid].min())
                end = torch.where(valid, end, start[valid].max())
            return start, end
        if opts.ray_start == opts.ray_end == "auto-plane":
            if cam_z is None:
                raise ArgumentError("cam_z", "auto-plane sampling needs the cameras' depth of the origin")
            z = cam_z.reshape(-1, 1, 1).abs()
            return z - opts.box_warp / 2, z + opts.box_warp / 2
        if isinstance(opts.ray_start, str) or isinstance(opts.ray_end, str):
            raise ArgumentError("ray_start", f"{opts.ray_start!r}/{opts.ray_end!r}: both 'auto', both "
                                "'auto-plane' or both numbers")
        return float(opts.ray_start), float(opts.ray_end)

    def forward(self, planes: torch.Tensor, decoder: Decoder, ray_origins: torch.Tensor, ray_directions: torch.Tensor,
                opts: RenderOptions, cam_z: torch.Tensor | None = None,
                deformer: Callable[[torch.Tensor], torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> RenderOutput:
        """Render rays through triplanes.

        Args:
            planes: (N, P, C, H, W). decoder: (N, P, S, C), directions (N, S, 3) -> ``{'rgb', 'sigma'}``.
            ray_origins, ray_directions: (N, M, 3).
            cam_z: (N,) the cameras' depth of the world origin (``auto-plane`` sampling only).
            deformer: maps sample points (N, S, 3) to where the planes are sampled (Portrait4D); None: identity.
            generator: the random draws (jitter, importance samples); None: torch's global generator, in the
                reference's order.
        """
        n, m, _ = ray_origins.shape
        start, end = self._limits(ray_origins, ray_directions, opts, cam_z)
        depths = sample_stratified(n, m, start, end, opts.depth_resolution, ray_origins.device,
                                   opts.disparity_space_sampling, opts.deterministic, generator)
        if depths.shape[1] != m:  # auto-plane: one set of depths (and jitter) per image, for every ray
            depths = depths.repeat(1, m, 1, 1)

        def evaluate(d):
            s = d.shape[2]
            pts = (ray_origins.unsqueeze(-2) + d * ray_directions.unsqueeze(-2)).reshape(n, -1, 3)
            dirs = ray_directions.unsqueeze(-2).expand(-1, -1, s, -1).reshape(n, -1, 3)
            out = self.run_model(planes, decoder, deformer(pts) if deformer else pts, dirs, opts, generator)
            return out["rgb"].reshape(n, m, s, -1), out["sigma"].reshape(n, m, s, 1)

        march = {"clamp_mode": opts.clamp_mode, "white_back": opts.white_back, "rgb_to_signed": opts.rgb_to_signed}
        colors, densities = evaluate(depths)
        if opts.depth_resolution_importance > 0:
            coarse = self.ray_marcher(colors, densities, depths, march)
            fine = sample_importance(depths, coarse.weights, opts.depth_resolution_importance, opts.deterministic,
                                     generator)
            colors_f, densities_f = evaluate(fine)
            depths = torch.cat([depths, fine], -2)
            colors = torch.cat([colors, colors_f], -2)
            densities = torch.cat([densities, densities_f], -2)
            _, order = torch.sort(depths, dim=-2)
            depths = torch.gather(depths, -2, order)
            colors = torch.gather(colors, -2, order.expand(-1, -1, -1, colors.shape[-1]))
            densities = torch.gather(densities, -2, order)
        out = self.ray_marcher(colors, densities, depths, march)
        return RenderOutput(out.rgb, out.depth, out.weights.sum(2), out.transmittance, depths)
