"""Guidance wrappers: CFG identities, reconstruction guidance on a jointly Gaussian vector, gradient hook."""
from functools import partial

import pytest
import torch

from vidiff.conditioning import Cond
from vidiff.diffusion import (
    AutoGuidance,
    ClassifierFreeGuidance,
    CosineSchedule,
    Denoiser,
    GradientGuidance,
    ReconstructionGuidance,
    ddim,
    expand_mask,
    sample,
)
from vidiff.diffusion.analytic import GaussianData, JointGaussianData
from vidiff.utils import VidiffError

COS = CosineSchedule()


def _class_model(calls):
    """A toy backbone whose output depends on the class id (null class = 2)."""

    def fn(z, t, cond):
        calls.append(z.shape[0])
        shift = cond.class_ids.to(z.dtype).reshape(-1, *([1] * (z.dim() - 1)))
        return 0.5 * z + 0.3 * shift - 0.1 * t.reshape(-1, *([1] * (z.dim() - 1)))

    return fn


def test_cfg_identities():
    calls = []
    den = Denoiser(_class_model(calls), "v")
    z = torch.randn(4, 3, 2, 4, 4, dtype=torch.float64)
    cond, null = Cond(class_ids=torch.tensor([0, 1, 1, 0])), Cond(class_ids=torch.tensor([2]))
    c, u = den(z, 0.4, COS, cond), den(z, 0.4, COS, null.repeat_batch(4))
    assert torch.allclose(ClassifierFreeGuidance(den, 0.0, null)(z, 0.4, COS, cond).x0, c.x0)
    calls.clear()
    g = ClassifierFreeGuidance(den, 2.5, null)(z, 0.4, COS, cond)
    assert calls == [8], "conditional and null predictions share one batched forward"
    for k in ("x0", "eps", "v"):  # pred = cond + w (cond − uncond)
        assert torch.allclose(getattr(g, k), getattr(c, k) + 2.5 * (getattr(c, k) - getattr(u, k)))
    # rescale = 1: the guided v̂ gets the per-sample std of the conditional v̂ (Lin et al. 2024)
    r = ClassifierFreeGuidance(den, 2.5, null, rescale=1.0)(z, 0.4, COS, cond)
    assert torch.allclose(r.v.std(dim=(1, 2, 3, 4)), c.v.std(dim=(1, 2, 3, 4)))
    assert torch.allclose(r.x0, COS.alpha(torch.tensor(0.4, dtype=torch.float64)) * z
                          - COS.sigma(torch.tensor(0.4, dtype=torch.float64)) * r.v)
    # as a sampler-side guidance factory
    x = sample(den, z, COS, 5, guidance=partial(ClassifierFreeGuidance, w=0.0, null_cond=null), cond=cond)
    assert torch.allclose(x, sample(den, z, COS, 5, cond=cond))
    with pytest.raises(VidiffError, match="needs a condition"):
        ClassifierFreeGuidance(den, 1.0, null)(z, 0.4, COS, None)


def _gaussian_model(s: float):
    """The exact x̂₀ network (as a v-prediction) of x ~ N(0, s²) per element."""

    def fn(z, t, cond=None):
        alpha, sigma = COS.alpha_sigma(t.to(torch.float64))
        alpha, sigma = alpha.reshape(-1, *([1] * (z.dim() - 1))), sigma.reshape(-1, *([1] * (z.dim() - 1)))
        x0 = GaussianData(s=s).posterior_mean(z, alpha, sigma)
        return (alpha * z - x0) / sigma  # v = (α z − x₀) / σ

    return fn


def test_autoguidance_cancels_the_error_the_bad_model_makes_more_strongly():
    # Karras et al. 2024: a good model off by δ in the data variance, a bad one off by 2δ the same way;
    # w = 1 extrapolates 2 x̂_good − x̂_bad, which cancels the first-order error (what is left is
    # O(δ²): a ratio of about 2α²δ = 0.1 α² to the good model's error here).
    true = GaussianData(s=1.0)
    good, bad = Denoiser(_gaussian_model(1.05 ** 0.5), "v"), Denoiser(_gaussian_model(1.10 ** 0.5), "v")
    z = torch.randn(2, 3, 4, 4, 4, dtype=torch.float64)
    for t in (0.2, 0.5, 0.8):
        alpha, sigma = COS.alpha_sigma(torch.tensor(t, dtype=torch.float64))
        exact = true.posterior_mean(z, alpha, sigma)
        err_good = (good(z, t, COS).x0 - exact).abs().max()
        g = AutoGuidance(good, bad, 1.0)(z, t, COS)
        assert (g.x0 - exact).abs().max() < 0.15 * err_good
        for k in ("x0", "eps", "v"):  # the same affine combination on every parameterization
            assert torch.allclose(getattr(g, k), 2 * getattr(good(z, t, COS), k) - getattr(bad(z, t, COS), k))
    # w = 0 is the good model alone, and a guide equal to the model changes nothing
    assert torch.equal(AutoGuidance(good, bad, 0.0)(z, 0.5, COS).x0, good(z, 0.5, COS).x0)
    assert torch.allclose(AutoGuidance(good, good, 3.0)(z, 0.5, COS).x0, good(z, 0.5, COS).x0)
    # a second weight for the noisier steps (log-SNR below the split; cosine: log-SNR(0.5) = 0)
    ag = AutoGuidance(good, bad, 1.0, w_high_noise=3.0, logsnr_split=0.0)
    for t, w in ((0.3, 1.0), (0.7, 3.0)):
        expect = (1 + w) * good(z, t, COS).x0 - w * bad(z, t, COS).x0
        assert ag.weight(t, COS) == w and torch.allclose(ag(z, t, COS).x0, expect)
    tb = torch.tensor([0.3, 0.7], dtype=torch.float64)  # per-sample times get per-sample weights
    mixed = ag(z, tb, COS)
    for i, t in enumerate((0.3, 0.7)):
        assert torch.allclose(mixed.x0[i], ag(z[i:i + 1], t, COS).x0[0])
        assert torch.allclose(mixed.v[i], ag(z[i:i + 1], t, COS).v[0])
    # both models see the condition (unlike CFG, which swaps in the null one)
    seen = []
    spy = lambda z, t, schedule, cond=None: seen.append(cond) or good(z, t, schedule)  # noqa: E731
    AutoGuidance(spy, spy, 1.0)(z, 0.5, COS, "c")
    assert seen == ["c", "c"]


def test_reconstruction_guidance_conditions_a_joint_gaussian():
    """x = [xᵃ, xᵇ] ~ N(0, Σ) with xᵃ known: E[xᵇ | xᵃ] is closed form. VDM eq. 7 guidance (w_r = 4) must
    land ≥ 5× closer to it than unguided sampling (and well closer than replacement alone)."""
    cov = torch.tensor([[1, 0.2, 0.8, 0.3], [0.2, 1, 0.1, 0.7], [0.8, 0.1, 1, 0.2], [0.3, 0.7, 0.2, 1.0]],
                       dtype=torch.float64)
    data = JointGaussianData(torch.zeros(4, dtype=torch.float64), cov)
    known = torch.tensor([True, True, False, False])
    x_a = torch.tensor([1.5, -1.0], dtype=torch.float64)
    target = data.conditional_mean(x_a, known)
    den = Denoiser(data.model(COS, "v"), "v")
    n = 4000
    x_known = torch.zeros(n, 4, dtype=torch.float64)
    x_known[:, :2] = x_a
    noise = torch.randn(n, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for sampler in ("ddim", "ddpm"):
        kw = dict(sampler=sampler, generator=torch.Generator().manual_seed(1))
        plain = sample(den, noise, COS, 50, **kw)
        guided = sample(ReconstructionGuidance(den, x_known, known.expand(n, 4), weight=4.0), noise, COS, 50, **kw)
        replaced = sample(ReconstructionGuidance(den, x_known, known.expand(n, 4), weight=0.0), noise, COS, 50, **kw)
        err = lambda x: (x[:, 2:].mean(0) - target).norm().item()  # noqa: E731
        assert torch.allclose(guided[:, :2], x_known[:, :2], atol=1e-10), "known part is kept"
        assert err(guided) * 5 <= err(plain), sampler
        assert err(guided) * 2 <= err(replaced), sampler


def test_gradient_guidance_closed_form_and_masks():
    """x ~ N(0, s²) ⇒ x̂₀ = c z with c = α s²/(α² s² + σ²); for L = Σ x̂₀², ∇_z L = 2 c x̂₀, so
    x̃₀ = x̂₀ (1 − w α c)."""
    s, w, t = 0.6, 0.7, torch.tensor(0.35, dtype=torch.float64)
    den = Denoiser(GaussianData(0.0, s).model(COS, "eps"), "eps")
    z = torch.randn(3, 2, 5, 4, 4, dtype=torch.float64)
    a, sg = COS.alpha_sigma(t)
    c = a * s**2 / (a**2 * s**2 + sg**2)
    gg = GradientGuidance(den, lambda x0: (x0**2).sum(), weight=w)(z, t, COS)
    assert torch.allclose(gg.x0, c * z * (1 - w * a * c))
    assert torch.allclose(gg.eps, (z - a * gg.x0) / sg)
    # frame mask (B, F): the gradient only acts on unmasked frames
    m = torch.zeros(3, 5, dtype=torch.bool)
    m[:, 1] = True
    gm = GradientGuidance(den, lambda x0: (x0**2).sum(), weight=w, grad_mask=m)(z, t, COS)
    assert torch.allclose(gm.x0[:, :, 1], gg.x0[:, :, 1]) and torch.allclose(gm.x0[:, :, 0], c * z[:, :, 0])
    assert expand_mask(m, z).shape == z.shape
    with pytest.raises(VidiffError, match="fits neither"):
        expand_mask(torch.zeros(3, 4, dtype=torch.bool), z)
    # works inside a no-grad sampler
    assert ddim(GradientGuidance(den, lambda x0: x0.sum(), 0.1), z, COS, 3).shape == z.shape


def test_reconstruction_guidance_on_video_frames():
    den = Denoiser(GaussianData(0.0, 1.0).model(COS, "v"), "v")
    x = torch.randn(2, 3, 6, 4, 4, dtype=torch.float64)
    frames = torch.zeros(2, 6, dtype=torch.bool)
    frames[:, :2] = True  # first two frames known (video extension)
    out = ddim(ReconstructionGuidance(den, x, frames, weight=2.0), torch.randn_like(x), COS, 10)
    assert torch.allclose(out[:, :, :2], x[:, :, :2]) and not torch.allclose(out[:, :, 2:], x[:, :, 2:])
    with pytest.raises(VidiffError, match="x_known shape"):
        ReconstructionGuidance(den, x[:1], frames, 1.0)(x, 0.5, COS)
