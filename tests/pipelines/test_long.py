"""MultiDiffusion over time (pipelines/long.py): oracles for the window fusion and sample_long."""
import dataclasses
from functools import partial

import pytest
import torch

from vidiff.conditioning import Cond
from vidiff.diffusion import ClassifierFreeGuidance, CosineSchedule, Denoiser, sample
from vidiff.pipelines.base import sample_videos
from vidiff.pipelines.long import TemporalWindows, fusion_weights, sample_long, window_starts
from vidiff.utils import VidiffError

COS = CosineSchedule()


def _per_frame(z, t, cond):
    """A backbone whose output at frame f depends only on frame f of z (and of cond.concat)."""
    tt = t.reshape(-1, 1, 1, 1, 1).to(z.dtype)
    out = torch.tanh(0.7 * z + 0.2 * z.roll(1, dims=-1)) - 0.3 * tt * z  # mixes pixels, never frames
    if cond is not None:
        out = out + 0.3 * cond.concat + 0.1 * cond.class_ids.to(z.dtype).reshape(-1, 1, 1, 1, 1)
    return out


@pytest.mark.parametrize("frames,window,overlap", [(17, 5, 2), (16, 4, 0), (9, 8, 7), (3, 8, 4), (33, 16, 8)])
@pytest.mark.parametrize("weighting", ["triangular", "uniform"])
def test_fusion_weights_sum_to_one_and_windows_cover(frames, window, overlap, weighting):
    starts = window_starts(frames, window, overlap)
    w = fusion_weights(frames, window, overlap, weighting)  # (n_windows, F)
    assert w.shape == (len(starts), frames)
    assert torch.allclose(w.sum(0), torch.ones(frames, dtype=torch.float64), atol=1e-12)
    assert (w >= 0).all()
    for i, s in enumerate(starts):  # each window is full length, in range; weight 0 outside it
        span = min(window, frames)
        assert 0 <= s and s + span <= frames and (w[i, s:s + span] > 0).all()
        assert w[i, :s].sum() == 0 and w[i, s + span:].sum() == 0
    assert starts[0] == 0 and starts[-1] == max(0, frames - window)  # last window aligned to the end
    assert all(b - a <= window - overlap for a, b in zip(starts, starts[1:]))  # overlap at least `overlap`


@pytest.mark.parametrize("weighting", ["triangular", "uniform"])
def test_per_frame_model_windowed_equals_full(weighting):
    den = Denoiser(_per_frame, "v")
    z = torch.randn(2, 3, 17, 4, 4, dtype=torch.float64)
    tw = TemporalWindows(den, window=5, overlap=2, weighting=weighting, batch_size=3)
    for t in (0.3, torch.tensor([0.2, 0.9], dtype=torch.float64)):  # one time for the batch, or per sample
        full, win = den(z, t, COS), tw(z, t, COS)
        for k in ("x0", "eps", "v"):
            assert torch.allclose(getattr(win, k), getattr(full, k), atol=1e-12), k
    # negative control: a model that mixes frames sees only its window, so the fusion differs
    mixing = Denoiser(lambda z, t, c: z.roll(1, dims=2), "v")
    assert not torch.allclose(TemporalWindows(mixing, 5, 2)(z, 0.3, COS).x0, mixing(z, 0.3, COS).x0)
    # … and through every sampler, as a guidance factory
    noise = torch.randn(2, 3, 13, 4, 4, dtype=torch.float64)
    for sampler in ("ddim", "ddpm", "dpmpp_2m"):
        kw = dict(sampler=sampler)
        a = sample(den, noise, COS, 6, generator=torch.Generator().manual_seed(0), **kw)
        b = sample(den, noise, COS, 6, generator=torch.Generator().manual_seed(0),
                   guidance=partial(TemporalWindows, window=4, overlap=1, weighting=weighting), **kw)
        assert torch.allclose(a, b, atol=1e-10), sampler


def test_cond_sliced_per_window_and_cfg_composes():
    """cond.concat is cut along F with z; class ids follow their sample; CFG can sit inside the windows."""
    den = Denoiser(_per_frame, "v")
    z = torch.randn(2, 3, 11, 4, 4, dtype=torch.float64)
    cond = Cond(class_ids=torch.tensor([1, 3]), concat=torch.randn(2, 3, 11, 4, 4, dtype=torch.float64))
    null = Cond(class_ids=torch.tensor([0, 0]), concat=torch.zeros(2, 3, 11, 4, 4, dtype=torch.float64))
    win = TemporalWindows(den, window=4, overlap=2, batch_size=5)
    assert torch.allclose(win(z, 0.5, COS, cond).x0, den(z, 0.5, COS, cond).x0, atol=1e-12)
    cfg = partial(ClassifierFreeGuidance, w=2.0, null_cond=null)
    full = sample(den, z, COS, 4, cond=cond, guidance=cfg)
    # CFG outside the windows: its batched [cond, null] call is cut into windows like any other cond
    windowed = sample(den, z, COS, 4, cond=cond, guidance=[partial(TemporalWindows, window=4, overlap=2), cfg])
    assert torch.allclose(windowed, full, atol=1e-10)


def test_windows_run_in_chunks_of_batch_size():
    calls = []

    def rec(z, t, cond):
        calls.append(tuple(z.shape))
        return torch.zeros_like(z)

    z = torch.randn(3, 3, 20, 4, 4)
    TemporalWindows(Denoiser(rec, "v"), window=6, overlap=3, batch_size=4)(z, 0.5, COS)
    n_windows = len(window_starts(20, 6, 3))  # 0, 3, 6, 9, 12, 14 -> 6
    assert n_windows == 6
    assert len(calls) == -(-3 * n_windows // 4)  # ceil(pairs / batch_size) calls
    assert all(s[0] <= 4 and s[2] == 6 for s in calls)  # never more than 4 windows of 6 frames at once


def test_one_window_equals_plain_sampling(tiny_pipe):
    """frames <= window: sample_long is plain sampling, bit for bit."""
    for sampler in ("ddim", "ddpm"):
        plain = sample_videos(tiny_pipe.model, tiny_pipe.diffusion, (2, 3, 4, 16, 16), steps=3, sampler=sampler, seed=5)
        long = sample_long(tiny_pipe, 2, frames=4, steps=3, sampler=sampler, seed=5)  # window = model's 4
        assert torch.equal(long, plain), sampler
        assert torch.equal(sample_long(tiny_pipe, 2, frames=4, window=8, steps=3, sampler=sampler, seed=5), plain)


def test_sample_long_shapes_and_seeds(tiny_pipe):
    a = sample_long(tiny_pipe, 2, frames=10, overlap=2, steps=2, seed=3)
    assert a.shape == (2, 3, 10, 16, 16) and a.abs().max() <= 1 and torch.isfinite(a).all()
    assert torch.equal(a, sample_long(tiny_pipe, 2, frames=10, overlap=2, steps=2, seed=3))  # seeds reproduce
    one = sample_long(tiny_pipe, 1, frames=10, overlap=2, steps=2, seed=4)  # sample i depends on seed + i only
    assert torch.allclose(one[0], a[1], atol=1e-5)
    assert not torch.allclose(a[0], a[1])


def test_class_conditional_with_cfg(tiny_pipe):
    """prompt/class + CFG: with one window sample_long is exactly the pipeline's own CFG sampling."""
    from vidiff.data.io import to_uint8
    from vidiff.models import build_model
    from vidiff.pipelines import VideoPipeline

    torch.manual_seed(0)
    model = build_model(dataclasses.replace(tiny_pipe.model.config, num_classes=3))
    pipe = VideoPipeline(model, tiny_pipe.diffusion, tiny_pipe.video, {"conditioning": {"condition": "class"}})
    ref = pipe(num=2, class_id=1, guidance=2.0, steps=2, seed=0)  # uint8 (N, F, H, W, 3)
    one = sample_long(pipe, 2, frames=4, class_id=1, guidance=2.0, steps=2, seed=0)
    assert torch.equal(torch.from_numpy(to_uint8(one)), ref)
    assert sample_long(pipe, 1, frames=7, class_id=2, guidance=2.0, steps=2).shape == (1, 3, 7, 16, 16)
    # CFG rescale (Lin et al. 2024) reaches the long path too, the same as the pipeline's
    ref = pipe(num=2, class_id=1, guidance=2.0, guidance_rescale=0.7, steps=2, seed=0)
    one = sample_long(pipe, 2, frames=4, class_id=1, guidance=2.0, guidance_rescale=0.7, steps=2, seed=0)
    assert torch.equal(torch.from_numpy(to_uint8(one)), ref)
    assert not torch.equal(ref, pipe(num=2, class_id=1, guidance=2.0, steps=2, seed=0))


def test_errors():
    den = Denoiser(_per_frame, "v")
    with pytest.raises(VidiffError, match="overlap < window"):
        TemporalWindows(den, window=4, overlap=4)
    with pytest.raises(VidiffError, match="unknown window weighting"):
        TemporalWindows(den, window=4, overlap=1, weighting="gauss")
    with pytest.raises(VidiffError, match=r"\(B, C, F, H, W\)"):
        TemporalWindows(den, window=4, overlap=1)(torch.randn(2, 3, 4, 4), 0.5, COS)
