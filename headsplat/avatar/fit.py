"""The photometric fit of bound Gaussians to reference frames (``create``'s optimisation).

Each step renders one frame (real frames and generated views drawn in proportion to their weights) over a
random background and minimises L1 + D-SSIM on the matted foreground, |alpha - matte| in the head region, and
regularisers that keep Gaussians near their triangles and small. With many frames (``min_frames_dynamic``)
the fit also, as GaussianAvatars and CAP4D do:

- grows and prunes Gaussians (:mod:`headsplat.splat.density`), binding kept;
- raises the SH degree to 1 when the frames span enough head yaw (view-dependent colour);
- learns an expression-dependent deformation field (:mod:`headsplat.splat.deformation`), regularised by the
  size of its offsets and by the difference between neighbouring Gaussians' bases;
- learns small per-frame corrections of the real frames' tracked rotation, position and expression, so that
  tracking errors do not blur the appearance (penalised towards zero; generated views keep the parameters
  they were generated with), once the appearance has settled (``refine_start``): started with the fit, they
  absorb its early errors (60 frames: 20.4 dB on the frames against 25.6 without corrections).

:func:`fit_schedule` decides once which of these run; :class:`FitState` holds every per-Gaussian tensor and
changes the set only through :meth:`FitState.apply`; :func:`fit_loss` is one step's loss, its weights
:class:`~headsplat.avatar.config.CreateConfig`'s; :func:`fit_gaussians` is the loop.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree
from tqdm import tqdm

from headsplat.avatar.avatar import avatar_triangles
from headsplat.avatar.config import CreateConfig
from headsplat.avatar.frames import FitFrame
from headsplat.avatar.losses import alpha_loss, photometric_loss
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.render.rasterize import RenderOutput, render
from headsplat.splat.binding import TriangleFrames, bound_to_world, triangle_frames
from headsplat.splat.deformation import ExpressionDeformation, deformation_offsets, expression_code, new_deformation
from headsplat.splat.density import DensityConfig, DensityPlan, GradientStats, plan_density, reindex_adam
from headsplat.splat.gaussians import SH_C0, GaussianSet

SMOOTH_NEIGHBOURS = 6  # neighbours per Gaussian in the deformation field's smoothness term
SMOOTH_SAMPLE = 4096  # Gaussians whose neighbourhoods are compared per step


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit_gaussians` returns.

    Attributes:
        gaussians: the fitted, bound set (M Gaussians).
        deformation: the learned field for those M Gaussians, or None.
        origin: (M,) index of the input Gaussian each one descends from (itself, a clone or a split child).
        corrections: per-frame corrections, (F, 3) "rotation", (F, 3) "translation", (F, E) "expression"
            (zero for frames that were not refined).
        losses: the loss of every step.
        stats: iterations, SH degree, Gaussians added and pruned, whether each extension ran.
    """

    gaussians: GaussianSet
    deformation: ExpressionDeformation | None
    origin: torch.Tensor
    corrections: dict
    losses: tuple[float, ...]
    stats: dict = field(default_factory=dict)

    def to(self, device) -> FitResult:
        """The result with its Gaussians, field and origins on ``device`` (the corrections are on the CPU)."""
        return replace(self, gaussians=self.gaussians.to(device), origin=self.origin.to(device),
                       deformation=None if self.deformation is None else self.deformation.to(device))


def yaw_span(frames: list[FitFrame]) -> float:
    """Degrees of head yaw between the most turned frames."""
    R = axis_angle_to_matrix(torch.stack([f.rotation.cpu() for f in frames]).double())
    yaw = torch.rad2deg(torch.atan2(R[:, 0, 2], R[:, 2, 2]))
    return float(yaw.max() - yaw.min())


def frame_schedule(frames: list[FitFrame], n: int, generator: torch.Generator) -> list[int]:
    """Which frame each step renders: round-robin when all weigh the same, else drawn in proportion to the
    weights (each real frame then comes round as often as its weight asks)."""
    w = torch.tensor([f.weight for f in frames], dtype=torch.float64)
    if bool((w == w[0]).all()):
        return [i % len(frames) for i in range(n)]
    return torch.multinomial(w / w.sum(), n, replacement=True, generator=generator).tolist()


def _neighbours(points: torch.Tensor, k: int = SMOOTH_NEIGHBOURS) -> torch.Tensor:
    """(N, k) indices of each point's k nearest other points."""
    p = points.detach().cpu().double().numpy()
    k = min(k, len(p) - 1)
    _, idx = cKDTree(p).query(p, k=k + 1)
    return torch.from_numpy(idx[:, 1:].astype(np.int64)).to(points.device)


class RowAdam:
    """Adam over per-frame parameters that updates only the row of the frame a step used: a row's moments and
    step count advance only when it is used (with torch's Adam every row would keep moving on its momentum at
    every step, tens of times further than the frame's own steps asked).

    Args:
        params: name -> ((F, D) initial values, learning rate).
    """

    def __init__(self, params: dict, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = {k: v.clone().requires_grad_(True) for k, (v, _) in params.items()}
        self.lr = {k: lr for k, (_, lr) in params.items()}
        self.m = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.t = {k: torch.zeros(len(v)) for k, v in self.params.items()}
        self.betas, self.eps = betas, eps

    @torch.no_grad()
    def step(self, row: int) -> None:
        """Update row ``row`` of every parameter from its gradient, then clear the gradients."""
        b1, b2 = self.betas
        for k, p in self.params.items():
            if p.grad is None:
                continue
            g = p.grad[row]
            self.t[k][row] += 1
            t = float(self.t[k][row])
            self.m[k][row] = b1 * self.m[k][row] + (1 - b1) * g
            self.v[k][row] = b2 * self.v[k][row] + (1 - b2) * g * g
            m_hat = self.m[k][row] / (1 - b1 ** t)
            v_hat = self.v[k][row] / (1 - b2 ** t)
            p[row] -= self.lr[k] * m_hat / (v_hat.sqrt() + self.eps)
            p.grad = None


def limit_anisotropy(log_scales: torch.Tensor, max_ratio: float) -> torch.Tensor:
    """(N, 3) log scales whose largest axis is at most ``max_ratio`` times the middle one (the largest shrunk
    to that; the others kept): a needle's only Gaussian view is the one it was fitted from, from any other it
    is a streak."""
    ordered, order = log_scales.sort(-1, descending=True)
    top = torch.minimum(ordered[:, 0], ordered[:, 1] + math.log(max_ratio))
    return log_scales.scatter(-1, order[:, :1], top[:, None])


@dataclass(frozen=True)
class FitSchedule:
    """Which parts of the fit run, decided once from the frames.

    Attributes:
        iterations: optimiser steps.
        dynamic: many frames (``cfg.min_frames_dynamic``): the position learning rate decays.
        sh_degree: the SH degree the fit needs (1 when the frames span enough head yaw, else 0).
        deformation: whether an expression-dependent deformation field is learned.
        refine: whether the real frames' per-frame corrections are learned.
        density: when Gaussians are grown and pruned, or None.
    """

    iterations: int
    dynamic: bool
    sh_degree: int
    deformation: bool
    refine: bool
    density: DensityConfig | None


def fit_schedule(frames: list[FitFrame], cfg: CreateConfig) -> FitSchedule:
    """What the fit of ``frames`` runs: one frame a plain fit, ``cfg.min_frames_dynamic`` or more the extensions
    their frames allow (enough yaw for SH, enough expression spread for the field, enough real frames to refine)."""
    n_frames = len(frames)
    dynamic = n_frames >= cfg.min_frames_dynamic
    n_iter = cfg.iterations if not dynamic else \
        int(min(max(cfg.iterations_per_frame * n_frames, cfg.iterations), cfg.max_iterations))
    degree = 1 if dynamic and yaw_span(frames) >= cfg.sh_degree_span else 0
    exps = torch.stack([f.expression for f in frames])
    use_field = dynamic and cfg.deformation_rank > 0 and n_frames > 1 and \
        float(exps.std(0).max()) >= cfg.deformation_min_spread
    n_real = sum(f.kind == "real" for f in frames)
    return FitSchedule(n_iter, dynamic, degree, use_field, dynamic and n_real >= cfg.refine_min_frames,
                       cfg.density if dynamic else None)


PER_GAUSSIAN_PARAMS = ("local_means", "local_quats", "local_log_scales", "opacity_logits", "sh_dc", "sh_rest",
                       "basis")
"""The optimised tensors with a row per Gaussian (the field's network weights are shared)."""
_ROWS = {"rows": True}  # marks a FitState field with a row per Gaussian (taken by a density plan)


@dataclass
class FitState:
    """Every per-Gaussian tensor of a fit, kept in step: density control changes the set only through
    :meth:`apply`, which takes every parameter, Adam moment and field marked as per-Gaussian row by row.

    Attributes:
        params: the optimised leaves: (N, 3) local_means, (N, 4) local_quats, (N, 3) local_log_scales,
            (N,) opacity_logits, (N, 1, 3) sh_dc, (N, K - 1, 3) sh_rest; with a deformation field also (N, R, 6)
            basis and its network's w1, b1, w2, b2.
        optimizer: Adam over ``params``, one group per name.
        parent: (N,) parent triangle.
        origin: (N,) index of the input Gaussian each descends from.
        interior: (N,) bool, the mouth interior: colours kept, never larger or fainter than seeded.
        max_log_scales: (N, 3) bound on local log-scales (the seeded ones inside the interior, +inf elsewhere).
        min_opacity_logits: (N,) bound on opacity logits (the seeded ones inside the interior, -inf elsewhere).
        surface: (N,) bool, bound to their triangle's surface (eyeballs, teeth, the rims of eyes and mouth).
        eye_rim: (N,) bool, on the lids next to the eye opening.
        rest_frames: the reference frame's triangle frames (where the field's neighbourhoods are measured).
        grad_stats: view-space gradient statistics for density control, or None.
        neighbours: (N, k) each Gaussian's nearest others, for the field's smoothness, or None.
        field_range: the field's (E,) input bounds (low, high), or None without a field.
        added, pruned: Gaussians added and removed so far.
    """

    params: dict[str, torch.Tensor]
    optimizer: torch.optim.Adam
    parent: torch.Tensor = field(metadata=_ROWS)
    origin: torch.Tensor = field(metadata=_ROWS)
    interior: torch.Tensor = field(metadata=_ROWS)
    max_log_scales: torch.Tensor = field(metadata=_ROWS)
    min_opacity_logits: torch.Tensor = field(metadata=_ROWS)
    surface: torch.Tensor = field(metadata=_ROWS)
    eye_rim: torch.Tensor = field(metadata=_ROWS)
    rest_frames: TriangleFrames
    grad_stats: GradientStats | None = None
    neighbours: torch.Tensor | None = None
    field_range: tuple[torch.Tensor, torch.Tensor] | None = None
    added: int = 0
    pruned: int = 0

    @classmethod
    def start(cls, gs: GaussianSet, cfg: CreateConfig, rest_frames: TriangleFrames,
              deformation: ExpressionDeformation | None = None, interior: torch.Tensor | None = None,
              surface: torch.Tensor | None = None, eye_rim: torch.Tensor | None = None,
              gradient_stats: bool = False) -> FitState:
        """The state of a fit starting from the N bound Gaussians ``gs`` (and an untrained field for them).

        Args:
            interior, surface, eye_rim: (N,) bool masks (default none).
            gradient_stats: whether to gather gradient statistics for density control.
        """
        device = gs.device
        leaves = {"local_means": gs.local_means, "local_quats": gs.local_quats,
                  "local_log_scales": gs.local_log_scales, "opacity_logits": gs.opacity_logits,
                  "sh_dc": gs.sh[:, :1], "sh_rest": gs.sh[:, 1:]}
        lrs = {"local_means": cfg.lr_position, "local_quats": cfg.lr_rotation, "local_log_scales": cfg.lr_scale,
               "opacity_logits": cfg.lr_opacity, "sh_dc": cfg.lr_color / SH_C0,
               "sh_rest": cfg.lr_color / SH_C0 / 20}  # higher-order SH learn slower (as in 3DGS)
        if deformation is not None:
            d = deformation
            leaves.update(basis=d.basis, w1=d.w1, b1=d.b1, w2=d.w2, b2=d.b2)
            lrs.update({k: cfg.lr_deformation for k in ("basis", "w1", "b1", "w2", "b2")})
        params = {k: v.detach().clone().contiguous().requires_grad_(True) for k, v in leaves.items()}
        # fused: one kernel per tensor (on 2 CPU cores 9x faster than torch's default per-tensor loop at 50k
        # Gaussians, the same update)
        optimizer = torch.optim.Adam([{"params": [params[k]], "lr": lrs[k], "name": k} for k in params], eps=1e-15,
                                     fused=True)
        n = len(gs)
        none = torch.zeros(n, dtype=torch.bool, device=device)
        fixed = none if interior is None else interior.to(device)
        ls, op = params["local_log_scales"].detach(), params["opacity_logits"].detach()
        state = cls(params, optimizer, parent=gs.parent.clone(), origin=torch.arange(n, device=device),
                    interior=fixed, max_log_scales=torch.where(fixed[:, None], ls, torch.full_like(ls, math.inf)),
                    min_opacity_logits=torch.where(fixed, op, torch.full_like(op, -math.inf)),
                    surface=none if surface is None else surface.to(device),
                    eye_rim=none if eye_rim is None else eye_rim.to(device), rest_frames=rest_frames,
                    grad_stats=GradientStats(n, device) if gradient_stats else None)
        if deformation is not None:
            state.neighbours = state._neighbourhoods()
            state.field_range = (deformation.low.to(device), deformation.high.to(device))
        return state

    def __len__(self) -> int:
        return len(self.parent)

    @property
    def has_field(self) -> bool:
        return "basis" in self.params

    def _neighbourhoods(self) -> torch.Tensor:
        p = self.params
        with torch.no_grad():
            rest = bound_to_world(self.parent, p["local_means"], p["local_quats"], p["local_log_scales"],
                                  self.rest_frames)[0]
        return _neighbours(rest)

    def apply(self, plan: DensityPlan) -> None:
        """Replace the set by the one ``plan`` describes: every per-Gaussian parameter (split children moved and
        shrunk as the plan says) with its Adam moments (zero for new rows), every per-Gaussian field, fresh
        gradient statistics and neighbourhoods."""
        before = len(self)
        for name in PER_GAUSSIAN_PARAMS:
            if name not in self.params:
                continue
            old = self.params[name]
            t = plan.take(old.detach())
            if name == "local_means":
                t = t + plan.local_offset
            elif name == "local_log_scales":
                t = t + plan.log_scale_delta[:, None]
            self.params[name] = t.contiguous().requires_grad_(True)
            reindex_adam(self.optimizer, old, self.params[name], plan)
        for f in fields(self):
            if f.metadata.get("rows"):
                setattr(self, f.name, plan.take(getattr(self, f.name)))
        kept = int((~plan.fresh).sum())
        self.pruned += before - kept
        self.added += len(plan) - kept
        if self.grad_stats is not None:
            self.grad_stats = GradientStats(len(self), self.parent.device)
        if self.neighbours is not None:
            self.neighbours = self._neighbourhoods()

    def set_lr(self, name: str, lr: float) -> None:
        """Set the learning rate of parameter ``name``."""
        for group in self.optimizer.param_groups:
            if group["name"] == name:
                group["lr"] = lr

    def posed(self, frames: TriangleFrames, expression: torch.Tensor
              ) -> tuple[GaussianSet, torch.Tensor | None]:
        """The Gaussians to render on triangles ``frames`` at ``expression`` (E,), with the field's offsets
        (none to the interior's colours), and the (N, 3) local position offsets (None without a field)."""
        p = self.params
        lm, dc, d_pos = p["local_means"], p["sh_dc"], None
        if self.has_field:
            code = expression_code(p["w1"], p["b1"], p["w2"], p["b2"], expression, *self.field_range)
            d_pos, d_col = deformation_offsets(p["basis"], code)
            d_col = d_col * (~self.interior)[:, None]
            lm, dc = lm + d_pos, dc + d_col[:, None]
        means, quats, log_scales = bound_to_world(self.parent, lm, p["local_quats"], p["local_log_scales"], frames)
        return GaussianSet(means, quats, log_scales, p["opacity_logits"], torch.cat([dc, p["sh_rest"]], 1)), d_pos

    def smoothness_sample(self, generator: torch.Generator) -> torch.Tensor:
        """Indices of the Gaussians whose neighbourhoods the field's smoothness compares this step."""
        n = len(self)
        return torch.randint(0, n, (min(SMOOTH_SAMPLE, n),), generator=generator).to(self.parent.device)

    def step(self, loss: torch.Tensor, max_anisotropy: float) -> None:
        """One Adam step on ``loss`` (the interior's colours held), then the bounds: anisotropy, and the
        interior's size and opacity (``max_log_scales``, ``min_opacity_logits``: +-inf outside it)."""
        p = self.params
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.interior.any():
            p["sh_dc"].grad[self.interior] = 0
            p["sh_rest"].grad[self.interior] = 0
        self.optimizer.step()
        with torch.no_grad():
            ls = p["local_log_scales"]
            ls.copy_(torch.minimum(limit_anisotropy(ls, max_anisotropy), self.max_log_scales))
            p["opacity_logits"].copy_(torch.maximum(p["opacity_logits"], self.min_opacity_logits))

    def reset_opacity(self, opacity: float) -> None:
        """Lower every opacity to at most ``opacity`` and clear the opacities' Adam moments (3DGS's reset)."""
        op = self.params["opacity_logits"]
        with torch.no_grad():
            op.clamp_(max=math.log(opacity / (1 - opacity)))
        state = self.optimizer.state.get(op, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key].zero_()

    def result(self) -> tuple[GaussianSet, ExpressionDeformation | None]:
        """The fitted bound Gaussians (world fields zero: pose them) and field (no colour offsets inside the
        interior)."""
        p = {k: v.detach() for k, v in self.params.items()}
        n, device = len(self), self.parent.device
        fitted = GaussianSet(means=torch.zeros(n, 3, device=device), quats=p["local_quats"].clone(),
                             log_scales=torch.zeros(n, 3, device=device), opacity_logits=p["opacity_logits"],
                             sh=torch.cat([p["sh_dc"], p["sh_rest"]], 1), parent=self.parent,
                             local_means=p["local_means"], local_quats=p["local_quats"],
                             local_log_scales=p["local_log_scales"])
        if not self.has_field:
            return fitted, None
        basis = p["basis"].clone()
        basis[self.interior, :, 3:] = 0
        return fitted, ExpressionDeformation(p["w1"], p["b1"], p["w2"], p["b2"], basis, *self.field_range)


def fit_loss(out: RenderOutput, frame: FitFrame, background: torch.Tensor, state: FitState, cfg: CreateConfig,
             offsets: torch.Tensor | None = None, sample: torch.Tensor | None = None,
             corrections: dict[str, torch.Tensor] | None = None, row: int = 0) -> torch.Tensor:
    """The loss of one step: L1 + D-SSIM on the matted foreground over ``background`` (3,), |alpha - matte| in
    the head region, and the regularisers, each weighted by its ``cfg`` field:

    - ``position_weight``: local positions beyond ``max_local_distance``; for surface Gaussians (times
      ``surface_weight``) off their triangle's plane, outside ``surface_radius`` or larger than
      ``surface_max_scale``; for the eye rims (times ``eye_rim_weight``) outside ``eye_rim_radius`` or larger
      than ``eye_rim_max_scale``;
    - ``scale_weight``: local scales beyond ``max_local_scale``;
    - with a field, ``deformation_weight``: its position ``offsets`` (N, 3); ``deformation_smooth_weight``: the
      differences between the bases of the Gaussians in ``sample`` and their neighbours';
    - with ``corrections`` (the per-frame "d_rot", "d_trans", "d_exp"), ``refine_weight``: row ``row``'s.

    Args:
        out: the rendered frame. frame: what it is compared with. state: the fit (its parameters and masks).
    """
    target = frame.image * frame.matte[..., None] + background * (1 - frame.matte[..., None])
    w = frame.mask
    photo = photometric_loss(out.rgb, target, w, cfg.ssim_weight)
    alpha = alpha_loss(out.alpha[..., 0], frame.matte, w)
    ls, lm = state.params["local_log_scales"], state.params["local_means"]
    reg_pos = F.relu(lm.norm(dim=-1) - cfg.max_local_distance).pow(2).mean()
    # Means over the masked Gaussians as masked sums (no indexing: its backward scatters into zeroed copies)
    in_plane = lm[:, :2].norm(dim=-1)
    pin = state.surface
    if pin.any():  # eyeballs, teeth, the rims of eyes and mouth: on their surface, within their triangle
        w = pin.to(lm.dtype) / pin.sum()
        reg_pos = reg_pos + cfg.surface_weight * (
            (F.relu(lm[:, 2].abs() - cfg.surface_depth).pow(2) * w).sum()
            + (F.relu(in_plane - cfg.surface_radius).pow(2) * w).sum()
            + (F.relu(ls - math.log(cfg.surface_max_scale)).pow(2).mean(-1) * w).sum())
    rim = state.eye_rim
    if rim.any():  # the lids next to the eye opening: small, well inside their triangles (not over the iris)
        w = rim.to(lm.dtype) / rim.sum()
        reg_pos = reg_pos + cfg.eye_rim_weight * ((F.relu(in_plane - cfg.eye_rim_radius).pow(2) * w).sum()
                                                  + (F.relu(ls - math.log(cfg.eye_rim_max_scale)).pow(2).mean(-1)
                                                     * w).sum())
    reg_scale = F.relu(ls - math.log(cfg.max_local_scale)).pow(2).mean()
    loss = photo + cfg.alpha_weight * alpha + cfg.position_weight * reg_pos + cfg.scale_weight * reg_scale
    if offsets is not None:
        b = state.params["basis"]
        smooth = (b[sample, None] - b[state.neighbours[sample]]).pow(2).mean()
        loss = loss + cfg.deformation_weight * offsets.pow(2).mean() + cfg.deformation_smooth_weight * smooth
    if corrections is not None:
        c = corrections
        loss = loss + cfg.refine_weight * (c["d_rot"][row].pow(2).sum()
                                           + (cfg.refine_translation_factor * c["d_trans"][row]).pow(2).sum()
                                           + c["d_exp"][row].pow(2).mean())
    return loss


def fit_gaussians(gs: GaussianSet, frames: list[FitFrame], rig, cfg: CreateConfig, generator: torch.Generator,
                  quiet: bool = False, interior: torch.Tensor | None = None) -> FitResult:
    """Optimise the Gaussians (and, with many frames, their density, a deformation field and per-frame
    corrections) against the frames. ``interior`` (N,) bool Gaussians (the mouth's) keep their colours,
    never grow beyond their seeded size and never fade below their seeded opacity: mostly hidden behind the
    lips, they would otherwise swell to fill the skin's alpha from behind (the alpha loss pays for it) and show
    through the chin and cheeks when the jaw opens, or fade where the photo's closed lips cover them.

    Args:
        gs: N bound Gaussians (on the frames' device).
        frames: the reference frames; ``frames[0]`` is the avatar's reference.
        rig: the rig the Gaussians are bound to (for the per-frame corrections).
        cfg: fitting settings.
        generator: seeds the field's network, the frame draws, the backgrounds, the smoothness samples and the
            split children.
    """
    device = gs.device
    tris = avatar_triangles(rig).to(device)
    sched = fit_schedule(frames, cfg)
    n_iter, density = sched.iterations, sched.density
    if sched.sh_degree > gs.sh_degree:
        gs = gs.with_sh_degree(sched.sh_degree)
    n_frames, n_exp = len(frames), len(frames[0].expression)
    fld = new_deformation(len(gs), n_exp, cfg.deformation_rank, cfg.deformation_hidden, generator,
                          expressions=torch.stack([f.expression.cpu() for f in frames])).to(device) \
        if sched.deformation else None
    static_tri = [triangle_frames(f.vertices, tris) for f in frames]
    st = FitState.start(gs, cfg, static_tri[0], fld, interior, surface=rig.surface_bound.to(device)[gs.parent],
                        eye_rim=rig.eye_rims.to(device)[gs.parent], gradient_stats=density is not None)
    corr = RowAdam({"d_rot": (torch.zeros(n_frames, 3, device=device), cfg.lr_refine),
                    "d_trans": (torch.zeros(n_frames, 3, device=device), cfg.lr_refine / 10),
                    "d_exp": (torch.zeros(n_frames, n_exp, device=device), cfg.lr_refine)})
    C = corr.params
    order = frame_schedule(frames, n_iter, generator)
    losses = []
    density_s, t_start = 0.0, time.perf_counter()
    bar = tqdm(range(n_iter), desc="fitting", unit="step", disable=quiet, leave=False)
    for it in bar:
        # 1. the frame, and the position learning rate (many frames: it decays exponentially, as 3DGS's)
        if sched.dynamic:
            st.set_lr("local_means", cfg.lr_position * cfg.lr_position_decay ** (it / max(n_iter - 1, 1)))
        k = order[it]
        f = frames[k]
        # 2. its triangles: the tracked ones, or with the frame's corrections once those have started
        e = f.expression
        refine_now = sched.refine and f.kind == "real" and it >= cfg.refine_start * n_iter
        if refine_now:
            e = e + C["d_exp"][k]
            verts = rig(f.identity, f.scale, e, f.rotation + C["d_rot"][k], f.translation + C["d_trans"][k]).vertices
            fr = triangle_frames(verts, tris)
        else:
            fr = static_tri[k]
        # 3. render over a random background
        posed, d_pos = st.posed(fr, e)
        bg = torch.rand(3, generator=generator).to(device)
        out = render(posed, f.camera, background=bg)
        grow_now = density is not None and density.start * n_iter <= it < density.stop * n_iter
        if grow_now:
            out.means2d.retain_grad()
        # 4. loss and step (with the bounds)
        loss = fit_loss(out, f, bg, st, cfg, offsets=d_pos,
                        sample=st.smoothness_sample(generator) if st.has_field else None,
                        corrections=C if refine_now else None, row=k)
        st.step(loss, cfg.max_anisotropy)
        if refine_now:
            corr.step(k)
        losses.append(float(loss.detach()))
        # 5. density control at its schedule
        if grow_now and out.means2d.grad is not None:
            st.grad_stats.add(out.means2d.grad, out.visible, f.camera.width, f.camera.height)
            if (it + 1) % density.every == 0:
                t_density = time.perf_counter()
                st.apply(plan_density(st.params["local_quats"], st.params["local_log_scales"],
                                      st.params["opacity_logits"], st.grad_stats.mean(), density,
                                      can_grow=~st.interior, generator=generator))
                density_s += time.perf_counter() - t_density
        reset = density.opacity_reset_every if density else 0
        if reset and it > 0 and it % reset == 0 and it < density.stop * n_iter:
            st.reset_opacity(density.reset_opacity)
        if it % 10 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.4f}", n=len(st))
    fitted, deformation = st.result()
    zeros = {"rotation": torch.zeros(n_frames, 3), "translation": torch.zeros(n_frames, 3),
             "expression": torch.zeros(n_frames, n_exp)}
    corrections = {"rotation": C["d_rot"].detach().cpu(), "translation": C["d_trans"].detach().cpu(),
                   "expression": C["d_exp"].detach().cpu()} if sched.refine else zeros
    n_real = sum(f.kind == "real" for f in frames)
    stats = {"iterations": n_iter, "sh_degree": gs.sh_degree, "added": st.added, "pruned": st.pruned,
             "deformation": sched.deformation, "refined_frames": n_real if sched.refine else 0,
             "density_control": density is not None, "steps_s": round(time.perf_counter() - t_start - density_s, 1),
             "density_s": round(density_s, 1)}
    return FitResult(fitted, deformation, st.origin, corrections, tuple(losses), stats)
