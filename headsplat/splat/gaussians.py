"""GaussianSet: every per-Gaussian tensor in one structure, edited only by functions that keep them in step.

Free Gaussians carry world-space fields only. Bound Gaussians (see :mod:`headsplat.splat.binding`) also carry
a parent triangle and their position, rotation and scale in that triangle's frame; the world fields are then
what the last :func:`~headsplat.splat.binding.pose_gaussians` produced.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Iterator

import torch

from headsplat.core.errors import ShapeError
from headsplat.core.validate import check_shape

SH_C0 = 0.28209479177387814
# Number of SH coefficients per colour channel for degrees 0..3.
SH_COEFFS = {0: 1, 1: 4, 2: 9, 3: 16}
_BOUND_FIELDS = ("parent", "local_means", "local_quats", "local_log_scales")


def sh_degree_of(n_coeffs: int) -> int:
    """Degree of an SH expansion with ``n_coeffs`` coefficients per channel (1, 4, 9 or 16)."""
    for d, k in SH_COEFFS.items():
        if k == n_coeffs:
            return d
    raise ShapeError(f"sh: expected 1, 4, 9 or 16 coefficients per channel, got {n_coeffs}")


def rgb_to_sh_dc(rgb: torch.Tensor) -> torch.Tensor:
    """Colours (..., 3) in [0, 1] to the degree-0 SH coefficient that renders them."""
    return (rgb - 0.5) / SH_C0


@dataclass
class GaussianSet:
    """N Gaussians; every tensor's first dimension is N.

    Attributes:
        means: (N, 3) world-space centres in metres.
        quats: (N, 4) world-space rotations, w x y z, not necessarily normalised.
        log_scales: (N, 3) log of the standard deviations along the rotated axes.
        opacity_logits: (N,) logit of the opacity.
        sh: (N, K, 3) colour as spherical harmonics, K in {1, 4, 9, 16} (degree 0 to 3); degree 0 renders
            ``SH_C0 * sh[:, 0] + 0.5``.
        parent: (N,) int64 index of the parent triangle, or None for free Gaussians.
        local_means: (N, 3) centre in the parent triangle's frame, in units of the triangle's scale.
        local_quats: (N, 4) rotation in the parent triangle's frame, w x y z.
        local_log_scales: (N, 3) log standard deviations in units of the triangle's scale.
    """

    means: torch.Tensor
    quats: torch.Tensor
    log_scales: torch.Tensor
    opacity_logits: torch.Tensor
    sh: torch.Tensor
    parent: torch.Tensor | None = None
    local_means: torch.Tensor | None = None
    local_quats: torch.Tensor | None = None
    local_log_scales: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.means.shape[0] if self.means.dim() == 2 else -1
        check_shape("means", self.means, (None, 3))
        check_shape("quats", self.quats, (n, 4))
        check_shape("log_scales", self.log_scales, (n, 3))
        check_shape("opacity_logits", self.opacity_logits, (n,))
        check_shape("sh", self.sh, (n, None, 3))
        sh_degree_of(self.sh.shape[1])
        bound = [getattr(self, f) is not None for f in _BOUND_FIELDS]
        if any(bound) and not all(bound):
            missing = [f for f, b in zip(_BOUND_FIELDS, bound) if not b]
            raise ShapeError(f"bound Gaussians need parent and all local fields; missing {missing}")
        if all(bound):
            check_shape("parent", self.parent, (n,))
            if self.parent.dtype != torch.int64:
                raise ShapeError(f"parent: expected dtype torch.int64, got {self.parent.dtype}")
            check_shape("local_means", self.local_means, (n, 3))
            check_shape("local_quats", self.local_quats, (n, 4))
            check_shape("local_log_scales", self.local_log_scales, (n, 3))

    # --- views -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def is_bound(self) -> bool:
        return self.parent is not None

    @property
    def sh_degree(self) -> int:
        return sh_degree_of(self.sh.shape[1])

    @property
    def scales(self) -> torch.Tensor:
        """(N, 3) standard deviations."""
        return self.log_scales.exp()

    @property
    def opacities(self) -> torch.Tensor:
        """(N,) opacities in (0, 1)."""
        return torch.sigmoid(self.opacity_logits)

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, tensor) for every field that is set."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                yield f.name, value

    def map(self, fn) -> "GaussianSet":
        """A new set with ``fn(name, tensor)`` applied to every tensor that is set."""
        return replace(self, **{name: fn(name, t) for name, t in self.tensors()})

    def to(self, device=None, dtype=None) -> "GaussianSet":
        """Move to ``device``; floating tensors (not ``parent``) also take ``dtype``."""
        return self.map(lambda name, t: t.to(device=device, dtype=dtype if t.is_floating_point() else None))

    def detach(self) -> "GaussianSet":
        return self.map(lambda name, t: t.detach())

    def clone(self) -> "GaussianSet":
        return self.map(lambda name, t: t.clone())

    def with_sh_degree(self, degree: int) -> "GaussianSet":
        """Truncate or zero-pad the SH coefficients to ``degree``."""
        k = SH_COEFFS.get(degree)
        if k is None:
            raise ValueError(f"sh degree must be 0..3, got {degree}")
        have = self.sh.shape[1]
        if k <= have:
            sh = self.sh[:, :k]
        else:
            sh = torch.cat([self.sh, self.sh.new_zeros(len(self), k - have, 3)], 1)
        return replace(self, sh=sh)


def empty_like(gs: GaussianSet) -> GaussianSet:
    """A set of zero Gaussians with the same fields, SH degree, device and dtype as ``gs``."""
    return select(gs, torch.zeros(len(gs), dtype=torch.bool, device=gs.device))


def select(gs: GaussianSet, index: torch.Tensor) -> GaussianSet:
    """The Gaussians picked by ``index``: a boolean mask (N,) or integer indices (M,)."""
    if index.dtype == torch.bool:
        check_shape("mask", index, (len(gs),))
    return gs.map(lambda name, t: t[index])


def prune(gs: GaussianSet, remove: torch.Tensor) -> GaussianSet:
    """Drop the Gaussians where the boolean mask ``remove`` (N,) is true."""
    check_shape("remove", remove, (len(gs),))
    return select(gs, ~remove)


def concatenate(sets: list[GaussianSet]) -> GaussianSet:
    """Join sets with the same fields and SH degree (raise the degree with ``with_sh_degree`` first)."""
    if not sets:
        raise ValueError("concatenate: no sets given")
    names = [n for n, _ in sets[0].tensors()]
    for s in sets[1:]:
        other = [n for n, _ in s.tensors()]
        if other != names:
            raise ShapeError(f"concatenate: sets have different fields: {names} vs {other}")
        if s.sh.shape[1] != sets[0].sh.shape[1]:
            raise ShapeError(f"concatenate: SH degrees differ: {sets[0].sh_degree} vs {s.sh_degree}")
    return replace(sets[0], **{n: torch.cat([getattr(s, n) for s in sets], 0) for n in names})

