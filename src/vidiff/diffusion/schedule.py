"""Noise schedules in continuous time t ∈ [0, 1], variance preserving (α_t² + σ_t² = 1).

Time direction: t = 0 is (almost) clean data, t = 1 is (almost) pure noise; the forward process
is q(z_t | x) = N(α_t x, σ_t² I). Every schedule is defined by its log-SNR λ_t = log(α_t²/σ_t²),
strictly decreasing in t, and its inverse; α, σ and the angle φ_t = arctan(σ_t/α_t) follow:

    α_t² = sigmoid(λ_t),   σ_t² = sigmoid(−λ_t),   φ_t = arctan(exp(−λ_t / 2)).

Functions take a float or a tensor of any shape and return a tensor of the same shape (the input's
floating dtype, float32 for Python numbers); internally they compute in float64.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..utils import VidiffError

__all__ = [
    "Schedule",
    "CosineSchedule",
    "LinearSchedule",
    "ShiftedCosineSchedule",
    "EDMSchedule",
    "SCHEDULES",
    "get_schedule",
    "check_t",
]


def check_t(t: float | Tensor, name: str = "t") -> Tensor:
    """`t` as a float64 tensor, raising a clear VidiffError if any value lies outside [0, 1]."""
    t64 = torch.as_tensor(t).to(torch.float64)
    if t64.numel() and (torch.isnan(t64).any() or t64.min() < 0 or t64.max() > 1):
        bad = t64[(t64 < 0) | (t64 > 1) | torch.isnan(t64)].flatten()[0].item()
        raise VidiffError(f"{name} must lie in [0, 1] (0 = clean data, 1 = pure noise); got {bad:g}")
    return t64


def _out_dtype(x) -> torch.dtype:
    return x.dtype if isinstance(x, Tensor) and x.is_floating_point() else torch.get_default_dtype()


def _to_input(y: Tensor, like) -> Tensor:
    """Cast a float64 result back to the dtype/device of the input `like`."""
    device = like.device if isinstance(like, Tensor) else y.device
    return y.to(device=device, dtype=_out_dtype(like))


class Schedule:
    """A variance-preserving schedule given by its log-SNR λ(t); subclasses define `_logsnr`, `_t`.

    `logsnr_min` = λ(1) and `logsnr_max` = λ(0) are the (finite) end points. `num_train_steps` is the
    discrete grid used by "trailing"/"leading" spacing (1000, as in DDPM).
    """

    name = "schedule"
    num_train_steps = 1000

    # --- to implement: float64 in, float64 out --------------------------------------------------
    def _logsnr(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _t(self, logsnr: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- public API -----------------------------------------------------------------------------
    def logsnr(self, t: float | Tensor) -> Tensor:
        """λ_t = log(α_t² / σ_t²), strictly decreasing in t."""
        return _to_input(self._logsnr(check_t(t).to(_device(t))), t)

    def t_from_logsnr(self, logsnr: float | Tensor) -> Tensor:
        """The inverse of `logsnr`: t(λ); λ is clipped to [logsnr_min, logsnr_max] first."""
        lam = torch.as_tensor(logsnr).to(torch.float64)
        lam = lam.clamp(self.logsnr_min, float(self._logsnr(torch.tensor(0.0, dtype=torch.float64))))
        return _to_input(self._t(lam).clamp(0, 1), logsnr)

    def alpha(self, t: float | Tensor) -> Tensor:
        """α_t = sqrt(sigmoid(λ_t)): the signal scale of q(z_t | x) = N(α_t x, σ_t² I)."""
        return _to_input(torch.sigmoid(self._logsnr(check_t(t).to(_device(t)))).sqrt(), t)

    def sigma(self, t: float | Tensor) -> Tensor:
        """σ_t = sqrt(sigmoid(−λ_t)): the noise scale; α_t² + σ_t² = 1."""
        return _to_input(torch.sigmoid(-self._logsnr(check_t(t).to(_device(t)))).sqrt(), t)

    def alpha_sigma(self, t: float | Tensor) -> tuple[Tensor, Tensor]:
        """(α_t, σ_t) in one call."""
        lam = self._logsnr(check_t(t).to(_device(t)))
        return _to_input(torch.sigmoid(lam).sqrt(), t), _to_input(torch.sigmoid(-lam).sqrt(), t)

    def phi(self, t: float | Tensor) -> Tensor:
        """Angular time φ_t = arctan(σ_t / α_t) ∈ (0, π/2), so z_t = cos φ_t · x + sin φ_t · ε."""
        lam = self._logsnr(check_t(t).to(_device(t)))
        return _to_input(torch.atan(torch.exp(-0.5 * lam)), t)

    def transition(self, s: float | Tensor, t: float | Tensor) -> tuple[Tensor, Tensor]:
        """(α_{t|s}, σ_{t|s}) of q(z_t | z_s) = N(α_{t|s} z_s, σ²_{t|s} I) for s < t (Kingma et al. 2021,
        eq. 3): α_{t|s} = α_t/α_s, σ²_{t|s} = σ_t² − α²_{t|s} σ_s²."""
        a_s, s_s = self.alpha_sigma(s)
        a_t, s_t = self.alpha_sigma(t)
        a_ts = a_t / a_s
        return a_ts, torch.sqrt(torch.clamp(s_t**2 - a_ts**2 * s_s**2, min=0))

    @property
    def logsnr_min(self) -> float:
        """λ(1): the log-SNR at pure noise."""
        return float(self._logsnr(torch.tensor(1.0, dtype=torch.float64)))

    @property
    def logsnr_max(self) -> float:
        """λ(0): the log-SNR at the clean end (finite; samplers still end on x̂₀ exactly)."""
        return float(self._logsnr(torch.tensor(0.0, dtype=torch.float64)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _device(t) -> torch.device:
    return t.device if isinstance(t, Tensor) else torch.device("cpu")


class CosineSchedule(Schedule):
    """Cosine schedule (Nichol & Dhariwal 2021, eq. 17) in log-SNR form: λ(t) = −2 log tan(π t / 2).

    The clip: Nichol & Dhariwal clip β_t ≤ 0.999 so that α_T > 0 at the noisy end (and the offset
    s = 0.008 keeps the clean end finite). We clip the log-SNR range instead, the continuous-time
    form of "simple diffusion" (Hoogeboom et al. 2023, eq. 6): λ(t) = −2 log tan(a t + b) with
    b = arctan(exp(−λ_max/2)), a = arctan(exp(−λ_min/2)) − b, so λ(0) = λ_max and λ(1) = λ_min
    exactly and λ stays smooth, monotone and invertible. Defaults ±20 (σ₀ = α₁ = 4.5e-5).
    """

    name = "cosine"

    def __init__(self, logsnr_min: float = -20.0, logsnr_max: float = 20.0):
        if not logsnr_min < logsnr_max:
            raise VidiffError(f"cosine schedule needs logsnr_min < logsnr_max; got {logsnr_min}, {logsnr_max}")
        self._lmin, self._lmax = float(logsnr_min), float(logsnr_max)
        self._b = math.atan(math.exp(-0.5 * self._lmax))
        self._a = math.atan(math.exp(-0.5 * self._lmin)) - self._b

    def _logsnr(self, t: Tensor) -> Tensor:
        return -2.0 * torch.log(torch.tan(self._a * t + self._b))

    def _t(self, logsnr: Tensor) -> Tensor:
        return (torch.atan(torch.exp(-0.5 * logsnr)) - self._b) / self._a

    def __repr__(self) -> str:
        return f"CosineSchedule(logsnr_min={self._lmin}, logsnr_max={self._lmax})"


class ShiftedCosineSchedule(CosineSchedule):
    """Cosine log-SNR shifted for larger inputs (Hoogeboom et al. 2023, eq. 7): λ(t) − 2 log(shift).

    Average-pooling a video by a factor k in each of n axes multiplies the SNR of the pooled signal
    by kⁿ, so a video with `shift`² times more elements than the base (e.g. 64×64×1) needs its
    log-SNR lowered by 2 log(shift) to look equally noisy at low resolution; `for_size` computes
    shift = sqrt(F·H·W / (F₀·H₀·W₀)). shift > 1 means noisier, shift = 1 is the cosine schedule.
    The clipped range moves with it: [logsnr_min, logsnr_max] − 2 log(shift).
    """

    name = "shifted_cosine"

    def __init__(self, shift: float = 1.0, logsnr_min: float = -20.0, logsnr_max: float = 20.0):
        if not (isinstance(shift, (int, float)) and shift > 0):
            raise VidiffError(f"shifted_cosine needs shift > 0 (ratio of sizes); got {shift!r}")
        super().__init__(logsnr_min, logsnr_max)
        self.shift = float(shift)
        self._offset = -2.0 * math.log(self.shift)

    @classmethod
    def for_size(cls, frames: int, height: int, width: int,
                 base: tuple[int, int, int] = (1, 64, 64), **kw) -> "ShiftedCosineSchedule":
        """The shift for a (frames, height, width) video relative to a `base` (F₀, H₀, W₀) size."""
        shift = math.sqrt(frames * height * width / (base[0] * base[1] * base[2]))
        return cls(shift=shift, **kw)

    def _logsnr(self, t: Tensor) -> Tensor:
        return super()._logsnr(t) + self._offset

    def _t(self, logsnr: Tensor) -> Tensor:
        return super()._t(logsnr - self._offset)

    def __repr__(self) -> str:
        return f"ShiftedCosineSchedule(shift={self.shift}, logsnr_min={self._lmin}, logsnr_max={self._lmax})"


BETA_SCHEDULES = ("linear", "scaled_linear")


class LinearSchedule(Schedule):
    """DDPM's linear-β schedule (Ho et al. 2020): β_n from beta_start to beta_end over N steps
    (`beta_schedule="scaled_linear"`: linear in sqrt(β), the table of Stable Diffusion).

    Continuous time interpolates log ᾱ linearly between the discrete steps: t = (n + 1) / N is
    DDPM step n + 1, i.e. diffusers timestep n with ᾱ = alphas_cumprod[n], and t = 0 is clean data
    (ᾱ = 1, λ = +inf). `logsnr_max` is the finite value at the first discrete step, t = 1 / N.
    """

    name = "linear"

    def __init__(self, beta_start: float = 1e-4, beta_end: float = 0.02, num_train_steps: int = 1000,
                 beta_schedule: str = "linear"):
        if not (0 < beta_start <= beta_end < 1) or int(num_train_steps) < 2:
            raise VidiffError("linear schedule needs 0 < beta_start <= beta_end < 1 and num_train_steps >= 2; "
                              f"got {beta_start}, {beta_end}, {num_train_steps}")
        if beta_schedule not in BETA_SCHEDULES:
            raise VidiffError(f"unknown beta_schedule {beta_schedule!r}; choose one of {list(BETA_SCHEDULES)}")
        self.beta_start, self.beta_end = float(beta_start), float(beta_end)
        self.num_train_steps = int(num_train_steps)
        self.beta_schedule = beta_schedule
        betas = self.discrete_betas()
        # knots at t = 0, 1/N, ..., 1 of log ᾱ (decreasing)
        self._log_ab = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(torch.log1p(-betas), 0)])

    def discrete_betas(self) -> Tensor:
        """β_n for n = 0..N−1 (float64): linear (DDPM) or linear in sqrt(β) ("scaled_linear")."""
        if self.beta_schedule == "scaled_linear":
            return torch.linspace(self.beta_start**0.5, self.beta_end**0.5, self.num_train_steps,
                                  dtype=torch.float64) ** 2
        return torch.linspace(self.beta_start, self.beta_end, self.num_train_steps, dtype=torch.float64)

    def alphas_cumprod(self) -> Tensor:
        """ᾱ_n = Π_{m ≤ n} (1 − β_m) for n = 0..N−1 (float64): the table diffusers calls alphas_cumprod."""
        return self._log_ab[1:].exp()

    def t_from_timestep(self, n: int | Tensor) -> Tensor:
        """Continuous t of discrete (diffusers) timestep n: t = (n + 1) / N."""
        return (torch.as_tensor(n, dtype=torch.float64) + 1) / self.num_train_steps

    def _log_alpha_bar(self, t: Tensor) -> Tensor:
        knots = self._log_ab.to(t.device)
        x = t * self.num_train_steps
        i = x.floor().clamp(0, self.num_train_steps - 1)
        frac = x - i
        i = i.long()
        return knots[i] + frac * (knots[i + 1] - knots[i])

    def _logsnr(self, t: Tensor) -> Tensor:
        la = self._log_alpha_bar(t)  # log ᾱ ≤ 0
        return la - torch.log(-torch.expm1(la))  # log(ᾱ / (1 − ᾱ)); +inf at t = 0

    def _t(self, logsnr: Tensor) -> Tensor:
        la = -torch.nn.functional.softplus(-logsnr)  # log sigmoid(λ) = log ᾱ
        knots = self._log_ab.to(la.device)
        rev = knots.flip(0).contiguous()  # increasing
        j = torch.searchsorted(rev, la.contiguous()).clamp(1, self.num_train_steps)
        # rev[j-1] < la <= rev[j]; rev index j corresponds to knot N - j
        lo, hi = rev[j - 1], rev[j]
        frac = (la - lo) / (hi - lo)
        t_lo = (self.num_train_steps - (j - 1)).to(la.dtype) / self.num_train_steps
        return t_lo - frac / self.num_train_steps

    @property
    def logsnr_max(self) -> float:
        return float(self._logsnr(torch.tensor(1.0 / self.num_train_steps, dtype=torch.float64)))

    def __repr__(self) -> str:
        extra = f", beta_schedule={self.beta_schedule!r}" if self.beta_schedule != "linear" else ""
        return (f"LinearSchedule(beta_start={self.beta_start}, beta_end={self.beta_end}, "
                f"num_train_steps={self.num_train_steps}{extra})")


class EDMSchedule(Schedule):
    """EDM's noise levels (Karras et al. 2022) in vidiff time: σ(t) = σ_max t^ρ, with σ = σ_t/α_t =
    exp(−λ_t/2) EDM's variance-exploding noise level, so λ(t) = −2 log σ_max − 2ρ log t.

    EDM's step discretisation (eq. 5), σ_i^{1/ρ} = σ_max^{1/ρ} + i/(n−1) (σ_min^{1/ρ} − σ_max^{1/ρ}),
    is then uniform in t from 1 down to t_min = (σ_min/σ_max)^{1/ρ} ("karras" spacing), followed by
    t = 0 (σ = 0, the data). `logsnr_max` is λ at σ_min. Defaults: EDM's σ_min = 0.002, σ_max = 80,
    ρ = 7 (Stable Video Diffusion: σ_max = 700).
    """

    name = "edm"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0):
        if not (0 < sigma_min < sigma_max < math.inf) or not rho > 0:
            raise VidiffError(f"edm schedule needs 0 < sigma_min < sigma_max and rho > 0; got {sigma_min}, "
                              f"{sigma_max}, {rho}")
        self.sigma_min, self.sigma_max, self.rho = float(sigma_min), float(sigma_max), float(rho)

    def _logsnr(self, t: Tensor) -> Tensor:
        return -2.0 * math.log(self.sigma_max) - 2.0 * self.rho * torch.log(t)

    def _t(self, logsnr: Tensor) -> Tensor:
        return torch.exp(-(logsnr + 2.0 * math.log(self.sigma_max)) / (2.0 * self.rho))

    @property
    def logsnr_max(self) -> float:
        return -2.0 * math.log(self.sigma_min)

    def __repr__(self) -> str:
        return f"EDMSchedule(sigma_min={self.sigma_min}, sigma_max={self.sigma_max}, rho={self.rho})"


SCHEDULES = {
    "cosine": CosineSchedule,
    "linear": LinearSchedule,
    "shifted_cosine": ShiftedCosineSchedule,
    "edm": EDMSchedule,
}


def get_schedule(name: str | Schedule, **kwargs) -> Schedule:
    """A schedule by name ("cosine", "linear", "shifted_cosine"); a Schedule is returned as is."""
    if isinstance(name, Schedule):
        return name
    if name not in SCHEDULES:
        raise VidiffError(f"unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    try:
        return SCHEDULES[name](**kwargs)
    except TypeError as e:
        raise VidiffError(f"bad arguments for schedule {name!r}: {e}") from None
