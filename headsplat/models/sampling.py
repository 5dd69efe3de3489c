"""Diffusion sampling shared by multi-view models: noise schedules and the stochastic input/output DDIM sampler.

The stochastic I/O sampler (CAP4D, Taubner et al. 2025) generates any number of views with a model that sees
V frames per call: at every step the generated latents are randomly partitioned into groups of V − R, each group
is denoised together with R reference frames drawn at random (clean latents), and all latents take one DDIM step.
With one group and every reference it is plain DDIM. The conventions follow latent-diffusion's DDIM exactly,
quirks included: timesteps 1, 1 + c, …, 1 + (S−1)c (c = T // S, the "+1"), the last step's "previous" ᾱ is
ᾱ at t = 0 (not 1), and the update coefficients are computed in float64 from float32 ᾱ.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch


# -- schedules ---------------------------------------------------------------------------------------------------------
def linear_betas(n: int = 1000, start: float = 0.00085, end: float = 0.012) -> np.ndarray:
    """(n,) float64 latent diffusion's "linear" betas: linear in √β (Stable Diffusion's schedule)."""
    return np.linspace(start ** 0.5, end ** 0.5, n, dtype=np.float64) ** 2


def zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Betas rescaled so the last ᾱ is exactly 0 and the first unchanged (Lin et al. 2024, "Common diffusion
    noise schedules and sample steps are flawed", algorithm 1): √ᾱ shifted and scaled linearly."""
    abar_sqrt = np.sqrt(np.cumprod(1.0 - betas))
    first, last = abar_sqrt[0], abar_sqrt[-1]
    abar_sqrt = (abar_sqrt - last) * first / (first - last)
    abar = abar_sqrt ** 2
    alphas = np.concatenate([abar[:1], abar[1:] / abar[:-1]])
    return 1.0 - alphas


def shift_log_snr(alphas_cumprod: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """(ᾱ, β) with every step's log-SNR moved by log(ratio): SNR' = ratio · ᾱ / (1 − ᾱ); β recomputed, its
    first entry 0 (ᾱ'₀ / 1 taken as the first α, as the reference does)."""
    snr = alphas_cumprod / (1.0 - alphas_cumprod)
    log_snr = np.log(snr) + np.log(ratio)
    abar = np.exp(log_snr) / (1.0 + np.exp(log_snr))
    betas = 1.0 - np.concatenate([[1.0], abar[1:] / abar[:-1]])
    return abar, betas


@dataclass(frozen=True)
class NoiseSchedule:
    """A discrete diffusion schedule.

    Attributes:
        betas: (T,) float64.
        alphas_cumprod: (T,) float64 ᾱ_t.
    """

    betas: np.ndarray
    alphas_cumprod: np.ndarray

    @property
    def n_steps(self) -> int:
        return len(self.betas)


def cap4d_schedule(n: int = 1000, start: float = 0.00085, end: float = 0.012, frames: int = 8,
                   latent_size: int = 64) -> NoiseSchedule:
    """CAP4D's MMDM schedule: linear (in √β) → zero terminal SNR → β capped at 0.99 (so the last ᾱ is
    0.01 · ᾱ_{T−2}, not 0) → log-SNR shifted by ½ log(64² / (latent_size² · (frames − 1)))."""
    betas = zero_terminal_snr(linear_betas(n, start, end))
    betas = np.minimum(betas, 0.99)
    abar = np.cumprod(1.0 - betas)
    ratio = float(np.sqrt(64 ** 2 / (latent_size ** 2 * (frames - 1))))
    abar, betas = shift_log_snr(abar, ratio)
    return NoiseSchedule(betas, abar)


def ddim_timesteps(n_ddim: int, n_train: int = 1000) -> np.ndarray:
    """(S,) int64 latent diffusion's uniform DDIM timesteps: 0, c, 2c, … plus one (c = n_train // n_ddim).

    Raises:
        ValueError: ``n_ddim`` does not divide ``n_train`` (latent diffusion would then step past the schedule's
            end, or take more steps than asked).
    """
    if n_ddim < 1 or n_train % n_ddim:
        raise ValueError(f"DDIM steps must divide the {n_train} training steps, got {n_ddim}")
    c = n_train // n_ddim
    return np.arange(0, n_train, c, dtype=np.int64) + 1


def ddim_coefficients(alphas_cumprod: np.ndarray, timesteps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ᾱ at each timestep, ᾱ at the previous one) as latent diffusion computes them from float32 ᾱ: the first
    step's "previous" is ᾱ₀."""
    a32 = alphas_cumprod.astype(np.float32)
    a = a32[timesteps]
    prev = np.concatenate([a32[:1], a32[timesteps[:-1]]])
    return a, prev


def ddim_update(x: torch.Tensor, eps: torch.Tensor, alpha: float, alpha_prev: float) -> torch.Tensor:
    """One deterministic (η = 0) DDIM step: x_prev = √ᾱ' / √ᾱ · x + (√(1 − ᾱ') − √ᾱ' √(1 − ᾱ) / √ᾱ) · ε,
    the factors computed in float64 (√(1 − ᾱ) in float32 first, as the reference) and applied in float32."""
    a, ap = float(np.float64(alpha)), float(np.float64(alpha_prev))
    s1ma = float(np.sqrt(np.float32(1.0) - np.float32(alpha), dtype=np.float32))
    e_factor = -np.sqrt(ap) * s1ma / np.sqrt(a) + np.sqrt(1.0 - ap)
    x_factor = np.sqrt(ap) / np.sqrt(a)
    return x * np.float32(x_factor) + eps * np.float32(e_factor)


# -- the stochastic I/O sampler ----------------------------------------------------------------------------------------
#: eps_fn(x, t, refs, gens) -> ε of the generated frames (G, C, H, W): ``x`` (R + G, C, H, W) holds the R reference
#: latents (clean) then the G noisy generated ones; ``refs`` (R,) and ``gens`` (G,) are their indices; ``t`` the
#: diffusion timestep. Classifier-free guidance, conditioning and the device are the model's business.
EpsFn = Callable[[torch.Tensor, int, np.ndarray, np.ndarray], torch.Tensor]


def stochastic_io_sample(eps_fns: EpsFn | Sequence[EpsFn], references: torch.Tensor, n_generate: int,
                         schedule: NoiseSchedule, steps: int, frames: int = 8, max_references: int = 4,
                         seed: int = 0, noise: torch.Tensor | None = None, progress: Callable | None = None
                         ) -> torch.Tensor:
    """Sample ``n_generate`` latents jointly with ``references`` by stochastic I/O conditioning.

    Args:
        eps_fns: one ε function, or one per device: the groups of a step are dealt round-robin and each
            function's share runs in its own thread (the results do not depend on the number of functions).
        references: (N_ref, C, H, W) clean reference latents; never modified.
        n_generate: latents to generate; must be a multiple of ``frames`` − R.
        schedule: the training schedule (its ᾱ).
        steps: DDIM steps S.
        frames: V, frames per model call. max_references: R_max; R = min(N_ref, R_max).
        seed: seeds the initial noise (torch, CPU) and the per-step partitions (numpy's Mersenne Twister, in the
            order the reference draws them), so equal seeds give equal samples.
        noise: (n_generate, C, H, W) initial noise instead of the seeded one.
        progress: called with (step index, number of steps) after each step.

    Returns:
        (n_generate, C, H, W) latents, on ``references``' device.
    """
    fns = list(eps_fns) if isinstance(eps_fns, Sequence) else [eps_fns]
    n_ref = references.shape[0]
    R = min(n_ref, max_references)
    group = frames - R
    if n_ref < 1:
        raise ValueError("stochastic I/O sampling needs at least one reference")
    if group < 1 or n_generate % group:
        raise ValueError(f"{n_generate} generated views are not a multiple of the group size {group} "
                         f"({frames} frames per call − {R} references)")
    n_groups = n_generate // group
    rng = np.random.RandomState(seed)
    shape = (n_generate, *references.shape[1:])
    if noise is None:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(references)
    else:
        if tuple(noise.shape) != shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {shape}")
        x = noise.to(references).clone()
    ts = ddim_timesteps(steps, schedule.n_steps)
    alphas, alphas_prev = ddim_coefficients(schedule.alphas_cumprod, ts)
    eps = torch.zeros_like(x)
    pool = ThreadPoolExecutor(max_workers=len(fns)) if len(fns) > 1 else None
    try:
        for i, index in enumerate(range(len(ts) - 1, -1, -1)):
            t = int(ts[index])
            if R == 1:
                ref_groups = np.zeros((n_groups, 1), np.int64)
            else:
                ref_groups = np.stack([rng.permutation(n_ref)[:R] for _ in range(n_groups)])
            gen_groups = rng.permutation(n_generate).reshape(n_groups, group)

            def run(lane: int, x=x, t=t, ref_groups=ref_groups, gen_groups=gen_groups) -> None:
                # groups lane, lane + n, lane + 2n, ... on ε function ``lane``: disjoint rows of eps
                for k in range(lane, n_groups, len(fns)):
                    refs, gens = ref_groups[k], gen_groups[k]
                    x_in = torch.cat([references[refs], x[gens]])
                    eps[gens] = fns[lane](x_in, t, refs, gens).to(eps)

            if pool is None:
                run(0)
            else:  # one thread per device: their calls overlap
                for f in [pool.submit(run, lane) for lane in range(len(fns))]:
                    f.result()
            x = ddim_update(x, eps, alphas[index], alphas_prev[index])
            if progress is not None:
                progress(i + 1, len(ts))
    finally:
        if pool is not None:
            pool.shutdown()
    return x
