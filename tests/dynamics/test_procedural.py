"""The procedural scenes: the true spectral volume explains the rendered video; motion follows appearance."""
import numpy as np
import pytest
import torch

from vidiff.dynamics.flow import extract_spectral_volume
from vidiff.dynamics.procedural import PLANT_COLOURS, ProceduralDataset, _parts, make_scene
from vidiff.dynamics.spectral import motion_texture, spectral_to_complex
from vidiff.utils import VidiffError


def _sample(img, x, y):
    """Bilinear sample (H, W, 3) at real coordinates."""
    h, w = img.shape[:2]
    x0 = np.clip(np.floor(x).astype(int), 0, w - 2); y0 = np.clip(np.floor(y).astype(int), 0, h - 2)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    im = img.astype(float)
    return (im[y0, x0] * (1 - fx) * (1 - fy) + im[y0, x0 + 1] * fx * (1 - fy)
            + im[y0 + 1, x0] * (1 - fx) * fy + im[y0 + 1, x0 + 1] * fx * fy)


def test_true_spectral_volume_explains_the_video():
    sc = make_scene(3, (48, 48), frames=40, k=8)
    assert sc.video.shape == (40, 48, 48, 3) and (sc.video[0] == sc.image).all()
    h, w = sc.image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    moving = sc.mask & (spectral_to_complex(sc.spectral_volume)[1:].abs().sum((0, 1)).numpy() > 0.5)
    assert moving.sum() > 20
    for t in (7, 13, 29):
        d = motion_texture(sc.spectral_volume, t, sc.period).numpy()  # D(t, p) relative to frame 0
        moved = _sample(sc.video[t], xx + d[0], yy + d[1])[moving]
        still = _sample(sc.video[t], xx, yy)[moving]
        ref = sc.image.astype(float)[moving]
        err_true, err_zero = np.abs(moved - ref).mean(), np.abs(still - ref).mean()
        assert err_true < 0.35 * err_zero, (t, err_true, err_zero)
    np.testing.assert_allclose(motion_texture(sc.spectral_volume, 0.0, sc.period).numpy(), 0, atol=1e-5)


def test_extraction_recovers_procedural_motion():
    sc = make_scene(1, (64, 64), frames=40, k=8)
    sv = extract_spectral_volume(sc.video, 40, 8)
    a, b = spectral_to_complex(sv)[1:], spectral_to_complex(sc.spectral_volume)[1:]
    big = b.abs() > 1.0  # well-moving pixels and frequencies
    assert big.sum() > 20
    rel = (a - b).abs()[big].mean() / b.abs()[big].mean()
    assert rel < 0.4, float(rel)


def test_frequency_follows_colour_and_amplitude_follows_size():
    rng = np.random.default_rng(0)
    parts = [p for s in range(20) for p in _parts(64, 64, 16, np.random.default_rng(s), 3, 1)]
    by_colour = {}
    for p in parts:
        if p.kind == "plant":
            c = int(np.argmin(np.abs(PLANT_COLOURS - p.colour).sum(1)))
            by_colour.setdefault(c, set()).add(p.f)
            assert abs(p.amp - 0.08 * p.length) < 1e-9
    assert all(len(fs) == 1 for fs in by_colour.values()) and len(by_colour) >= 4
    hanging = sorted((p.length, p.f) for p in parts if p.kind == "hanging")
    assert hanging[0][1] >= hanging[-1][1]  # shorter string swings faster
    del rng


def test_dataset_items_and_bad_args():
    ds = ProceduralDataset(2, size=(32, 32), frames=31, k=8)
    item = ds[1]
    assert item["image"].shape == (3, 32, 32) and item["spectral_volume"].shape == (8, 4, 32, 32)
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    torch.testing.assert_close(ds[1]["spectral_volume"], item["spectral_volume"])
    with pytest.raises(VidiffError):
        make_scene(0, frames=10, k=16)
