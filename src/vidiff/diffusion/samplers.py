"""Samplers: plain functions with one signature, no state kept between calls.

    x0 = sampler(denoiser, noise, schedule, steps, *, cond=None, guidance=None, callback=None,
                 generator=None, spacing=..., clip=None, noise_prior=None, **sampler_options)

`denoiser(z, t, schedule, cond) -> Prediction` is a `Denoiser` (or a guidance wrapper around one).
`guidance` is applied on the sampler side: a function denoiser -> denoiser (or a list of them,
applied in order), e.g. `functools.partial(ClassifierFreeGuidance, w=3.0, null_cond=null)`.
`clip` clips x̂₀ at every step (see `param.apply_clip`). The time grid t_0 > … > t_n is chosen by
`spacing` ("uniform", "logsnr", "trailing", "leading", "karras") or given as a 1-D tensor of times
(which may end above 0: then z_{t_n} is returned, e.g. for partial denoising). The end point t = 0
is the data itself (α = 1, σ = 0, as DDIM's α₀ := 1): the last step returns x̂₀.
`callback(dict(step, total, t, x, x0))` runs after every step with the new z and the current x̂₀.
`generator` draws the fresh noise of stochastic steps: one `torch.Generator`, or a list of one per
sample (EDM's StackedRandomGenerator idea) so that sample i depends on its own generator only and
not on the batch it is drawn in. `noise_prior` (a `noise.FrameNoise`) correlates that fresh noise
across frames, for models trained with that prior (the initial `noise` is the caller's;
deterministic samplers draw none).

Every sampler walks the grid with the same iterator (`_Run`): `for step in run:` yields the step
t_cur → t_next with α, σ at both ends; the sampler's body is its update formula alone.
"""
from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, Union

import torch
from torch import Tensor

from ..utils import VidiffError
from .edm import karras_grid, sigma_of_t, t_of_sigma
from .noise import randn
from .param import Prediction, apply_clip
from .schedule import Schedule, check_t

__all__ = [
    "SPACINGS",
    "SAMPLERS",
    "Step",
    "timesteps",
    "stacked_randn",
    "sample_generators",
    "ddpm",
    "ddim",
    "dpmpp_2m",
    "euler",
    "heun",
    "sample",
    "ddim_invert",
    "ddim_step",
    "ddim_step_angular",
    "ddpm_posterior",
    "pc",
    "langevin_step",
]

SPACINGS = ("uniform", "logsnr", "trailing", "leading", "karras")

Generators = Union[torch.Generator, Sequence[torch.Generator], None]


# --- time grids --------------------------------------------------------------------------------------

def timesteps(schedule: Schedule, steps: int, spacing: str | Sequence[float] | Tensor = "uniform") -> Tensor:
    """The descending float64 time grid t_0 > … > t_n (n = steps) ending at 0.

    uniform:  t_i = 1 − i/n.
    logsnr:   uniform in λ from λ(1) to the schedule's finite λ_max (DPM-Solver's "logSNR"), then 0.
    trailing: Lin et al. 2024, table 2 — n steps on the N-step training grid, starting at t = 1:
              t_i = round(N (1 − i/n)) / N (equals "uniform" when n divides N).
    leading:  the old Stable Diffusion grid t_i = (⌊N/n⌋ (n − 1 − i) + 1) / N, which never starts at
              t = 1 — kept only to reproduce samplers that used it.
    karras:   EDM's σ grid (Karras et al. 2022, eq. 5, ρ = 7) mapped to t, then 0 (`edm.karras_grid`).
    A tensor/sequence of times is validated (in [0, 1], strictly decreasing) and returned; `steps` is
    then ignored.
    """
    if not isinstance(spacing, str):
        grid = torch.as_tensor(spacing, dtype=torch.float64).flatten()
        check_t(grid, "spacing time")
        if grid.numel() < 2 or not bool((grid[1:] < grid[:-1]).all()):
            raise VidiffError("an explicit time grid needs >= 2 strictly decreasing times in [0, 1]")
        return grid
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 1:
        raise VidiffError(f"steps must be a positive integer; got {steps!r}")
    n, N = int(steps), schedule.num_train_steps
    i = torch.arange(n + 1, dtype=torch.float64)
    if spacing == "uniform":
        grid = 1 - i / n
    elif spacing == "logsnr":
        lam = torch.linspace(schedule.logsnr_min, schedule.logsnr_max, n + 1, dtype=torch.float64)
        grid = schedule.t_from_logsnr(lam)
        grid[0], grid[-1] = 1.0, 0.0
    elif spacing == "trailing":
        grid = torch.round(N * (1 - i / n)) / N
    elif spacing == "leading":
        if n > N:
            raise VidiffError(f"'leading' spacing allows at most {N} steps; got {n}")
        grid = ((N // n) * (n - 1 - i[:-1]) + 1) / N
        grid = torch.cat([grid, torch.zeros(1, dtype=torch.float64)])
    elif spacing == "karras":
        grid = karras_grid(schedule, n)
    else:
        raise VidiffError(f"unknown timestep spacing {spacing!r}; choose one of {list(SPACINGS)} or pass a tensor "
                          "of times")
    if not bool((grid[1:] < grid[:-1]).all()):
        raise VidiffError(f"{steps} steps is too many for spacing {spacing!r} (times repeat); use fewer steps")
    return grid


# --- the loop every sampler shares -------------------------------------------------------------------

def _coeffs(schedule: Schedule, t: float) -> tuple[Tensor, Tensor]:
    """(α_t, σ_t) as float64 scalars; t = 0 is the data (α = 1, σ = 0)."""
    if t == 0:
        return torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    return schedule.alpha_sigma(torch.tensor(t, dtype=torch.float64))


@dataclass(frozen=True)
class Step:
    """One step t_cur → t_next of a time grid with (α, σ) at both ends (float64 0-d tensors)."""

    i: int
    t_cur: float
    t_next: float
    alpha_cur: Tensor
    sigma_cur: Tensor
    alpha_next: Tensor
    sigma_next: Tensor

    @property
    def to_data(self) -> bool:
        """True when t_next is the data (σ_next = 0): the step lands on x̂₀ exactly."""
        return bool(self.sigma_next == 0)


def _prepare(denoiser, guidance) -> Callable:
    if isinstance(denoiser, torch.nn.Module):
        raise VidiffError("samplers take a denoiser, not a bare backbone: wrap it as "
                          "Denoiser(model, parameterization='v'|'eps'|'x0')")
    if not callable(denoiser):
        raise VidiffError("denoiser must be callable (z, t, schedule, cond) -> Prediction; got "
                          f"{type(denoiser).__name__}")
    if guidance is None:
        return denoiser
    for g in (guidance if isinstance(guidance, (list, tuple)) else [guidance]):
        denoiser = g(denoiser)
    return denoiser


class _Run:
    """The loop skeleton of every sampler: input checks, guidance, the time grid, x̂₀ clipping and
    progress. Iterating yields the `Step`s of the grid (from t = 0 upwards when `reverse`)."""

    def __init__(self, denoiser, noise: Tensor, schedule: Schedule, steps: int, spacing, *, cond: Any = None,
                 guidance=None, clip=None, callback: Callable | None = None, reverse: bool = False):
        if not isinstance(noise, Tensor) or not noise.is_floating_point() or noise.dim() < 1:
            raise VidiffError("noise must be a floating-point tensor with a leading batch dimension")
        self.denoiser = _prepare(denoiser, guidance)
        grid = timesteps(schedule, steps, spacing)
        self.grid = grid.flip(0) if reverse else grid
        self.schedule, self.cond, self.clip, self.callback = schedule, cond, clip, callback

    def __len__(self) -> int:
        return len(self.grid) - 1

    def __iter__(self) -> Iterator[Step]:
        for i in range(len(self)):
            t_cur, t_next = float(self.grid[i]), float(self.grid[i + 1])
            yield Step(i, t_cur, t_next, *_coeffs(self.schedule, t_cur), *_coeffs(self.schedule, t_next))

    def predict(self, z: Tensor, t: float) -> Prediction:
        """The (guided) denoiser at (z, t), x̂₀ clipped if asked."""
        pred = self.denoiser(z, t, self.schedule, self.cond)
        if self.clip is not None:
            alpha, sigma = self.schedule.alpha_sigma(torch.tensor(t, dtype=torch.float64))
            pred = apply_clip(pred, self.clip, z, alpha.to(z.dtype), sigma.to(z.dtype))
        return pred

    def report(self, step: Step, z: Tensor, denoised: Tensor, t: float | None = None) -> None:
        """Call back with the new z, the current x̂₀ and the step's time (t_cur unless given)."""
        if self.callback is not None:
            self.callback(dict(step=step.i, total=len(self), t=step.t_cur if t is None else t, x=z, x0=denoised))


def stacked_randn(like: Tensor, generator: Generators) -> Tensor:
    """Standard normal noise shaped like `like`, from one generator, or from one generator per sample
    (a list of B; EDM's StackedRandomGenerator): sample b's noise then depends on generator b alone."""
    if generator is None or isinstance(generator, torch.Generator):
        return randn(like.shape, generator, like)
    gens = list(generator)
    if len(gens) != like.shape[0] or not all(isinstance(g, torch.Generator) for g in gens):
        raise VidiffError(f"a list of generators needs one torch.Generator per sample ({like.shape[0]}); "
                          f"got {len(gens)} item(s)")
    return torch.stack([randn(like.shape[1:], g, like) for g in gens])


def sample_generators(seed: int, num: int) -> list[torch.Generator]:
    """One CPU generator per sample, sample i seeded with seed + i: drawing its initial noise and then
    its samplers' fresh noise from it makes sample i depend on seed + i alone."""
    return [torch.Generator().manual_seed(int(seed) + i) for i in range(num)]


def _fresh(z: Tensor, generator: Generators, noise_prior) -> Tensor:
    """Fresh noise shaped like z for a stochastic step, correlated by `noise_prior` if given."""
    eps = stacked_randn(z, generator)
    return eps if noise_prior is None else noise_prior(eps)


# --- step formulas -----------------------------------------------------------------------------------

def ddim_step(pred: Prediction, alpha_next: Tensor, sigma_next: Tensor, sigma_eta: Tensor | float = 0.0,
              xi: Tensor | None = None) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12): z_next = α_next x̂ + sqrt(σ_next² − σ_η²) ε̂ + σ_η ξ."""
    z = alpha_next * pred.x0 + torch.sqrt(torch.clamp(sigma_next**2 - sigma_eta**2, min=0)) * pred.eps
    return z if xi is None else z + sigma_eta * xi


def ddim_step_angular(z: Tensor, v: Tensor, phi_cur: Tensor, phi_next: Tensor) -> Tensor:
    """Deterministic DDIM in angular form (Salimans & Ho 2022, eq. 8):
    z_next = cos(φ_next − φ_cur) z + sin(φ_next − φ_cur) v̂."""
    d = phi_next - phi_cur
    return torch.cos(d) * z + torch.sin(d) * v


def _phi(alpha: Tensor, sigma: Tensor) -> Tensor:
    return torch.atan2(sigma, alpha)


def ddpm_posterior(alpha_cur: Tensor, sigma_cur: Tensor, alpha_next: Tensor, sigma_next: Tensor
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """q(z_s | z_t, x) = N(c_z z_t + c_x x, std²) for s = t_next < t = t_cur (Kingma et al. 2021,
    eq. 32–33): c_z = α_{t|s} σ_s²/σ_t², c_x = α_s σ²_{t|s}/σ_t², std² = σ²_{t|s} σ_s²/σ_t²."""
    a_ts = alpha_cur / alpha_next
    var_ts = sigma_cur**2 - a_ts**2 * sigma_next**2
    return (a_ts * sigma_next**2 / sigma_cur**2, alpha_next * var_ts / sigma_cur**2,
            torch.sqrt(torch.clamp(var_ts * sigma_next**2 / sigma_cur**2, min=0)))


def langevin_step(z: Tensor, eps_hat: Tensor, sigma: Tensor | float, xi: Tensor, snr: float) -> Tensor:
    """One Langevin corrector step (Song et al. 2021, Alg. 4–5) on p_t with ∇log p_t(z) = −ε̂/σ_t:
    z ← z + δ ∇log p_t + sqrt(2δ) ξ, step δ = 2 (r ‖ξ‖ / ‖∇log p_t‖)² per sample (r = `snr`).
    The norms run over each sample's elements (Song et al. average them over the batch), so a
    sample must have many elements, as a video has; with frame-correlated noise ξ ~ N(0, Σ) this
    is Langevin preconditioned by Σ, whose drift is δ Σ ∇log p_t = −δ ε̂/σ_t: the same formula."""
    b = z.shape[0]
    score_norm = eps_hat.reshape(b, -1).norm(dim=1) / sigma
    delta = 2 * (snr * xi.reshape(b, -1).norm(dim=1) / score_norm.clamp(min=1e-12)) ** 2
    delta = delta.reshape(b, *([1] * (z.dim() - 1))).to(z.dtype)
    return z - delta * eps_hat / sigma + torch.sqrt(2 * delta) * xi


# --- samplers ----------------------------------------------------------------------------------------

@torch.no_grad()
def ddpm(denoiser, noise: Tensor, schedule: Schedule, steps: int, *, cond: Any = None, guidance=None,
         callback: Callable | None = None, generator: Generators = None,
         spacing="uniform", clip=None, noise_prior=None) -> Tensor:
    """Ancestral sampling (Ho et al. 2020, Alg. 2) with the exact posterior q(z_s | z_t, x = x̂₀)
    between any two times (Kingma et al. 2021, eq. 32): `pc`'s predictor with the corrector off."""
    return pc(denoiser, noise, schedule, steps, cond=cond, guidance=guidance, callback=callback,
              generator=generator, spacing=spacing, clip=clip, noise_prior=noise_prior, snr=0.0)


@torch.no_grad()
def ddim(denoiser, noise: Tensor, schedule: Schedule, steps: int, *, cond: Any = None, guidance=None,
         callback: Callable | None = None, generator: Generators = None,
         spacing="uniform", clip=None, noise_prior=None, eta: float = 0.0) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12, 16); η = 0 is deterministic and uses the angular v-form
    z_next = cos(φ_next − φ_cur) z + sin(φ_next − φ_cur) v̂; η = 1 equals ancestral DDPM."""
    if eta < 0:
        raise VidiffError(f"eta must be >= 0 (0 = deterministic DDIM, 1 = DDPM); got {eta}")
    run = _Run(denoiser, noise, schedule, steps, spacing, cond=cond, guidance=guidance, clip=clip, callback=callback)
    z = noise
    for step in run:
        pred = run.predict(z, step.t_cur)
        if step.to_data:  # Last step: x̂₀ exactly (as every sampler), so a clip holds bit for bit.
            z = pred.x0
        elif eta == 0:  # Deterministic step, angular form.
            phi_cur = _phi(step.alpha_cur, step.sigma_cur).to(z.dtype)
            phi_next = _phi(step.alpha_next, step.sigma_next).to(z.dtype)
            z = ddim_step_angular(z, pred.v, phi_cur, phi_next)
        else:  # Stochastic step: σ_η = η sqrt(σ_next²/σ_cur²) sqrt(1 − α_cur²/α_next²) (Song et al. 16).
            a_cur, s_cur, a_next, s_next = step.alpha_cur, step.sigma_cur, step.alpha_next, step.sigma_next
            sigma_eta = eta * torch.sqrt(s_next**2 / s_cur**2 * torch.clamp(1 - a_cur**2 / a_next**2, min=0))
            xi = _fresh(z, generator, noise_prior) if sigma_eta > 0 else None
            z = ddim_step(pred, a_next.to(z.dtype), s_next.to(z.dtype), sigma_eta.to(z.dtype), xi)
        run.report(step, z, pred.x0)
    return z


@torch.no_grad()
def dpmpp_2m(denoiser, noise: Tensor, schedule: Schedule, steps: int, *, cond: Any = None, guidance=None,
             callback: Callable | None = None, generator: Generators = None,
             spacing="uniform", clip=None, noise_prior=None) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) in data prediction, with λ = log(α/σ):
    z_next = (σ_next/σ_cur) z − α_next (e^{−h} − 1) D, D = (1 + 1/2r) x̂₀(t_cur) − (1/2r) x̂₀(t_prev),
    r = h_prev/h. The first step and the last step (to σ = 0, h = ∞) are first order, as in the
    reference code."""
    run = _Run(denoiser, noise, schedule, steps, spacing, cond=cond, guidance=guidance, clip=clip, callback=callback)
    z = noise
    denoised_prev, h_prev = None, None
    for step in run:
        denoised = run.predict(z, step.t_cur).x0
        if step.to_data:  # Last step: x̂₀.
            z = denoised
        else:
            h = torch.log(step.alpha_next / step.sigma_next) - torch.log(step.alpha_cur / step.sigma_cur)
            if denoised_prev is None:  # First step: first order.
                D = denoised
            else:  # Second-order multistep correction.
                r = h_prev / h
                D = (1 + 1 / (2 * r)).to(z.dtype) * denoised - (1 / (2 * r)).to(z.dtype) * denoised_prev
            z = (step.sigma_next / step.sigma_cur).to(z.dtype) * z - (step.alpha_next * torch.expm1(-h)).to(z.dtype) * D
            denoised_prev, h_prev = denoised, h
        run.report(step, z, denoised)
    return z


@torch.no_grad()
def pc(denoiser, noise: Tensor, schedule: Schedule, steps: int, *, cond: Any = None, guidance=None,
       callback: Callable | None = None, generator: Generators = None,
       spacing="uniform", clip=None, noise_prior=None, snr: float = 0.16, corrector_steps: int = 1,
       corrector_range: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """Predictor–corrector sampling (Song et al. 2021, Alg. 5): each ancestral step t_cur → t_next
    (the predictor, as in `ddpm`) is followed by `corrector_steps` Langevin steps at t_next
    (`langevin_step`, signal-to-noise ratio `snr`) when t_next lies in `corrector_range` = (t_lo, t_hi);
    each corrector step costs one more denoiser evaluation. snr = 0 or corrector_steps = 0 is `ddpm`
    exactly."""
    lo, hi = (float(v) for v in corrector_range)
    if snr < 0 or corrector_steps < 0 or not 0 <= lo <= hi <= 1:
        raise VidiffError(f"pc needs snr >= 0, corrector_steps >= 0 and 0 <= t_lo <= t_hi <= 1 in corrector_range; "
                          f"got snr={snr}, corrector_steps={corrector_steps}, corrector_range={corrector_range}")
    run = _Run(denoiser, noise, schedule, steps, spacing, cond=cond, guidance=guidance, clip=clip, callback=callback)
    z = noise
    for step in run:
        pred = run.predict(z, step.t_cur)
        if step.to_data:  # Last step: x̂₀.
            z = pred.x0
            run.report(step, z, pred.x0)
            continue
        # Predictor: z_next ~ q(z_next | z, x = x̂₀).
        c_z, c_x, std = ddpm_posterior(step.alpha_cur, step.sigma_cur, step.alpha_next, step.sigma_next)
        z = c_z.to(z.dtype) * z + c_x.to(z.dtype) * pred.x0 + std.to(z.dtype) * _fresh(z, generator, noise_prior)
        # Corrector: Langevin steps at t_next.
        if snr > 0 and lo <= step.t_next <= hi:
            sigma_next = step.sigma_next.to(z.dtype)
            for _ in range(corrector_steps):
                eps_hat = run.predict(z, step.t_next).eps
                z = langevin_step(z, eps_hat, sigma_next, _fresh(z, generator, noise_prior), snr)
        run.report(step, z, pred.x0)
    return z


def _edm(denoiser, noise, schedule, steps, *, second_order, cond, guidance, callback, generator, spacing, clip,
         noise_prior, s_churn, s_tmin, s_tmax, s_noise) -> Tensor:
    """EDM's sampler (Karras et al. 2022, Alg. 2) run in vidiff's variance-preserving variables.

    With σ = σ_t/α_t (EDM's noise level) and x = z/α_t, the VP sample z_t = α_t x₀ + σ_t ε is EDM's
    x = x₀ + σ ε, and dx/dσ = (x − D(x; σ))/σ = ε̂ (the ε-prediction). Each step: optionally raise
    σ_cur to σ_hat = (1 + γ) σ_cur with fresh noise (churn), take an Euler step σ_hat → σ_next, and
    for Heun re-evaluate at σ_next and average the two slopes (trapezoidal rule)."""
    if s_churn < 0 or s_noise < 0 or s_tmin < 0 or s_tmax < s_tmin:
        raise VidiffError(f"EDM samplers need s_churn >= 0, s_noise >= 0 and 0 <= s_tmin <= s_tmax; got s_churn="
                          f"{s_churn}, s_noise={s_noise}, s_tmin={s_tmin}, s_tmax={s_tmax}")
    run = _Run(denoiser, noise, schedule, steps, spacing, cond=cond, guidance=guidance, clip=clip, callback=callback)
    sigma_top = float(sigma_of_t(schedule, 1.0))  # σ_hat may not leave the schedule
    z = noise
    for step in run:
        sigma_cur = float(step.sigma_cur / step.alpha_cur)
        sigma_next = float(step.sigma_next / step.alpha_next)
        x_cur = z / float(step.alpha_cur)  # EDM's x = x₀ + σ ε

        # Increase noise temporarily (churn): γ = min(S_churn/N, √2 − 1) for σ in [S_tmin, S_tmax].
        gamma = min(s_churn / len(run), math.sqrt(2) - 1) if s_tmin <= sigma_cur <= s_tmax else 0.0
        sigma_hat, t_hat, x_hat = sigma_cur, step.t_cur, x_cur
        if gamma > 0:
            sigma_hat = min(sigma_cur * (1 + gamma), sigma_top)
            t_hat = float(t_of_sigma(schedule, sigma_hat))
            eps = _fresh(z, generator, noise_prior)
            x_hat = x_cur + math.sqrt(max(sigma_hat**2 - sigma_cur**2, 0.0)) * s_noise * eps
        alpha_hat = 1 / math.sqrt(1 + sigma_hat**2)  # z_hat = α_hat x_hat

        # Euler step.
        pred = run.predict(alpha_hat * x_hat if gamma > 0 else z, t_hat)
        denoised, d_cur = pred.x0, pred.eps  # d = (x − D)/σ = ε̂
        if step.to_data:  # Last step: x̂₀.
            z = denoised
            run.report(step, z, denoised)
            continue
        x_next = x_hat + (sigma_next - sigma_hat) * d_cur

        # Apply 2nd order correction.
        if second_order:
            alpha_next = float(step.alpha_next)
            d_prime = run.predict(alpha_next * x_next, step.t_next).eps
            x_next = x_hat + (sigma_next - sigma_hat) * (0.5 * d_cur + 0.5 * d_prime)
        z = float(step.alpha_next) * x_next
        run.report(step, z, denoised)
    return z


@torch.no_grad()
def euler(denoiser, noise: Tensor, schedule: Schedule, steps: int, *, cond: Any = None, guidance=None,
          callback: Callable | None = None, generator: Generators = None, spacing="karras", clip=None,
          noise_prior=None, s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
          s_noise: float = 1.0) -> Tensor:
    """EDM's Euler sampler (Karras et al. 2022, Alg. 2 without the 2nd-order correction) on EDM's σ grid:
    x_next = x_hat + (σ_next − σ_hat) (x_hat − D(x_hat; σ_hat))/σ_hat, in VP variables z = x/sqrt(1 + σ²).
    s_churn = 0 (the default) is deterministic and equals diffusers' `EulerDiscreteScheduler`; s_churn,
    s_tmin, s_tmax (in σ) and s_noise are S_churn, S_tmin, S_tmax, S_noise of the paper."""
    return _edm(denoiser, noise, schedule, steps, second_order=False, cond=cond, guidance=guidance,
                callback=callback, generator=generator, spacing=spacing, clip=clip, noise_prior=noise_prior,
                s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax, s_noise=s_noise)


@torch.no_grad()
def heun(denoiser, noise: Tensor, schedule: Schedule, steps: int, *, cond: Any = None, guidance=None,
         callback: Callable | None = None, generator: Generators = None, spacing="karras", clip=None,
         noise_prior=None, s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
         s_noise: float = 1.0) -> Tensor:
    """EDM's 2nd-order Heun sampler (Karras et al. 2022, Alg. 1; with churn, Alg. 2): the Euler step
    to σ_next, then x_next = x_hat + (σ_next − σ_hat) (d_cur + d')/2 with d' the slope at σ_next; the
    last step (to σ = 0) is Euler. 2 denoiser evaluations per step (one on the last)."""
    return _edm(denoiser, noise, schedule, steps, second_order=True, cond=cond, guidance=guidance,
                callback=callback, generator=generator, spacing=spacing, clip=clip, noise_prior=noise_prior,
                s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax, s_noise=s_noise)


SAMPLERS: dict[str, Callable[..., Tensor]] = {"ddpm": ddpm, "ddim": ddim, "dpmpp_2m": dpmpp_2m, "pc": pc,
                                               "euler": euler, "heun": heun}


def sample(denoiser, noise: Tensor, schedule: Schedule, steps: int, *, sampler: str = "ddim", **kw) -> Tensor:
    """Run the sampler named `sampler` (one of SAMPLERS) with the shared signature."""
    if sampler not in SAMPLERS:
        raise VidiffError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
    fn = SAMPLERS[sampler]
    options = [p.name for p in inspect.signature(fn).parameters.values() if p.kind == p.KEYWORD_ONLY]
    unknown = sorted(set(kw) - set(options))
    if unknown:
        raise VidiffError(f"sampler {sampler!r} does not take {unknown}; its options are {options}")
    return fn(denoiser, noise, schedule, steps, **kw)


@torch.no_grad()
def ddim_invert(denoiser, x0: Tensor, schedule: Schedule, steps: int, cond: Any = None, *,
                guidance=None, spacing="uniform", callback: Callable | None = None,
                fixed_point_iters: int = 1) -> Tensor:
    """Deterministic DDIM inversion, clean x0 -> noise z_1 (Song et al. 2021, sec. 4.3; Mokady et al.
    2023): the angular step run backwards, z_next = (z − sin(φ_cur − φ_next) v̂)/cos(φ_cur − φ_next)
    for t_cur < t_next, with v̂ taken at (z, t_cur) — the classic inversion, `fixed_point_iters=0`,
    exact only as steps → ∞. Each fixed-point iteration re-evaluates v̂ at (z_next, t_next), solving
    the DDIM step backwards so that `ddim` on the same grid maps the result back to x0 (one iteration,
    the default, costs a second evaluation per step and brings the 100-step error from ~1e-2 to
    ~1e-4 on Gaussian data). The first step leaves t = 0, where v̂ is undefined; it uses v̂ at
    (x0, t_1)."""
    run = _Run(denoiser, x0, schedule, steps, spacing, cond=cond, guidance=guidance, callback=callback, reverse=True)
    z = x0
    for step in run:  # 0 = t_0 < t_1 < … < 1
        phi_cur = _phi(step.alpha_cur, step.sigma_cur).to(z.dtype)
        phi_next = _phi(step.alpha_next, step.sigma_next).to(z.dtype)
        d = phi_cur - phi_next
        # Classic inversion: v̂ at the current point.
        pred = run.predict(z, step.t_cur if step.t_cur > 0 else step.t_next)
        z_next = (z - torch.sin(d) * pred.v) / torch.cos(d)
        # Fixed-point iterations: v̂ at the new point.
        for _ in range(fixed_point_iters):
            pred = run.predict(z_next, step.t_next)
            z_next = (z - torch.sin(d) * pred.v) / torch.cos(d)
        z = z_next
        run.report(step, z, pred.x0, t=step.t_next)
    return z
