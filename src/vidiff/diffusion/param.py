"""Parameterizations ε, x₀, v and the `Denoiser` that turns a backbone into all three.

Time direction: t = 0 is clean data, t = 1 is noise; z_t = α_t x + σ_t ε with α² + σ² = 1.
Salimans & Ho (2022, eq. 4–6): v = α_t ε − σ_t x. With φ_t = arctan(σ_t/α_t) we have
z_t = cos φ · x + sin φ · ε and v = dz_t/dφ = cos φ · ε − sin φ · x, so

    x = α z − σ v,    ε = σ z + α v,    x = (z − σ ε)/α,    ε = (z − α x)/σ.

`alpha`, `sigma` below are tensors broadcastable to z (see `broadcast`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

import torch
from torch import Tensor

from ..utils import VidiffError

PARAMETERIZATIONS = ("v", "eps", "x0")

__all__ = [
    "PARAMETERIZATIONS",
    "Prediction",
    "Denoiser",
    "broadcast",
    "check_parameterization",
    "x0_from_eps",
    "eps_from_x0",
    "v_from_eps_x0",
    "x0_from_v",
    "eps_from_v",
    "v_from_x0",
    "v_from_eps",
    "convert",
    "dynamic_threshold",
    "apply_clip",
]


def check_parameterization(name: str) -> str:
    if name not in PARAMETERIZATIONS:
        raise VidiffError(f"unknown parameterization {name!r}; choose one of {list(PARAMETERIZATIONS)}")
    return name


def broadcast(a: Tensor | float, x: Tensor) -> Tensor:
    """Reshape a per-sample (B,) or scalar coefficient to (B, 1, ..., 1) so it broadcasts over x."""
    a = torch.as_tensor(a, device=x.device)
    if a.dim() == 0:
        return a.to(x.dtype)
    if a.dim() == 1 and a.shape[0] == x.shape[0]:
        return a.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    raise VidiffError(f"coefficient of shape {tuple(a.shape)} does not match batch {x.shape[0]} of x {tuple(x.shape)}")


# --- conversions (Salimans & Ho 2022, sec. 4 and appendix D) -------------------------------------

def x0_from_eps(z: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """x = (z − σ ε) / α."""
    return (z - sigma * eps) / alpha


def eps_from_x0(z: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """ε = (z − α x) / σ."""
    return (z - alpha * x0) / sigma


def v_from_eps_x0(eps: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """v = α ε − σ x (Salimans & Ho eq. 6): the v-prediction target."""
    return alpha * eps - sigma * x0


def x0_from_v(z: Tensor, v: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """x = α z − σ v."""
    return alpha * z - sigma * v


def eps_from_v(z: Tensor, v: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """ε = σ z + α v."""
    return sigma * z + alpha * v


def v_from_x0(z: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """v = (α z − x) / σ."""
    return (alpha * z - x0) / sigma


def v_from_eps(z: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """v = (ε − σ z) / α."""
    return (eps - sigma * z) / alpha


def convert(pred: Tensor, src: str, dst: str, z: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """Convert a prediction of kind `src` into kind `dst` (each of "x0", "eps", "v") at (z, α, σ)."""
    check_parameterization(src)
    check_parameterization(dst)
    if src == dst:
        return pred
    table = {
        ("eps", "x0"): x0_from_eps, ("x0", "eps"): eps_from_x0, ("v", "x0"): x0_from_v,
        ("v", "eps"): eps_from_v, ("x0", "v"): v_from_x0, ("eps", "v"): v_from_eps,
    }
    return table[(src, dst)](z, pred, alpha, sigma)


# --- the prediction and x̂₀ clipping -----------------------------------------------------------------

@dataclass
class Prediction:
    """What a denoiser returns at (z_t, t): x̂₀, ε̂ and v̂, mutually consistent given z_t, α_t, σ_t."""

    x0: Tensor
    eps: Tensor
    v: Tensor

    @classmethod
    def from_output(cls, kind: str, out: Tensor, z: Tensor, alpha: Tensor, sigma: Tensor) -> "Prediction":
        """Build all three from one network output of kind `kind` (v-form when possible: stable at σ→0, α→0)."""
        check_parameterization(kind)
        if kind == "v":
            return cls(x0_from_v(z, out, alpha, sigma), eps_from_v(z, out, alpha, sigma), out)
        if kind == "eps":
            x0 = x0_from_eps(z, out, alpha, sigma)
            return cls(x0, out, v_from_eps_x0(out, x0, alpha, sigma))
        eps = eps_from_x0(z, out, alpha, sigma)
        return cls(out, eps, v_from_eps_x0(eps, out, alpha, sigma))

    def get(self, kind: str) -> Tensor:
        """The prediction of kind "x0", "eps" or "v"."""
        return getattr(self, check_parameterization(kind))

    @staticmethod
    def combine(preds: list["Prediction"], weights: list[float | Tensor]) -> "Prediction":
        """Σ wᵢ predᵢ; with Σ wᵢ = 1 the result is again consistent (the conversions are affine)."""
        return Prediction(
            sum(w * p.x0 for w, p in zip(weights, preds)),
            sum(w * p.eps for w, p in zip(weights, preds)),
            sum(w * p.v for w, p in zip(weights, preds)),
        )


def dynamic_threshold(x0: Tensor, percentile: float = 0.995) -> Tensor:
    """Imagen dynamic thresholding (Saharia et al. 2022, sec. 2.3): s = max(1, quantile_p |x̂₀|) per
    sample, then x̂₀ ← clip(x̂₀, −s, s) / s."""
    flat = x0.detach().abs().reshape(x0.shape[0], -1).float()
    k = max(1, min(flat.shape[1], int(round(percentile * flat.shape[1]))))
    s = flat.kthvalue(k, dim=1).values.clamp(min=1.0).to(x0.dtype)
    s = broadcast(s, x0)
    return torch.maximum(torch.minimum(x0, s), -s) / s


ClipSpec = Union[None, float, str, Callable[[Tensor], Tensor]]


def apply_clip(pred: Prediction, clip: ClipSpec, z: Tensor, alpha: Tensor, sigma: Tensor) -> Prediction:
    """Clip x̂₀ and recompute ε̂, v̂ from it. `clip`: None (off), a number c (clamp to [−c, c]),
    "dynamic" (Imagen, p = 0.995) or a callable x̂₀ -> x̂₀."""
    if clip is None:
        return pred
    if callable(clip):
        x0 = clip(pred.x0)
    elif clip == "dynamic":
        x0 = dynamic_threshold(pred.x0)
    elif isinstance(clip, (int, float)) and not isinstance(clip, bool) and clip > 0:
        x0 = pred.x0.clamp(-clip, clip)
    else:
        raise VidiffError(f"bad clip {clip!r}; use None, a positive number, 'dynamic' or a function")
    return Prediction.from_output("x0", x0, z, alpha, sigma)


# --- the denoiser ------------------------------------------------------------------------------------

class Denoiser:
    """Wrap a backbone `model(z_t, t, cond) -> prediction` (an nn.Module or any function) of the given
    parameterization into `denoiser(z_t, t, schedule, cond=None) -> Prediction(x0, eps, v)`.

    The backbone gets z_t as is and t as a (B,) tensor of continuous times; it never sees α or σ.
    `clip` (see `apply_clip`) optionally clips x̂₀ before ε̂ and v̂ are derived from it.
    """

    def __init__(self, model: Callable[..., Tensor], parameterization: str = "v", clip: ClipSpec = None):
        if not callable(model):
            raise VidiffError(f"Denoiser needs a callable model(z_t, t, cond); got {type(model).__name__}")
        self.model = model
        self.parameterization = check_parameterization(parameterization)
        self.clip = clip

    def __call__(self, z: Tensor, t: float | Tensor, schedule: Any, cond: Any = None) -> Prediction:
        t_vec = time_vector(t, z)
        if not torch.is_tensor(t) or t.dim() == 0:  # one time for the batch (samplers): scalar α, σ
            alpha, sigma = schedule.alpha_sigma(torch.tensor(float(t), dtype=torch.float64))
        else:
            alpha, sigma = schedule.alpha_sigma(t_vec)
        alpha, sigma = broadcast(alpha, z), broadcast(sigma, z)
        out = self.model(z, t_vec, cond)  # same shape as z
        if out.shape != z.shape:
            raise VidiffError(f"model returned shape {tuple(out.shape)} for input {tuple(z.shape)}; "
                              "a backbone must predict a tensor shaped like z_t")
        pred = Prediction.from_output(self.parameterization, out.to(z.dtype), z, alpha, sigma)
        return apply_clip(pred, self.clip, z, alpha, sigma)

    def __repr__(self) -> str:
        return f"Denoiser({type(self.model).__name__}, parameterization={self.parameterization!r}, clip={self.clip!r})"


def time_vector(t: float | Tensor, z: Tensor) -> Tensor:
    """t (a number, 0-d or (B,) tensor) as a (B,) tensor on z's device and dtype, checked in [0, 1]."""
    from .schedule import check_t

    check_t(t)
    t = torch.as_tensor(t, device=z.device, dtype=z.dtype if z.is_floating_point() else torch.float32)
    if t.dim() == 0:
        return t.expand(z.shape[0]).clone()
    if t.shape != (z.shape[0],):
        raise VidiffError(f"t must be a number or of shape (B,) = ({z.shape[0]},); got {tuple(t.shape)}")
    return t
