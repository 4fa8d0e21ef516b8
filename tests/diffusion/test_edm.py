"""EDM (Karras et al. 2022): preconditioning, σ grid, training law and loss, Euler/Heun on analytic data,
and diffusers' EulerDiscreteScheduler as an oracle for one step."""
import math

import pytest
import torch

from vidiff.diffusion import (
    CosineSchedule,
    Denoiser,
    EDMDenoiser,
    EDMSchedule,
    LinearSchedule,
    edm_loss,
    euler,
    heun,
    karras_sigmas,
    sample,
    sample_generators,
)
from vidiff.diffusion.analytic import GaussianData
from vidiff.diffusion.edm import (
    c_in,
    c_noise,
    c_out,
    c_skip,
    loss_weight,
    sample_sigma,
    sigma_of_t,
    t_of_sigma,
    ve_from_vp,
    vp_from_ve,
)
from vidiff.utils import VidiffError

EDM = EDMSchedule()  # σ ∈ [0.002, 80], ρ = 7
SIGMAS = [0.002, 0.01, 0.1, 0.5, 1.0, 3.0, 20.0, 80.0, 700.0]


@pytest.mark.parametrize("sigma_data", [0.5, 1.0])
def test_preconditioning_is_table_1(sigma_data):
    """c_skip, c_out, c_in, c_noise, λ equal Karras et al. table 1 to 1e-6, and keep the properties
    they were derived for: unit-variance input, λ c_out² = 1, and the training target
    (x₀ − c_skip x)/c_out of unit variance for data of std σ_d."""
    sd = sigma_data
    for s in SIGMAS:
        assert float(c_skip(s, sd)) == pytest.approx(sd**2 / (s**2 + sd**2), rel=1e-6)
        assert float(c_out(s, sd)) == pytest.approx(s * sd / math.sqrt(sd**2 + s**2), rel=1e-6)
        assert float(c_in(s, sd)) == pytest.approx(1 / math.sqrt(s**2 + sd**2), rel=1e-6)
        assert float(c_noise(s)) == pytest.approx(math.log(s) / 4, abs=1e-6)
        assert float(loss_weight(s, sd)) == pytest.approx((s**2 + sd**2) / (s * sd) ** 2, rel=1e-6)
        assert float(c_in(s, sd) ** 2 * (s**2 + sd**2)) == pytest.approx(1, rel=1e-12)
        assert float(loss_weight(s, sd) * c_out(s, sd) ** 2) == pytest.approx(1, rel=1e-12)
        # Var[(x₀ − c_skip (x₀ + σ n)) / c_out] = ((1 − c_skip)² σ_d² + c_skip² σ²) / c_out² = 1
        k = float(c_skip(s, sd))
        assert ((1 - k) ** 2 * sd**2 + k**2 * s**2) / float(c_out(s, sd)) ** 2 == pytest.approx(1, rel=1e-9)


def test_ve_vp_time_conversions():
    """σ = σ_t/α_t = exp(−λ_t/2); t_of_sigma inverts sigma_of_t on every schedule; z = x/sqrt(1 + σ²)."""
    for sched in (EDM, CosineSchedule(), LinearSchedule(beta_schedule="scaled_linear", beta_start=0.00085,
                                                        beta_end=0.012)):
        t = torch.linspace(0.05, 1, 20, dtype=torch.float64)
        a, s = sched.alpha_sigma(t)
        assert torch.allclose(sigma_of_t(sched, t), s / a, rtol=1e-10)
        assert torch.allclose(t_of_sigma(sched, sigma_of_t(sched, t)), t, atol=1e-9)
    assert torch.allclose(sigma_of_t(EDM, torch.tensor([1.0, 0.5], dtype=torch.float64)),
                          torch.tensor([80.0, 80.0 * 0.5**7], dtype=torch.float64), rtol=1e-12)
    x = torch.randn(3, 5, dtype=torch.float64)
    assert torch.allclose(ve_from_vp(vp_from_ve(x, 3.0), 3.0), x)
    assert torch.allclose(vp_from_ve(x, 3.0), x / math.sqrt(10))


def test_karras_sigmas_eq_5_and_diffusers():
    """σ_i = (σ_max^{1/ρ} + i/(n−1)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, then 0; the same as diffusers'
    EulerDiscreteScheduler with use_karras_sigmas (Stable Video Diffusion's configuration)."""
    from diffusers import EulerDiscreteScheduler

    s = karras_sigmas(5, 0.002, 80.0, 7.0)
    ref = [(80 ** (1 / 7) + i / 4 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7 for i in range(5)] + [0.0]
    assert torch.allclose(s, torch.tensor(ref, dtype=torch.float64), rtol=1e-12)
    assert karras_sigmas(1).tolist() == [80.0, 0.0]
    sched = EulerDiscreteScheduler(use_karras_sigmas=True, sigma_min=0.002, sigma_max=700.0,
                                   prediction_type="v_prediction", timestep_type="continuous")
    sched.set_timesteps(12)
    assert torch.allclose(karras_sigmas(12, 0.002, 700.0).float(), sched.sigmas, rtol=1e-6)
    with pytest.raises(VidiffError, match="sigma_min < sigma_max"):
        karras_sigmas(4, 1.0, 0.5)
    with pytest.raises(VidiffError, match="edm schedule"):
        EDMSchedule(sigma_min=0)


def test_training_sigma_law_and_loss_oracle():
    """ln σ ~ N(−1.2, 1.2²); for data N(0, σ_d²) the exact denoiser is D = c_skip x, i.e. F = 0, and
    its weighted loss λ(σ) E‖D − x₀‖² = λ σ_d² σ²/(σ² + σ_d²) is 1 at every σ; any other F does worse."""
    g = torch.Generator().manual_seed(0)
    logs = sample_sigma((200_000,), g, dtype=torch.float64).log()
    assert logs.mean().item() == pytest.approx(-1.2, abs=0.01)
    assert logs.std().item() == pytest.approx(1.2, abs=0.01)
    x0 = 0.5 * torch.randn(6, 4, 2, 16, 16, generator=g, dtype=torch.float64)  # σ_d = 0.5
    sigma = torch.tensor([0.01, 0.1, 0.5, 2.0, 10.0, 80.0], dtype=torch.float64)
    zero = lambda x, c, cond: torch.zeros_like(x)  # noqa: E731
    per = edm_loss(zero, x0, sigma=sigma, generator=g, reduction="none")
    assert torch.allclose(per, torch.ones(6, dtype=torch.float64), atol=0.08)  # 2048 elements per sample
    worse = edm_loss(lambda x, c, cond: 0.3 * x, x0, sigma=sigma, generator=torch.Generator().manual_seed(0),
                     reduction="none")
    assert bool((worse > per).all())
    # the loss draws σ from the training law when none is given, reproducibly
    a = edm_loss(zero, x0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, edm_loss(zero, x0, generator=torch.Generator().manual_seed(3)))


def test_v_prediction_is_edm_preconditioning_with_sigma_data_1():
    """A v-prediction network in VP form is EDM's preconditioning with σ_d = 1 and F = −v: the plain
    v Denoiser, EDMDenoiser(σ_d = 1) on −v, and diffusers' EulerDiscreteScheduler v-prediction x̂₀
    (c_skip = 1/(σ² + 1), c_out = −σ/sqrt(σ² + 1)) agree."""
    from diffusers import EulerDiscreteScheduler

    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 3, 4, 8, 8, generator=g, dtype=torch.float64)
    v = torch.randn(2, 3, 4, 8, 8, generator=g, dtype=torch.float64)
    for t in (0.9, 0.5, 0.2):
        sigma = float(sigma_of_t(EDM, t))
        ref = Denoiser(lambda z_, t_, c_: v, "v")(z, t, EDM)
        ours = EDMDenoiser(lambda x_, c_, cond: -v, sigma_data=1.0)(z, t, EDM)
        assert torch.allclose(ours.x0, ref.x0, atol=1e-10) and torch.allclose(ours.eps, ref.eps, atol=1e-8)
        sched = EulerDiscreteScheduler(prediction_type="v_prediction", timestep_type="continuous",
                                       use_karras_sigmas=True, sigma_min=0.002, sigma_max=80.0)
        sched.set_timesteps(sigmas=[sigma, 0.0])
        x = ve_from_vp(z, sigma)  # diffusers' sample is EDM's x
        out = sched.step(v.float(), sched.timesteps[0], x.float())
        assert torch.allclose(out.pred_original_sample.double(), ref.x0, atol=1e-5)


def test_edm_denoiser_calls_the_backbone_with_edm_inputs():
    seen = {}

    def model(x, c, cond):
        seen.update(x=x, c=c)
        return torch.zeros_like(x)

    z = torch.randn(3, 2, 2, 4, 4, dtype=torch.float64)
    t = 0.6
    sigma = float(sigma_of_t(EDM, t))
    pred = EDMDenoiser(model, sigma_data=0.5)(z, t, EDM)
    x = ve_from_vp(z, sigma)
    assert torch.allclose(seen["x"], x / math.sqrt(sigma**2 + 0.25))
    assert seen["c"].shape == (3,) and torch.allclose(seen["c"], torch.full((3,), math.log(sigma) / 4, dtype=z.dtype))
    assert torch.allclose(pred.x0, 0.25 / (sigma**2 + 0.25) * x)  # F = 0: D = c_skip x
    with pytest.raises(VidiffError, match="shaped like z_t"):
        EDMDenoiser(lambda x, c, cond: x[:1])(z, t, EDM)


N = 50_000


@pytest.mark.parametrize("sched,name,steps,kw,tol", [
    (EDM, "euler", 200, {}, 0.02), (EDM, "heun", 40, {}, 0.02), (EDM, "heun", 40, {"s_churn": 10.0}, 0.03),
    # a cosine schedule on the same σ grid (t through its log-SNR; churn moves t off the grid)
    (CosineSchedule(), "heun", 40, {"s_churn": 10.0}, 0.03)], ids=["euler", "heun", "heun-churn", "cosine-heun-churn"])
def test_gaussian_moments(sched, name, steps, kw, tol):
    """x ~ N(μ, s²) with the exact posterior mean as the denoiser: Euler and Heun (with and without
    churn) on EDM's σ grid return μ and s (Monte Carlo error ≈ 0.4 %; starting at σ_max = 80 with
    pure noise biases the mean by μ s/σ_max = 1 %, as in EDM)."""
    data = GaussianData(mu=1.5, s=0.8)
    den = Denoiser(data.model(sched, "v"), "v")
    noise = torch.randn(N, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = sample(den, noise, sched, steps, sampler=name, generator=torch.Generator().manual_seed(1), **kw)
    assert abs(x.mean().item() - data.mu) <= tol * data.mu
    assert abs(x.std().item() - data.s) <= tol * data.s


def test_heun_is_second_order_on_the_exact_flow():
    """For x ~ N(μ, s²) the probability-flow ODE is solved in closed form,
    x(σ) = μ + (x(σ_max) − μ) sqrt(s² + σ²)/sqrt(s² + σ_max²); doubling the steps divides Euler's error
    by about 2 and Heun's by about 4 (the paper's reason for Heun)."""
    data = GaussianData(mu=1.5, s=0.8)
    sched = EDMSchedule(sigma_min=0.002, sigma_max=80.0)
    den = Denoiser(data.model(sched, "v"), "v")
    z = torch.linspace(-3, 3, 101, dtype=torch.float64)[:, None]  # VP z at t = 1
    x_top = ve_from_vp(z, 80.0)
    # the sampler stops at σ_min then jumps to x̂₀ = D(x; σ_min): finish the exact flow the same way
    x_min = data.mu + (x_top - data.mu) * math.sqrt(0.8**2 + 0.002**2) / math.sqrt(0.8**2 + 80.0**2)
    z_min = vp_from_ve(x_min, 0.002)
    exact = den(z_min, float(t_of_sigma(sched, 0.002)), sched).x0
    err = {(name, n): (fn(den, z, sched, n) - exact).abs().max().item()
           for name, fn in (("euler", euler), ("heun", heun)) for n in (16, 32, 64)}
    assert 1.6 < err["euler", 16] / err["euler", 32] < 2.6 and 1.6 < err["euler", 32] / err["euler", 64] < 2.6
    assert 3.2 < err["heun", 16] / err["heun", 32] < 5.5 and 3.2 < err["heun", 32] / err["heun", 64] < 5.5
    assert err["heun", 32] < 0.5 * err["euler", 64]  # fewer evaluations, smaller error


@pytest.mark.parametrize("param", ["eps", "v"])
def test_euler_step_matches_diffusers(param):
    """One Euler step of ours equals diffusers' EulerDiscreteScheduler.step (to 1e-5) on Stable
    Diffusion's scaled-linear table: diffusers timestep k is our t = (k + 1)/N and its sample is EDM's x."""
    from diffusers import EulerDiscreteScheduler

    lin = LinearSchedule(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   prediction_type={"eps": "epsilon", "v": "v_prediction"}[param],
                                   timestep_spacing="leading", steps_offset=1)
    sched.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    ks = sched.timesteps.tolist()
    for i, k in enumerate(ks):
        x = torch.randn(2, 3, 2, 8, 8, generator=g, dtype=torch.float64) * float(sched.sigmas[i])
        out = torch.randn(2, 3, 2, 8, 8, generator=g, dtype=torch.float64)  # an arbitrary network output
        ref = sched.step(out.float(), k, x.float()).prev_sample.double()
        t_cur = float(lin.t_from_timestep(k))
        t_next = float(lin.t_from_timestep(ks[i + 1])) if i + 1 < len(ks) else 0.0
        sigma_cur, sigma_next = float(sigma_of_t(lin, t_cur)), float(sigma_of_t(lin, t_next)) if t_next else 0.0
        den = Denoiser(lambda z_, t_, c_: out, parameterization=param)
        z = euler(den, vp_from_ve(x, sigma_cur), lin, 0, spacing=[t_cur, t_next])
        ours = ve_from_vp(z, sigma_next)
        assert torch.allclose(ours, ref, atol=1e-5 * max(1.0, float(ref.abs().max()))), (param, k)


def test_per_sample_generators_and_errors():
    den = Denoiser(GaussianData().model(EDM, "v"), "v")
    noise = torch.randn(2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = heun(den, noise, EDM, 5, s_churn=5.0, generator=sample_generators(3, 2))
    b = heun(den, noise[1:], EDM, 5, s_churn=5.0, generator=sample_generators(4, 1))
    assert torch.equal(a[1:], b)
    with pytest.raises(VidiffError, match="s_churn >= 0"):
        euler(den, noise, EDM, 5, s_churn=-1.0)
    with pytest.raises(VidiffError, match="s_tmin <= s_tmax"):
        heun(den, noise, EDM, 5, s_tmin=2.0, s_tmax=1.0)
