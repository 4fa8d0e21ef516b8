"""The training objective: sample t, noise x into z_t, regress the network onto its target.

L = E_{t ~ U[0,1], ε ~ N(0, I)} w(λ_t) ‖f(z_t, t) − target‖²   (Ho et al. 2020, eq. 14; the v-target
of Salimans & Ho 2022; min-SNR-γ weighting of Hang et al. 2023; self-conditioning of Chen et al. 2022).

EDM's training law (Karras et al. 2022, sec. 5 and table 1) in this form: ln σ ~ N(P_mean, P_std²)
(`lognormal_times`, σ = σ_t/α_t mapped to vidiff time) and the weight λ(σ) = (σ² + σ_d²)/(σ σ_d)² on
‖D − x₀‖² (`edm_weight`). With σ_d = 1 the VP network input z_t is EDM's c_in x and D = α z_t − σ_t v̂
is EDM's c_skip x + c_out F with F = −v̂ (see `edm`), so λ(σ)‖D − x₀‖² = ‖v̂ − v‖²: the EDM loss is the
plain v-loss at lognormal noise levels. The network's time input is t(σ), a monotone function of σ, in
place of c_noise = ¼ ln σ (the backbone stays schedule-agnostic and every sampler drives it).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..utils import VidiffError
from .edm import P_MEAN, P_STD, sample_sigma, t_of_sigma
from .noise import rand, randn
from .param import Prediction, broadcast, check_parameterization, v_from_eps_x0
from .schedule import Schedule, check_t
from .temporal_loss import temporal_consistency_loss

__all__ = ["diffusion_loss", "min_snr_weight", "edm_weight", "lognormal_times", "randn", "rand"]


def min_snr_weight(logsnr: Tensor, parameterization: str, gamma: float = 5.0) -> Tensor:
    """Min-SNR-γ (Hang et al. 2023, eq. 9) as a weight on the loss of each parameterization:
    x0: min(SNR, γ); eps: min(SNR, γ)/SNR; v: min(SNR, γ)/(SNR + 1). Written in λ to stay finite."""
    check_parameterization(parameterization)
    if parameterization == "x0":
        return torch.minimum(logsnr.exp(), torch.full_like(logsnr, gamma))
    if parameterization == "eps":
        return torch.clamp(gamma * torch.exp(-logsnr), max=1.0)
    return torch.minimum(torch.sigmoid(logsnr), gamma * torch.sigmoid(-logsnr))


def edm_weight(logsnr: Tensor, parameterization: str) -> Tensor:
    """EDM's loss weight λ(σ) = (σ² + σ_d²)/(σ σ_d)² (Karras et al. 2022, table 1) with σ_d = 1 and σ² = e^{−λ_t},
    expressed on each parameterization's squared error: x0: 1 + SNR; eps: 1 + 1/SNR (‖x̂₀ − x₀‖² = σ²‖ε̂ − ε‖²);
    v: 1 (‖x̂₀ − x₀‖² = σ_t²‖v̂ − v‖² and λ σ_t² = 1)."""
    check_parameterization(parameterization)
    if parameterization == "x0":
        return 1 + torch.exp(logsnr)
    if parameterization == "eps":
        return 1 + torch.exp(-logsnr)
    return torch.ones_like(logsnr)


def lognormal_times(schedule: Schedule, batch: int, generator: torch.Generator | None = None, *,
                    p_mean: float = P_MEAN, p_std: float = P_STD, device=None) -> Tensor:
    """(B,) training times whose noise levels σ = σ_t/α_t are EDM's ln σ ~ N(P_mean, P_std²) (Karras et al.
    2022, table 1), clipped to the schedule's range; drawn from `generator` (before the noise)."""
    if not p_std > 0:
        raise VidiffError(f"P_std must be > 0; got {p_std}")
    sigma = sample_sigma((batch,), generator, p_mean=p_mean, p_std=p_std, dtype=torch.float64)
    return t_of_sigma(schedule, sigma).clamp(0, 1).to(device=device, dtype=torch.float32)


def diffusion_loss(
    model: Callable[..., Tensor],
    x0: Tensor,
    schedule: Schedule,
    *,
    parameterization: str = "v",
    cond: Any = None,
    frame_mask: Tensor | None = None,
    weighting: str | Callable[[Tensor], Tensor] | None = None,
    min_snr_gamma: float = 5.0,
    t: Tensor | float | None = None,
    noise: Tensor | None = None,
    noise_prior: Callable[[Tensor], Tensor] | None = None,
    self_cond_prob: float = 0.0,
    temporal_consistency: float = 0.0,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Denoising loss of a backbone `model(z_t, t, cond)` on clean data x0 of shape (B, C, [F,] H, W).

    t ~ U[0, 1] per sample and ε ~ N(0, I) are drawn from `generator` unless given, so a training
    step is exactly reproducible. `frame_mask` (B, F) bool marks clean conditioning frames: they
    stay clean in z_t and are left out of the loss (VDM-style conditioning); tell the backbone which
    frames they are through `cond` (e.g. the mask in `Cond.concat`). For joint image-video training,
    stack images along F and set `Cond.is_image`: the loss itself treats them like any frames.
    `weighting`: None, "min_snr" (γ = min_snr_gamma), "edm" (`edm_weight`) or a function of λ_t (B,) -> (B,)
    weights.
    reduction "mean" averages over the batch (each sample: mean over its unmasked elements);
    "none" returns the (B,) per-sample losses. `noise_prior` (a `noise.FrameNoise`) correlates the
    drawn ε across frames (PYoCo); a given `noise` is used as is.
    `self_cond_prob` > 0 trains a self-conditioned backbone (Chen et al. 2022, "Analog Bits", sec. 3.3
    and Fig. 3): for that share of the samples (drawn after t and ε) a first forward without gradient
    gives x̂₀, which the second forward then sees as `Cond.self_cond`; the others see zeros.
    `temporal_consistency` > 0 adds that multiple of the flicker penalty of x̂₀ against the data's own frame
    changes, |Δx̂₀ − Δx₀| per pixel (`temporal_loss.temporal_consistency_loss`), after the weighting.
    """
    from .param import Denoiser

    if isinstance(model, Denoiser):
        raise VidiffError("diffusion_loss trains the backbone: pass denoiser.model and "
                          "parameterization=denoiser.parameterization, not the Denoiser")
    check_parameterization(parameterization)
    if x0.dim() < 2:
        raise VidiffError(f"x0 must be batched, (B, C, F, H, W) or (B, C, H, W); got shape {tuple(x0.shape)}")
    if reduction not in ("mean", "none"):
        raise VidiffError(f"unknown reduction {reduction!r}; choose 'mean' or 'none'")
    B = x0.shape[0]
    # draw order is fixed (t first, then noise) so a generator seeds the whole step
    if t is None:
        t = rand((B,), generator, x0)
    else:
        check_t(t)
        t = torch.as_tensor(t, device=x0.device, dtype=torch.float32 if x0.dtype not in (torch.float64,) else x0.dtype)
        t = t.expand(B).clone() if t.dim() == 0 else t
        if t.shape != (B,):
            raise VidiffError(f"t must be a number or of shape (B,) = ({B},); got {tuple(t.shape)}")
    if noise is None:
        noise = randn(x0.shape, generator, x0)
        if noise_prior is not None:
            noise = noise_prior(noise)
    elif noise.shape != x0.shape:
        raise VidiffError(f"noise shape {tuple(noise.shape)} must equal x0 shape {tuple(x0.shape)}")

    keep = _loss_mask(frame_mask, x0)  # (B, 1, F, 1, 1) float, 1 where the loss counts, or None
    alpha, sigma = schedule.alpha_sigma(t)
    a, s = broadcast(alpha, x0), broadcast(sigma, x0)
    z = a * x0 + s * noise  # (B, C, F, H, W)
    if keep is not None:
        z = torch.where(keep.bool(), z, x0)  # conditioning frames stay clean
    target = {"v": lambda: v_from_eps_x0(noise, x0, a, s), "eps": lambda: noise, "x0": lambda: x0}[parameterization]()

    if self_cond_prob > 0:
        cond = _self_conditioned(model, z, t.to(x0.dtype), cond, parameterization, a, s,
                                 rand((B,), generator, x0) < self_cond_prob)
    out = model(z, t.to(x0.dtype), cond)
    if out.shape != x0.shape:
        raise VidiffError(f"model returned shape {tuple(out.shape)} for input {tuple(x0.shape)}; "
                          "a backbone must predict a tensor shaped like z_t")
    acc = torch.promote_types(x0.dtype, torch.float32)  # at least float32, also under autocast
    err = (out.to(acc) - target.to(acc)) ** 2  # (B, C, F, H, W)
    if keep is None:
        per_sample = err.reshape(B, -1).mean(1)
    else:
        keep = keep.float().expand_as(err)
        per_sample = (err * keep).reshape(B, -1).sum(1) / keep.reshape(B, -1).sum(1).clamp(min=1)

    if weighting is not None:
        logsnr = schedule.logsnr(t.double()).to(per_sample.device)
        if weighting == "min_snr":
            w = min_snr_weight(logsnr, parameterization, min_snr_gamma)
        elif weighting == "edm":
            w = edm_weight(logsnr, parameterization)
        elif callable(weighting):
            w = torch.as_tensor(weighting(logsnr), device=per_sample.device)
        else:
            raise VidiffError(f"unknown loss weighting {weighting!r}; choose None, 'min_snr', 'edm' or a function "
                              "of log-SNR")
        per_sample = per_sample * w.to(per_sample.dtype)
    if temporal_consistency > 0 and x0.dim() == 5 and x0.shape[2] > 1:
        x0_hat = Prediction.from_output(parameterization, out.to(acc), z.to(acc), a.to(acc), s.to(acc)).x0
        per_sample = per_sample + temporal_consistency * temporal_consistency_loss(x0_hat, reference=x0.to(acc))
    return per_sample.mean() if reduction == "mean" else per_sample


def _self_conditioned(model, z: Tensor, t: Tensor, cond: Any, parameterization: str, a: Tensor, s: Tensor,
                      use: Tensor) -> Any:
    """`cond` with `self_cond` = the model's own x̂₀ (no gradient, clamped to the data range [-1, 1])
    where `use` (B,) is True, zeros elsewhere (Chen et al. 2022, Fig. 3)."""
    from ..conditioning.cond import with_self_cond
    from .param import Prediction

    cond = with_self_cond(cond, None)  # checks the type; an empty Cond for None
    prev = torch.zeros_like(z)  # (B, C, F, H, W)
    idx = torch.nonzero(use.to(z.device)).flatten()
    if len(idx):
        with torch.no_grad():
            sub = cond.map(lambda v: v[idx.to(v.device)])
            # the bare module under a DDP wrapper: no collectives, so ranks may draw different counts
            out = getattr(model, "module", model)(z[idx], t[idx], sub)
            prev[idx] = Prediction.from_output(parameterization, out.to(z.dtype), z[idx], a[idx], s[idx]).x0
    return with_self_cond(cond, prev)


def _loss_mask(frame_mask: Tensor | None, x0: Tensor) -> Tensor | None:
    """(B, F) True-is-clean mask -> (B, 1, F, 1, 1) tensor, True where the loss counts."""
    if frame_mask is None:
        return None
    if x0.dim() != 5:
        raise VidiffError(f"frame_mask needs video x0 (B, C, F, H, W); got shape {tuple(x0.shape)}")
    B, _, F = x0.shape[:3]
    if tuple(frame_mask.shape) != (B, F):
        raise VidiffError(f"frame_mask must have shape (B, F) = ({B}, {F}); got {tuple(frame_mask.shape)}")
    return (~frame_mask.to(device=x0.device, dtype=torch.bool))[:, None, :, None, None]
