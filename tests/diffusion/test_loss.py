"""Training loss: Bayes-optimal MMSE oracle per parameterization, frame masks, weighting, reproducibility."""
import pytest
import torch

from vidiff.diffusion import CosineSchedule, diffusion_loss, min_snr_weight
from vidiff.diffusion.analytic import GaussianData
from vidiff.utils import VidiffError

COS = CosineSchedule()


@pytest.mark.parametrize("param", ["x0", "eps", "v"])
def test_bayes_optimal_model_reaches_the_mmse(param):
    """x ~ N(0, s²): the optimal model's loss is the MMSE, s²σ²/(α²s² + σ²) for x̂₀, times α²/σ² for ε̂
    (ε − ε̂ = α (x̂ − x)/σ) and 1/σ² for v̂ (v − v̂ = (x̂ − x)/σ)."""
    s = 0.7
    data = GaussianData(0.0, s)
    g = torch.Generator().manual_seed(0)
    x0 = data.sample((6, 1, 4, 50, 50), g)  # (B, C, F, H, W): 10k elements per sample
    t = torch.tensor([0.05, 0.2, 0.4, 0.6, 0.8, 0.95], dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    model = data.model(COS, param)
    loss = diffusion_loss(model, x0, COS, parameterization=param, t=t, noise=noise, reduction="none")
    a, sg = COS.alpha_sigma(t)
    mmse = s**2 * sg**2 / (a**2 * s**2 + sg**2)
    expected = {"x0": mmse, "eps": mmse * a**2 / sg**2, "v": mmse / sg**2}[param]
    assert torch.allclose(loss.double(), expected, rtol=0.04)  # Monte Carlo: ±1.4% (1 std) per sample
    # a biased model (optimal + δ) pays δ² more: the error of the optimum is orthogonal to constants
    delta = 0.3
    worse = diffusion_loss(lambda z, t_, c: model(z, t_, c) + delta, x0, COS, parameterization=param, t=t,
                           noise=noise, reduction="none")
    assert torch.allclose(worse - loss, torch.full_like(loss, delta**2), atol=0.15 * delta**2)


def test_frame_mask_keeps_clean_frames_and_ignores_them():
    data = GaussianData(0.0, 1.0)
    g = torch.Generator().manual_seed(1)
    x0 = data.sample((2, 3, 6, 8, 8), g)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, [0, 3]] = True  # clean conditioning frames
    seen = {}
    model = data.model(COS, "v")

    def recording(z, t_, c):
        seen["z"] = z
        return model(z, t_, c)

    masked = diffusion_loss(recording, x0, COS, frame_mask=mask, t=t, noise=noise)
    assert torch.equal(seen["z"][:, :, [0, 3]], x0[:, :, [0, 3]])
    assert not torch.allclose(seen["z"][:, :, 1], x0[:, :, 1])
    keep = [1, 2, 4, 5]
    ref = diffusion_loss(model, x0[:, :, keep], COS, t=t, noise=noise[:, :, keep])
    assert torch.allclose(masked, ref, rtol=1e-10)

    def garbage_on_masked(z, t_, c):
        out = model(z, t_, c).clone()
        out[:, :, [0, 3]] = 1e6
        return out

    assert torch.allclose(diffusion_loss(garbage_on_masked, x0, COS, frame_mask=mask, t=t, noise=noise), masked)


def test_reproducible_from_generator_and_image_batches():
    net = torch.nn.Conv3d(3, 3, 3, padding=1)
    model = lambda z, t, c: net(z)  # noqa: E731
    x0 = torch.randn(2, 3, 4, 8, 8)
    l1 = diffusion_loss(model, x0, COS, generator=torch.Generator().manual_seed(3))
    l2 = diffusion_loss(model, x0, COS, generator=torch.Generator().manual_seed(3))
    l3 = diffusion_loss(model, x0, COS, generator=torch.Generator().manual_seed(4))
    assert torch.equal(l1, l2) and not torch.equal(l1, l3)
    l1.backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0
    img = diffusion_loss(lambda z, t, c: torch.zeros_like(z), torch.randn(5, 3, 8, 8), COS, parameterization="eps",
                         generator=torch.Generator().manual_seed(0))
    assert img.shape == () and 0.8 < img.item() < 1.2  # E ε² = 1


def test_min_snr_weighting():
    lam = torch.tensor([-6.0, -1.0, 0.0, 1.5, 4.0, 9.0], dtype=torch.float64)
    snr = lam.exp()
    gamma = 5.0
    assert torch.allclose(min_snr_weight(lam, "x0", gamma), torch.minimum(snr, torch.tensor(gamma)))
    assert torch.allclose(min_snr_weight(lam, "eps", gamma), torch.minimum(snr, torch.tensor(gamma)) / snr)
    assert torch.allclose(min_snr_weight(lam, "v", gamma), torch.minimum(snr, torch.tensor(gamma)) / (snr + 1))
    assert torch.isfinite(min_snr_weight(torch.tensor([float("inf"), -float("inf")]), "v")).all()
    x0 = torch.randn(4, 3, 2, 4, 4, dtype=torch.float64)
    t = torch.tensor([0.1, 0.3, 0.5, 0.9], dtype=torch.float64)
    model = lambda z, t_, c: torch.zeros_like(z)  # noqa: E731
    kw = dict(t=t, noise=torch.randn_like(x0), reduction="none")
    plain = diffusion_loss(model, x0, COS, **kw)
    weighted = diffusion_loss(model, x0, COS, weighting="min_snr", **kw)
    assert torch.allclose(weighted, plain * min_snr_weight(COS.logsnr(t), "v"))
    custom = diffusion_loss(model, x0, COS, weighting=lambda l: torch.sigmoid(l), **kw)
    assert torch.allclose(custom, plain * torch.sigmoid(COS.logsnr(t)))


def test_loss_errors():
    model = lambda z, t, c: z  # noqa: E731
    x0 = torch.randn(2, 3, 4, 8, 8)
    with pytest.raises(VidiffError, match="v.*eps.*x0"):
        diffusion_loss(model, x0, COS, parameterization="score")
    with pytest.raises(VidiffError, match=r"\(B, F\)"):
        diffusion_loss(model, x0, COS, frame_mask=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(VidiffError, match="video"):
        diffusion_loss(model, x0[:, :, 0], COS, frame_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(VidiffError, match="noise shape"):
        diffusion_loss(model, x0, COS, noise=torch.randn(2, 3, 4, 8, 7))
    with pytest.raises(VidiffError, match=r"\[0, 1\]"):
        diffusion_loss(model, x0, COS, t=torch.tensor([0.5, 1.5]))
    with pytest.raises(VidiffError, match="min_snr"):
        diffusion_loss(model, x0, COS, weighting="p2")
    with pytest.raises(VidiffError, match="shaped like"):
        diffusion_loss(lambda z, t, c: z[:, :1], x0, COS)
    from vidiff.diffusion import Denoiser

    with pytest.raises(VidiffError, match="denoiser.model"):
        diffusion_loss(Denoiser(model), x0, COS)
    with pytest.raises(VidiffError, match="batched"):
        diffusion_loss(model, torch.randn(5), COS)
