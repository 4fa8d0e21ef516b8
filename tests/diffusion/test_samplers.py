"""Samplers driven by exact (analytic) denoisers: moments, mode weights, identities, inversion, errors."""

import pytest
import torch

from vidiff.diffusion import (
    SAMPLERS,
    CosineSchedule,
    Denoiser,
    LinearSchedule,
    Prediction,
    ddim,
    ddim_invert,
    ddim_step,
    ddim_step_angular,
    ddpm,
    ddpm_posterior,
    dpmpp_2m,
    langevin_step,
    sample_generators,
    pc,
    sample,
    timesteps,
)
from vidiff.diffusion.analytic import GaussianData, GaussianMixtureData
from vidiff.utils import VidiffError

N = 100_000  # 1-D samples: Monte Carlo error of the mean ≈ 0.3% of s, of the std ≈ 0.2%
COS = CosineSchedule()


def _noise(shape=(N, 1), seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# DDPM is stochastic and costs 1000 steps: fewer samples (Monte Carlo error of the std ≈ 0.5%)
CASES = [("ddpm", 1000, 0.02, 20_000), ("ddim", 100, 0.02, N), ("dpmpp_2m", 50, 0.02, N), ("dpmpp_2m", 10, 0.05, N)]


@pytest.mark.parametrize("sampler,steps,tol,n", CASES)
def test_gaussian_moments(sampler, steps, tol, n):
    """x ~ N(μ, s²): E[x|z_t] = μ + α s² (z − α μ)/(α² s² + σ²) drives the sampler; moments come back."""
    data = GaussianData(mu=1.5, s=0.8)
    den = Denoiser(data.model(COS, "v"), "v")
    x = sample(den, _noise((n, 1)), COS, steps, sampler=sampler, generator=torch.Generator().manual_seed(1))
    assert abs(x.mean().item() - data.mu) <= tol * data.mu
    assert abs(x.std().item() - data.s) <= tol * data.s


def test_ddim_contraction_on_unit_gaussian():
    """Why DDIM needs ~100 steps for 2% on Gaussians: for x ~ N(0, 1), x̂ = α z and ε̂ = σ z, so each
    step maps z_t to (α_s α_t + σ_s σ_t) z_t = cos(φ_t − φ_s) z_t while the exact flow keeps z fixed.
    With 50 uniform steps on the cosine schedule the std shrinks by Π cos(Δφ) ≈ 0.976 (2.4% low)."""
    den = Denoiser(GaussianData(0.0, 1.0).model(COS, "x0"), "x0")
    for steps in (10, 50, 100):
        grid = timesteps(COS, steps)
        phi = COS.phi(grid)
        phi[-1] = 0.0  # t = 0 is the data itself
        expected = torch.prod(torch.cos(phi[:-1] - phi[1:]))
        x = ddim(den, torch.ones(1, 1, dtype=torch.float64), COS, steps)
        assert x.item() == pytest.approx(expected.item(), rel=1e-9)
        if steps == 50:
            assert 0.97 < x.item() < 0.98


@pytest.mark.parametrize("sampler,steps,n,tol", [("ddpm", 1000, 40_000, 0.03), ("ddim", 50, N, 0.03),
                                                 ("dpmpp_2m", 50, N, 0.03), ("dpmpp_2m", 10, N, 0.05)])
def test_gaussian_mixture_mode_weights(sampler, steps, n, tol):
    """Two-component mixture, posterior mean in closed form: mode weights within 3% (relative; 5% for
    10 DPM-Solver++ steps, the allowance the moments get too)."""
    data = GaussianMixtureData(weights=(0.3, 0.7), means=(-2.0, 1.5), stds=(0.4, 0.6))
    den = Denoiser(data.model(COS, "eps"), "eps")
    x = sample(den, _noise((n, 1)), COS, steps, sampler=sampler, generator=torch.Generator().manual_seed(2))
    w = torch.bincount(data.mode_of(x).flatten(), minlength=2).double() / x.numel()
    assert torch.allclose(w, torch.tensor([0.3, 0.7], dtype=torch.float64), rtol=tol, atol=0)


def test_parameterizations_give_the_same_trajectory():
    data = GaussianMixtureData()
    noise = _noise((512, 2))
    outs = [dpmpp_2m(Denoiser(data.model(COS, p), p), noise, COS, 20) for p in ("x0", "eps", "v")]
    assert torch.allclose(outs[0], outs[1], atol=1e-8) and torch.allclose(outs[0], outs[2], atol=1e-8)


def test_angular_ddim_equals_eps_form():
    """z_s = cos(φ_s − φ_t) z_t + sin(φ_s − φ_t) v̂ is the DDIM update α_s x̂ + σ_s ε̂ (Salimans & Ho eq. 8)."""
    g = torch.Generator().manual_seed(0)
    for sched in (COS, LinearSchedule()):
        z, x0 = torch.randn(2, 1000, generator=g, dtype=torch.float64)
        for t, s in [(0.9, 0.7), (0.31, 0.3), (0.05, 0.0), (1.0, 0.2)]:
            a_t, s_t = sched.alpha_sigma(torch.tensor(t, dtype=torch.float64))
            a_s, s_s = sched.alpha_sigma(torch.tensor(s, dtype=torch.float64)) if s > 0 else (torch.tensor(1.0),
                    torch.tensor(0.0))
            pred = Prediction.from_output("x0", x0, z, a_t, s_t)
            ang = ddim_step_angular(z, pred.v, torch.atan2(s_t, a_t), torch.atan2(s_s, a_s).double())
            assert torch.allclose(ang, ddim_step(pred, a_s, s_s), atol=1e-10)
    # and the whole deterministic sampler equals the ε-form loop
    data = GaussianMixtureData()
    den = Denoiser(data.model(COS, "v"), "v")
    noise = _noise((256, 3))
    z = noise
    grid = timesteps(COS, 25)
    for t, s in zip(grid[:-1], grid[1:]):
        pred = den(z, t, COS)
        a_s, s_s = COS.alpha_sigma(s) if s > 0 else (1.0, 0.0)
        z = a_s * pred.x0 + s_s * pred.eps
    assert torch.allclose(ddim(den, noise, COS, 25), z, atol=1e-10)


def test_ddim_eta1_is_ddpm_and_posterior_oracle():
    data = GaussianMixtureData()
    den = Denoiser(data.model(COS, "v"), "v")
    noise = _noise((300, 2))
    a = ddpm(den, noise, COS, 30, generator=torch.Generator().manual_seed(5))
    b = ddim(den, noise, COS, 30, eta=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(a, b, atol=1e-10)
    # posterior q(z_s | z_t, x): regress Monte Carlo z_s on z_t for a fixed x
    g = torch.Generator().manual_seed(3)
    x, s, t, n = 0.7, torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.55, dtype=torch.float64), 400_000
    a_s, s_s = COS.alpha_sigma(s)
    a_ts, s_ts = COS.transition(s, t)
    z_s = a_s * x + s_s * torch.randn(n, generator=g, dtype=torch.float64)
    z_t = a_ts * z_s + s_ts * torch.randn(n, generator=g, dtype=torch.float64)
    c_z, c_x, std = ddpm_posterior(*COS.alpha_sigma(t), a_s, s_s)
    zc = z_t - z_t.mean()
    slope = (zc * (z_s - z_s.mean())).sum() / (zc**2).sum()
    resid = z_s - slope * z_t
    assert slope.item() == pytest.approx(c_z.item(), abs=5e-3)
    assert resid.mean().item() == pytest.approx(c_x.item() * x, abs=5e-3)
    assert resid.std().item() == pytest.approx(std.item(), rel=5e-3)


def test_pc_without_corrector_is_ddpm_and_corrector_reduces_few_step_bias():
    """snr = 0 (or no corrector steps) is `ddpm` bit for bit; with 5 steps ancestral sampling of
    N(1.5, 0.8²) comes out too narrow (x̂₀ = E[x | z_t] drops the posterior spread), and one Langevin
    step per level pulls each z_s towards its true marginal, so the std moves towards 0.8."""
    data = GaussianData(mu=1.5, s=0.8)
    den = Denoiser(data.model(COS, "v"), "v")
    noise = _noise((5_000, 256))  # the step size uses per-sample norms: many elements per sample
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    a = ddpm(den, noise, COS, 5, generator=gen())
    assert torch.equal(pc(den, noise, COS, 5, generator=gen(), snr=0.0), a)
    assert torch.equal(pc(den, noise, COS, 5, generator=gen(), corrector_steps=0), a)
    assert torch.equal(pc(den, noise, COS, 5, generator=gen(), corrector_range=(0.0, 0.1)), a)  # no s in range
    b = pc(den, noise, COS, 5, generator=gen(), snr=0.16, corrector_steps=3)
    assert abs(b.mean().item() - 1.5) < 0.01
    assert a.std() < b.std() < 0.8  # 0.56 -> 0.66: the bias shrinks by 43 %
    assert 0.8 - b.std().item() < 0.7 * (0.8 - a.std().item())


def test_langevin_step_stationary_law():
    """Langevin with the exact score of q(z_t) = N(m, v) and the adaptive step δ = 2 (r ‖ξ‖/‖∇log p‖)²
    keeps the mean and settles at the unadjusted-Langevin variance: z ← z − δ (z − m)/v + sqrt(2δ) ξ
    has stationary variance v / (1 − δ / 2v), and with δ ≈ 2 r² v² / Var z (norms concentrate in
    4096 dimensions) that is Var z = v (1 + r²). Started 3× too wide, it contracts to that law."""
    data = GaussianData(mu=1.5, s=0.8)
    den = Denoiser(data.model(COS, "eps"), "eps")
    t = torch.tensor(0.5, dtype=torch.float64)
    alpha, sigma = COS.alpha_sigma(t)
    m, v = alpha * data.mu, alpha**2 * data.s**2 + sigma**2
    g = torch.Generator().manual_seed(3)
    z = m + 3 * v.sqrt() * _noise((500, 4096), seed=2)
    r = 0.3
    for _ in range(300):
        z = langevin_step(z, den(z, t, COS).eps, sigma, torch.randn(z.shape, generator=g, dtype=torch.float64), r)
    assert z.mean().item() == pytest.approx(m.item(), abs=2e-3)
    assert (z.var() / v).item() == pytest.approx(1 + r**2, rel=5e-3)


def test_ddim_inversion_round_trip():
    data = GaussianData(mu=0.5, s=0.7)
    den = Denoiser(data.model(COS, "v"), "v")
    x = data.sample((500, 4), torch.Generator().manual_seed(0))
    z = ddim_invert(den, x, COS, 100)
    assert (ddim(den, z, COS, 100) - x).abs().max() < 1e-3
    assert abs(z.std().item() - 1) < 0.05, "inverted latents look like N(0, 1)"
    z0 = ddim_invert(den, x, COS, 100, fixed_point_iters=0)  # classic inversion: first order
    assert (ddim(den, z0, COS, 100) - x).abs().max() > 1e-3


def test_timestep_spacings():
    lin = LinearSchedule()
    for sp in ("uniform", "logsnr", "trailing", "leading"):
        g = timesteps(lin, 10, sp)
        assert g.shape == (11,) and g[-1] == 0 and bool((g[1:] < g[:-1]).all())
    assert torch.allclose(timesteps(COS, 4), torch.tensor([1, 0.75, 0.5, 0.25, 0], dtype=torch.float64))
    lam = COS.logsnr(timesteps(COS, 8, "logsnr")[:-1])
    assert torch.allclose(lam.diff(), torch.full((7,), 40 / 8, dtype=torch.float64), atol=1e-6)
    from diffusers import DDIMScheduler

    for sp, n in [("trailing", 7), ("leading", 7), ("trailing", 50)]:
        ref = DDIMScheduler(timestep_spacing=sp)
        ref.set_timesteps(n)
        assert torch.allclose(timesteps(lin, n, sp)[:-1], lin.t_from_timestep(ref.timesteps)), sp
    with pytest.raises(VidiffError, match="uniform.*logsnr.*trailing.*leading.*karras"):
        timesteps(COS, 10, "exponential")
    with pytest.raises(VidiffError, match="strictly decreasing"):
        timesteps(COS, 2, [0.5, 0.7])
    with pytest.raises(VidiffError, match="positive integer"):
        timesteps(COS, 0)


def test_video_shapes_callback_partial_grid_clip_and_reproducibility():
    data = GaussianMixtureData()
    den = Denoiser(data.model(COS, "v"), "v")
    noise = _noise((2, 3, 4, 8, 8))  # (B, C, F, H, W)
    calls = []
    for name in SAMPLERS:
        calls.clear()
        x = sample(den, noise, COS, 6, sampler=name, callback=calls.append,
                   generator=torch.Generator().manual_seed(0), clip=1.0)
        assert x.shape == noise.shape and x.abs().max() <= 1.0
        assert [c["step"] for c in calls] == list(range(6)) and calls[0]["total"] == 6
        assert set(calls[-1]) == {"step", "total", "t", "x", "x0"} and calls[-1]["x0"].shape == noise.shape
    a = ddpm(den, noise, COS, 8, generator=torch.Generator().manual_seed(7))
    b = ddpm(den, noise, COS, 8, generator=torch.Generator().manual_seed(7))
    c = ddpm(den, noise, COS, 8, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # an explicit grid that stops at t = 0.5 returns z_0.5, which finishes to the same x as one run
    full = ddim(den, noise, COS, 4)
    half = ddim(den, noise, COS, 0, spacing=[1.0, 0.75, 0.5])
    assert torch.allclose(ddim(den, half, COS, 0, spacing=[0.5, 0.25, 0.0]), full, atol=1e-12)


def test_sampler_errors():
    den = Denoiser(GaussianData().model(COS), "x0")
    noise = _noise((4, 2))
    with pytest.raises(VidiffError, match="ddim.*ddpm.*dpmpp_2m.*euler.*heun"):
        sample(den, noise, COS, 10, sampler="lms")
    with pytest.raises(VidiffError, match="Denoiser"):
        ddim(torch.nn.Linear(2, 2), noise, COS, 10)
    with pytest.raises(VidiffError, match="eta"):
        ddim(den, noise, COS, 10, eta=-1)
    with pytest.raises(VidiffError, match=r"'ddpm' does not take \['eta'\]"):
        sample(den, noise, COS, 10, sampler="ddpm", eta=0.5)
    with pytest.raises(VidiffError, match="snr"):
        pc(den, noise, COS, 10, corrector_range=(0.8, 0.2))
    with pytest.raises(VidiffError, match="snr"):
        pc(den, noise, COS, 10, snr=-1)
    with pytest.raises(VidiffError, match="floating"):
        ddim(den, torch.zeros(4, 2, dtype=torch.long), COS, 10)
    with pytest.raises(VidiffError, match="one torch.Generator per sample"):
        ddpm(den, noise, COS, 10, generator=[torch.Generator()] * 3)
    with pytest.raises(VidiffError, match="s_churn"):
        sample(den, noise, COS, 10, sampler="heun", s_churn=-1)


# stochastic settings of every sampler: the fresh noise must come from each sample's own generator
STOCHASTIC = {"ddpm": {}, "pc": {"snr": 0.16}, "ddim": {"eta": 0.7}, "dpmpp_2m": {},
              "euler": {"s_churn": 20.0}, "heun": {"s_churn": 20.0}}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sample_0_of_a_batch_of_2_equals_a_batch_of_1(name):
    """With one generator per sample (seed + i), sample 0 does not depend on the batch it is drawn in
    (`--num 1` and `--num 2` give the same video 0), for every sampler, stochastic settings included."""
    assert set(STOCHASTIC) == set(SAMPLERS)
    den = Denoiser(GaussianMixtureData().model(COS, "v"), "v")
    noise = _noise((2, 3, 4, 8, 8))  # (B, C, F, H, W)
    one = sample(den, noise[:1], COS, 6, sampler=name, generator=sample_generators(0, 1), **STOCHASTIC[name])
    two = sample(den, noise, COS, 6, sampler=name, generator=sample_generators(0, 2), **STOCHASTIC[name])
    assert torch.equal(two[:1], one)
    if name in ("ddpm", "pc", "euler", "heun"):  # one generator shared by the batch is what broke this
        shared = [sample(den, x, COS, 6, sampler=name, generator=torch.Generator().manual_seed(0), **STOCHASTIC[name])
                  for x in (noise[:1], noise)]
        assert not torch.equal(shared[1][:1], shared[0])


def test_karras_spacing_is_edm_grid():
    """"karras" spacing: EDM's σ_i (eq. 5) mapped to t through λ = −2 ln σ; on an EDMSchedule it is
    uniform in t from 1 to (σ_min/σ_max)^{1/ρ}; other schedules are clipped to σ ∈ [0.002, 80]."""
    from vidiff.diffusion import EDMSchedule, karras_sigmas
    from vidiff.diffusion.edm import sigma_of_t

    edm = EDMSchedule(0.002, 80.0, 7.0)
    grid = timesteps(edm, 10, "karras")
    t_min = (0.002 / 80) ** (1 / 7)
    assert torch.allclose(grid[:-1], torch.linspace(1, t_min, 10, dtype=torch.float64), atol=1e-12) and grid[-1] == 0
    assert torch.allclose(sigma_of_t(edm, grid[:-1]), karras_sigmas(10)[:-1], rtol=1e-10)
    g = timesteps(COS, 10, "karras")
    assert torch.allclose(sigma_of_t(COS, g[:-1]), karras_sigmas(10, 0.002, 80.0)[:-1], rtol=1e-8)
