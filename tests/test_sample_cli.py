"""`vidiff sample` / `vidiff info` end to end on a tiny checkpoint: formats, seeds, errors."""

import numpy as np
import pytest
import torch

from vidiff.cli import main as cli
from vidiff.data import io
from vidiff.models import build_model
from vidiff.pipelines import DiffusionConfig, VideoFormat, VideoPipeline, load_pipeline
from vidiff.checkpoint import save_pretrained
from vidiff.config import config_to_dict

TINY = {"arch": "unet3d", "base_channels": 8, "channel_mults": [1, 2], "attention_levels": [1],
        "head_dim": 8, "norm_groups": 8, "patch_size": 1}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = build_model(TINY)
    save_pretrained(folder, model, {
        "model": config_to_dict(model.config),
        "diffusion": config_to_dict(DiffusionConfig()),
        "video": config_to_dict(VideoFormat(frames=4, size=16, fps=6)),
        "summary": {"steps": 0},
    })
    return folder


def test_sample_cli_formats_and_seed(ckpt, tmp_path, capsys):
    args = ["sample", "--model", str(ckpt), "--num", "3", "--steps", "2", "--seed", "7",
            "--out", str(tmp_path / "a"), "--name", "s", "--format", "npy,mp4,gif", "--scale", "2"]
    assert cli(args) == 0
    arr = np.load(tmp_path / "a" / "s.npy")
    assert arr.shape == (3, 4, 16, 16, 3) and arr.dtype == np.uint8
    grid = io.read_video(tmp_path / "a" / "s.mp4")
    assert grid.shape[0] == 4  # a grid video with the model's frame count
    assert io.read_video(tmp_path / "a" / "s" / "002.gif").shape == (4, 32, 32, 3)  # scaled ×2
    assert "wrote" in capsys.readouterr().out
    # same seed -> same videos; another seed -> different videos
    assert cli(args[:-6] + ["--out", str(tmp_path / "b"), "--name", "s", "--format", "npy"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "s.npy"), arr)
    assert cli(["sample", "--model", str(ckpt), "--num", "3", "--steps", "2", "--seed", "8",
                "--out", str(tmp_path / "c"), "--name", "s", "--format", "npy"]) == 0
    assert not np.array_equal(np.load(tmp_path / "c" / "s.npy"), arr)


def test_python_api_matches_cli(ckpt, tmp_path):
    pipe = load_pipeline(str(ckpt))
    assert isinstance(pipe, VideoPipeline) and pipe.video.frames == 4
    a = pipe(num=3, steps=2, seed=7, batch_size=1)
    b = pipe(num=3, steps=2, seed=7, batch_size=2)
    assert a.shape == (3, 4, 16, 16, 3) and a.dtype == torch.uint8
    # sample i's noise depends on seed + i only: the batch it is drawn in does not matter
    assert (a.int() - b.int()).abs().max() <= 1  # batched kernels may differ in the last bit
    one = pipe(num=1, steps=2, seed=8)
    assert (one.int() - a[1:2].int()).abs().max() <= 1  # video 1 of seed 7 is video 0 of seed 8
    assert not torch.equal(a[0], a[1])


def test_info_and_errors(ckpt, tmp_path, capsys):
    assert cli(["info", str(ckpt)]) == 0
    out = capsys.readouterr().out
    n = sum(p.numel() for p in build_model(TINY).parameters())
    assert f"parameters: {n:,}" in out and '"arch": "unet3d"' in out
    assert cli(["sample", "--model", str(ckpt), "--format", "avi", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--format" in err and "avi" in err
    assert cli(["sample", "--model", str(ckpt), "--frames", "3", "--out", str(tmp_path)]) == 0  # any F works
    assert "(ddpm, 50 steps, seed 0" in capsys.readouterr().out  # the defaults `make demo` spells out
    assert cli(["sample", "--model", str(tmp_path), "--out", str(tmp_path)]) == 2  # not a checkpoint
    assert "config.json is missing" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.tmp*"))


def test_sample_cli_long_video_by_windows(ckpt, tmp_path, capsys):
    """--frames beyond the model's 4 runs MultiDiffusion windows; window = the model's length with
    one window is plain sampling."""
    out = tmp_path / "long"
    assert cli(["sample", "--model", str(ckpt), "--num", "1", "--steps", "2", "--frames", "10",
                "--out", str(out), "--name", "l", "--format", "npy"]) == 0
    assert np.load(out / "l.npy").shape == (1, 10, 16, 16, 3)
    assert cli(["sample", "--model", str(ckpt), "--num", "1", "--steps", "2", "--window", "4",
                "--out", str(out), "--name", "w", "--format", "npy"]) == 0
    assert cli(["sample", "--model", str(ckpt), "--num", "1", "--steps", "2",
                "--out", str(out), "--name", "p", "--format", "npy"]) == 0
    np.testing.assert_array_equal(np.load(out / "w.npy"), np.load(out / "p.npy"))
    assert cli(["sample", "--model", str(ckpt), "--num", "1", "--steps", "2", "--frames", "8",
                "--prompt", "a red circle", "--out", str(out)]) == 2
    assert "not trained with text conditioning" in capsys.readouterr().err


def test_sample_cli_pc_sampler(ckpt, tmp_path, capsys):
    """--sampler pc takes the corrector's options; snr 0 is DDPM; the options with another sampler or
    a malformed range are one-line errors."""
    base = ["sample", "--model", str(ckpt), "--num", "2", "--steps", "3", "--seed", "1", "--format", "npy"]
    assert cli(base + ["--sampler", "ddpm", "--out", str(tmp_path / "d")]) == 0
    assert cli(base + ["--sampler", "pc", "--snr", "0", "--out", str(tmp_path / "p0")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "p0" / "samples.npy"), np.load(tmp_path / "d" / "samples.npy"))
    assert cli(base + ["--sampler", "pc", "--snr", "0.3", "--corrector-steps", "2", "--corrector-range", "0.2,0.9",
                       "--out", str(tmp_path / "p")]) == 0
    assert "snr 0.3, corrector_steps 2, corrector_range (0.2, 0.9)" in capsys.readouterr().out
    assert not np.array_equal(np.load(tmp_path / "p" / "samples.npy"), np.load(tmp_path / "d" / "samples.npy"))
    assert cli(base + ["--sampler", "ddim", "--snr", "0.2", "--out", str(tmp_path / "x")]) == 2
    assert "--snr applies only to --sampler pc" in capsys.readouterr().err
    assert cli(base + ["--sampler", "pc", "--corrector-range", "0.2", "--out", str(tmp_path / "x")]) == 2
    assert "--corrector-range takes two times" in capsys.readouterr().err
    assert cli(base + ["--sampler", "pc", "--corrector-range", "0.9,0.2", "--out", str(tmp_path / "x")]) == 2
    assert "corrector_range" in capsys.readouterr().err


def test_sampler_and_steps_are_checked_before_the_model_loads(tmp_path, capsys):
    """A bad --sampler or --steps is named even when --model does not exist: it is refused while parsing."""
    for bad, option in ((["--steps", "0"], "--steps"), (["--sampler", "euler_x"], "--sampler")):
        assert cli(["sample", "--model", str(tmp_path / "no-such-model"), *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: Invalid value for '{option}'") and "no-such-model" not in err


def test_the_default_sampler_is_what_make_demo_uses():
    """One default: `vidiff sample`'s --sampler/--steps are the ones the Makefile's demo passes."""
    from pathlib import Path

    from vidiff.cli.options import DEFAULT_SAMPLER, DEFAULT_STEPS

    demo = next(line for line in (Path(__file__).resolve().parents[1] / "Makefile").read_text().splitlines()
                if "vidiff sample" in line)
    assert f"--sampler {DEFAULT_SAMPLER} --steps {DEFAULT_STEPS}" in demo
