"""Noise schedules and the stochastic I/O DDIM sampler (headsplat.models.sampling).

Against the authors' CAP4D code, run locally outside the repository on a toy ε model with equal seeds, the
schedule and the sampler agree exactly (max error 0.0; see the issue note). Here: closed forms, the reduction
to plain DDIM, and a toy whose optimal ε is known in closed form.
"""

import numpy as np
import pytest
import torch

from headsplat.models import sampling as S


def test_linear_betas_are_linear_in_sqrt_beta():
    b = S.linear_betas(1000, 0.00085, 0.012)
    assert b[0] == pytest.approx(0.00085) and b[-1] == pytest.approx(0.012)
    assert np.allclose(np.diff(np.sqrt(b)), (np.sqrt(0.012) - np.sqrt(0.00085)) / 999)


def test_zero_terminal_snr_zeroes_the_last_alpha_bar_and_keeps_the_first():
    b = S.linear_betas()
    z = S.zero_terminal_snr(b)
    abar, abar0 = np.cumprod(1 - z), np.cumprod(1 - b)
    assert abar[-1] == pytest.approx(0.0, abs=1e-12)
    assert abar[0] == pytest.approx(abar0[0], rel=1e-12)
    assert np.all(np.diff(abar) < 0)


def test_log_snr_shift_matches_its_closed_form():
    abar = np.cumprod(1 - S.linear_betas())
    shifted, betas = S.shift_log_snr(abar, 0.3)
    np.testing.assert_allclose(np.log(shifted / (1 - shifted)), np.log(abar / (1 - abar)) + np.log(0.3), rtol=1e-9)
    np.testing.assert_allclose(np.cumprod(1 - betas), shifted / shifted[0], rtol=1e-9)  # β₀ = 0 quirk
    assert betas[0] == 0.0


def test_cap4d_schedule_caps_the_last_beta_and_shifts_snr_by_one_over_sqrt7():
    s = S.cap4d_schedule()
    z = np.minimum(S.zero_terminal_snr(S.linear_betas()), 0.99)
    abar = np.cumprod(1 - z)
    assert abar[-1] == pytest.approx(0.01 * abar[-2])  # the 0.99 cap: the last ᾱ is not 0
    snr_ratio = (s.alphas_cumprod / (1 - s.alphas_cumprod)) / (abar / (1 - abar))
    np.testing.assert_allclose(snr_ratio, 1 / np.sqrt(7), rtol=1e-6)


def test_ddim_timesteps_carry_latent_diffusions_plus_one():
    assert S.ddim_timesteps(100).tolist() == list(range(1, 1000, 10))
    assert S.ddim_timesteps(50)[[0, 1, -1]].tolist() == [1, 21, 981]
    with pytest.raises(ValueError, match="must divide the 1000"):
        S.ddim_timesteps(3)
    a, prev = S.ddim_coefficients(S.cap4d_schedule().alphas_cumprod, S.ddim_timesteps(10))
    assert prev[0] == a.dtype.type(S.cap4d_schedule().alphas_cumprod[0]) and prev[1] == a[0]


def _toy_eps(x, t, refs, gens):
    return torch.tanh(x[len(refs):] * (1 + t / 1000) + x[:len(refs)].mean(0))


def test_one_group_with_every_reference_is_plain_ddim_and_references_stay_untouched():
    sched = S.cap4d_schedule()
    refs = torch.randn(3, 4, 5, 6, generator=torch.Generator().manual_seed(0))
    kept = refs.clone()
    noise = torch.randn(5, 4, 5, 6, generator=torch.Generator().manual_seed(1))
    out = S.stochastic_io_sample(_toy_eps, refs, 5, sched, 20, frames=8, noise=noise)
    assert torch.equal(refs, kept)
    # plain DDIM, written out
    ts = S.ddim_timesteps(20)
    a, ap = S.ddim_coefficients(sched.alphas_cumprod, ts)
    x = noise.clone()
    for i in range(len(ts) - 1, -1, -1):
        eps = _toy_eps(torch.cat([refs, x]), int(ts[i]), np.arange(3), np.arange(5))
        x0 = (x - np.sqrt(1 - a[i], dtype=np.float32) * eps) / np.sqrt(a[i])
        x = np.sqrt(ap[i]) * x0 + np.sqrt(1 - ap[i]) * eps
    torch.testing.assert_close(out, x, rtol=1e-4, atol=1e-5)


def test_equal_seeds_equal_samples_and_group_sizes_are_checked():
    sched = S.cap4d_schedule()
    refs = torch.randn(2, 1, 3, 3)
    a = S.stochastic_io_sample(_toy_eps, refs, 12, sched, 5, seed=4)
    b = S.stochastic_io_sample(_toy_eps, refs, 12, sched, 5, seed=4)
    c = S.stochastic_io_sample([_toy_eps, _toy_eps], refs, 12, sched, 5, seed=4)  # two "devices"
    assert torch.equal(a, b) and torch.equal(a, c)
    assert not torch.equal(a, S.stochastic_io_sample(_toy_eps, refs, 12, sched, 5, seed=5))
    with pytest.raises(ValueError, match="multiple of the group size 6"):
        S.stochastic_io_sample(_toy_eps, refs, 10, sched, 5)


# -- a toy with a closed-form optimal ε --------------------------------------------------------------------------------
# Views x_i = s + n_i (per latent element, independently): s ~ N(0, S2), n_i ~ N(0, N2). Given R clean references,
# the generated views are jointly Gaussian with mean m = S2 / (N2 + R S2) · Σ refs and covariance
# N2 I + τ² 11ᵀ, τ² = S2 N2 / (N2 + R S2); for a group of noisy views x_t = √ᾱ x0 + √(1 − ᾱ) ε the optimal ε is
# √(1 − ᾱ) (ᾱ Σ + (1 − ᾱ) I)⁻¹ (x_t − √ᾱ m).
S2, N2 = 1.0, 0.25


def _gaussian_eps(sched):
    def eps(x, t, refs, gens):
        R, G = len(refs), len(gens)
        a = float(sched.alphas_cumprod[t])
        tau2 = S2 * N2 / (N2 + R * S2)
        m = (S2 / (N2 + R * S2)) * x[:R].double().sum(0).reshape(1, -1)
        cov = N2 * torch.eye(G, dtype=torch.float64) + tau2
        A = a * cov + (1 - a) * torch.eye(G, dtype=torch.float64)
        e = np.sqrt(1 - a) * torch.linalg.solve(A, x[R:].double().reshape(G, -1) - np.sqrt(a) * m)
        return e.reshape(x[R:].shape).float()
    return eps


def _moments(out, refs):
    n = out.shape[0]
    R = refs.shape[0]
    tau2 = S2 * N2 / (N2 + R * S2)
    d = (out.double() - (S2 / (N2 + R * S2)) * refs.double().sum(0)).reshape(n, -1)
    cov = d @ d.T / d.shape[1]
    return d.mean(1), cov, N2 + tau2, tau2


def test_one_group_reproduces_the_conditional_mean_and_covariance():
    sched = S.cap4d_schedule()
    refs = torch.randn(3, 1, 50, 80, generator=torch.Generator().manual_seed(0)) * 0.8
    out = S.stochastic_io_sample(_gaussian_eps(sched), refs, 5, sched, 200, seed=1)
    mean, cov, var, tau2 = _moments(out, refs)
    assert mean.abs().max() < 0.04  # 4 standard errors over 4000 replicas
    off = cov[~torch.eye(5, dtype=torch.bool)]
    assert (cov.diag() - var).abs().max() < 0.02 and (off - tau2).abs().max() < 0.02


@pytest.mark.parametrize("n_ref,n_gen,frames", [(1, 14, 8), (2, 12, 8), (2, 9, 5)])
def test_many_groups_keep_the_mean_and_the_spread_across_reference_and_group_sizes(n_ref, n_gen, frames):
    """Across groups, views share only what the references say: each view's mean is right; its spread holds all
    of the view's own noise and part of the shared uncertainty τ² (measured: variance 5-17 % low, covariance
    between views about half of τ² at 200 steps), the price of stochastic I/O with finite groups."""
    sched = S.cap4d_schedule()
    refs = torch.randn(n_ref, 1, 50, 80, generator=torch.Generator().manual_seed(0)) * 0.8
    out = S.stochastic_io_sample(_gaussian_eps(sched), refs, n_gen, sched, 200, frames=frames, seed=1)
    mean, cov, var, tau2 = _moments(out, refs)
    assert mean.abs().max() < 0.04
    assert (cov.diag() > 0.95 * N2).all() and (cov.diag() < 1.05 * var).all()
    off = cov[~torch.eye(n_gen, dtype=torch.bool)]
    assert 0 < off.mean() < tau2


def test_several_eps_functions_share_the_groups_round_robin_with_the_same_result():
    """One ε function per device: group k goes to function k mod n, in its own thread; the samples equal those
    of one function."""
    g = torch.Generator().manual_seed(0)
    refs = torch.randn(2, 3, 4, 4, generator=g)
    w = torch.randn(3, 3, generator=g) * 0.3

    def eps(x, t, r, gens):
        return torch.einsum("oc,nchw->nohw", w, x[len(r):]) + 0.01 * t * x[:len(r)].mean()

    seen = {0: [], 1: []}

    def lane(i):
        def fn(x, t, r, gens):
            seen[i].append(tuple(gens))
            return eps(x, t, r, gens)
        return fn

    sched = S.cap4d_schedule()
    one = S.stochastic_io_sample(eps, refs, 12, sched, 4, frames=5, seed=3)
    two = S.stochastic_io_sample([lane(0), lane(1)], refs, 12, sched, 4, frames=5, seed=3)
    assert torch.equal(one, two)
    assert len(seen[0]) == len(seen[1]) == 4 * 2  # 4 groups of 3 per step: two each, every step
