"""PSNR/SSIM against scikit-image; temporal metrics on synthetic motion with known ground truth."""
import cv2
import numpy as np
import pytest
import torch

from vidiff.metrics.flow import warp
from vidiff.metrics.image import psnr, ssim
from vidiff.metrics.temporal import (compose_flow, flicker, motion_consistency, motion_magnitude, over_windows,
                                     sliding_windows, warp_error)
from vidiff.utils import VidiffError


def texture(h, w, seed=0, blur=2.0):
    t = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    t = cv2.GaussianBlur(t, (0, 0), blur)
    return ((t - t.min()) / (t.max() - t.min()) * 255).astype(np.uint8)


def panning(size=32, frames=8, dx=1, dy=2, seed=0):
    """A camera panning over a smooth texture: content moves by (-dx, -dy) pixels per frame."""
    big = texture(size + frames * abs(dy) + 8, size + frames * abs(dx) + 8, seed)
    return np.stack([big[4 + dy * t:4 + dy * t + size, 4 + dx * t:4 + dx * t + size] for t in range(frames)])


def noisy_pair(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (2, 3, 24, 20, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_psnr_ssim_match_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    a, b = noisy_pair()
    p, s = psnr(a, b), ssim(a, b)
    assert p.shape == s.shape == (2, 3)
    for i in range(2):
        for t in range(3):
            assert p[i, t].item() == pytest.approx(skm.peak_signal_noise_ratio(a[i, t], b[i, t], data_range=255),
                                                   rel=1e-5)
            ref = skm.structural_similarity(a[i, t], b[i, t], gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False, data_range=255, channel_axis=-1)
            assert s[i, t].item() == pytest.approx(ref, abs=1e-5)


def test_psnr_closed_form_and_ssim_identity():
    a = torch.zeros(1, 3, 2, 16, 16)
    b = a + 0.1  # MSE 0.01 on a range of 2: PSNR = 10 log10(4 / 0.01)
    assert psnr(a, b)[0, 0].item() == pytest.approx(10 * np.log10(400), rel=1e-5)
    x = torch.rand(1, 3, 2, 16, 16) * 2 - 1
    np.testing.assert_allclose(ssim(x, x), 1.0, atol=1e-6)
    with pytest.raises(VidiffError, match="equal shapes"):
        psnr(x, x[:, :, :1])


def test_flicker_closed_form():
    v = np.zeros((1, 4, 8, 8, 3), np.uint8)
    assert flicker(v)[0] == 0
    v[:, 1::2] = 255  # alternating black/white
    assert flicker(v)[0] == pytest.approx(1.0)


def test_global_translation_has_zero_warp_error_and_known_magnitude():
    v = panning(48, 6, dx=1, dy=2)[None]
    assert warp_error(v, border=4)[0] < 0.01
    assert motion_magnitude(v)[0] == pytest.approx(np.hypot(1, 2), abs=0.4)
    static = np.repeat(v[:, :1], 6, axis=1)
    assert warp_error(static)[0] < 1e-3 and motion_magnitude(static)[0] < 0.05


def test_shuffled_frames_score_worse():
    v = panning(32, 8)[None]
    shuffled = v[:, [0, 5, 2, 7, 1, 4, 6, 3]]
    assert flicker(shuffled)[0] > 1.3 * flicker(v)[0]
    assert warp_error(shuffled, border=3)[0] > 5 * warp_error(v, border=3)[0]
    assert motion_consistency(shuffled)[0] > motion_consistency(v)[0]


def test_flow_composition_of_constant_flows_and_warp():
    h, w = 12, 10
    f01 = np.broadcast_to(np.float32([1.0, 0.5]), (h, w, 2)).copy()
    f12 = np.broadcast_to(np.float32([-2.0, 1.0]), (h, w, 2)).copy()
    comp, valid = compose_flow(f01, f12)
    np.testing.assert_allclose(comp[valid], np.float32([-1.0, 1.5]) * np.ones((valid.sum(), 1)), atol=1e-5)
    assert not valid[:, -1].any() and valid[0, 0]  # sampling at x+1 leaves the frame in the last column
    img = np.arange(h * w, dtype=np.float32).reshape(h, w)
    out, ok = warp(img, np.broadcast_to(np.float32([1.0, 0.0]), (h, w, 2)).copy())
    np.testing.assert_allclose(out[:, :-1], img[:, 1:])


def test_sliding_windows_and_over_windows():
    assert sliding_windows(8, 4) == [(0, 4), (4, 8)]
    assert sliding_windows(6, 4, 1) == [(0, 4), (1, 5), (2, 6)]
    with pytest.raises(VidiffError, match="longer than the videos"):
        sliding_windows(4, 5)
    v = np.zeros((2, 8, 8, 8, 3), np.uint8)
    v[:, 5::2] = 200  # static first half, flickering second half
    vals = over_windows(flicker, v, window=4, stride=2)
    assert [s for s, _ in vals] == [0, 2, 4] and vals[0][1] == 0 and vals[-1][1] > 0.5
