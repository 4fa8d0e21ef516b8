"""Losses of the video autoencoder: reconstruction (L1 + (MS-)SSIM, LPIPS from local weights), KL, and hinge GAN
terms for the 3D patch discriminator switched on after a warm-up (LDM's autoencoder objective, Rombach et al.
2022 App. G; Video LDM §3.1.1 fine-tunes its temporal decoder the same way, with a 3D discriminator).

Scales. L1, (1 − SSIM) and LPIPS are means over pixels/frames; the KL term is the closed-form KL summed over
the latent and divided by the number of input values, so a weight of 1e-6 balances it against the mean L1 as
LDM's 1e-6 balances its summed KL against its summed reconstruction loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..metrics.image import ms_ssim_frames, ssim_components
from ..metrics.lpips import load_lpips_model
from ..models.vae import DiagonalGaussian
from ..utils import VidiffError


@dataclass(frozen=True)
class VAELossConfig:
    """Weights of the autoencoder objective; the discriminator enters at step `disc_start` (0 weight: never)."""

    l1: float = 1.0
    l2: float = 0.0  # weight of the mean squared error: on sparse content (small objects on a plain background) L1's
    # median-seeking gradient paints the background first and leaves object colours for last; L2 weights them up
    ssim: float = 0.2  # weight of (1 − SSIM)
    ms_ssim: bool = False  # multi-scale SSIM (Wang et al. 2003) instead of single-scale
    kl: float = 1e-6
    lpips: float = 0.0  # used only when local LPIPS weight files are given
    adversarial: float = 0.1  # generator hinge weight once the discriminator is on
    disc_start: int = 2000  # warm-up steps on reconstruction alone
    adaptive: bool = True  # GAN term scaled by ‖∇rec‖/‖∇gan‖ at the last layer (Esser et al. 2021 eq. 7)

    def __post_init__(self):
        if min(self.l1, self.l2, self.ssim, self.kl, self.lpips, self.adversarial) < 0 or self.disc_start < 0:
            raise VidiffError("VAE loss weights and disc_start must be >= 0")


def frames_of(x: Tensor) -> Tensor:
    """(B, C, F, H, W) → (B·F, C, H, W)."""
    return rearrange(x, "b c f h w -> (b f) c h w")


def ssim_loss(x: Tensor, x_rec: Tensor, multiscale: bool = False) -> Tensor:
    """1 − mean per-frame SSIM (or MS-SSIM) of two videos (B, C, F, H, W) in [−1, 1]; differentiable."""
    a, b = frames_of(x), frames_of(x_rec)
    s = ms_ssim_frames(a, b) if multiscale else ssim_components(a, b)[0]  # (B·F,)
    return 1 - s.mean()


def kl_loss(posterior: DiagonalGaussian, num_values: int) -> Tensor:
    """Mean over the batch of KL(q(z|x) ‖ N(0, I)) / `num_values` (the values of one input clip)."""
    return posterior.kl().mean() / num_values


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """½ (E[max(0, 1 − D(x))] + E[max(0, 1 + D(x̂))]) (Lim & Ye 2017; the taming/LDM discriminator loss)."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: Tensor) -> Tensor:
    """−E[D(x̂)], the generator's hinge loss."""
    return -logits_fake.mean()


def adaptive_weight(rec_loss: Tensor, g_loss: Tensor, last_layer: Tensor, max_weight: float = 1e4) -> Tensor:
    """‖∇_w L_rec‖ / (‖∇_w L_GAN‖ + 1e-4) at the decoder's last weight w, clamped, no gradient (Esser et al.
    2021 eq. 7): the GAN term pulls as hard as the reconstruction term."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0.0, max_weight).detach()


def latent_scaling_factor(latents: Tensor) -> float:
    """1 / std of the latents (Stable Diffusion's `scaling_factor`, LDM §4.3.2): scaled latents have unit variance."""
    std = latents.detach().double().std().item()
    if not std > 0:
        raise VidiffError("latents have zero (or NaN) spread; cannot compute a scaling factor")
    return 1.0 / std


class VAELoss(nn.Module):
    """The autoencoder objective. `forward(x, x_rec, posterior, step, logits_fake=None, last_layer=None)` →
    (total, terms); `discriminator(logits_real, logits_fake, step)` → the discriminator's loss.

    LPIPS is used only when `lpips_vgg` and `lpips_lin` name local weight files (none ship with vidiff);
    its network is frozen.
    """

    def __init__(self, config: VAELossConfig | None = None, lpips_vgg: str | None = None,
                 lpips_lin: str | None = None):
        super().__init__()
        self.config = cfg = config or VAELossConfig()
        if cfg.lpips > 0 and not (lpips_vgg and lpips_lin):
            raise VidiffError("an LPIPS weight > 0 needs local weight files: pass lpips_vgg (VGG16 state dict) and "
                              "lpips_lin (LPIPS linear layers)")
        self.lpips = load_lpips_model(lpips_vgg, lpips_lin).requires_grad_(False) if cfg.lpips > 0 else None

    def gan_active(self, step: int) -> bool:
        """Whether the discriminator and the generator's GAN term are on at `step`."""
        return self.config.adversarial > 0 and step >= self.config.disc_start

    def forward(self, x: Tensor, x_rec: Tensor, posterior: DiagonalGaussian, step: int = 0,
                logits_fake: Tensor | None = None,
                last_layer: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """x, x_rec (B, C, F, H, W) in [−1, 1]; `logits_fake` = D(x_rec) (with gradient to the autoencoder)."""
        cfg = self.config
        terms = {"l1": (x - x_rec).abs().mean()}
        rec = cfg.l1 * terms["l1"]
        if cfg.l2 > 0:
            terms["l2"] = (x - x_rec).pow(2).mean()
            rec = rec + cfg.l2 * terms["l2"]
        if cfg.ssim > 0:
            terms["ssim"] = ssim_loss(x, x_rec, cfg.ms_ssim)
            rec = rec + cfg.ssim * terms["ssim"]
        if self.lpips is not None:
            terms["lpips"] = self.lpips(frames_of(x_rec), frames_of(x)).mean()
            rec = rec + cfg.lpips * terms["lpips"]
        terms["kl"] = kl_loss(posterior, x[0].numel())
        total = rec + cfg.kl * terms["kl"]
        if logits_fake is not None and self.gan_active(step):
            terms["g"] = hinge_g_loss(logits_fake)
            weight = cfg.adversarial
            if cfg.adaptive and last_layer is not None and torch.is_grad_enabled():
                weight = weight * adaptive_weight(rec, terms["g"], last_layer)
            total = total + weight * terms["g"]
        terms["total"] = total
        return total, terms

    def discriminator(self, logits_real: Tensor, logits_fake: Tensor, step: int = 0) -> Tensor:
        """The hinge loss of D on real clips and (detached) reconstructions; zero before `disc_start`."""
        loss = hinge_d_loss(logits_real, logits_fake)
        return loss if self.gan_active(step) else loss * 0.0


__all__ = ["VAELoss", "VAELossConfig", "adaptive_weight", "hinge_d_loss", "hinge_g_loss", "kl_loss",
           "latent_scaling_factor", "ssim_loss"]
