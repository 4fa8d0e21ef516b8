"""Samplers: plain functions with one signature, no state kept between calls.

    x0 = sampler(denoiser, noise, schedule, steps, *, cond=None, guidance=None, callback=None,
                 generator=None, spacing="uniform", clip=None, noise_prior=None, **sampler_options)

`denoiser(z, t, schedule, cond) -> Prediction` is a `Denoiser` (or a guidance wrapper around one).
`guidance` is applied on the sampler side: a function denoiser -> denoiser (or a list of them,
applied in order), e.g. `functools.partial(ClassifierFreeGuidance, w=3.0, null_cond=null)`.
`clip` clips x̂₀ at every step (see `param.apply_clip`). The time grid t_0 = 1 > … > t_n = 0 is
chosen by `spacing` ("uniform", "logsnr", "trailing", "leading") or given as a 1-D tensor of
times (which may end above 0: then z_{t_n} is returned, e.g. for partial denoising). The end point
t = 0 is the data itself (α = 1, σ = 0, as DDIM's α₀ := 1): the last step returns x̂₀.
`callback(dict(step, total, t, x, x0))` runs after every step with the new z and the current x̂₀.
`noise_prior` (a `noise.FrameNoise`) correlates the fresh noise of stochastic steps across frames, for
models trained with that prior (the initial `noise` is the caller's; deterministic samplers draw none).
"""
from __future__ import annotations

import inspect
import numbers
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..utils import VidiffError
from .loss import randn
from .param import Prediction, apply_clip
from .schedule import Schedule, check_t

__all__ = [
    "SPACINGS",
    "SAMPLERS",
    "timesteps",
    "ddpm",
    "ddim",
    "dpmpp_2m",
    "sample",
    "ddim_invert",
    "ddim_step",
    "ddim_step_angular",
    "ddpm_posterior",
    "pc",
    "langevin_step",
]

SPACINGS = ("uniform", "logsnr", "trailing", "leading")


# --- time grids --------------------------------------------------------------------------------------

def timesteps(schedule: Schedule, steps: int, spacing: str | Sequence[float] | Tensor = "uniform") -> Tensor:
    """The descending float64 time grid t_0 > … > t_n (n = steps) ending at 0.

    uniform:  t_i = 1 − i/n.
    logsnr:   uniform in λ from λ(1) to the schedule's finite λ_max (DPM-Solver's "logSNR"), then 0.
    trailing: Lin et al. 2024, table 2 — n steps on the N-step training grid, starting at t = 1:
              t_i = round(N (1 − i/n)) / N (equals "uniform" when n divides N).
    leading:  the old Stable Diffusion grid t_i = (⌊N/n⌋ (n − 1 − i) + 1) / N, which never starts at
              t = 1 — kept only to reproduce samplers that used it.
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
    else:
        raise VidiffError(f"unknown timestep spacing {spacing!r}; choose one of {list(SPACINGS)} or pass a tensor of times")
    if not bool((grid[1:] < grid[:-1]).all()):
        raise VidiffError(f"{steps} steps is too many for spacing {spacing!r} (times repeat); use fewer steps")
    return grid


# --- shared plumbing ---------------------------------------------------------------------------------

def _prepare(denoiser, guidance) -> Callable:
    if isinstance(denoiser, torch.nn.Module):
        raise VidiffError("samplers take a denoiser, not a bare backbone: wrap it as "
                          "Denoiser(model, parameterization='v'|'eps'|'x0')")
    if not callable(denoiser):
        raise VidiffError(f"denoiser must be callable (z, t, schedule, cond) -> Prediction; got {type(denoiser).__name__}")
    if guidance is None:
        return denoiser
    for g in (guidance if isinstance(guidance, (list, tuple)) else [guidance]):
        denoiser = g(denoiser)
    return denoiser


def _coeffs(schedule: Schedule, t: float, z: Tensor) -> tuple[Tensor, Tensor]:
    """(α_t, σ_t) as float64 scalars; t = 0 is the data (α = 1, σ = 0)."""
    if t == 0:
        return torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    a, s = schedule.alpha_sigma(torch.tensor(t, dtype=torch.float64))
    return a, s


class _Runner:
    """Evaluate the (guided) denoiser at grid time t and clip x̂₀; report progress."""

    def __init__(self, denoiser, schedule, cond, clip, callback, total):
        self.denoiser, self.schedule, self.cond, self.clip = denoiser, schedule, cond, clip
        self.callback, self.total = callback, total

    def predict(self, z: Tensor, t: float) -> Prediction:
        pred = self.denoiser(z, t, self.schedule, self.cond)
        if self.clip is not None:
            a, s = self.schedule.alpha_sigma(torch.tensor(t, dtype=torch.float64))
            pred = apply_clip(pred, self.clip, z, a.to(z.dtype), s.to(z.dtype))
        return pred

    def report(self, i: int, t: float, z: Tensor, x0: Tensor) -> None:
        if self.callback is not None:
            self.callback(dict(step=i, total=self.total, t=t, x=z, x0=x0))


def _check_noise(noise: Tensor) -> None:
    if not isinstance(noise, Tensor) or not noise.is_floating_point() or noise.dim() < 1:
        raise VidiffError("noise must be a floating-point tensor with a leading batch dimension")


# --- step formulas -----------------------------------------------------------------------------------

def ddim_step(pred: Prediction, alpha_s: Tensor, sigma_s: Tensor, sigma_eta: Tensor | float = 0.0,
              xi: Tensor | None = None) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12): z_s = α_s x̂ + sqrt(σ_s² − σ_η²) ε̂ + σ_η ξ."""
    z = alpha_s * pred.x0 + torch.sqrt(torch.clamp(sigma_s**2 - sigma_eta**2, min=0)) * pred.eps
    return z if xi is None else z + sigma_eta * xi


def ddim_step_angular(z: Tensor, v: Tensor, phi_t: Tensor, phi_s: Tensor) -> Tensor:
    """Deterministic DDIM in angular form (Salimans & Ho 2022, eq. 8): z_s = cos(φ_s − φ_t) z_t + sin(φ_s − φ_t) v̂."""
    d = phi_s - phi_t
    return torch.cos(d) * z + torch.sin(d) * v


def _phi(a: Tensor, s: Tensor) -> Tensor:
    return torch.atan2(s, a)


def ddpm_posterior(a_t: Tensor, s_t: Tensor, a_s: Tensor, s_s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """q(z_s | z_t, x) = N(c_z z_t + c_x x, std²) for s < t (Kingma et al. 2021, eq. 32–33):
    c_z = α_{t|s} σ_s²/σ_t², c_x = α_s σ²_{t|s}/σ_t², std² = σ²_{t|s} σ_s²/σ_t²."""
    a_ts = a_t / a_s
    var_ts = s_t**2 - a_ts**2 * s_s**2
    return a_ts * s_s**2 / s_t**2, a_s * var_ts / s_t**2, torch.sqrt(torch.clamp(var_ts * s_s**2 / s_t**2, min=0))


def _fresh(z: Tensor, generator, noise_prior) -> Tensor:
    """Fresh noise shaped like z for a stochastic step, correlated by `noise_prior` if given."""
    eps = randn(z.shape, generator, z)
    return eps if noise_prior is None else noise_prior(eps)


# --- samplers ----------------------------------------------------------------------------------------

@torch.no_grad()
def ddpm(denoiser, noise: Tensor, schedule: Schedule, steps: int, *, cond: Any = None, guidance=None,
         callback: Callable | None = None, generator: torch.Generator | None = None,
         spacing="uniform", clip=None, noise_prior=None) -> Tensor:
    """Ancestral sampling (Ho et al. 2020, Alg. 2) with the exact posterior q(z_s | z_t, x = x̂₀)
    between any two times (Kingma et al. 2021, eq. 32): `pc`'s predictor with the corrector off."""
    return pc(denoiser, noise, schedule, steps, cond=cond, guidance=guidance, callback=callback,
              generator=generator, spacing=spacing, clip=clip, noise_prior=noise_prior, snr=0.0)


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


@torch.no_grad()
def ddim(denoiser, noise: Tensor, schedule: Schedule, steps: int, *, cond: Any = None, guidance=None,
         callback: Callable | None = None, generator: torch.Generator | None = None,
         spacing="uniform", clip=None, noise_prior=None, eta: float = 0.0) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12, 16); η = 0 is deterministic and uses the angular v-form
    z_s = cos(φ_s − φ_t) z_t + sin(φ_s − φ_t) v̂; η = 1 equals ancestral DDPM."""
    _check_noise(noise)
    if eta < 0:
        raise VidiffError(f"eta must be >= 0 (0 = deterministic DDIM, 1 = DDPM); got {eta}")
    den = _prepare(denoiser, guidance)
    grid = timesteps(schedule, steps, spacing)
    run = _Runner(den, schedule, cond, clip, callback, len(grid) - 1)
    z = noise
    for i in range(len(grid) - 1):
        t, s = float(grid[i]), float(grid[i + 1])
        pred = run.predict(z, t)
        a_t, s_t = _coeffs(schedule, t, z)
        a_s, s_s = _coeffs(schedule, s, z)
        if s_s == 0:  # the last step lands on x̂₀ exactly (as in ddpm and dpmpp_2m): clip holds bit-exactly
            z = pred.x0
        elif eta == 0:
            phi_t, phi_s = _phi(a_t, s_t).to(z.dtype), _phi(a_s, s_s).to(z.dtype)
            z = ddim_step_angular(z, pred.v, phi_t, phi_s)
        else:
            # σ_η = η sqrt(σ_s²/σ_t²) sqrt(1 − α_t²/α_s²)  (Song et al. eq. 16)
            sig_eta = eta * torch.sqrt(s_s**2 / s_t**2 * torch.clamp(1 - a_t**2 / a_s**2, min=0))
            xi = _fresh(z, generator, noise_prior) if sig_eta > 0 else None
            z = ddim_step(pred, a_s.to(z.dtype), s_s.to(z.dtype), sig_eta.to(z.dtype), xi)
        run.report(i, t, z, pred.x0)
    return z


@torch.no_grad()
def dpmpp_2m(denoiser, noise: Tensor, schedule: Schedule, steps: int, *, cond: Any = None, guidance=None,
             callback: Callable | None = None, generator: torch.Generator | None = None,
             spacing="uniform", clip=None, noise_prior=None) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) in data prediction, with λ = log(α/σ):
    z_s = (σ_s/σ_t) z_t − α_s (e^{−h} − 1) D, D = (1 + 1/2r) x̂₀(t) − (1/2r) x̂₀(t_prev), r = h_prev/h.
    The first step and the last step (to σ = 0, h = ∞) are first order, as in the reference code."""
    _check_noise(noise)
    den = _prepare(denoiser, guidance)
    grid = timesteps(schedule, steps, spacing)
    run = _Runner(den, schedule, cond, clip, callback, len(grid) - 1)
    z = noise
    x0_prev, h_prev = None, None
    for i in range(len(grid) - 1):
        t, s = float(grid[i]), float(grid[i + 1])
        pred = run.predict(z, t)
        a_t, s_t = _coeffs(schedule, t, z)
        a_s, s_s = _coeffs(schedule, s, z)
        if s_s == 0:
            z = pred.x0
        else:
            h = torch.log(a_s / s_s) - torch.log(a_t / s_t)
            if x0_prev is None:
                D = pred.x0
            else:
                r = h_prev / h
                D = (1 + 1 / (2 * r)).to(z.dtype) * pred.x0 - (1 / (2 * r)).to(z.dtype) * x0_prev
            z = (s_s / s_t).to(z.dtype) * z - (a_s * torch.expm1(-h)).to(z.dtype) * D
            x0_prev, h_prev = pred.x0, h
        run.report(i, t, z, pred.x0)
    return z


@torch.no_grad()
def pc(denoiser, noise: Tensor, schedule: Schedule, steps: int, *, cond: Any = None, guidance=None,
       callback: Callable | None = None, generator: torch.Generator | None = None,
       spacing="uniform", clip=None, noise_prior=None, snr: float = 0.16, corrector_steps: int = 1,
       corrector_range: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """Predictor–corrector sampling (Song et al. 2021, Alg. 5): each ancestral step t → s (the
    predictor, as in `ddpm`) is followed by `corrector_steps` Langevin steps at s (`langevin_step`,
    signal-to-noise ratio `snr`) when s lies in `corrector_range` = (t_lo, t_hi); each corrector
    step costs one more denoiser evaluation. snr = 0 or corrector_steps = 0 is `ddpm` exactly."""
    _check_noise(noise)
    lo, hi = (float(v) for v in corrector_range)
    if snr < 0 or corrector_steps < 0 or not 0 <= lo <= hi <= 1:
        raise VidiffError(f"pc needs snr >= 0, corrector_steps >= 0 and 0 <= t_lo <= t_hi <= 1 in corrector_range; "
                          f"got snr={snr}, corrector_steps={corrector_steps}, corrector_range={corrector_range}")
    den = _prepare(denoiser, guidance)
    grid = timesteps(schedule, steps, spacing)
    run = _Runner(den, schedule, cond, clip, callback, len(grid) - 1)
    z = noise
    for i in range(len(grid) - 1):
        t, s = float(grid[i]), float(grid[i + 1])
        pred = run.predict(z, t)
        a_t, s_t = _coeffs(schedule, t, z)
        a_s, s_s = _coeffs(schedule, s, z)
        if s_s == 0:  # the last step lands on x̂₀
            z = pred.x0
        else:  # z_s ~ q(z_s | z_t, x = x̂₀)
            c_z, c_x, std = ddpm_posterior(a_t, s_t, a_s, s_s)
            z = c_z.to(z.dtype) * z + c_x.to(z.dtype) * pred.x0 + std.to(z.dtype) * _fresh(z, generator, noise_prior)
        if s_s > 0 and snr > 0 and lo <= s <= hi:
            for _ in range(corrector_steps):
                eps_hat = run.predict(z, s).eps
                z = langevin_step(z, eps_hat, s_s.to(z.dtype), _fresh(z, generator, noise_prior), snr)
        run.report(i, t, z, pred.x0)
    return z


SAMPLERS: dict[str, Callable[..., Tensor]] = {"ddpm": ddpm, "ddim": ddim, "dpmpp_2m": dpmpp_2m, "pc": pc}


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
    2023): the angular step run backwards, z_t = (z_s − sin(φ_s − φ_t) v̂)/cos(φ_s − φ_t), with v̂
    taken at the previous point (z_s, s) — the classic inversion, `fixed_point_iters=0`, exact only as
    steps → ∞. Each fixed-point iteration re-evaluates v̂ at (z_t, t), solving the DDIM step backwards
    so that `ddim` on the same grid maps the result back to x0 (one iteration, the default, costs a
    second evaluation per step and brings the 100-step error from ~1e-2 to ~1e-4 on Gaussian data).
    The first step leaves t = 0, where v̂ is undefined; it uses v̂ at (x0, t_1)."""
    _check_noise(x0)
    den = _prepare(denoiser, guidance)
    grid = timesteps(schedule, steps, spacing).flip(0)  # 0 = s_0 < s_1 < ... < 1
    run = _Runner(den, schedule, cond, None, callback, len(grid) - 1)
    z = x0
    for i in range(len(grid) - 1):
        s, t = float(grid[i]), float(grid[i + 1])
        a_s, s_s = _coeffs(schedule, s, z)
        a_t, s_t = _coeffs(schedule, t, z)
        phi_s, phi_t = _phi(a_s, s_s).to(z.dtype), _phi(a_t, s_t).to(z.dtype)
        d = phi_s - phi_t
        pred = run.predict(z, s if s > 0 else t)
        z_t = (z - torch.sin(d) * pred.v) / torch.cos(d)
        for _ in range(fixed_point_iters):
            pred = run.predict(z_t, t)
            z_t = (z - torch.sin(d) * pred.v) / torch.cos(d)
        z = z_t
        run.report(i, t, z, pred.x0)
    return z
