"""Oracles for flow + spectral volumes: known sinusoidal warps, exact FFT round trips."""
import math

import numpy as np
import pytest
import torch

from vidiff.dynamics.flow import extract_spectral_volume, flow_to_frames
from vidiff.dynamics.spectral import (amplitude_error, canonical_phase, complex_to_spectral, motion_texture,
                                      resize_spectral, rotate_phases, spectral_to_complex, trajectories_to_spectral)
from vidiff.utils import VidiffError

from ._synth import known_field, warped_video


def _smooth_amp(a0, cx, cy, s):
    return lambda x, y: a0 * (0.6 + 0.4 * np.cos((x - cx) / s) * np.cos((y - cy) / s))


def test_extracted_spectral_volume_matches_known_coefficients():
    h = w = 64
    period, k = 48, 8
    comps = [
        (0, 1, _smooth_amp(2.0, 20, 30, 25.0), lambda x, y: 0.3 + x / 60.0),
        (0, 3, _smooth_amp(1.2, 40, 20, 30.0), lambda x, y: -1.0 + y / 50.0),
        (1, 2, _smooth_amp(1.6, 30, 40, 28.0), lambda x, y: 0.8 + 0.0 * x),
    ]
    truth, d = known_field(h, w, period, comps)
    video = warped_video(h, w, period, d)
    sv = extract_spectral_volume(video, num_frames=period, k=k)
    assert sv.shape == (k, 4, h, w)
    c = spectral_to_complex(sv).numpy()  # (K, 2, H, W)
    m = 8  # away from borders, where the texture covers every neighbourhood
    for (axis, f), s_true in truth.items():
        est = c[f, axis, m:-m, m:-m]
        ref = s_true[m:-m, m:-m]
        rel = np.abs(est - ref).mean() / np.abs(ref).mean()
        assert rel < 0.10, (axis, f, rel)
    # frequencies with no motion stay small compared with the dominant ones
    assert np.abs(c[5:, :, m:-m, m:-m]).mean() < 0.1 * np.abs(truth[(0, 1)]).mean()


def test_flow_methods_agree_on_translation():
    from ._synth import texture
    h, w = 48, 48
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    frames = np.stack([np.clip(texture(xx - s, yy - 0.5 * s), 0, 255).astype(np.uint8)[..., None].repeat(3, -1)
                       for s in (0.0, 1.0, 2.0)])
    for method in ("dis", "farneback"):
        fl = flow_to_frames(frames, method=method)
        assert np.allclose(fl[0], 0)
        np.testing.assert_allclose(fl[2, 0, 10:-10, 10:-10].mean(), 2.0, atol=0.15)
        np.testing.assert_allclose(fl[2, 1, 10:-10, 10:-10].mean(), 1.0, atol=0.15)


def test_fft_inverse_reproduces_band_limited_trajectories():
    g = torch.Generator().manual_seed(0)
    period, k = 20, 6
    true = torch.randn(k, 4, 5, 7, generator=g, dtype=torch.float64)
    true[0, 1::2] = 0  # the DC term is real
    traj = motion_texture(true, torch.arange(period), period)  # (T, 2, H, W)
    sv = trajectories_to_spectral(traj, k=k)
    torch.testing.assert_close(sv, true, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(motion_texture(sv, torch.arange(period), period), traj)


def test_sinusoid_coefficient_and_fractional_time():
    period = 30
    t = torch.arange(period, dtype=torch.float64)
    traj = torch.zeros(period, 2, 1, 1, dtype=torch.float64)
    traj[:, 0, 0, 0] = 1.5 * torch.cos(2 * math.pi * 4 * t / period + 0.7)
    sv = trajectories_to_spectral(traj, k=8)
    c = spectral_to_complex(sv)
    assert abs(c[4, 0, 0, 0] - 1.5 * np.exp(0.7j)) < 1e-12
    f = motion_texture(sv, 2.25, period)  # fractional t evaluates the continuous sinusoid
    assert abs(float(f[0, 0, 0]) - 1.5 * math.cos(2 * math.pi * 4 * 2.25 / period + 0.7)) < 1e-12
    torch.testing.assert_close(complex_to_spectral(c), sv)
    torch.testing.assert_close(motion_texture(sv, 2.25, period, magnify=2.0), 2 * f)


def test_resize_scales_displacements():
    sv = torch.ones(3, 4, 8, 10)
    out = resize_spectral(sv, (16, 30))
    assert out.shape == (3, 4, 16, 30)
    torch.testing.assert_close(out[:, 0], torch.full((3, 16, 30), 3.0))
    torch.testing.assert_close(out[:, 2], torch.full((3, 16, 30), 2.0))


def test_bad_inputs_raise():
    with pytest.raises(VidiffError):
        trajectories_to_spectral(torch.zeros(4, 2, 3, 3), k=16)
    with pytest.raises(VidiffError):
        extract_spectral_volume(np.zeros((5, 8, 8, 3), np.uint8), k=16)


def test_amplitude_error_is_phase_free_and_one_for_no_motion():
    g = torch.Generator().manual_seed(0)
    true = torch.randn(6, 4, 5, 7, generator=g)
    c = spectral_to_complex(true)
    rotated = complex_to_spectral(c * torch.exp(1j * torch.rand(6, 1, 1, 1, generator=g) * 6.28))  # new phases
    e, r = amplitude_error(rotated, true)
    assert float(e) < 1e-5 * float(r)
    e, r = amplitude_error(torch.zeros_like(true), true)
    assert abs(float(e / r) - 1.0) < 1e-6
    e, r = amplitude_error(2 * true, true)  # | 2|S| - |S| | = |S|
    assert abs(float(e / r) - 1.0) < 1e-6
    # f = 0 (the mean displacement) is left out
    shifted = true.clone()
    shifted[0] += 5.0
    assert float(amplitude_error(shifted, true)[0]) < 1e-5
    assert abs(float(r) - float(spectral_to_complex(true)[1:].abs().mean())) < 1e-6


def test_rotate_phases_is_a_time_shift_per_frequency_and_canonical_phase_removes_it():
    """Rotating slice f by θ_f equals shifting its sinusoid in time by θ_f T / (2π f); F_0 and the
    amplitudes are kept; canonical_phase is invariant to any rotation and makes a single mode real > 0."""
    g = torch.Generator().manual_seed(0)
    k, T = 5, 40
    sv = torch.randn(2, k, 4, 3, 4, generator=g, dtype=torch.float64)
    theta = torch.rand(2, k, generator=g, dtype=torch.float64) * 2 * math.pi
    rot = rotate_phases(sv, theta)
    torch.testing.assert_close(motion_texture(rot, 0.0, T), motion_texture(sv, 0.0, T))  # F_0 kept
    torch.testing.assert_close(spectral_to_complex(rot)[:, 1:].abs(), spectral_to_complex(sv)[:, 1:].abs())
    # oracle: slice f alone, rotated by θ, is the same slice evaluated θ T / (2π f) later
    f, t = 3, 7.25
    one = torch.zeros_like(sv[0])
    one[f] = sv[0, f]
    th = torch.zeros(k, dtype=torch.float64)
    th[f] = theta[0, f]
    moved = rotate_phases(one, th)
    delta = motion_texture(moved, t, T) - motion_texture(moved, 0.0, T)
    expect = motion_texture(one, t + th[f].item() * T / (2 * math.pi * f), T) - motion_texture(one,
            th[f].item() * T / (2 * math.pi * f), T)
    torch.testing.assert_close(delta, expect)
    # canonical: invariant under rotation, real and positive for one mode with a shared phase
    torch.testing.assert_close(canonical_phase(rot), canonical_phase(sv))
    mode = torch.zeros(k, 2, 3, 4, dtype=torch.complex128)
    mode[2, 0] = torch.rand(3, 4, generator=g,
                            dtype=torch.float64) * torch.exp(torch.tensor(1.1j, dtype=torch.complex128))
    c = spectral_to_complex(canonical_phase(complex_to_spectral(mode)))
    torch.testing.assert_close(c[2, 0].real, mode[2, 0].abs())
    assert float(c[2].imag.abs().max()) < 1e-12
