"""Fit rig identity, camera focal length, per-frame head pose and expression to face landmarks.

Works with any head rig (the open rig, FLAME): robust (pseudo-Huber) reprojection of the rig's landmarks onto
detected landmarks, MediaPipe's
relative depth as a weak cue for the identity's shape, priors on identity and expression, and for videos a
penalty on the second differences of pose and expression: a non-causal smoother, so a still head does not
jitter and fast motion does not lag. Stage 1 fits identity and focal length on key frames; stage 2 fits
pose and expression of every frame with the identity fixed, window by window.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from headsplat.core.camera import world_to_opencv
from headsplat.core.chunks import chunks
from headsplat.core.rotation import matrix_to_axis_angle
from headsplat.face.indices import EYE_LIDS, eye_apertures, interocular
from headsplat.rig.base import HeadRig
from headsplat.rig.mesh_ops import graph_laplacian
from headsplat.rig.open_rig import N_FACE, OpenRig, explained_modes
from headsplat.track.offsets import OffsetConfig

FLIP = world_to_opencv().diagonal()[:3].double()  # (3,) world (y up, z to viewer) -> OpenCV camera axes


@dataclass(frozen=True)
class FitConfig:
    """Tracker settings (defaults suit portraits and talking-head videos)."""

    fov_deg: float | None = None  # fixed horizontal field of view; None estimates it
    fov_prior_deg: float = 30.0  # prior for the estimated field of view
    fov_prior_weight: float = 20.0  # strength of that prior (in log-focal units)
    key_frames: int = 24  # frames used to fit identity and focal length
    identity_iters: int = 200  # L-BFGS iterations of stage 1
    frame_iters: int | None = None  # L-BFGS iterations per window of stage 2 (None: the rig's default)
    window: int = 300  # frames per stage-2 window
    robust: float = 0.03  # pseudo-Huber scale, fraction of the inter-ocular distance
    depth_weight: float = 0.3  # weight of MediaPipe's relative depth in stage 1
    identity_smooth: float = 3.0  # Laplacian smoothness of identity offsets
    identity_size: float = 0.05  # magnitude prior on identity offsets
    identity_symmetry: float = 0.5  # left/right symmetry of identity offsets
    identity_exclusive: float = 1.0  # keeps identity offsets out of what expression, pose and scale explain
    expression_size: float = 0.01  # magnitude prior on expression coefficients
    smooth_rotation: float = 0.05  # temporal smoothness of rotation (robust, videos)
    smooth_translation: float = 0.05  # temporal smoothness of translation (robust, videos)
    smooth_expression: float = 0.3  # temporal smoothness of expression (videos)
    flame_shape_size: float = 0.002  # magnitude prior on FLAME shape coefficients (unit variance)
    blink_gain: float = 1.75  # videos: MediaPipe's lid closure is scaled up by this (it reads a full blink as ~57 %)
    offsets: OffsetConfig | None = OffsetConfig()  # videos, open rig: free face offsets from the frames (None: off)


@dataclass(frozen=True)
class FitResult:
    """Fitted parameters (numpy, float32 unless noted); see :class:`headsplat.track.tracking.Tracking`."""

    focal: float
    identity: np.ndarray
    identity_scale: float
    rotation: np.ndarray
    translation: np.ndarray
    expression: np.ndarray
    fit_error: np.ndarray
    reprojected: np.ndarray  # (T, 478, 2) the fitted rig's landmarks in pixels (NaN outside its fit points)


def project(rig: HeadRig, identity, log_scale, expression, rotation, translation, focal, width, height):
    """The rig's landmarks in pixels and camera depth: (T, 478, 2), (T, 478)."""
    pc = rig.landmarks(identity, log_scale.exp(), expression, rotation, translation) * FLIP.to(identity.dtype)
    z = pc[..., 2]
    uv = pc[..., :2] / z[..., None] * focal + torch.tensor([width / 2, height / 2], dtype=pc.dtype)
    return uv, z


def _pnp(points2d: np.ndarray, model: np.ndarray, focal: float, width: int, height: int):
    K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
    ok, rvec, tvec = cv2.solvePnP(model, points2d, K, None, flags=cv2.SOLVEPNP_EPNP)
    ok, rvec, tvec = cv2.solvePnP(model, points2d, K, None, rvec, tvec, useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    r_cv = cv2.Rodrigues(rvec)[0]
    f = world_to_opencv()[:3, :3].double().numpy()  # OpenCV camera -> world axes (its own inverse)
    rot = torch.from_numpy(f @ r_cv)
    return matrix_to_axis_angle(rot).numpy(), (f @ tvec).ravel()


def _pseudo_huber(r2: torch.Tensor, c: float) -> torch.Tensor:
    return c * c * (torch.sqrt(1 + r2 / (c * c)) - 1)


def _open_identity_prior(rig: OpenRig, cfg: FitConfig):
    """Prior on the open rig's per-vertex identity offsets (in centimetres): smooth, small, symmetric, and
    free of what expression, pose and scale explain."""
    lap = torch.from_numpy(graph_laplacian(rig.face_mesh_triangles, N_FACE).toarray())
    mirror = rig.mirror
    mirror_sign = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    excluded = torch.from_numpy(explained_modes(rig, n_vertices=N_FACE))

    def prior(o):
        smooth = ((lap @ o) ** 2).sum(-1).mean()
        size = (o ** 2).sum(-1).mean()
        sym = ((o - o[mirror] * mirror_sign) ** 2).sum(-1).mean()
        # Per-vertex offsets could otherwise absorb the mean expression, a small rotation or a size change.
        leak = ((excluded.T @ o.reshape(-1)) ** 2).sum()
        return (cfg.identity_smooth * smooth + cfg.identity_size * size + cfg.identity_symmetry * sym
                + cfg.identity_exclusive * leak)
    return prior


def _identity_problem(rig: HeadRig, cfg: FitConfig):
    """(optimisation unit of the identity, its prior as a function of the identity in those units)."""
    if rig.kind == "open":
        return 0.01, _open_identity_prior(rig, cfg)  # offsets optimised in centimetres
    return 1.0, lambda beta: cfg.flame_shape_size * (beta ** 2).sum()


def per_frame_gauss_newton(residual_fn, x0: torch.Tensor, prior: torch.Tensor, c: float, iters: int = 12,
                           lower: torch.Tensor | None = None) -> torch.Tensor:
    """Fit every frame's parameters on its own: robust Levenberg-Marquardt, all frames at once.

    Minimises, for each frame t, ``sum_i w_i * c^2 (sqrt(1 + |r_ti|^2 / c^2) - 1) / c^2 + sum_k prior_k x_tk^2``
    (the tracker's pseudo-Huber landmark term and a magnitude prior) by iteratively reweighted Gauss-Newton
    steps with a per-frame damping that grows when a step does not lower that frame's cost. The tracker's
    joint L-BFGS over a window converges slowly along directions that move few landmarks a little (a lid,
    a brow); started from this solution it only has to add the temporal smoothing.

    Args:
        residual_fn: (T, D) parameters -> ((T, P, 2) residuals, (P,) point weights).
        x0: (T, D) start.
        prior: (D,) weights of the quadratic magnitude prior (0 for unpenalised parameters).
        c: pseudo-Huber scale of the residuals.
        iters: Levenberg-Marquardt iterations.
        lower: (D,) lower bounds (−inf where none): steps are projected onto them.

    Returns:
        (T, D) parameters.
    """
    T, D = x0.shape
    x = x0.detach().clone()
    if lower is not None:
        x = torch.maximum(x, lower)
    fd_step = 1e-6
    lam = torch.full((T,), 1e-3, dtype=x.dtype)

    def cost(r, w, x):
        return (_pseudo_huber((r * r).sum(-1), c) * w).sum(-1) / c ** 2 + (prior * x * x).sum(-1)

    with torch.no_grad():
        r, w = residual_fn(x)
    current = cost(r, w, x)
    eye = torch.eye(D, dtype=x.dtype)
    for _ in range(iters):
        # Jacobian column by column by forward differences (float64; parameters are O(1)): D passes over all
        # frames, much cheaper here than forward-mode autodiff.
        cols = []
        with torch.no_grad():
            for k in range(D):
                y = x.clone()
                y[:, k] += fd_step
                cols.append(((residual_fn(y)[0] - r) / fd_step).reshape(T, -1))
        J = torch.stack(cols, -1)  # (T, 2P, D)
        s = (r * r).sum(-1)
        omega = (w / torch.sqrt(1 + s / c ** 2) / c ** 2).repeat_interleave(2, -1)  # (T, 2P): IRLS weights
        JtW = J.transpose(1, 2) * omega[:, None, :]
        H = JtW @ J + torch.diag(prior)
        g = (JtW @ r.reshape(T, -1, 1))[..., 0] + prior * x
        H_damped = H + lam[:, None, None] * (torch.diagonal(H, dim1=1, dim2=2)[..., None] * eye + 1e-9 * eye)
        step = -torch.linalg.solve(H_damped, g)
        x_new = x + step if lower is None else torch.maximum(x + step, lower)
        with torch.no_grad():
            r_new, w_new = residual_fn(x_new)
        new = cost(r_new, w_new, x_new)
        better = new < current
        x = torch.where(better[:, None], x_new, x)
        r = torch.where(better[:, None, None], r_new, r)
        current = torch.where(better, new, current)
        lam = torch.where(better, lam * 0.3, lam * 10).clamp(1e-7, 1e7)
    return x


def calibrate_lids(landmarks: np.ndarray, found: np.ndarray, gain: float, open_percentile: float = 90.0
                   ) -> np.ndarray:
    """Undo MediaPipe's under-reading of closing eyes in a video's landmarks.

    MediaPipe's mesh keeps a closing eye partly open: on rendered faces whose lids really meet, its lid gap
    falls to ~43 % of the open gap, never near 0. Per eye, the open gap is the clip's ``open_percentile``
    percentile of the lid gap relative to the eye width; a frame's closure ``c = 1 - gap / open`` is raised to
    ``min(1, c * gain)`` (smoothly from c = 0.1 to 0.3, so that landmark noise on open eyes is not amplified)
    by moving the upper-lid points towards the lower lid. Wider-than-open eyes are left as they are.

    Args:
        landmarks: (T, 478, 3) pixels; found: (T,) bool.
        gain: closure scale.

    Returns:
        (T, 478, 3) a corrected copy.
    """
    out = landmarks.copy()
    if gain == 1.0 or found.sum() < 10:
        return out
    apertures = eye_apertures(out)  # (T, 2)
    for gap, (upper, lower, _) in zip(apertures.T, EYE_LIDS.values()):
        up, lo = out[:, upper[1:-1], :2], out[:, lower[1:-1], :2]
        opened = np.percentile(gap[found], open_percentile)
        closure = np.clip(1 - gap / max(opened, 1e-9), 0, 1)
        ramp = np.clip((closure - 0.1) / 0.2, 0, 1)
        ramp = ramp * ramp * (3 - 2 * ramp)
        target = np.minimum(1.0, closure * (1 + (gain - 1) * ramp))
        keep = np.where(closure < 1, (1 - target) / np.maximum(1 - closure, 1e-9), 1.0)  # new gap / old gap
        out[:, upper[1:-1], :2] = lo + (up - lo) * keep[:, None, None]
    return out


def _lbfgs(params, closure_fn, iters: int) -> None:
    opt = torch.optim.LBFGS(params, lr=1, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = closure_fn()
        loss.backward()
        return loss

    opt.step(closure)


def nearest_found(found: np.ndarray) -> np.ndarray:
    """(T,) for every frame the nearest frame where ``found`` (T,) is True (ties: the earlier one), in O(T log T)
    (not a T x T table: 46 MB at 2400 frames)."""
    idx = np.flatnonzero(found)
    t = np.arange(len(found))
    pos = np.searchsorted(idx, t)
    left, right = idx[np.clip(pos - 1, 0, len(idx) - 1)], idx[np.clip(pos, 0, len(idx) - 1)]
    return np.where(np.abs(t - left) <= np.abs(right - t), left, right)


def fit_landmarks(landmarks: np.ndarray, found: np.ndarray, width: int, height: int, rig: HeadRig,
                  temporal: bool, cfg: FitConfig = FitConfig(), progress=None,
                  shots: np.ndarray | None = None) -> FitResult:
    """Fit the rig to a sequence of landmarks.

    Args:
        landmarks: (T, 478, 3) pixels (x, y) and MediaPipe relative depth; rows where ``found`` is False
            are ignored.
        found: (T,) bool; at least one True.
        width, height: frame size in pixels.
        rig: the head rig to fit (:class:`OpenRig` or :class:`~headsplat.rig.flame.head.FlameHead`).
        temporal: frames are consecutive video frames (smooth them and fill the missing ones).
        cfg: settings.
        progress: optional callable(n_frames_done) for progress display.
        shots: (T,) shot index per frame: temporal smoothing never crosses a change of shot (default: one shot).
    """
    dt = torch.float64
    T = len(landmarks)
    idx_found = np.flatnonzero(found)
    if len(idx_found) == 0:
        raise ValueError("fit_landmarks: no frame has landmarks")
    lm = landmarks.astype(np.float64).copy()
    # Frames without a face take their nearest found frame's landmarks, with no weight in the fit.
    nearest = nearest_found(found)
    lm[~found] = lm[nearest[~found]]
    if temporal:
        lm = calibrate_lids(lm, found, cfg.blink_gain)
    iod = interocular(lm[..., :2])  # (T,)
    weight = torch.from_numpy(found.astype(np.float64))

    fixed_focal = cfg.fov_deg is not None
    fov = cfg.fov_deg if fixed_focal else cfg.fov_prior_deg
    focal0 = width / (2 * math.tan(math.radians(fov) / 2))
    log_focal = torch.tensor(math.log(focal0), dtype=dt, requires_grad=not fixed_focal)

    fit_points = rig.fit_points
    template = rig.neutral_landmarks().double().numpy()
    rot0 = np.zeros((T, 3))
    trans0 = np.zeros((T, 3))
    for t in range(T):
        rot0[t], trans0[t] = _pnp(lm[t, fit_points, :2], template[fit_points], focal0, width, height)

    rig = copy.deepcopy(rig).double()  # fit in float64; the caller's rig is left as it is
    unit, identity_prior = _identity_problem(rig, cfg)
    expr_w = rig.expression_prior_weights().double()
    # One-sided shapes (a blink, wide eyes, a raised brow) never go below neutral: a lid that closes is a blink,
    # not less of "wide"; without the bound the lid shapes trade off against each other and drift.
    lower = rig.expression_lower_bounds().double()

    def bounded(e):  # the L-BFGS stages see coefficients clamped at their bounds
        return torch.maximum(e, lower)

    # Fast motions (a blink lasts 0.1-0.2 s) are smoothed less than the rest.
    smooth_w = rig.expression_smoothing_weights().double()
    pts = torch.from_numpy(fit_points)
    point_w = rig.point_weights().double()[pts]
    point_w = point_w / point_w.sum()
    lm_t = torch.from_numpy(lm)
    iod_t = torch.from_numpy(iod)
    E = rig.n_expressions
    shot_t = torch.from_numpy(np.zeros(T, np.int64) if shots is None else np.asarray(shots, np.int64))

    def data_term(uv, z, frames, with_depth):
        target = lm_t[frames][:, pts]
        r = (uv[:, pts] - target[..., :2]) / iod_t[frames][:, None, None]
        # Divided by c^2 so that a residual at the robust scale costs about 1 per landmark.
        loss = (_pseudo_huber((r * r).sum(-1), cfg.robust) * point_w).sum(-1) / cfg.robust ** 2
        if with_depth:
            # MediaPipe's z is relative depth in pixels, on the x scale: compare centred profiles.
            zp = z[:, pts] * (uv.new_tensor(1.0) * log_focal.exp()) / z[:, pts].mean(-1, keepdim=True)
            zm = target[..., 2]
            dz = ((zp - zp.mean(-1, keepdim=True)) - (zm - zm.mean(-1, keepdim=True))) / iod_t[frames][:, None]
            loss = loss + cfg.depth_weight * _pseudo_huber(dz * dz, cfg.robust).mean(-1) / cfg.robust ** 2
        return (loss * weight[frames]).sum() / weight[frames].sum().clamp_min(1)

    # Stage 1: identity and focal length on key frames.
    spread = np.linspace(0, len(idx_found) - 1, min(cfg.key_frames, len(idx_found))).round().astype(int)
    keys = idx_found[np.unique(spread)]
    keys_t = torch.from_numpy(keys)
    # Identity offsets and translations are optimised in centimetres so that every parameter is O(1).
    ident = torch.zeros(rig.identity_shape, dtype=dt, requires_grad=True)
    log_scale = torch.zeros((), dtype=dt, requires_grad=True)
    k_rot = torch.tensor(rot0[keys], requires_grad=True)
    k_trans_cm = torch.tensor(trans0[keys] / 0.01, requires_grad=True)
    k_exp = torch.zeros(len(keys), E, dtype=dt, requires_grad=True)

    def focal_prior():
        return cfg.fov_prior_weight * (log_focal - math.log(focal0)) ** 2

    def stage1():
        e = bounded(k_exp)
        uv, z = project(rig, ident * unit, log_scale, e, k_rot, k_trans_cm * 0.01, log_focal.exp(), width, height)
        return (data_term(uv, z, keys_t, True) + identity_prior(ident) + focal_prior()
                + cfg.expression_size * (expr_w * e ** 2).sum(-1).mean() + log_scale ** 2)

    params = [ident, log_scale, k_rot, k_trans_cm, k_exp] + ([log_focal] if not fixed_focal else [])
    _lbfgs(params, stage1, cfg.identity_iters)

    # Stage 2: pose and expression of every frame, identity fixed, window by window.
    ident_f, log_scale_f, focal_f = ident.detach() * unit, log_scale.detach(), log_focal.detach().exp()
    rot = torch.tensor(rot0)
    trans = torch.tensor(trans0)
    rot[keys_t], trans[keys_t] = k_rot.detach(), k_trans_cm.detach() * 0.01
    exp = torch.zeros(T, E, dtype=dt)

    # Each frame on its own first (converges where the joint fit is slow), then the joint, smoothed fit. The
    # frames are independent there: solved a chunk at a time (its Jacobians are about 1 MB a frame).
    def frame_residuals(x, frames):
        uv, _ = project(rig, ident_f, log_scale_f, x[:, 6:], x[:, :3], x[:, 3:6] * 0.01, focal_f, width, height)
        r = (uv[:, pts] - lm_t[frames][:, pts, :2]) / iod_t[frames][:, None, None]
        return r, point_w
    x0 = torch.cat([rot, trans / 0.01, exp], 1)
    prior = torch.cat([torch.zeros(6, dtype=dt), cfg.expression_size * expr_w])
    bounds = torch.cat([torch.full((6,), -math.inf, dtype=dt), lower])
    x = torch.cat([per_frame_gauss_newton(lambda y, f=f: frame_residuals(y, f), x0[f], prior, cfg.robust,
                                          lower=bounds) for f in chunks(T)])
    rot, trans, exp = x[:, :3].clone(), x[:, 3:6] * 0.01, x[:, 6:].clone()
    start = 0
    while start < T:
        stop = min(T, start + cfg.window)
        ctx = min(2, start) if temporal else 0  # previous, already fitted frames anchor the smoother
        frames = torch.arange(start - ctx, stop)
        w_rot = rot[frames].clone().requires_grad_(True)
        w_trans = (trans[frames] / 0.01).requires_grad_(True)  # centimetres
        w_exp = exp[frames].clone().requires_grad_(True)
        anchor = (rot[frames[:ctx]], trans[frames[:ctx]] / 0.01, exp[frames[:ctx]])

        def stage2():
            r_all = torch.cat([anchor[0], w_rot[ctx:]]) if ctx else w_rot
            t_all = torch.cat([anchor[1], w_trans[ctx:]]) if ctx else w_trans
            e_all = bounded(torch.cat([anchor[2], w_exp[ctx:]]) if ctx else w_exp)
            uv, z = project(rig, ident_f, log_scale_f, e_all, r_all, t_all * 0.01, focal_f, width, height)
            loss = data_term(uv, z, frames, False) + cfg.expression_size * (expr_w * e_all ** 2).sum(-1).mean()
            if temporal and len(frames) > 2:
                acc = lambda x: x[2:] - 2 * x[1:-1] + x[:-2]  # noqa: E731
                # Only triples of frames within one shot: a cut is not motion.
                s = shot_t[frames]
                same = ((s[2:] == s[1:-1]) & (s[1:-1] == s[:-2])).to(dt)
                mean = lambda x: (x * same).sum() / len(same)  # noqa: E731
                # Robust: small accelerations (noise) are smoothed, real sudden motion is let through.
                loss = loss + (cfg.smooth_rotation * mean(_pseudo_huber((acc(r_all) ** 2).sum(-1), 0.005)) / 0.005 ** 2
                               + cfg.smooth_translation * mean(_pseudo_huber((acc(t_all) ** 2).sum(-1), 0.2)) / 0.2 ** 2
                               + cfg.smooth_expression * mean((acc(e_all) ** 2 * smooth_w).sum(-1)))
            return loss

        _lbfgs([w_rot, w_trans, w_exp], stage2, cfg.frame_iters or rig.frame_iterations)
        rot[frames[ctx:]] = w_rot.detach()[ctx:]
        trans[frames[ctx:]] = w_trans.detach()[ctx:] * 0.01
        exp[frames[ctx:]] = bounded(w_exp.detach()[ctx:])
        if progress is not None:
            progress(stop - start)
        start = stop

    err = np.empty(T)
    reprojected = np.full((T, 478, 2), np.nan, np.float32)
    with torch.no_grad():
        for f in chunks(T):
            uv, _ = project(rig, ident_f, log_scale_f, exp[f], rot[f], trans[f], focal_f, width, height)
            err[f] = (uv[:, pts] - lm_t[f][:, pts, :2]).norm(dim=-1).mean(-1).numpy()
            reprojected[f, fit_points] = uv[:, pts].float().numpy()
    err = np.where(found, err, np.nan)
    return FitResult(float(focal_f), ident_f.float().numpy(), float(log_scale_f.exp()),
                     rot.float().numpy(), trans.float().numpy(), exp.float().numpy(), err.astype(np.float32),
                     reprojected)
