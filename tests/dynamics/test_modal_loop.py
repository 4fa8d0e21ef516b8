"""Oracles: one mode follows the analytic damped oscillator; loop loss and playback timing."""
import math

import numpy as np
import pytest
import torch

from vidiff.dynamics.loop import loop_guidance_loss, loop_loss, magnify, playback_times
from vidiff.dynamics.modal import ModalSimulator, impulse_response
from vidiff.dynamics.spectral import motion_texture
from vidiff.utils import VidiffError


def _one_mode(k=6, f=3, h=8, w=10):
    sv = torch.zeros(k, 4, h, w)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    amp = 0.5 + yy / h  # grows down the image
    sv[f, 0] = amp * math.cos(0.4)
    sv[f, 1] = amp * math.sin(0.4)
    sv[f, 2] = 0.3 * amp
    return sv


@pytest.mark.parametrize("damping", [0.02, 0.2])
def test_single_mode_impulse_matches_analytic_solution(damping):
    sv = _one_mode()
    fps, period = 30.0, 30.0
    sim = ModalSimulator(sv, fps=fps, damping=damping, freqs=[3], period=period)
    sim.poke(4, 6, 1.5, -0.5)
    s = torch.complex(sv[3, 0::2], sv[3, 1::2])  # (2, H, W)
    omega = 2 * math.pi * 3 * fps / period
    v0 = omega * complex(s[0, 6, 4].conj() * 1.5 + s[1, 6, 4].conj() * -0.5) / float(s.abs().pow(2).sum(0).max())
    n = 90
    t = np.arange(1, n + 1) / fps
    q = impulse_response(t, omega, damping, v0)
    peak = np.abs(q).max()
    for i in range(n):
        disp = sim.step()
        want = (s * torch.as_tensor(q[i], dtype=torch.complex64)).real  # Re(S_f q_f(t))
        err = (disp - want).abs().max() / (s.abs().max() * peak)
        assert err < 0.01, (i, float(err))
    assert abs(sim.time - n / fps) < 1e-9


def test_superposition_and_reset():
    sv = _one_mode(k=6, f=2) + _one_mode(k=6, f=4)
    sim = ModalSimulator(sv, fps=24.0, damping=0.05)
    assert sim.freqs == [1, 2, 3, 4, 5]
    sim.poke(2, 3, 1.0, 0.0)
    a = [sim.step() for _ in range(5)]
    sim.reset()
    sim.poke(2, 3, 2.0, 0.0)
    b = [sim.step() for _ in range(5)]
    for x, y in zip(a, b):  # linear system: twice the poke, twice the response
        torch.testing.assert_close(2 * x, y, rtol=1e-5, atol=1e-6)
    with pytest.raises(VidiffError):
        sim.poke(100, 0, 1, 1)
    with pytest.raises(VidiffError):
        ModalSimulator(sv, freqs=[0])


def test_loop_loss_zero_on_whole_period_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    sv = torch.randn(2, 5, 4, 6, 7, generator=g, requires_grad=True)
    period = 30.0
    assert float(loop_loss(sv, period, period).detach().abs().max()) < 1e-3  # float32 round-off, summed
    loss = loop_loss(sv, period, 20.0)
    assert loss.shape == (2,) and (loss > 1.0).all()
    # the loss is the L1 seam + gradient seam, checked against a direct computation
    f0, fl = motion_texture(sv[0], 0.0, period), motion_texture(sv[0], 20.0, period)
    d = f0 - fl
    ref = d.abs().sum() + (d[..., :, 1:] - d[..., :, :-1]).abs().sum() + (d[..., 1:, :] - d[..., :-1, :]).abs().sum()
    torch.testing.assert_close(loss[0], ref)
    # gradient descent on the loss closes the seam (what loop guidance does during sampling)
    fn = loop_guidance_loss(period, 20.0)
    x = sv.detach().clone().requires_grad_()
    opt = torch.optim.SGD([x], lr=0.005)
    start = float(fn(x).sum().detach())
    for _ in range(50):
        opt.zero_grad()
        fn(x).sum().backward()
        opt.step()
    assert float(fn(x).sum().detach()) < 0.3 * start


def test_playback_times_and_magnify():
    t = playback_times(10, period=30.0, slowmo=2.0)
    np.testing.assert_allclose(t, np.arange(10) * 0.5)
    t = playback_times(100, period=30.0, slowmo=1.0, loop=True)
    assert abs((t[1] - t[0]) * 100 - 90.0) < 1e-9  # 3 whole periods
    t = playback_times(8, period=30.0, slowmo=2.0, loop=True)
    assert abs((t[1] - t[0]) * 8 - 30.0) < 1e-9  # at least one period
    sv = torch.randn(4, 4, 3, 3)
    torch.testing.assert_close(motion_texture(magnify(sv, 1.5), 3.3, 30.0), 1.5 * motion_texture(sv, 3.3, 30.0))
    with pytest.raises(VidiffError):
        playback_times(0, 30.0)
