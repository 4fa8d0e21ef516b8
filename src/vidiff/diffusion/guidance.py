"""Guidance: wrappers around a denoiser with the same call, (z, t, schedule, cond) -> Prediction.

Compose them on the sampler side: `sample(..., guidance=partial(ClassifierFreeGuidance, w=3,
null_cond=null))`, or wrap by hand: `ddim(ClassifierFreeGuidance(denoiser, 3, null), ...)`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import Tensor

from ..conditioning.cond import Cond, with_self_cond
from ..utils import VidiffError
from .param import Prediction, broadcast, time_vector

__all__ = ["SelfConditioning", "ClassifierFreeGuidance", "FrameRampGuidance", "AutoGuidance", "ReconstructionGuidance",
           "GradientGuidance", "expand_mask"]


def _batch(cond: Any) -> int | None:
    if isinstance(cond, Cond):
        for _, v in cond.items():
            if v is not None:
                return v.shape[0]
    return None


class SelfConditioning:
    """Self-conditioning at sampling (Chen et al. 2022, "Analog Bits", sec. 3.3 and Fig. 3): every call
    passes the x̂₀ of the previous call as `Cond.self_cond` (zeros before the first), clamped to the data
    range [-1, 1] as in training. Wrap outermost, around any guidance, so the estimate fed back is the
    guided one and both branches of CFG see the same. Stateful: one instance per sampling run."""

    def __init__(self, denoiser: Callable):
        self.denoiser, self.prev = denoiser, None

    def __call__(self, z: Tensor, t, schedule, cond: Any = None) -> Prediction:
        if self.prev is not None and self.prev.shape != z.shape:
            self.prev = None  # a new run through the same wrapper
        pred = self.denoiser(z, t, schedule, with_self_cond(cond, self.prev))
        self.prev = pred.x0.detach()
        return pred


class ClassifierFreeGuidance:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6), in the convention
    x̂ = x̂_c + w (x̂_c − x̂_u) = (1 + w) x̂_c − w x̂_u: w = 0 is the plain conditional model.

    Conditional and null predictions come from one batched forward when cond is a `Cond`
    (`Cond.cat`), else from two calls. Applied to x̂₀, ε̂ and v̂ alike (the combination is affine, so
    they stay consistent). `rescale` = φ ∈ [0, 1] is Lin et al. 2024 (sec. 3.4, eq. 15–16): v̂_cfg is
    rescaled to the per-sample std of v̂_c, v̂ ← φ v̂_rescaled + (1 − φ) v̂_cfg.
    """

    def __init__(self, denoiser: Callable, w: float, null_cond: Any, rescale: float = 0.0):
        if not 0.0 <= rescale <= 1.0:
            raise VidiffError(f"CFG rescale must lie in [0, 1]; got {rescale}")
        self.denoiser, self.w, self.null_cond, self.rescale = denoiser, float(w), null_cond, float(rescale)

    def __call__(self, z: Tensor, t, schedule, cond: Any = None) -> Prediction:
        if cond is None:
            raise VidiffError("classifier-free guidance needs a condition: pass cond=... to the sampler")
        w = self.weight(z)
        if not torch.is_tensor(w) and w == 0.0:
            return self.denoiser(z, t, schedule, cond)
        B = z.shape[0]
        null = self.null_cond
        if isinstance(cond, Cond) and isinstance(null, Cond):
            if _batch(null) == 1 and B > 1:
                null = null.repeat_batch(B)
            if cond.self_cond is not None:  # sampler state, not a condition: both branches see it
                null = dataclasses.replace(null, self_cond=cond.self_cond)
            both = self.denoiser(torch.cat([z, z]), _cat_t(t, z), schedule, Cond.cat([cond, null]))
            pc = Prediction(both.x0[:B], both.eps[:B], both.v[:B])
            pu = Prediction(both.x0[B:], both.eps[B:], both.v[B:])
        else:
            pc = self.denoiser(z, t, schedule, cond)
            pu = self.denoiser(z, t, schedule, null)
        out = Prediction.combine([pc, pu], [1 + w, -w])
        if self.rescale > 0:
            dims = tuple(range(1, z.dim()))
            std_c = pc.v.std(dim=dims, keepdim=True)
            std_g = out.v.std(dim=dims, keepdim=True).clamp(min=1e-12)
            v = self.rescale * out.v * (std_c / std_g) + (1 - self.rescale) * out.v
            alpha, sigma = schedule.alpha_sigma(time_vector(t, z))
            out = Prediction.from_output("v", v, z, broadcast(alpha, z), broadcast(sigma, z))
        return out

    def weight(self, z: Tensor) -> Tensor | float:
        """w for the sample z: one number here; `FrameRampGuidance` gives one per frame."""
        return self.w


class FrameRampGuidance(ClassifierFreeGuidance):
    """Classifier-free guidance whose weight rises linearly over the frames, as Stable Video Diffusion
    samples (Blattmann et al. 2023b; diffusers' min/max_guidance_scale): frame f of F gets
    w_f = w_first + (w_last − w_first) f/(F − 1), so the first frame, which the image condition pins
    down, is guided least. Same convention as `ClassifierFreeGuidance` (w = 0 is the plain model); a
    guidance scale s of diffusers is w = s − 1."""

    def __init__(self, denoiser: Callable, w_first: float, w_last: float, null_cond: Any, rescale: float = 0.0):
        super().__init__(denoiser, w_last, null_cond, rescale)
        self.w_first, self.w_last = float(w_first), float(w_last)

    def weight(self, z: Tensor) -> Tensor | float:
        """(1, 1, F, 1, 1) weights for a video z (B, C, F, H, W)."""
        if z.dim() != 5:
            raise VidiffError(f"frame-wise guidance needs video (B, C, F, H, W); got shape {tuple(z.shape)}")
        if self.w_first == self.w_last:
            return self.w_first
        w = torch.linspace(self.w_first, self.w_last, z.shape[2], dtype=torch.float64)  # (F,)
        return w.to(z.device, z.dtype).reshape(1, 1, -1, 1, 1)


class AutoGuidance:
    """Autoguidance (Karras et al. 2024, eq. 2 with D₀ a weaker model): guide a model with a worse
    version of itself (fewer training steps or fewer parameters), x̂ = x̂_good + w (x̂_good − x̂_bad).

    Same convention as `ClassifierFreeGuidance` (w = 0 is the plain model), but both denoisers see the
    same condition, so it needs none and works for unconditional models. Where both models err the
    same way, the bad one errs more, and the extrapolation undoes the shared error without the loss of
    variety that guiding towards a condition brings. Composes with CFG: wrap this in
    `ClassifierFreeGuidance`.

    `w_high_noise` (optional) replaces w where log-SNR(t) < `logsnr_split`: a weight per noise range,
    as the guidance interval of Kynkäänniemi et al. 2024 (which sets it to 0 outside an interval).
    """

    def __init__(self, denoiser: Callable, guide: Callable, w: float, w_high_noise: float | None = None,
                 logsnr_split: float = 0.0):
        self.denoiser, self.guide, self.w = denoiser, guide, float(w)
        self.w_high_noise = None if w_high_noise is None else float(w_high_noise)
        self.logsnr_split = float(logsnr_split)

    def weight(self, t, schedule) -> Tensor | float:
        """w at time t: a float, or a (B,) tensor when t is per sample and `w_high_noise` is set."""
        if self.w_high_noise is None:
            return self.w
        noisy = torch.as_tensor(schedule.logsnr(torch.as_tensor(t, dtype=torch.float64))) < self.logsnr_split
        w = torch.where(noisy, self.w_high_noise, self.w)
        return float(w) if w.dim() == 0 else w

    def __call__(self, z: Tensor, t, schedule, cond: Any = None) -> Prediction:
        good = self.denoiser(z, t, schedule, cond)
        w = self.weight(t, schedule)
        if not torch.is_tensor(w) and w == 0.0:
            return good
        w = broadcast(w, z) if torch.is_tensor(w) else w  # per-sample weights: (B, 1, ..., 1)
        return Prediction.combine([good, self.guide(z, t, schedule, cond)], [1 + w, -w])


def _cat_t(t, z: Tensor):
    t = torch.as_tensor(t)
    return torch.cat([t, t]) if t.dim() == 1 else t


def expand_mask(mask: Tensor, x: Tensor) -> Tensor:
    """A (B, F) frame mask (for x of shape (B, C, F, H, W)) or a mask broadcastable to x, as a bool
    tensor of x's shape."""
    mask = torch.as_tensor(mask, device=x.device).bool()
    if x.dim() == 5 and mask.dim() == 2 and tuple(mask.shape) == (x.shape[0], x.shape[2]):
        mask = mask[:, None, :, None, None]
    try:
        return mask.expand_as(x)
    except RuntimeError:
        raise VidiffError(f"mask of shape {tuple(mask.shape)} fits neither (B, F) frames "
                          f"nor x {tuple(x.shape)}") from None


class GradientGuidance:
    """Generic gradient guidance on x̂₀ in the form of VDM eq. 7:
    x̃₀ = x̂₀ − (w α_t / 2) ∇_{z_t} L(x̂₀(z_t)), with L = loss_fn(x̂₀) summed to a scalar.

    `grad_mask` (bool, like `expand_mask`) restricts the gradient to part of z (e.g. the unknown
    frames zᵇ). ε̂ and v̂ are re-derived from x̃₀. The wrapped denoiser must be differentiable in z.
    """

    def __init__(self, denoiser: Callable, loss_fn: Callable[[Tensor], Tensor], weight: float,
                 grad_mask: Tensor | None = None):
        self.denoiser, self.loss_fn, self.weight, self.grad_mask = denoiser, loss_fn, float(weight), grad_mask

    def _guided(self, z: Tensor, t, schedule, cond, grad_mask=None) -> tuple[Prediction, Tensor, Tensor, Tensor]:
        alpha, sigma = schedule.alpha_sigma(time_vector(t, z))
        alpha, sigma = broadcast(alpha, z), broadcast(sigma, z)
        with torch.enable_grad():
            zg = z.detach().requires_grad_(True)
            pred = self.denoiser(zg, t, schedule, cond)
            loss = self.loss_fn(pred.x0).sum()
            (grad,) = torch.autograd.grad(loss, zg)
        if grad_mask is not None:
            grad = grad * expand_mask(grad_mask, z).to(grad.dtype)
        x0 = pred.x0.detach() - (self.weight * alpha / 2) * grad
        return Prediction.from_output("x0", x0, z, alpha, sigma), x0, alpha, sigma

    def __call__(self, z: Tensor, t, schedule, cond: Any = None) -> Prediction:
        return self._guided(z, t, schedule, cond, self.grad_mask)[0]


class ReconstructionGuidance(GradientGuidance):
    """Reconstruction guidance (Ho et al. 2022, Video Diffusion Models, eq. 7) for known parts xᵃ:
    x̃ᵇ = x̂ᵇ − (w_r α_t / 2) ∇_{zᵇ} ‖xᵃ − x̂ᵃ(z_t)‖², and x̃ᵃ = xᵃ (the replacement method).

    `mask` marks the known part: (B, F) frames of a (B, C, F, H, W) video, or any mask broadcastable
    to x. Replacing x̂ᵃ by xᵃ makes deterministic samplers keep zᵃ on the noised known data.
    """

    def __init__(self, denoiser: Callable, x_known: Tensor, mask: Tensor, weight: float, replace: bool = True):
        self.x_known, self.mask, self.replace = x_known, mask, replace
        super().__init__(denoiser, self._loss, weight)

    def _loss(self, x0: Tensor) -> Tensor:
        m = expand_mask(self.mask, x0)
        return ((self.x_known.to(x0) - x0) ** 2 * m).sum()

    def __call__(self, z: Tensor, t, schedule, cond: Any = None) -> Prediction:
        if self.x_known.shape != z.shape:
            raise VidiffError(f"x_known shape {tuple(self.x_known.shape)} must equal the sample shape {tuple(z.shape)}")
        m = expand_mask(self.mask, z)
        pred, x0, alpha, sigma = self._guided(z, t, schedule, cond, grad_mask=~m)  # ∇ w.r.t. zᵇ only
        if not self.replace:
            return pred
        x0 = torch.where(m, self.x_known.to(x0), x0)
        return Prediction.from_output("x0", x0, z, alpha, sigma)
