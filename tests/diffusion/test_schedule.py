"""Schedules: VP identity, inverses, closed forms (Nichol & Dhariwal, DDPM table), shift, Monte Carlo marginals."""
import math

import numpy as np
import pytest
import torch

from vidiff.diffusion import CosineSchedule, LinearSchedule, ShiftedCosineSchedule, get_schedule
from vidiff.utils import VidiffError

ALL = [CosineSchedule(), LinearSchedule(), ShiftedCosineSchedule(shift=3.0)]
T = torch.linspace(0, 1, 1001, dtype=torch.float64)


@pytest.mark.parametrize("sched", ALL, ids=lambda s: s.name)
def test_variance_preserving_monotone_and_inverse(sched):
    a, s = sched.alpha_sigma(T)
    assert torch.allclose(a**2 + s**2, torch.ones_like(a), atol=1e-12)
    lam = sched.logsnr(T)
    assert bool((lam[1:] < lam[:-1]).all()), "log-SNR must decrease strictly"
    # λ = log(α²/σ²) where finite
    fin = torch.isfinite(lam)
    assert torch.allclose(lam[fin], torch.log(a[fin] ** 2 / s[fin] ** 2), atol=1e-6)
    assert torch.allclose(sched.t_from_logsnr(lam), T, atol=1e-9)
    # angular form: cos φ = α, sin φ = σ
    phi = sched.phi(T)
    assert torch.allclose(torch.cos(phi), a, atol=1e-12) and torch.allclose(torch.sin(phi), s, atol=1e-12)
    assert sched.logsnr_min == pytest.approx(float(lam[-1]))


def test_cosine_matches_nichol_dhariwal_and_clip_endpoints():
    sched = CosineSchedule()
    # Nichol & Dhariwal ᾱ(t) = cos²(π t / 2) (s → 0); the ±20 log-SNR clip only moves it by ~1e-4
    assert torch.allclose(sched.alpha(T) ** 2, torch.cos(math.pi * T / 2) ** 2, atol=2e-4)
    assert float(sched.logsnr(0.0)) == pytest.approx(20.0)
    assert float(sched.logsnr(1.0)) == pytest.approx(-20.0)
    custom = CosineSchedule(logsnr_min=-10, logsnr_max=8)
    assert float(custom.logsnr(0.0)) == pytest.approx(8.0) and float(custom.logsnr(1.0)) == pytest.approx(-10.0)


def test_linear_table_matches_ddpm_and_diffusers():
    from diffusers import DDPMScheduler

    sched = LinearSchedule()
    ref = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    betas = np.linspace(1e-4, 0.02, 1000)
    assert np.allclose(sched.discrete_betas().numpy(), betas, atol=1e-12)
    assert np.allclose(sched.alphas_cumprod().numpy(), np.cumprod(1 - betas), rtol=1e-12)
    assert np.allclose(sched.alphas_cumprod().numpy(), ref.alphas_cumprod.numpy(), rtol=1e-5)
    n = torch.arange(1000)
    assert torch.allclose(sched.alpha(sched.t_from_timestep(n)) ** 2, sched.alphas_cumprod(), rtol=1e-12)
    # log ᾱ is linear between the discrete steps
    la = torch.log(sched.alpha(torch.tensor([0.1005], dtype=torch.float64)) ** 2)
    lo, hi = torch.log(sched.alphas_cumprod()[[99, 100]])
    assert float(la) == pytest.approx(float((lo + hi) / 2), rel=1e-12)
    assert float(sched.alpha(0.0)) == 1.0 and float(sched.sigma(0.0)) == 0.0


def test_shifted_cosine():
    base, sh = CosineSchedule(), ShiftedCosineSchedule(shift=2.5)
    assert torch.allclose(sh.logsnr(T[1:-1]) - base.logsnr(T[1:-1]), torch.full_like(T[1:-1], -2 * math.log(2.5)))
    assert torch.allclose(ShiftedCosineSchedule(shift=1.0).logsnr(T), base.logsnr(T))
    # 16 frames of 64x64 have 16x the elements of one 64x64 image: shift sqrt(16) = 4, i.e. λ - 2 log 4
    assert ShiftedCosineSchedule.for_size(16, 64, 64).shift == pytest.approx(4.0)
    assert ShiftedCosineSchedule.for_size(1, 128, 128).shift == pytest.approx(2.0)
    assert bool((sh.sigma(T) >= base.sigma(T) - 1e-12).all()), "a shift > 1 makes every t noisier"


@pytest.mark.parametrize("sched", ALL[:2], ids=lambda s: s.name)
def test_marginal_consistency_monte_carlo(sched):
    """z_s ~ q(z_s|x), z_t ~ q(z_t|z_s) has the moments of q(z_t|x) = N(α_t x, σ_t²)."""
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x = torch.tensor([-1.3, 0.4, 2.0], dtype=torch.float64)
    for s, t in torch.tensor([(0.1, 0.3), (0.25, 0.9), (0.6, 0.61)], dtype=torch.float64):
        a_s, s_s = sched.alpha_sigma(s)
        a_ts, s_ts = sched.transition(s, t)
        z_s = a_s * x + s_s * torch.randn(n, 3, generator=g, dtype=torch.float64)
        z_t = a_ts * z_s + s_ts * torch.randn(n, 3, generator=g, dtype=torch.float64)
        a_t, s_t = sched.alpha_sigma(t)
        # tolerance: 5 standard errors of the Monte Carlo mean / std
        assert torch.allclose(z_t.mean(0), a_t * x, atol=5 * float(s_t) / math.sqrt(n))
        assert torch.allclose(z_t.std(0), s_t.expand(3), rtol=5 / math.sqrt(2 * n))


def test_get_schedule_and_errors():
    assert isinstance(get_schedule("cosine"), CosineSchedule)
    assert get_schedule("shifted_cosine", shift=2.0).shift == 2.0
    assert get_schedule("linear", beta_end=0.01).beta_end == 0.01
    with pytest.raises(VidiffError, match="cosine.*linear.*shifted_cosine"):
        get_schedule("sigmoid")
    with pytest.raises(VidiffError, match="bad arguments"):
        get_schedule("cosine", shift=2.0)
    with pytest.raises(VidiffError, match=r"\[0, 1\]"):
        CosineSchedule().alpha(torch.tensor([0.5, 1.2]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        LinearSchedule().logsnr(-0.01)
    with pytest.raises(VidiffError, match="shift > 0"):
        ShiftedCosineSchedule(shift=0)


def test_dtypes_and_shapes():
    sched = CosineSchedule()
    assert sched.alpha(0.3).dtype == torch.float32
    assert sched.alpha(torch.rand(2, 3)).shape == (2, 3)
    assert sched.sigma(torch.rand(4, dtype=torch.float64)).dtype == torch.float64
