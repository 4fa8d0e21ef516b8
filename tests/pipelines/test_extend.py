"""Extension and interpolation by reconstruction guidance (pipelines/extend.py) and their CLI, on a tiny model."""
import numpy as np
import pytest
import torch

from vidiff.cli import main as cli
from vidiff.data import io
from vidiff.diffusion import CosineSchedule, Denoiser, ReconstructionGuidance, sample
from vidiff.pipelines.extend import Replacement, extend, fill_frames, interpolate, interpolation_windows
from vidiff.utils import VidiffError

COS = CosineSchedule()
KEEP_TOL = 1e-4  # known frames after sampling vs the data, on the [-1, 1] scale (float32 round-off only)


def _video(frames, h=16, w=16, seed=0):
    """A random uint8 video (F, H, W, 3)."""
    return np.random.default_rng(seed).integers(0, 256, (frames, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "dpmpp_2m"])
@pytest.mark.parametrize("method", ["reconstruction", "replacement"])
def test_fill_frames_keeps_the_known_frames(tiny_pipe, sampler, method):
    x_known = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[0, :2] = True  # extension: the first two frames
    mask[1, ::2] = True  # interpolation: every other frame
    out = fill_frames(tiny_pipe, x_known, mask, steps=4, sampler=sampler, method=method, seed=1)
    assert out.shape == x_known.shape
    m = mask[:, None, :, None, None].expand_as(out)
    assert (out[m] - x_known[m]).abs().max() <= KEEP_TOL
    assert (out[~m] - x_known[~m]).abs().mean() > 0.1  # the other frames are generated, not copied


def test_replacement_is_reconstruction_guidance_with_weight_zero(tiny_pipe):
    den = Denoiser(tiny_pipe.model, "v")
    x_known = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    mask = torch.tensor([[True, True, False, False]] * 2)
    z = torch.randn_like(x_known)
    rep, rg0 = Replacement(den, x_known, mask), ReconstructionGuidance(den, x_known, mask, weight=0.0)
    with torch.no_grad():
        for t in (0.9, 0.4):
            a, b = rep(z, t, COS), rg0(z, t, COS)
            for k in ("x0", "eps", "v"):
                assert torch.allclose(getattr(a, k), getattr(b, k), atol=1e-5), k
    assert torch.allclose(sample(rep, z, COS, 3), sample(rg0, z, COS, 3), atol=1e-5)
    # with w_r > 0 the guidance gradient changes the generated frames
    rg = ReconstructionGuidance(den, x_known, mask, weight=8.0)
    assert not torch.allclose(sample(rg, z, COS, 3)[:, :, 2:], sample(rep, z, COS, 3)[:, :, 2:], atol=1e-3)


def test_extend_frame_counts_given_frames_and_seed(tiny_pipe):
    v = _video(5)
    y = extend(tiny_pipe, v, 10, context=2, steps=2, seed=3)  # 4-frame windows: 2 new frames each, 3 windows
    assert y.shape == (3, 10, 16, 16) and y.abs().max() <= 1
    assert torch.equal(y[:, :5], io.from_uint8(v))  # the given frames come first, unchanged
    assert torch.equal(y, extend(tiny_pipe, v, 10, context=2, steps=2, seed=3))
    assert not torch.equal(y, extend(tiny_pipe, v, 10, context=2, steps=2, seed=4))
    # batched input -> batched output; sample b depends on seed + b only
    yb = extend(tiny_pipe, np.stack([_video(5, seed=1), v]), 7, context=3, method="replacement", steps=2, seed=2)
    assert yb.shape == (2, 3, 7, 16, 16)
    y1 = extend(tiny_pipe, v, 7, context=3, method="replacement", steps=2, seed=3)
    assert torch.allclose(yb[1], y1, atol=1e-5)


def test_extend_resizes_with_a_notice_and_rejects_bad_requests(tiny_pipe, capsys):
    y = extend(tiny_pipe, _video(3, h=20, w=24), 5, steps=1)
    assert y.shape == (3, 5, 16, 16)
    assert "resizing the 24x20 video to the model's 16x16" in capsys.readouterr().err
    with pytest.raises(VidiffError, match="fewer than the 2 context frames"):
        extend(tiny_pipe, _video(1), 8, steps=1)
    with pytest.raises(VidiffError, match="already has 5 frames"):
        extend(tiny_pipe, _video(5), 5, steps=1)
    with pytest.raises(VidiffError, match="--context must be between 1 and 3"):
        extend(tiny_pipe, _video(5), 8, context=4, steps=1)
    with pytest.raises(VidiffError, match="unknown method"):
        extend(tiny_pipe, _video(5), 8, method="inpaint", steps=1)


@pytest.mark.parametrize("given,factor,window", [(9, 2, 4), (5, 3, 16), (20, 4, 16), (2, 2, 3)])
def test_interpolation_windows_cover_every_interval(given, factor, window):
    k = (window - 1) // factor + 1
    starts = interpolation_windows(given, factor, window)
    assert starts[0] == 0 and starts[-1] == max(0, given - k)
    assert all(0 < b - a <= k - 1 for a, b in zip(starts, starts[1:]))  # consecutive windows share a given frame


def test_interpolate_counts_and_given_frames(tiny_pipe):
    v = _video(5)
    y = interpolate(tiny_pipe, v, 2, steps=2, batch_size=3)  # 4-frame windows hold 2 given frames: 4 windows
    assert y.shape == (3, 9, 16, 16)
    assert torch.equal(y[:, ::2], io.from_uint8(v))
    assert (y[:, 1::2].abs().sum(dim=(0, 2, 3)) > 0).all()  # every in-between frame was generated
    assert torch.allclose(y, interpolate(tiny_pipe, v, 2, steps=2, batch_size=1), atol=1e-5)  # batch-independent
    assert interpolate(tiny_pipe, _video(3), 3, steps=1, method="replacement").shape == (3, 7, 16, 16)
    with pytest.raises(VidiffError, match="at least 2 frames"):
        interpolate(tiny_pipe, _video(1), 2, steps=1)
    with pytest.raises(VidiffError, match="too large for a 4-frame window"):
        interpolate(tiny_pipe, v, 4, steps=1)


def test_cli_extend_and_interpolate(tiny_ckpt, tmp_path, capsys):
    src = io.write_mp4(tmp_path / "in.mp4", _video(5), fps=6)
    args = ["--model", str(tiny_ckpt), "--steps", "2", "--out", str(tmp_path / "o"), "--format", "mp4,npy",
            "--scale", "2"]
    assert cli(["extend", str(src), "--frames", "9", "--name", "e", *args]) == 0
    assert "extended in.mp4 from 5 to 9 frames" in capsys.readouterr().out
    arr = np.load(tmp_path / "o" / "e.npy")
    assert arr.shape == (9, 16, 16, 3) and arr.dtype == np.uint8
    assert io.read_video(tmp_path / "o" / "e.mp4").shape == (9, 32, 32, 3)
    assert cli(["interpolate", str(src), "--factor", "2", "--method", "replacement", *args]) == 0
    assert np.load(tmp_path / "o" / "in_interpolated.npy").shape == (9, 16, 16, 3)
    assert io.video_fps(tmp_path / "o" / "in_interpolated.mp4") == pytest.approx(12)
    # errors: one line, exit code 2
    assert cli(["extend", str(src), "--frames", "9", "--context", "6", *args]) == 2
    assert "--context must be between 1 and 3" in capsys.readouterr().err
    short = io.write_gif(tmp_path / "short.gif", _video(1))
    assert cli(["extend", str(short), "--frames", "9", *args]) == 2
    assert "fewer than the 2 context frames" in capsys.readouterr().err
    assert cli(["extend", str(src), "--frames", "9", "--method", "magic", *args]) == 2
    err = capsys.readouterr().err
    assert "--method" in err and "magic" in err
    assert cli(["interpolate", str(tmp_path / "missing.mp4"), *args]) == 2
    assert not list((tmp_path / "o").glob("*.tmp*"))


def test_fill_frames_feeds_a_self_conditioned_model_its_guided_x0():
    """A self-conditioned model (Chen et al. 2022) gets each step's x̂₀ — after reconstruction guidance has
    put the known frames back — as its next input, and the known frames are still kept."""
    from vidiff.conditioning import Cond
    from vidiff.models import build_model
    from vidiff.pipelines import DiffusionConfig, VideoFormat, VideoPipeline

    from .conftest import TINY

    torch.manual_seed(0)
    model = build_model({**TINY, "self_cond": True}).eval()
    seen = []
    forward = model.forward

    def spy(x, t, cond=None):
        seen.append(None if cond is None or cond.self_cond is None else cond.self_cond.detach().clone())
        return forward(x, t, cond)

    model.forward = spy
    pipe = VideoPipeline(model, DiffusionConfig(), VideoFormat(frames=4, size=16, fps=6), name="sc")
    x_known = torch.rand(1, 3, 4, 16, 16) * 2 - 1
    mask = torch.zeros(1, 4, dtype=torch.bool)
    mask[0, :2] = True
    out = fill_frames(pipe, x_known, mask, steps=3, sampler="ddim", seed=0, cond=Cond())
    assert seen[0] is None and len(seen) == 3
    m = mask[:, None, :, None, None].expand_as(out)
    for prev in seen[1:]:  # the fed-back estimate holds the known frames (replacement inside the guidance)
        assert (prev[m] - x_known[m]).abs().max() <= KEEP_TOL
    assert (out[m] - x_known[m]).abs().max() <= KEEP_TOL
