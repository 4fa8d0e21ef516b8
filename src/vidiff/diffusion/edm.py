"""EDM (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models") in
vidiff's variance-preserving time.

EDM writes a noisy sample as x = x₀ + σ n (variance exploding); vidiff writes z_t = α_t x₀ + σ_t ε
with α² + σ² = 1. They are the same point up to scale:

    σ = σ_t / α_t = exp(−λ_t / 2),   x = z_t / α_t,   z_t = x / sqrt(1 + σ²),   λ_t = −2 log σ,

so any vidiff schedule gives EDM noise levels through its log-SNR (`sigma_of_t`, `t_of_sigma`), and
EDM's ODE dx/dσ = (x − D(x; σ))/σ has the slope ε̂ in either picture (`samplers.euler`, `heun`).

Preconditioning (table 1): D(x; σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x; c_noise(σ)) with
c_skip = σ_d²/(σ² + σ_d²), c_out = σ σ_d/sqrt(σ² + σ_d²), c_in = 1/sqrt(σ² + σ_d²), c_noise = ¼ log σ.
With σ_d = 1 the network input c_in x = x/sqrt(1 + σ²) is exactly vidiff's z_t, and

    D = x/(σ² + 1) + σ/sqrt(σ² + 1) F = α z + σ_t F,

while a v-prediction network gives x̂₀ = α z − σ_t v̂ (Salimans & Ho 2022). So F = −v: a
v-prediction network in VP form *is* EDM's preconditioning with σ_d = 1 and c_out negated, which is
what Stable Video Diffusion uses (c_skip = 1/(σ² + 1), c_out = −σ/sqrt(σ² + 1)). vidiff therefore
drives such a network with the ordinary `Denoiser(model, "v")` on an `EDMSchedule`; `EDMDenoiser`
covers σ_d ≠ 1 (EDM's own networks, σ_d = 0.5).

Training (sec. 5): ln σ ~ N(P_mean, P_std²) and the loss weight λ(σ) = (σ² + σ_d²)/(σ σ_d)², which
makes the effective weight on F equal to 1 (λ c_out² = 1).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from ..utils import VidiffError
from .noise import randn
from .param import Prediction, broadcast, time_vector
from .schedule import EDMSchedule, Schedule

__all__ = [
    "SIGMA_DATA", "SIGMA_MIN", "SIGMA_MAX", "RHO", "P_MEAN", "P_STD",
    "c_skip", "c_out", "c_in", "c_noise", "loss_weight", "sample_sigma",
    "sigma_of_t", "t_of_sigma", "vp_from_ve", "ve_from_vp", "karras_sigmas", "karras_grid",
    "EDMDenoiser", "edm_loss",
]

SIGMA_DATA = 0.5  # σ_d, the data standard deviation EDM assumes (sec. 5)
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0  # the sampling range and the grid's curvature (sec. 3)
P_MEAN, P_STD = -1.2, 1.2  # ln σ ~ N(P_mean, P_std²) in training (table 1)


# --- preconditioning (table 1) -----------------------------------------------------------------------

def _as_sigma(sigma: Tensor | float) -> Tensor:
    """σ as a tensor: a tensor keeps its dtype, a number becomes float64."""
    return sigma if torch.is_tensor(sigma) else torch.tensor(float(sigma), dtype=torch.float64)


def c_skip(sigma: Tensor | float, sigma_data: float = SIGMA_DATA) -> Tensor:
    """c_skip(σ) = σ_d² / (σ² + σ_d²)."""
    sigma = _as_sigma(sigma)
    return sigma_data**2 / (sigma**2 + sigma_data**2)


def c_out(sigma: Tensor | float, sigma_data: float = SIGMA_DATA) -> Tensor:
    """c_out(σ) = σ σ_d / sqrt(σ² + σ_d²)."""
    sigma = _as_sigma(sigma)
    return sigma * sigma_data / torch.sqrt(sigma**2 + sigma_data**2)


def c_in(sigma: Tensor | float, sigma_data: float = SIGMA_DATA) -> Tensor:
    """c_in(σ) = 1 / sqrt(σ² + σ_d²)."""
    sigma = _as_sigma(sigma)
    return 1 / torch.sqrt(sigma**2 + sigma_data**2)


def c_noise(sigma: Tensor | float) -> Tensor:
    """c_noise(σ) = ¼ ln σ: the network's time input."""
    return 0.25 * torch.log(_as_sigma(sigma))


def loss_weight(sigma: Tensor | float, sigma_data: float = SIGMA_DATA) -> Tensor:
    """λ(σ) = (σ² + σ_d²) / (σ σ_d)² (table 1): λ(σ) c_out(σ)² = 1."""
    sigma = _as_sigma(sigma)
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def sample_sigma(shape, generator: torch.Generator | None = None, *, p_mean: float = P_MEAN,
                 p_std: float = P_STD, dtype=torch.float32, device=None) -> Tensor:
    """Training noise levels, ln σ ~ N(P_mean, P_std²) (table 1)."""
    n = torch.randn(shape, generator=generator, dtype=dtype,
                    device=generator.device if generator is not None else device)
    return torch.exp(p_mean + p_std * n).to(device or n.device)


# --- EDM's σ and vidiff's time -----------------------------------------------------------------------

def sigma_of_t(schedule: Schedule, t: Tensor | float) -> Tensor:
    """EDM's noise level at vidiff time t: σ = σ_t/α_t = exp(−λ_t/2) (float64)."""
    return torch.exp(-0.5 * schedule.logsnr(torch.as_tensor(t, dtype=torch.float64)))


def t_of_sigma(schedule: Schedule, sigma: Tensor | float) -> Tensor:
    """The vidiff time of EDM noise level σ: t = λ⁻¹(−2 ln σ) (float64; clipped to the schedule's range)."""
    return schedule.t_from_logsnr(-2 * torch.log(torch.as_tensor(sigma, dtype=torch.float64)))


def vp_from_ve(x: Tensor, sigma: Tensor | float) -> Tensor:
    """z = x / sqrt(1 + σ²): EDM's x = x₀ + σ n as a variance-preserving sample."""
    return x / torch.sqrt(1 + torch.as_tensor(sigma, dtype=x.dtype) ** 2)


def ve_from_vp(z: Tensor, sigma: Tensor | float) -> Tensor:
    """x = z sqrt(1 + σ²): the inverse of `vp_from_ve`."""
    return z * torch.sqrt(1 + torch.as_tensor(sigma, dtype=z.dtype) ** 2)


def karras_sigmas(steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX,
                  rho: float = RHO) -> Tensor:
    """EDM's σ grid (eq. 5): σ_i = (σ_max^{1/ρ} + i/(n−1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ for i < n,
    and σ_n = 0; float64 of length n + 1 (n = 1: σ_max, 0)."""
    if steps < 1 or not 0 < sigma_min < sigma_max:
        raise VidiffError(f"karras_sigmas needs steps >= 1 and 0 < sigma_min < sigma_max; got {steps}, "
                          f"{sigma_min}, {sigma_max}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return torch.cat([(hi + ramp * (lo - hi)) ** rho, torch.zeros(1, dtype=torch.float64)])


def karras_grid(schedule: Schedule, steps: int, rho: float = RHO) -> Tensor:
    """EDM's σ grid as vidiff times (float64, descending, ending at 0). The σ range is the schedule's
    own for an `EDMSchedule` (then the grid is uniform in t); for other schedules their range clipped
    to EDM's [0.002, 80], so that a cosine schedule's σ ≈ 2·10⁴ at t = 1 does not swallow the steps."""
    if isinstance(schedule, EDMSchedule):
        sigma_min, sigma_max = schedule.sigma_min, schedule.sigma_max
    else:
        sigma_min = max(math.exp(-0.5 * schedule.logsnr_max), SIGMA_MIN)
        sigma_max = min(math.exp(-0.5 * schedule.logsnr_min), SIGMA_MAX)
    sigmas = karras_sigmas(steps, sigma_min, sigma_max, rho)
    grid = torch.cat([t_of_sigma(schedule, sigmas[:-1]), torch.zeros(1, dtype=torch.float64)])
    if math.isclose(sigma_max, math.exp(-0.5 * schedule.logsnr_min), rel_tol=1e-9):
        grid[0] = 1.0  # the grid starts where the schedule does (not 1 − 1e-16)
    return grid


# --- the denoiser and the loss ----------------------------------------------------------------------

class EDMDenoiser:
    """EDM's preconditioned denoiser (Karras et al. 2022, eq. 7 and table 1) with vidiff's call:
    `denoiser(z_t, t, schedule, cond) -> Prediction`. The backbone `model(c_in x, c_noise, cond) -> F`
    sees the EDM-scaled input and c_noise = ¼ ln σ as its time; D = c_skip x + c_out F is x̂₀.
    With sigma_data = 1 and a network that returns −v this equals `Denoiser(model, "v")` (module doc)."""

    def __init__(self, model: Callable[..., Tensor], sigma_data: float = SIGMA_DATA):
        if not callable(model):
            raise VidiffError(f"EDMDenoiser needs a callable model(x, c_noise, cond); got {type(model).__name__}")
        if not sigma_data > 0:
            raise VidiffError(f"sigma_data must be > 0; got {sigma_data}")
        self.model, self.sigma_data = model, float(sigma_data)

    def __call__(self, z: Tensor, t: float | Tensor, schedule: Schedule, cond: Any = None) -> Prediction:
        t_vec = time_vector(t, z)  # (B,) checked in [0, 1]
        t64 = torch.as_tensor(float(t) if not torch.is_tensor(t) or t.dim() == 0 else t, dtype=torch.float64)
        alpha, sigma_t = (broadcast(c, z) for c in schedule.alpha_sigma(t64))
        sigma = sigma_of_t(schedule, t64)  # EDM's σ = σ_t/α_t
        x = z / alpha  # EDM's x = x₀ + σ n
        s = broadcast(sigma, z)
        out = self.model(broadcast(c_in(sigma, self.sigma_data), z) * x, c_noise(sigma).to(z.dtype).expand(t_vec.shape),
                         cond)
        if out.shape != z.shape:
            raise VidiffError(f"model returned shape {tuple(out.shape)} for input {tuple(z.shape)}; "
                              "a backbone must predict a tensor shaped like z_t")
        denoised = c_skip(s, self.sigma_data) * x + c_out(s, self.sigma_data) * out.to(z.dtype)
        return Prediction.from_output("x0", denoised, z, alpha, sigma_t)

    def __repr__(self) -> str:
        return f"EDMDenoiser({type(self.model).__name__}, sigma_data={self.sigma_data})"


def edm_loss(model: Callable[..., Tensor], x0: Tensor, *, sigma_data: float = SIGMA_DATA, p_mean: float = P_MEAN,
             p_std: float = P_STD, cond: Any = None, sigma: Tensor | None = None, noise: Tensor | None = None,
             generator: torch.Generator | None = None, reduction: str = "mean") -> Tensor:
    """EDM's training loss (eq. 8 with table 1): E_{σ, n} λ(σ) ‖D(x₀ + σ n; σ) − x₀‖², ln σ ~ N(P_mean,
    P_std²), for a backbone `model(c_in x, c_noise, cond) -> F` (the one `EDMDenoiser` drives).
    σ (B,) and n are drawn from `generator` unless given; reduction "mean" or "none" ((B,) losses)."""
    if reduction not in ("mean", "none"):
        raise VidiffError(f"reduction must be 'mean' or 'none'; got {reduction!r}")
    b = x0.shape[0]
    if sigma is None:
        sigma = sample_sigma((b,), generator, p_mean=p_mean, p_std=p_std, device=x0.device)
    sigma = sigma.to(x0)
    if noise is None:
        noise = randn(x0.shape, generator, x0)
    s = broadcast(sigma, x0)
    x = x0 + s * noise  # (B, C, F, H, W)
    out = model(c_in(s, sigma_data) * x, c_noise(sigma), cond)
    denoised = c_skip(s, sigma_data) * x + c_out(s, sigma_data) * out
    per_sample = loss_weight(sigma, sigma_data) * ((denoised - x0) ** 2).reshape(b, -1).mean(1)  # (B,)
    return per_sample.mean() if reduction == "mean" else per_sample
