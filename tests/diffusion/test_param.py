"""Parameterizations: round trips, the angular identity, the Denoiser on plain functions, clipping."""
import itertools

import pytest
import torch

from vidiff.diffusion import (
    CosineSchedule,
    Denoiser,
    Prediction,
    apply_clip,
    convert,
    dynamic_threshold,
    v_from_eps_x0,
)
from vidiff.diffusion.analytic import GaussianMixtureData
from vidiff.diffusion.param import broadcast
from vidiff.utils import VidiffError


def _setup(n=64):
    g = torch.Generator().manual_seed(1)
    sched = CosineSchedule()
    t = torch.rand(n, generator=g, dtype=torch.float64) * 0.98 + 0.01
    x = torch.randn(n, 3, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(n, 3, 4, generator=g, dtype=torch.float64)
    a, s = (broadcast(c, x) for c in sched.alpha_sigma(t))
    return sched, t, x, eps, a, s, a * x + s * eps


def test_conversions_round_trip():
    _, _, x, eps, a, s, z = _setup()
    truth = {"x0": x, "eps": eps, "v": v_from_eps_x0(eps, x, a, s)}
    for src, dst in itertools.permutations(truth, 2):
        got = convert(truth[src], src, dst, z, a, s)
        assert torch.allclose(got, truth[dst], atol=1e-6), (src, dst)
        back = convert(got, dst, src, z, a, s)
        assert torch.allclose(back, truth[src], atol=1e-6), (src, dst)


def test_v_is_the_angular_derivative():
    """v = α ε − σ x equals d z_φ / d φ for z_φ = cos φ x + sin φ ε (finite difference)."""
    sched, t, x, eps, a, s, z = _setup()
    phi = broadcast(sched.phi(t), x)
    v = v_from_eps_x0(eps, x, a, s)
    assert torch.allclose(v, torch.cos(phi) * eps - torch.sin(phi) * x, atol=1e-12)
    h = 1e-6
    dz = ((torch.cos(phi + h) * x + torch.sin(phi + h) * eps)
          - (torch.cos(phi - h) * x + torch.sin(phi - h) * eps)) / (2 * h)
    assert torch.allclose(v, dz, atol=1e-7)
    assert torch.allclose(z, torch.cos(phi) * x + torch.sin(phi) * eps, atol=1e-12)


def test_denoiser_wraps_plain_functions_of_each_parameterization():
    sched, t, x, eps, a, s, z = _setup()
    data = GaussianMixtureData()
    preds = [Denoiser(data.model(sched, p), parameterization=p)(z, t, sched) for p in ("x0", "eps", "v")]
    exact = data.posterior_mean(z, a, s)
    for p in preds:
        assert torch.allclose(p.x0, exact, atol=1e-8)
        assert torch.allclose(p.eps, preds[0].eps, atol=1e-8) and torch.allclose(p.v, preds[0].v, atol=1e-8)
        assert torch.allclose(p.get("v"), v_from_eps_x0(p.eps, p.x0, a, s), atol=1e-10)
    # scalar t broadcasts to the batch; the backbone receives a (B,) tensor
    seen = {}

    def fn(z, t, cond):
        seen["t"], seen["cond"] = t, cond
        return torch.zeros_like(z)

    Denoiser(fn, "eps")(z, 0.5, sched, cond="c")
    assert seen["t"].shape == (z.shape[0],) and seen["cond"] == "c"


def test_denoiser_errors():
    sched = CosineSchedule()
    with pytest.raises(VidiffError, match="v.*eps.*x0"):
        Denoiser(lambda z, t, c: z, parameterization="score")
    with pytest.raises(VidiffError, match="shaped like z_t"):
        Denoiser(lambda z, t, c: z[:, :1])(torch.zeros(2, 3, 4), 0.5, sched)
    with pytest.raises(VidiffError, match=r"\[0, 1\]"):
        Denoiser(lambda z, t, c: z)(torch.zeros(2, 3), 1.5, sched)
    with pytest.raises(VidiffError, match="shape"):
        Denoiser(lambda z, t, c: z)(torch.zeros(2, 3), torch.full((3,), 0.5), sched)


def test_clipping_and_dynamic_threshold():
    sched, t, x, eps, a, s, z = _setup()
    big = Prediction.from_output("x0", 3 * x, z, a, s)
    clipped = apply_clip(big, 1.0, z, a, s)
    assert clipped.x0.abs().max() <= 1.0
    assert torch.allclose(clipped.eps, (z - a * clipped.x0) / s), "ε̂ is re-derived from the clipped x̂₀"
    # dynamic thresholding: a sample already inside [-1, 1] is untouched; others are rescaled to [-1, 1]
    inside = torch.rand(2, 1000, dtype=torch.float64) * 1.8 - 0.9
    assert torch.equal(dynamic_threshold(inside), inside)
    ramp = torch.linspace(-4, 4, 1001, dtype=torch.float64)[None]
    out = dynamic_threshold(ramp, percentile=0.9)
    s_ref = torch.quantile(ramp.abs(), 0.9).item()
    assert out.abs().max().item() == pytest.approx(1.0)
    assert torch.allclose(out[0, 500:510], ramp[0, 500:510] / s_ref, rtol=2e-3)
    assert apply_clip(big, None, z, a, s) is big
    with pytest.raises(VidiffError, match="clip"):
        apply_clip(big, "hard", z, a, s)
