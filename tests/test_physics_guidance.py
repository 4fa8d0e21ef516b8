"""Physics-aware guidance: the smooth-motion penalty on known tracks, wall contacts, one guidance step, and
that a zero weight leaves sampling bit-identical."""
import numpy as np
import pytest
import torch

from vidiff.data.checker import check_video
from vidiff.data.io import to_uint8
from vidiff.diffusion import Denoiser, Prediction, sample
from vidiff.diffusion.physics import PhysicsGuidance, smooth_motion_penalty, wall_contacts
from vidiff.diffusion.schedule import get_schedule
from vidiff.utils import VidiffError

RED = torch.tensor([235, 30, 30]) / 127.5 - 1


def disc_video(centres, size=32, radius=4.0, ss=4) -> torch.Tensor:
    """A red anti-aliased disc at `centres` (F, 2) (pixel centres at i + 0.5) on black: (1, 3, F, H, W) in [-1, 1]."""
    g = (torch.arange(size * ss, dtype=torch.float64) + 0.5) / ss
    c = torch.as_tensor(np.asarray(centres), dtype=torch.float64)
    inside = ((g[None, None, :] - c[:, 0, None, None]) ** 2 + (g[None, :, None] - c[:, 1, None, None]) ** 2
              <= radius**2).double()  # (F, n, n)
    cov = inside.reshape(len(c), size, ss, size, ss).mean((2, 4)).float()  # (F, H, W)
    return (-1 + cov[None, None] * (RED + 1)[None, :, None, None, None])  # (1, 3, F, H, W)


def line(frames=12, start=(8.0, 10.0), v=(1.3, 0.7)):
    return np.asarray(start) + np.arange(frames)[:, None] * np.asarray(v)


def test_constant_velocity_costs_nothing_and_jitter_costs_more():
    smooth = disc_video(line())
    jitter = line() + np.random.default_rng(0).normal(0, 0.8, (12, 2))
    p_smooth = smooth_motion_penalty(smooth).item()
    p_jitter = smooth_motion_penalty(disc_video(jitter)).item()
    assert p_smooth < 0.05  # sub-pixel rendering noise: an rms acceleration of ~0.05 px
    assert p_jitter > 5.0 and p_jitter > 100 * p_smooth
    assert check_video(to_uint8(smooth)[0]).smooth_motion  # the checker agrees on the smooth one


def test_a_bounce_off_a_wall_is_not_penalised():
    x = np.array([20, 21.5, 23, 24.5, 26, 27.5, 26, 24.5, 23, 21.5, 20, 18.5])  # right, bounces at x + r = 31.5
    track = np.stack([x, np.full(12, 12.0)], 1)
    video = disc_video(track)
    assert smooth_motion_penalty(video).item() < 0.05
    near = wall_contacts(torch.as_tensor(track)[None].float(), torch.zeros(1, 12, 32, 32), margin=4.5)
    assert near.shape == (1, 10, 2)
    # through a free-space copy of the same turn (shifted left, away from every wall) it is penalised
    free = disc_video(track - [8, 0])
    assert smooth_motion_penalty(free).item() > 5.0


def _identity_denoiser(z, t, schedule, cond=None):
    """x̂₀ = z: guidance then acts on a synthetic x̂₀ directly."""
    alpha, sigma = schedule.alpha_sigma(torch.tensor(float(t), dtype=torch.float64))
    return Prediction.from_output("x0", z, z, alpha, sigma)


def test_one_guidance_step_reduces_the_penalty():
    jitter = line() + np.random.default_rng(1).normal(0, 0.8, (12, 2))
    z = disc_video(jitter)
    schedule = get_schedule("cosine")
    before = smooth_motion_penalty(z).item()
    guided = PhysicsGuidance(_identity_denoiser, weight=2.0)(z, 0.3, schedule).x0
    after = smooth_motion_penalty(guided).item()
    assert torch.isfinite(guided).all() and not torch.equal(guided, z)
    assert after < 0.8 * before


def test_zero_weight_sampling_is_bit_identical():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(3, 3, 3, padding=1), torch.nn.Tanh())
    model = Denoiser(lambda z, t, cond: net(z) * (1 - t[:, None, None, None, None]), parameterization="v")
    schedule = get_schedule("cosine")
    noise = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = sample(model, noise, schedule, 5, sampler="ddim")
        zero = sample(PhysicsGuidance(model, weight=0.0), noise, schedule, 5, sampler="ddim")
        guided = sample(PhysicsGuidance(model, weight=50.0), noise, schedule, 5, sampler="ddim")
    assert torch.equal(plain, zero)
    assert not torch.equal(plain, guided) and torch.isfinite(guided).all()


def test_bad_physics_arguments():
    with pytest.raises(VidiffError, match="unknown physics constraint 'gravity'"):
        PhysicsGuidance(_identity_denoiser, 1.0, "gravity")
    with pytest.raises(VidiffError, match=">= 0"):
        PhysicsGuidance(_identity_denoiser, -1.0)
    with pytest.raises(VidiffError, match="needs video"):
        smooth_motion_penalty(torch.zeros(1, 3, 8, 8))
    assert smooth_motion_penalty(torch.zeros(2, 3, 2, 8, 8)).shape == (2,)
