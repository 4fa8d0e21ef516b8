"""Bad input is refused in one line before work starts, outputs never mix runs, and file-system
errors never leave a traceback or a partial file (issue: reliability)."""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from vidiff import limits
from vidiff.config import config_from_dict
from vidiff.data import io
from vidiff.data.checker import check_batch
from vidiff.dynamics.flow import extract_spectral_volume
from vidiff.dynamics.spectral import trajectories_to_spectral
from vidiff.metrics.evaluation import evaluate
from vidiff.metrics.extractors import load_i3d
from vidiff.models import build_model
from vidiff.models.unet3d import UNet3DConfig
from vidiff.pipelines import resolve_model
from vidiff.pipelines.base import DiffusionConfig, VideoFormat, VideoPipeline
from vidiff.pipelines.extend import extend
from vidiff.pipelines.long import sample_long
from vidiff.train import TrainConfig
from vidiff.utils import VidiffError, atomic_write_text

TINY = UNet3DConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(), mid_attention=False, head_dim=8,
                    norm_groups=4)


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return VideoPipeline(build_model(TINY), DiffusionConfig(), VideoFormat(frames=4, size=16), name="tiny")


def _videos(n=3, f=4, s=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, f, s, s, 3), dtype=np.uint8)


def _cli_runs(runs: list[list], cwd, **env) -> list[tuple[int, str]]:
    """Each `vidiff ARGS` of `runs` in turn, in one subprocess (one Python + torch start-up): a list of
    (exit code, stderr) per run."""
    script = ("import sys; from vidiff.cli import main\n"
              f"for args in {[[str(a) for a in r] for r in runs]!r}:\n"
              "    rc = main(args)\n"
              "    print(f'\\n@@rc {rc}', file=sys.stderr, flush=True)\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1", **env},
                       capture_output=True, text=True, timeout=600)
    parts = r.stderr.split("@@rc ")
    assert len(parts) == len(runs) + 1, r.stderr
    return [(int(p.split()[0]), parts[i]) for i, p in enumerate(parts[1:])]


def _one_line_error(rc, err, *words):
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]


# --- item 3: file-system errors are one line, checked up front, never a partial file --------------

def test_output_paths_checked_before_work(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    with pytest.raises(VidiffError, match="--out .*file is a file"):
        io.check_output(tmp_path / "file", "--out", kind="dir")
    with pytest.raises(VidiffError, match="--json .*dir is a folder"):
        io.check_output(tmp_path / "dir", "--json")
    with pytest.raises(VidiffError, match="is a file, not a folder"):
        io.check_output(tmp_path / "file" / "sub" / "r.json", "--out")
    with pytest.raises(VidiffError, match="is a folder"):
        atomic_write_text(tmp_path / "dir", "{}")  # the writer itself refuses too
    ro = tmp_path / "ro"
    ro.mkdir()
    immutable = os.geteuid() == 0 and shutil.which("chattr") is not None
    if immutable:  # root ignores permission bits; an immutable folder refuses even root
        r = subprocess.run(["chattr", "+i", str(ro)], capture_output=True)
        immutable = r.returncode == 0
    if not immutable:
        if os.geteuid() == 0:
            pytest.skip("running as root without chattr: no way to make a folder unwritable")
        ro.chmod(0o500)
    try:
        with pytest.raises(VidiffError, match="--out .*(not permitted|denied)"):
            io.check_output(ro / "x.mp4", "--out")
        with pytest.raises(VidiffError, match="cannot write .*(not permitted|denied)"):
            io.write_npy(ro / "x.npy", np.zeros(3))
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(ro)])
        else:
            ro.chmod(0o700)
    assert list(ro.iterdir()) == []


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(VidiffError, match="No space left on device; free some disk space"):
        io.write_npy(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(VidiffError, match="No space left"):
        io.write_run(tmp_path / "out", "s", _videos(), ["gif", "npy"])  # fails after the gifs are staged
    assert list(tmp_path.iterdir()) == [tmp_path / "out"] and list((tmp_path / "out").iterdir()) == []


# --- item 5: huge requests are refused up front with the estimate and the free memory ------------

def test_memory_estimate_refuses_huge_requests(pipe, monkeypatch, capsys):
    monkeypatch.setenv("VIDIFF_MAX_MEMORY", "1G")
    assert limits.free_memory_bytes() == 1 << 30
    small = limits.estimate_sampling_bytes(TINY, 8, 16, 32, 32)
    assert limits.estimate_sampling_bytes(TINY, 8, 16, 64, 64) > 3.9 * small  # grows with the pixels
    with pytest.raises(VidiffError, match=r"needs about [\d.]+ GiB of memory but 1.0 GiB are free"):
        pipe(num=1, size=4096, steps=1)
    with pytest.raises(VidiffError, match=r"100000x16x16 needs about .* GiB"):
        sample_long(pipe, 1, frames=100_000, steps=1)
    with pytest.raises(VidiffError, match="extending to 1000000 frames .* GiB"):
        extend(pipe, _videos(1, 4, 16)[0], 1_000_000, steps=1)
    with pytest.raises(VidiffError, match="lower --batch, --frames or --size"):
        limits.check_training(TINY, batch=8, frames=16, size=4096)
    with pytest.raises(VidiffError, match="--scale 1024 on 32x32 frames makes 32768"):
        io.check_scale(1024, (16, 32, 32))
    monkeypatch.setattr(limits, "LONG_WORK_S", 0.0)  # any work is "long": the ETA notice is one plain line
    limits.check_sampling(TINY, num=100, batch=8, frames=4, height=16, width=16, steps=10)
    err = capsys.readouterr().err
    assert err.startswith("note: sampling 100 video(s)") and "should take about" in err and err.count("\n") == 1


# --- item 6: invalid values name the option ----------------------------------------------------------

@pytest.mark.parametrize("key,value,option", [("batch", 0, "--batch must be at least 1"),
                                              ("lr", -1, "--lr must be greater than 0"),
                                              ("steps", 0, "--steps must be at least 1"),
                                              ("steps", -5, "--steps must be at least 1"),
                                              ("ema_decay", 1.5, "--ema-decay must be at least 0 and at most 1")])
def test_train_config_ranges(key, value, option):
    with pytest.raises(VidiffError, match=option):
        config_from_dict(TrainConfig, {key: value}, where="train config")
    assert dataclasses.asdict(config_from_dict(TrainConfig, {"batch": 2, "steps": 3}))["batch"] == 2


def test_invalid_values_name_the_option(pipe, tmp_path):
    for kw, option in [({"frames": 0}, "--frames"), ({"steps": 0}, "--steps"), ({"num": 0}, "--num"),
                       ({"batch_size": 0}, "--batch-size")]:
        with pytest.raises(VidiffError, match=f"{option} must be at least 1"):
            pipe(**{"num": 1, "steps": 1, **kw})
    v = _videos(2, 4, 16)
    with pytest.raises(VidiffError, match="--batch-size must be at least 1"):
        evaluate(v, v, "psnr", batch_size=0)
    with pytest.raises(VidiffError, match="unknown --device 'tpu'"):
        evaluate(v, v, "psnr", device="tpu")
    with pytest.raises(VidiffError, match="no videos to check"):
        check_batch([])
    with pytest.raises(VidiffError, match="--k must be at least 1"):
        trajectories_to_spectral(torch.zeros(8, 2, 4, 4), k=0)
    with pytest.raises(VidiffError, match="--frames must be at least 1"):
        extract_spectral_volume(v[0], num_frames=0, k=2)
    (tmp_path / "rnd.npy").write_bytes(os.urandom(300))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(VidiffError, match="rnd.npy: not a valid .npy file"):
        io.read_video(tmp_path / "rnd.npy")
    with pytest.raises(VidiffError, match="obj.npy: it holds Python objects"):
        io.read_video(tmp_path / "obj.npy")


# --- item 7: a run's files are written as one unit ---------------------------------------------------

def test_write_run_never_mixes_runs(tmp_path):
    out = tmp_path / "out"
    io.write_run(out, "s", _videos(6), ["gif", "npy"])
    with pytest.raises(VidiffError, match="already exists from an earlier run; .* --overwrite"):
        io.write_run(out, "s", _videos(2), ["npy"])
    assert np.load(out / "s.npy").shape[0] == 6 and len(list((out / "s").iterdir())) == 6  # untouched
    io.write_run(out, "s", _videos(2, seed=1), ["npy"], overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["s.npy"]  # the 6 gifs and the grid went with their run
    np.testing.assert_array_equal(np.load(out / "s.npy"), _videos(2, seed=1))
    # another run taking the name between the check and the move: this run is refused, the other kept
    real_check = io.check_run
    try:
        io.check_run = lambda *a, **k: io.write_npy(out / "t.npy", _videos(1))
        with pytest.raises(VidiffError, match="written by another run meanwhile"):
            io.write_run(out, "t", _videos(3), ["gif", "npy"])
    finally:
        io.check_run = real_check
    assert np.load(out / "t.npy").shape[0] == 1 and not (out / "t").exists() and not (out / "t.gif").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left


# --- item 9: eval reads the (N, F, H, W, 3) npy that `sample --format npy` writes --------------------

def test_video_set_expands_batched_npy(tmp_path):
    io.write_npy(tmp_path / "samples.npy", _videos(3))
    io.write_npy(tmp_path / "one.npy", _videos(1)[0])
    videos, names = io.read_video_set(tmp_path, max_frames=2)
    assert names == ["one.npy", "samples.npy[0]", "samples.npy[1]", "samples.npy[2]"]
    np.testing.assert_array_equal(videos[2], _videos(3)[1, :2])


# --- item 11: a TorchScript I3D file prints a trust notice -------------------------------------------

@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated upstream; the file format is not
def test_torchscript_i3d_prints_trust_notice(tmp_path, capsys):
    class Fake(torch.nn.Module):
        def forward(self, x, rescale: bool = False, resize: bool = False, return_features: bool = True):
            return x.mean(dim=(2, 3, 4))

    torch.jit.save(torch.jit.script(Fake()), str(tmp_path / "i3d.pt"))
    ex = load_i3d(tmp_path / "i3d.pt")
    assert ex.name == "i3d-torchscript"
    err = capsys.readouterr().err
    assert err.startswith("note: ") and "runs the model code" in err and "trust" in err and err.count("\n") == 1


# --- the command line: one subprocess per behaviour family, sharing one folder ------------------------

SAMPLE = ["sample", "--model", "shapes-tiny", "--steps", "1", "--sampler", "ddim", "--out", "runs",
          "--format", "npy,gif"]
EVAL = ["eval", "--real", "real.npy", "--fake", "fake", "--metrics", "psnr", "--frames", "4"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """One folder and one subprocess for every command-line check of this file: {name: (code, stderr)}."""
    d = tmp_path_factory.mktemp("cli")
    io.write_npy(d / "real.npy", _videos(4, 4, 16))
    (d / "fake").mkdir()
    io.write_npy(d / "fake" / "samples.npy", _videos(4, 4, 16, seed=1))  # as `sample --format npy` writes it
    (d / "a_file").write_text("x")
    shutil.copytree(resolve_model("shapes-tiny"), d / "bad")
    cfg = json.loads((d / "bad" / "config.json").read_text())
    cfg["video"]["frames"] = "sixteen"
    (d / "bad" / "config.json").write_text(json.dumps(cfg))
    runs = {"eval": EVAL + ["--out", "r.json"],
            "eval_report_dir_file": EVAL + ["--out", "r2.json", "--report-dir", "a_file"],
            "train_batch_0": ["train", "--data", d, "--out", d / "run", "--batch", "0"],
            "info_wrong_type": ["info", d / "bad"],
            "check_json_dir": ["data", "check", d / "real.npy", "--json", d],
            "sample_huge": ["sample", "--frames", "100000", "--out", d / "huge"],
            "sample_3": SAMPLE + ["--num", "3"],
            "sample_2": SAMPLE + ["--num", "2"],
            "sample_2_overwrite": SAMPLE + ["--num", "2", "--overwrite"]}
    results = _cli_runs(list(runs.values()), cwd=d, VIDIFF_MAX_MEMORY="2G")
    return d, dict(zip(runs, results))


def test_cli_eval_reads_sample_npy_and_checks_outputs_first(work):
    d, res = work
    rc, err = res["eval"]
    assert rc == 0, err
    assert json.loads((d / "r.json").read_text())["scores"]["psnr"]["protocol"]["num_fake"] == 4
    _one_line_error(*res["eval_report_dir_file"], "--report-dir", "is a file")
    assert not (d / "r2.json").exists()  # refused before any work: no lone JSON


def test_cli_refusals_are_one_line(work):
    d, res = work
    _one_line_error(*res["train_batch_0"], "--batch", "1")
    _one_line_error(*res["info_wrong_type"], "video.frames: expected an integer")
    _one_line_error(*res["check_json_dir"], "--json", "is a folder")
    _one_line_error(*res["sample_huge"], "GiB of memory but 2.0 GiB are free")
    assert not (d / "run").exists() and not (d / "huge").exists()


def test_cli_sample_runs_do_not_mix(work):
    d, res = work
    assert res["sample_3"][0] == 0, res["sample_3"][1]
    _one_line_error(*res["sample_2"], "already exists", "--overwrite")
    assert res["sample_2_overwrite"][0] == 0, res["sample_2_overwrite"][1]
    assert np.load(d / "runs" / "samples.npy").shape[0] == 2
    assert sorted(p.name for p in (d / "runs" / "samples").iterdir()) == ["000.gif", "001.gif"]


def test_train_refuses_a_step_that_cannot_fit_before_decoding(tmp_path, monkeypatch, capsys):
    from vidiff.cli import main

    monkeypatch.setenv("VIDIFF_MAX_MEMORY", "3G")
    rc = main(["train", "--data", str(tmp_path / "no_videos_needed"), "--out", str(tmp_path / "run"),
               "--size", "4096", "--steps", "1"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "needs about" in err and "lower --batch, --frames or --size" in err, err
    assert not (tmp_path / "run").exists()  # refused before the run folder (or its lock) is made
