"""Frame-correlated noise priors (PYoCo, Ge et al. 2023): covariance oracles, the AR recursion, and
that the loss, the samplers, the pipelines and the trainer all draw the prior the model was trained with."""
import json

import numpy as np
import pytest
import torch

from vidiff.diffusion import FrameNoise, diffusion_loss, get_schedule, sample
from vidiff.diffusion.loss import randn
from vidiff.utils import VidiffError


def _frame_cov(x: torch.Tensor) -> torch.Tensor:
    """Empirical covariance across frames of zero-mean noise (B, C, F, H, W) -> (F, F)."""
    F = x.shape[2]
    v = x.transpose(1, 2).reshape(x.shape[0], F, -1).transpose(0, 1).reshape(F, -1).double()
    return v @ v.T / v.shape[1]


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_mixed_prior_matches_pyoco_eq4(alpha):
    """Covariance of the two-component construction ε_i = ε_shared + ε_ind,i (PYoCo eq. 4),
    both analytically and as sampled."""
    F, a2 = 6, alpha**2
    prior = FrameNoise("mixed", alpha)
    analytic = torch.full((F, F), a2 / (1 + a2), dtype=torch.float64) + torch.eye(F, dtype=torch.float64) / (1 + a2)
    assert torch.allclose(prior.covariance(F), analytic, atol=1e-12)
    g = torch.Generator().manual_seed(0)
    eps = prior(torch.randn(64, 1, F, 32, 32, generator=g))
    assert torch.allclose(_frame_cov(eps), analytic, atol=0.03)
    # the explicit eq.-4 construction, for comparison: same covariance within sampling error
    shared = torch.randn(64, 1, 1, 32, 32, generator=g) * (a2 / (1 + a2)) ** 0.5
    ind = torch.randn(64, 1, F, 32, 32, generator=g) / (1 + a2) ** 0.5
    assert torch.allclose(_frame_cov(shared + ind), _frame_cov(eps), atol=0.05)


def test_progressive_prior_is_exactly_the_eq5_recursion():
    """L ε for Σ_ij = ρ^|i−j| equals ε'_0 = ε_0, ε'_i = ρ ε'_{i−1} + √(1 − ρ²) ε_i (PYoCo eq. 5)."""
    alpha, F = 2.0, 8
    rho = alpha / (1 + alpha**2) ** 0.5
    eps = torch.randn(3, 2, F, 5, 5, dtype=torch.float64)
    out = FrameNoise("progressive", alpha)(eps)
    ref = [eps[:, :, 0]]
    for i in range(1, F):
        ref.append(rho * ref[-1] + (1 - rho**2) ** 0.5 * eps[:, :, i])
    assert torch.allclose(out, torch.stack(ref, 2), atol=1e-12)
    assert torch.allclose(_frame_cov(FrameNoise("progressive", alpha)(torch.randn(64, 1, F, 32, 32))),
                          FrameNoise("progressive", alpha).covariance(F), atol=0.03)


def test_iid_prior_is_the_identity_and_bad_priors_fail():
    eps = torch.randn(2, 3, 4, 5, 5)
    assert FrameNoise()(eps) is eps and FrameNoise("mixed", 0.0)(eps) is eps
    with pytest.raises(VidiffError, match="unknown noise prior 'pyoco'"):
        FrameNoise("pyoco")
    with pytest.raises(VidiffError, match="noise_alpha"):
        FrameNoise("mixed", -1.0)
    with pytest.raises(VidiffError, match=r"\(B, C, F, H, W\)"):
        FrameNoise("mixed")(torch.randn(2, 3, 5, 5))


def test_loss_draws_the_prior_from_its_generator():
    """With x0 = 0 and a fixed t, z_t = σ_t ε: the ε the loss used is prior(randn(generator))."""
    schedule, prior = get_schedule("cosine"), FrameNoise("mixed", 1.0)
    seen = {}

    def model(z, t, cond):
        seen["z"] = z
        return torch.zeros_like(z)

    x0 = torch.zeros(2, 3, 4, 6, 6)
    diffusion_loss(model, x0, schedule, t=0.5, noise_prior=prior, generator=torch.Generator().manual_seed(3))
    sigma = schedule.alpha_sigma(torch.tensor([0.5]))[1].item()
    expect = prior(randn(x0.shape, torch.Generator().manual_seed(3), x0))
    # t is given, so the generator's first draw is the noise
    assert torch.allclose(seen["z"] / sigma, expect, atol=1e-5)


def test_ddpm_fresh_noise_follows_the_prior():
    """One ancestral step from z = 0 with x̂₀ = 0 is pure fresh noise: its frame covariance is Σ·std²."""
    from vidiff.diffusion import Prediction

    prior = FrameNoise("progressive", 1.0)
    schedule = get_schedule("cosine")

    def den(z, t, schedule, cond=None):
        return Prediction.from_output("x0", torch.zeros_like(z), z,
                                      *[v.to(z) for v in schedule.alpha_sigma(torch.tensor(t))])

    z = sample(den, torch.zeros(16, 1, 5, 32, 32), schedule, 1, sampler="ddpm", noise_prior=prior,
               spacing=torch.tensor([1.0, 0.5]), generator=torch.Generator().manual_seed(0))
    cov = _frame_cov(z)
    cov = cov / cov.diagonal().mean()
    assert torch.allclose(cov, prior.covariance(5), atol=0.05)
    # deterministic samplers take the option and draw nothing
    sample(den, torch.zeros(1, 1, 5, 4, 4), schedule, 2, sampler="dpmpp_2m", noise_prior=prior)


class _Recorder(torch.nn.Module):
    """A 'backbone' that predicts v = 0 and keeps the first input it sees."""

    def __init__(self):
        super().__init__()
        self.first = None

    def forward(self, z, t, cond=None):
        if self.first is None:
            self.first = z.clone()
        return torch.zeros_like(z)


def test_sample_videos_starts_from_the_models_prior():
    from vidiff.pipelines import DiffusionConfig, sample_videos

    shape = (8, 1, 6, 32, 32)
    m = _Recorder()
    sample_videos(m, DiffusionConfig(schedule="cosine"), shape, steps=2, seed=5)
    iid = torch.stack([torch.randn(shape[1:], generator=torch.Generator().manual_seed(5 + i)) for i in range(8)])
    assert torch.equal(m.first, iid)  # iid models: exactly torch.randn with the per-sample seed
    m = _Recorder()
    mixed = DiffusionConfig(schedule="cosine", noise="mixed", noise_alpha=1.0)
    sample_videos(m, mixed, shape, steps=2, seed=5, sampler="ddpm")
    assert torch.allclose(m.first, mixed.build_noise()(iid), atol=1e-6)
    off = _frame_cov(m.first)[~torch.eye(6, dtype=torch.bool)]
    assert abs(off.mean().item() - 0.5) < 0.05  # α = 1: correlation α²/(1 + α²)


def test_trainer_records_and_uses_the_prior(tmp_path):
    from vidiff import load_pipeline
    from vidiff.train import TrainConfig, train

    d = tmp_path / "vids"
    d.mkdir()
    for i in range(3):
        v = np.zeros((4, 16, 16, 3), np.uint8)
        v[:, 4:9, 2 + i:7 + i] = 200
        np.save(d / f"v{i}.npy", v)
    model = {"arch": "unet3d", "base_channels": 8, "channel_mults": [1], "num_res_blocks": 1,
             "attention_levels": [], "mid_attention": False, "head_dim": 8}
    (tmp_path / "m.json").write_text(json.dumps(model))
    cfg = TrainConfig(data=str(d), out=str(tmp_path / "run"), model=str(tmp_path / "m.json"), frames=4,
                      size=16, batch=2, steps=2, warmup=1, save_every=0, sample_every=0,
                      noise="progressive", noise_alpha=2.0)
    out = train(cfg)
    diff = json.loads((out / "config.json").read_text())["diffusion"]
    assert diff["noise"] == "progressive" and diff["noise_alpha"] == 2.0
    pipe = load_pipeline(str(out))
    assert pipe.diffusion.build_noise() == FrameNoise("progressive", 2.0)
    a, b = pipe(num=1, frames=4, steps=2, seed=0), pipe(num=1, frames=4, steps=2, seed=0)
    assert torch.equal(a, b)
    with pytest.raises(VidiffError, match="unknown noise prior"):
        train(TrainConfig(data=str(d), out=str(tmp_path / "bad"), steps=1, noise="pink"))
