"""Adaptive density control of bound Gaussians (3D Gaussian Splatting, GaussianAvatars): grow where the
view-space positional gradient stays large, prune what turned transparent or oversized.

Gaussians under-reconstructing a region (mean gradient of their projected centre above a threshold) are
cloned when small and split in two when large (children drawn from the parent, scales / 1.6). Both stay bound to
the parent's triangle (in its frame). A plan is an index of source Gaussians plus per-row changes, so the
caller applies it to every per-Gaussian tensor it keeps (optimiser moments, deformation bases, masks) alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from headsplat.core.rotation import quat_to_matrix


@dataclass(frozen=True)
class DensityConfig:
    """When and how Gaussians are added and removed."""

    grad_threshold: float = 2e-4  # mean |d loss / d projected centre| in NDC units (3DGS: 0.0002)
    split_size: float = 0.5  # local scale (triangle units) above which a Gaussian is split rather than cloned
    shrink: float = 1.6  # children's scale divisor on split
    prune_opacity: float = 0.005  # opacity below which a Gaussian is removed
    prune_size: float = 4.0  # local scale (triangle units) above which a Gaussian is removed
    max_gaussians: int = 50000  # growth stops here
    start: float = 0.1  # share of the iterations before densification starts
    stop: float = 0.6  # share of the iterations after which it stops
    every: int = 100  # steps between densifications
    opacity_reset_every: int = 0  # steps between resets of every opacity to at most reset_opacity (0: never)
    reset_opacity: float = 0.05


class GradientStats:
    """Accumulates each Gaussian's view-space positional gradient norm over the steps it was visible."""

    def __init__(self, n: int, device=None) -> None:
        self.total = torch.zeros(n, device=device)
        self.count = torch.zeros(n, device=device)

    def add(self, grad2d: torch.Tensor, visible: torch.Tensor, width: int, height: int) -> None:
        """Add one step: ``grad2d`` (N, 2) gradient w.r.t. projected centres in pixels; ``visible`` (N,) bool."""
        ndc = grad2d.detach() * torch.tensor([width / 2.0, height / 2.0], device=grad2d.device)
        self.total += torch.where(visible, ndc.norm(dim=-1), torch.zeros_like(self.total))
        self.count += visible.to(self.count.dtype)

    def mean(self) -> torch.Tensor:
        return self.total / self.count.clamp_min(1)


@dataclass(frozen=True)
class DensityPlan:
    """The new set as rows of the old: ``source`` (M,) old index per new Gaussian, ``local_offset`` (M, 3)
    added to its local position, ``log_scale_delta`` (M,) added to its local log-scales, ``fresh`` (M,) rows that
    are new (clones and split children: their optimiser moments start at zero)."""

    source: torch.Tensor
    local_offset: torch.Tensor
    log_scale_delta: torch.Tensor
    fresh: torch.Tensor

    def __len__(self) -> int:
        return len(self.source)

    def take(self, t: torch.Tensor, fresh_value: float | None = None) -> torch.Tensor:
        """Rows of a per-Gaussian tensor (N, ...) for the new set; ``fresh_value`` fills new rows if given."""
        out = t[self.source]
        if fresh_value is not None:
            out[self.fresh] = fresh_value
        return out


def plan_density(local_quats: torch.Tensor, local_log_scales: torch.Tensor, opacity_logits: torch.Tensor,
                 grad: torch.Tensor, cfg: DensityConfig, can_grow: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> DensityPlan:
    """Which Gaussians to clone, split and prune.

    Args:
        local_quats: (N, 4), local_log_scales: (N, 3), opacity_logits: (N,): the current fields.
        grad: (N,) mean view-space gradient norm (:meth:`GradientStats.mean`).
        cfg: thresholds.
        can_grow: (N,) bool, Gaussians allowed to clone or split (default all).

    Returns:
        the plan: pruned Gaussians dropped, split ones replaced by two children, clones appended.
    """
    n = len(opacity_logits)
    device = opacity_logits.device
    size = local_log_scales.detach().exp().amax(-1)
    prune = (torch.sigmoid(opacity_logits.detach()) < cfg.prune_opacity) | (size > cfg.prune_size)
    grow = (grad >= cfg.grad_threshold) & ~prune
    if can_grow is not None:
        grow &= can_grow
    room = max(cfg.max_gaussians - (n - int(prune.sum())), 0)
    idx = torch.nonzero(grow)[:, 0]
    if len(idx) > room:  # the largest gradients first
        idx = idx[torch.argsort(grad[idx], descending=True)[:room]]
    big = size[idx] > cfg.split_size
    split, clone = idx[big], idx[~big]
    if len(split) > room - len(clone):  # a split adds one Gaussian net, like a clone
        split = split[:max(room - len(clone), 0)]
    keep = torch.ones(n, dtype=torch.bool, device=device)
    keep[prune] = False
    keep[split] = False
    kept = torch.nonzero(keep)[:, 0]
    # split children: drawn from the parent Gaussian in its triangle's frame
    z = torch.randn(2, len(split), 3, generator=generator).to(device)
    rot = quat_to_matrix(local_quats.detach()[split])
    draw = torch.einsum("mij,kmj->kmi", rot, z * local_log_scales.detach()[split].exp()).reshape(-1, 3)
    source = torch.cat([kept, clone, split.repeat(2)])
    offset = torch.cat([torch.zeros(len(kept) + len(clone), 3, device=device), draw])
    delta = torch.cat([torch.zeros(len(kept) + len(clone), device=device),
                       torch.full((2 * len(split),), -math.log(cfg.shrink), device=device)])
    fresh = torch.cat([torch.zeros(len(kept), dtype=torch.bool, device=device),
                       torch.ones(len(clone) + 2 * len(split), dtype=torch.bool, device=device)])
    return DensityPlan(source, offset, delta, fresh)


def reindex_adam(optimizer: torch.optim.Optimizer, old: torch.Tensor, new: torch.Tensor, plan: DensityPlan) -> None:
    """Point ``optimizer`` at ``new`` (a leaf built from ``old`` by ``plan``), carrying Adam's moments row by row
    (zero for fresh rows)."""
    for group in optimizer.param_groups:
        for i, p in enumerate(group["params"]):
            if p is old:
                group["params"][i] = new
    state = optimizer.state.pop(old, None)
    if state:
        for key in ("exp_avg", "exp_avg_sq"):
            state[key] = plan.take(state[key], 0.0)
        optimizer.state[new] = state
