"""Stylisation by AdaIN statistics transfer: the statistics oracle, and the temporal term against per-frame."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vidiff.metrics.temporal import flicker, warp_error
from vidiff.pipelines.stylize import per_frame, smooth_over_time, stylize
from vidiff.utils import VidiffError


def _style(seed=0, size=24):
    rng = np.random.default_rng(seed)
    mean, std = np.array([0.62, 0.40, 0.30]), np.array([0.10, 0.05, 0.12])
    return np.clip((rng.normal(mean, std, (size, size, 3))) * 255, 0, 255).round().astype(np.uint8)


def _content(frames=6, size=24, seed=1):
    """A smooth textured clip drifting right: uint8 (F, H, W, 3) with mid-range values."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for t in range(frames):
        r = 0.5 + 0.2 * np.sin(6 * (xx - 0.05 * t) + 1) + 0.05 * rng.normal(size=(size, size))
        g = 0.45 + 0.15 * np.cos(5 * yy)
        b = 0.5 + 0.1 * np.sin(4 * (xx + yy))
        out.append(np.stack([r, g + 0 * r, b + 0 * r], -1))
    return (np.clip(np.stack(out), 0, 1) * 255).round().astype(np.uint8)


def _stats(x, axes):
    x = x.astype(np.float64) / 255
    return x.mean(axis=axes), x.std(axis=axes)


def test_per_frame_adain_gives_every_frame_the_style_statistics():
    style, video = _style(), _content()
    s_mean, s_std = _stats(style, (0, 1))
    out = per_frame(video, style)
    assert out.shape == video.shape and out.dtype == np.uint8
    mean, std = _stats(out, (1, 2))  # (F, 3)
    assert np.abs(mean - s_mean).max() < 2 / 255 and np.abs(std - s_std).max() < 2 / 255


def test_clip_statistics_give_the_whole_clip_the_style_statistics():
    style, video = _style(2), _content(seed=3)
    s_mean, s_std = _stats(style, (0, 1))
    out = stylize(video, style, smooth=math.inf, blend=0.0)
    mean, std = _stats(out, (0, 1, 2))
    assert np.abs(mean - s_mean).max() < 2 / 255 and np.abs(std - s_std).max() < 2 / 255
    per_frame_means = _stats(out, (1, 2))[0]
    assert np.ptp(per_frame_means, axis=0).max() > 1 / 255  # frames keep their own variation


def test_smoothing_over_time_limits():
    v = np.arange(12, dtype=float).reshape(6, 2)
    assert np.array_equal(smooth_over_time(v, 0), v)
    assert np.allclose(smooth_over_time(v, math.inf), v.mean(axis=0))
    mid = smooth_over_time(v, 1.0)
    assert np.allclose(mid[2:4], v[2:4], atol=0.6) and np.allclose(mid.mean(axis=0), v.mean(axis=0), atol=0.6)


def _jitter_clip(frames=10, size=32, seed=0):
    """A static gradient background with a white disc whose radius jitters from frame to frame: every frame's
    statistics change although the background never does."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    bg = np.stack([0.2 + 0.5 * xx / size, 0.3 + 0.3 * yy / size, 0.4 + 0 * xx], -1)
    out = []
    for _ in range(frames):
        r = rng.uniform(2, 9)
        disc = ((xx - 16) ** 2 + (yy - 16) ** 2) < r * r
        out.append(np.where(disc[..., None], 1.0, bg))
    return (np.stack(out) * 255).round().astype(np.uint8)


def test_temporal_term_flickers_less_than_per_frame_stylisation():
    video, style = _jitter_clip(), _style(4)
    base, temporal = per_frame(video, style), stylize(video, style)
    corner = (slice(None), slice(0, 6), slice(0, 6))  # static background, far from the disc
    assert flicker(base[corner])[0] > 1.5 / 255  # per frame: the disc re-normalises the background every frame
    assert flicker(temporal[corner])[0] < 0.5 / 255  # temporal: the background stays put
    assert flicker(temporal)[0] < 0.7 * flicker(base)[0]
    assert warp_error(temporal)[0] < 0.5 * warp_error(base)[0]


def test_flow_blending_averages_frame_noise_away():
    rng = np.random.default_rng(5)
    clean = _content(frames=8, seed=7)[:1].repeat(8, axis=0).astype(float)
    noisy = np.clip(clean + rng.normal(0, 6, clean.shape), 0, 255).round().astype(np.uint8)  # per-frame noise
    style = _style(6)
    plain = stylize(noisy, style, blend=0.0)
    blended = stylize(noisy, style, blend=0.5)
    assert flicker(blended)[0] < 0.8 * flicker(plain)[0]


@pytest.mark.parametrize("kwargs, match", [({"smooth": -1}, "--smooth"), ({"blend": 1.0}, "--blend")])
def test_bad_parameters_are_refused(kwargs, match):
    with pytest.raises(VidiffError, match=match):
        stylize(_content(2), _style(), **kwargs)
    with pytest.raises(VidiffError, match="style image"):
        stylize(_content(2), _style()[..., :2])


def test_stylize_cli_writes_the_video_and_compares(tmp_path, capsys):
    from vidiff.cli import main
    from vidiff.data.io import read_video, write_png, write_video

    clip = write_video(tmp_path / "in.npy", _jitter_clip(frames=4, size=16))
    style = write_png(tmp_path / "style.png", _style(8, size=16))
    out = tmp_path / "out.npy"
    assert main(["stylize", str(clip), "--style", str(style), "--out", str(out), "--compare"]) == 0
    assert read_video(out).shape == (4, 16, 16, 3)
    printed = capsys.readouterr().out
    assert "per frame" in printed and "warp error" in printed
    (tmp_path / "bad.png").write_text("not an image")
    assert main(["stylize", str(clip), "--style", str(tmp_path / "bad.png"), "--out", str(tmp_path / "x.npy")]) == 2
    assert main(["stylize", str(clip), "--style", str(style), "--blend", "1", "--out", str(tmp_path / "x.npy")]) == 2
    assert not (tmp_path / "x.npy").exists()
