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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree
from tqdm import tqdm

from headsplat.avatar.avatar import avatar_triangles
from headsplat.avatar.config import CreateConfig
from headsplat.avatar.frames import FitFrame
from headsplat.avatar.losses import masked_l1, ssim_map
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.render.rasterize import render
from headsplat.splat.binding import bound_to_world, triangle_frames
from headsplat.splat.deformation import (ExpressionDeformation, deformation_offsets, expression_code,
                                         new_deformation)
from headsplat.splat.density import GradientStats, plan_density, reindex_adam
from headsplat.splat.gaussians import SH_C0, GaussianSet

SMOOTH_NEIGHBOURS = 6  # neighbours per Gaussian in the deformation field's smoothness term
SMOOTH_SAMPLE = 4096  # Gaussians whose neighbourhoods are compared per step


@dataclass
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
    losses: list
    stats: dict = field(default_factory=dict)


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
        generator: seeds the backgrounds, the frame draws and the split children.
    """
    device = gs.device
    tris = avatar_triangles(rig).to(device)
    n_frames = len(frames)
    dynamic = n_frames >= cfg.min_frames_dynamic
    n_iter = cfg.iterations if not dynamic else \
        int(min(max(cfg.iterations_per_frame * n_frames, cfg.iterations), cfg.max_iterations))
    degree = 1 if dynamic and yaw_span(frames) >= cfg.sh_degree_span else 0
    if degree > gs.sh_degree:
        gs = gs.with_sh_degree(degree)
    exps = torch.stack([f.expression for f in frames])
    use_field = dynamic and cfg.deformation_rank > 0 and n_frames > 1 and \
        float(exps.std(0).max()) >= cfg.deformation_min_spread
    real = [i for i, f in enumerate(frames) if f.kind == "real"]
    refine = dynamic and len(real) >= cfg.refine_min_frames
    density = cfg.density if dynamic else None

    n = len(gs)
    leaves = {"lm": gs.local_means, "lq": gs.local_quats, "ls": gs.local_log_scales, "op": gs.opacity_logits,
              "dc": gs.sh[:, :1], "rest": gs.sh[:, 1:]}
    lrs = {"lm": cfg.lr_position, "lq": cfg.lr_rotation, "ls": cfg.lr_scale, "op": cfg.lr_opacity,
           "dc": cfg.lr_color / SH_C0, "rest": cfg.lr_color / SH_C0 / 20}
    if use_field:
        fld = new_deformation(n, exps.shape[1], cfg.deformation_rank, cfg.deformation_hidden, generator).to(device)
        leaves.update(basis=fld.basis, w1=fld.w1, b1=fld.b1, w2=fld.w2, b2=fld.b2)
        lrs.update(basis=cfg.lr_deformation, w1=cfg.lr_deformation, b1=cfg.lr_deformation,
                   w2=cfg.lr_deformation, b2=cfg.lr_deformation)
    P = {k: v.detach().clone().contiguous().requires_grad_(True) for k, v in leaves.items()}
    opt = torch.optim.Adam([{"params": [P[k]], "lr": lrs[k], "name": k} for k in P], eps=1e-15)
    corr = RowAdam({"d_rot": (torch.zeros(n_frames, 3, device=device), cfg.lr_refine),
                    "d_trans": (torch.zeros(n_frames, 3, device=device), cfg.lr_refine / 10),
                    "d_exp": (torch.zeros(n_frames, exps.shape[1], device=device), cfg.lr_refine)})
    C = corr.params
    per_gaussian = ("lm", "lq", "ls", "op", "dc", "rest", "basis")

    parent = gs.parent.clone()
    origin = torch.arange(n, device=device)
    fixed = torch.zeros(n, dtype=torch.bool, device=device) if interior is None else interior.to(device)
    max_ls = torch.where(fixed[:, None], P["ls"].detach(), torch.full_like(P["ls"].detach(), math.inf))
    min_op = torch.where(fixed, P["op"].detach(), torch.full_like(P["op"].detach(), -math.inf))
    pinned = rig.surface_bound.to(device)
    eye_rim = rig.eye_rims.to(device)
    static_tri = [triangle_frames(f.vertices, tris) for f in frames]
    neighbours = _neighbours(bound_to_world(parent, P["lm"], P["lq"], P["ls"], static_tri[0])[0]) \
        if use_field else None
    stats_grad = GradientStats(n, device) if density else None
    order = frame_schedule(frames, n_iter, generator)
    max_log_scale = math.log(1.0)
    added = pruned = 0
    losses = []
    bar = tqdm(range(n_iter), desc="fitting", unit="step", disable=quiet, leave=False)
    for it in bar:
        if dynamic:  # positions settle as 3DGS's do: the learning rate decays exponentially
            for group in opt.param_groups:
                if group["name"] == "lm":
                    group["lr"] = cfg.lr_position * cfg.lr_position_decay ** (it / max(n_iter - 1, 1))
        k = order[it]
        f = frames[k]
        e = f.expression
        refine_now = refine and f.kind == "real" and it >= cfg.refine_start * n_iter
        if refine_now:
            e = e + C["d_exp"][k]
            verts = rig(f.identity, f.scale, e, f.rotation + C["d_rot"][k], f.translation + C["d_trans"][k]).vertices
            fr = triangle_frames(verts, tris)
        else:
            fr = static_tri[k]
        lm, dc = P["lm"], P["dc"]
        if use_field:
            d_pos, d_col = deformation_offsets(P["basis"], expression_code(P["w1"], P["b1"], P["w2"], P["b2"], e))
            d_col = d_col * (~fixed)[:, None]
            lm, dc = lm + d_pos, dc + d_col[:, None]
        means, quats, log_scales = bound_to_world(parent, lm, P["lq"], P["ls"], fr)
        bg = torch.rand(3, generator=generator).to(device)
        out = render(GaussianSet(means, quats, log_scales, P["op"], torch.cat([dc, P["rest"]], 1)), f.camera,
                     background=bg)
        grow_now = density is not None and density.start * n_iter <= it < density.stop * n_iter
        if grow_now:
            out.means2d.retain_grad()
        target = f.image * f.matte[..., None] + bg * (1 - f.matte[..., None])
        w = f.mask
        photo = (1 - cfg.ssim_weight) * masked_l1(out.rgb, target, w) + \
            cfg.ssim_weight * ((1 - ssim_map(out.rgb, target)) * w).sum() / w.sum().clamp_min(1.0)
        alpha = ((out.alpha[..., 0] - f.matte).abs() * w).sum() / w.sum().clamp_min(1.0)
        ls_, lm0 = P["ls"], P["lm"]
        reg_pos = F.relu(lm0.norm(dim=-1) - 1.0).pow(2).mean()
        pin = pinned[parent]
        if pin.any():  # eyeballs, teeth, the rims of eyes and mouth: on their surface, within their triangle
            reg_pos = reg_pos + 100 * (F.relu(lm0[pin, 2].abs() - 0.05).pow(2).mean()
                                       + F.relu(lm0[pin, :2].norm(dim=-1) - 0.6).pow(2).mean()
                                       + F.relu(ls_[pin] - math.log(0.35)).pow(2).mean())
        rim = eye_rim[parent]
        if rim.any():  # the lids next to the eye opening: small, well inside their triangles (not over the iris)
            reg_pos = reg_pos + 100 * (F.relu(lm0[rim, :2].norm(dim=-1) - 0.35).pow(2).mean()
                                       + F.relu(ls_[rim] - math.log(0.15)).pow(2).mean())
        reg_scale = F.relu(ls_ - max_log_scale).pow(2).mean()
        loss = photo + cfg.alpha_weight * alpha + cfg.position_weight * reg_pos + cfg.scale_weight * reg_scale
        if use_field:
            sample = torch.randint(0, len(parent), (min(SMOOTH_SAMPLE, len(parent)),), generator=generator).to(device)
            b = P["basis"]
            smooth = (b[sample, None] - b[neighbours[sample]]).pow(2).mean()
            loss = loss + cfg.deformation_weight * d_pos.pow(2).mean() + cfg.deformation_smooth_weight * smooth
        if refine_now:
            loss = loss + cfg.refine_weight * (C["d_rot"][k].pow(2).sum() + (10 * C["d_trans"][k]).pow(2).sum()
                                               + C["d_exp"][k].pow(2).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if fixed.any():
            P["dc"].grad[fixed] = 0
            P["rest"].grad[fixed] = 0
        opt.step()
        with torch.no_grad():  # the bounds (max_ls, min_op: +-inf outside the interior)
            P["ls"].copy_(torch.minimum(limit_anisotropy(P["ls"], cfg.max_anisotropy), max_ls))
            P["op"].copy_(torch.maximum(P["op"], min_op))
        if refine_now:
            corr.step(k)
        losses.append(float(loss.detach()))
        if grow_now and out.means2d.grad is not None:
            stats_grad.add(out.means2d.grad, out.visible, f.camera.width, f.camera.height)
            if (it + 1) % density.every == 0:
                plan = plan_density(P["lq"], P["ls"], P["op"], stats_grad.mean(), density,
                                    can_grow=~fixed, generator=generator)
                before = len(parent)
                for name in per_gaussian:
                    if name not in P:
                        continue
                    old = P[name]
                    t = plan.take(old.detach())
                    if name == "lm":
                        t = t + plan.local_offset
                    elif name == "ls":
                        t = t + plan.log_scale_delta[:, None]
                    P[name] = t.contiguous().requires_grad_(True)
                    reindex_adam(opt, old, P[name], plan)
                parent, origin, fixed = plan.take(parent), plan.take(origin), plan.take(fixed)
                max_ls, min_op = plan.take(max_ls), plan.take(min_op)
                kept = int((~plan.fresh).sum())
                pruned += before - kept
                added += len(plan) - kept
                stats_grad = GradientStats(len(parent), device)
                if use_field:
                    neighbours = _neighbours(bound_to_world(parent, P["lm"], P["lq"], P["ls"], static_tri[0])[0])
        reset = density.opacity_reset_every if density else 0
        if reset and it > 0 and it % reset == 0 and it < density.stop * n_iter:
            with torch.no_grad():
                cap = math.log(density.reset_opacity / (1 - density.reset_opacity))
                P["op"].clamp_(max=cap)
            state = opt.state.get(P["op"], {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key].zero_()
        if it % 10 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.4f}", n=len(parent))
    sh = torch.cat([P["dc"], P["rest"]], 1).detach()
    fitted = GaussianSet(means=torch.zeros(len(parent), 3, device=device), quats=P["lq"].detach().clone(),
                         log_scales=torch.zeros(len(parent), 3, device=device), opacity_logits=P["op"].detach(),
                         sh=sh, parent=parent, local_means=P["lm"].detach(), local_quats=P["lq"].detach(),
                         local_log_scales=P["ls"].detach())
    deformation = None
    if use_field:
        basis = P["basis"].detach().clone()
        basis[fixed, :, 3:] = 0
        deformation = ExpressionDeformation(P["w1"].detach(), P["b1"].detach(), P["w2"].detach(), P["b2"].detach(),
                                            basis)
    zeros = {"rotation": torch.zeros(n_frames, 3), "translation": torch.zeros(n_frames, 3),
             "expression": torch.zeros(n_frames, exps.shape[1])}
    corrections = {"rotation": C["d_rot"].detach().cpu(), "translation": C["d_trans"].detach().cpu(),
                   "expression": C["d_exp"].detach().cpu()} if refine else zeros
    stats = {"iterations": n_iter, "sh_degree": max(degree, gs.sh_degree), "added": added, "pruned": pruned,
             "deformation": use_field, "refined_frames": len(real) if refine else 0,
             "density_control": density is not None}
    return FitResult(fitted, deformation, origin, corrections, losses, stats)
