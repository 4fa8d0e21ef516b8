"""Autoencoder losses: SSIM/MS-SSIM terms, hinge losses, the KL normalisation, the scaling factor, the 3D patch
discriminator, and a smoke run in which a few optimisation steps reduce the reconstruction error."""
import pytest
import torch

from vidiff.metrics.image import ms_ssim_frames, ssim, ssim_components
from vidiff.models.discriminator import DiscriminatorConfig, PatchDiscriminator3D
from vidiff.models.vae import DiagonalGaussian, VAEConfig, VideoAutoencoder
from vidiff.training.vae_loss import (VAELoss, VAELossConfig, hinge_d_loss, hinge_g_loss, kl_loss,
                                      latent_scaling_factor, ssim_loss)
from vidiff.utils import VidiffError


def test_ssim_terms_match_the_metric_and_vanish_on_equal_inputs():
    x = torch.rand(2, 3, 3, 24, 24) * 2 - 1
    y = (x + 0.2 * torch.randn_like(x)).clamp(-1, 1)
    assert ssim_loss(x, x).abs() < 1e-6 and ssim_loss(x, x, multiscale=True).abs() < 1e-5
    assert ssim_loss(x, y).item() == pytest.approx(1 - ssim(x, y).mean().item(), abs=1e-5)
    a, b = x.permute(0, 2, 1, 3, 4).reshape(6, 3, 24, 24), y.permute(0, 2, 1, 3, 4).reshape(6, 3, 24, 24)
    single, cs = ssim_components(a, b)
    torch.testing.assert_close(ms_ssim_frames(a, b, scales=1), single)  # one scale is plain SSIM
    two = ms_ssim_frames(a, b, scales=2)  # cs at full size, SSIM at half size, exponents renormalised
    s_half = ssim_components(torch.nn.functional.avg_pool2d(a, 2), torch.nn.functional.avg_pool2d(b, 2))[0]
    w = torch.tensor([0.0448, 0.2856]) / (0.0448 + 0.2856)
    torch.testing.assert_close(two, cs.pow(w[0]) * s_half.pow(w[1]))
    with pytest.raises(VidiffError, match="MS-SSIM scales do not fit"):
        ms_ssim_frames(a, b, scales=3)
    y.requires_grad_(True)
    ssim_loss(x, y, multiscale=True).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_hinge_and_kl_terms():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.0])
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * ((0 + 0.5 + 2) / 3 + (0 + 1 + 2) / 3))
    assert hinge_g_loss(fake).item() == pytest.approx(1.0 / 3)
    q = DiagonalGaussian(torch.ones(2, 4, 1, 2, 2), torch.zeros(2, 4, 1, 2, 2))  # KL = ½·μ² per value = 0.5
    assert kl_loss(q, num_values=3 * 8 * 8).item() == pytest.approx(0.5 * 16 / 192)


def test_latent_scaling_factor_gives_unit_variance():
    z = 3.0 * torch.randn(64, 4, 8, 8) + 1.0
    s = latent_scaling_factor(z)
    assert s == pytest.approx(1 / 3, rel=0.02) and abs((z * s).var().item() - 1) < 1e-3
    with pytest.raises(VidiffError, match="zero"):
        latent_scaling_factor(torch.ones(10))


def test_discriminator_logits_per_space_time_patch():
    d = PatchDiscriminator3D(DiscriminatorConfig(channels=8, layers=3))
    assert d(torch.zeros(2, 3, 8, 32, 32)).shape == (2, 1, 2, 4, 4)
    assert d(torch.zeros(1, 3, 1, 16, 16)).shape == (1, 1, 1, 2, 2)  # single frames work too
    with pytest.raises(VidiffError):
        DiscriminatorConfig(layers=0)


def test_loss_config_and_lpips_need_files():
    with pytest.raises(VidiffError, match="lpips_vgg"):
        VAELoss(VAELossConfig(lpips=0.5))
    with pytest.raises(VidiffError, match=">= 0"):
        VAELossConfig(kl=-1.0)


def test_a_few_steps_reduce_reconstruction_error_and_gan_starts_after_warmup():
    torch.manual_seed(0)
    vae = VideoAutoencoder(VAEConfig(base_channels=8, norm_groups=4, mid_attention=False, temporal_decoder="conv3d"))
    disc = PatchDiscriminator3D(DiscriminatorConfig(channels=8, layers=2))
    loss_fn = VAELoss(VAELossConfig(ssim=0.2, disc_start=10, adversarial=0.1))
    t = torch.linspace(-1, 1, 16)
    x = torch.stack([torch.sin(3 * t[:, None] + 2 * t[None] + k / 2) for k in range(4)])  # (F, H, W), moving
    x = x[None, None].expand(1, 3, 4, 16, 16) * torch.tensor([0.9, 0.3, -0.5])[None, :, None, None, None]
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    errors = []
    for step in range(14):
        rec, posterior = vae(x, g)
        logits_fake = disc(rec) if loss_fn.gan_active(step) else None
        total, terms = loss_fn(x, rec, posterior, step, logits_fake, vae.decoder.conv_out.weight)
        assert ("g" in terms) == (step >= 10) and torch.isfinite(total)
        opt.zero_grad()
        total.backward()
        opt.step()
        d_loss = loss_fn.discriminator(disc(x), disc(rec.detach()), step)
        assert (d_loss.item() == 0) == (step < 10)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        errors.append(terms["l1"].item())
    assert errors[-1] < 0.7 * errors[0]


def test_l2_term_adds_the_mean_squared_error():
    x = torch.rand(2, 3, 2, 16, 16) * 2 - 1
    y = x + 0.1 * torch.randn_like(x)
    q = DiagonalGaussian(torch.zeros(2, 4, 2, 4, 4), torch.zeros(2, 4, 2, 4, 4))
    base, terms = VAELoss(VAELossConfig(ssim=0.0, kl=0.0))(x, y, q)
    with_l2, terms2 = VAELoss(VAELossConfig(ssim=0.0, kl=0.0, l2=10.0))(x, y, q)
    assert "l2" not in terms and terms2["l2"].item() == pytest.approx(((x - y) ** 2).mean().item(), rel=1e-6)
    assert (with_l2 - base).item() == pytest.approx(10 * ((x - y) ** 2).mean().item(), rel=1e-5)
    with pytest.raises(VidiffError, match=">= 0"):
        VAELossConfig(l2=-1.0)
