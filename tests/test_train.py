"""The trainer: exact resume, DDP on 2 CPU processes, atomic checkpoints, clear errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidiff.train import TrainConfig, train
from vidiff.training import committed
from vidiff.utils import VidiffError

TINY_MODEL = {
    "arch": "unet3d", "in_channels": 3, "out_channels": 3, "base_channels": 8,
    "channel_mults": [1, 2], "num_res_blocks": 1, "attention_levels": [1], "head_dim": 8,
    "temporal": "attention",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("vids")
    rng = np.random.default_rng(0)
    for i in range(6):
        v = np.zeros((8, 16, 16, 3), np.uint8)
        for f in range(8):  # a bright square moving right
            x = (2 + f + i) % 12
            v[f, 5:9, x:x + 4] = [200, 40 + 30 * i, 40]
        v = np.clip(v.astype(int) + rng.integers(0, 8, v.shape), 0, 255).astype(np.uint8)
        np.save(d / f"v{i}.npy", v)
    (d / "broken.mp4").write_bytes(b"garbage")
    return d


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "tiny.json"
    p.write_text(json.dumps(TINY_MODEL))
    return p


def _cfg(data_dir, model_file, out, **kw):
    base = dict(data=str(data_dir), out=str(out), model=str(model_file), frames=4, size=16, batch=2,
                lr=1e-3, warmup=2, log_every=1, save_every=0, sample_every=0, sample_steps=2,
                num_samples=1)
    base.update(kw)
    return TrainConfig(**base)


def _state(out):
    """The committed training state's state.json."""
    return json.loads((committed(out) / "state.json").read_text())


def _losses(out):
    return _state(out)["losses"]


def test_resume_reproduces_uninterrupted_losses(data_dir, model_file, tmp_path):
    full = train(_cfg(data_dir, model_file, tmp_path / "full", steps=6))
    part = tmp_path / "part"
    train(_cfg(data_dir, model_file, part, steps=3))
    assert len(_losses(part)) == 3
    train(_cfg(data_dir, model_file, part, steps=6), resume=True)
    assert _losses(part) == _losses(full)  # exact, not approximate
    cfg = json.loads((part / "config.json").read_text())
    assert cfg["summary"]["steps"] == 6 and cfg["model"]["arch"] == "unet3d"
    assert (part / "model.safetensors").stat().st_size > 0 and (part / "loss.png").exists()
    # the trained checkpoint samples through the public API
    from vidiff import load_pipeline
    pipe = load_pipeline(str(part))
    a = pipe(num=2, frames=4, steps=3, seed=1)
    b = pipe(num=2, frames=4, steps=3, seed=1)
    assert a.shape == (2, 4, 16, 16, 3) and str(a.dtype) == "torch.uint8"
    assert (a == b).all()


def test_snapshots_keep_the_ema_of_earlier_steps(data_dir, model_file, tmp_path):
    # the snapshot at step 2 of a 4-step run is the EMA a run stopped at step 2 ends with (the guide
    # model of autoguidance comes from such a snapshot)
    from vidiff.checkpoint import load_state_dict

    run = train(_cfg(data_dir, model_file, tmp_path / "long", steps=4, snapshot_steps=(2,)))
    short = train(_cfg(data_dir, model_file, tmp_path / "short", steps=2))  # constant lr: same first steps
    snap = Path(run) / "snapshots" / "step_0000002"
    assert json.loads((snap / "config.json").read_text())["summary"]["steps"] == 2
    a, b = load_state_dict(snap / "model.safetensors"), load_state_dict(Path(short) / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    final = load_state_dict(Path(run) / "model.safetensors")
    assert any(not np.array_equal(a[k].numpy(), final[k].numpy()) for k in a)
    from vidiff.cli.train import _int_list

    assert _int_list("500, 1500", "--snapshot-steps") == (500, 1500)
    with pytest.raises(VidiffError, match="--snapshot-steps takes comma-separated"):
        _int_list("500;1500", "--snapshot-steps")


def test_training_reduces_loss(data_dir, model_file, tmp_path):
    out = train(_cfg(data_dir, model_file, tmp_path / "r", steps=60, lr=3e-3, batch=4))
    losses = _losses(out)
    assert np.mean(losses[-15:]) < 0.7 * np.mean(losses[:5])


def test_cosine_lr_schedule():
    from vidiff.train import lr_at

    cfg = TrainConfig(lr=1e-3, warmup=10, steps=110, lr_schedule="cosine", lr_min_ratio=0.1)
    lrs = [lr_at(cfg, s) for s in range(110)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)  # linear warm-up
    assert lrs[59] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # half-way down the cosine: the mean
    assert lrs[109] == pytest.approx(1e-4)  # ends at lr_min_ratio * lr
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lr_at(TrainConfig(lr=1e-3, warmup=10), 500) == 1e-3  # constant by default


def test_bad_inputs_give_clear_errors(data_dir, model_file, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VidiffError, match="no videos"):
        train(_cfg(empty, model_file, tmp_path / "o1", steps=1))
    with pytest.raises(VidiffError, match="--steps N or --minutes"):
        train(_cfg(data_dir, model_file, tmp_path / "o2"))
    with pytest.raises(VidiffError, match="give --steps"):
        train(_cfg(data_dir, model_file, tmp_path / "o2", minutes=1, lr_schedule="cosine"))
    with pytest.raises(VidiffError, match="lr_schedule"):
        train(_cfg(data_dir, model_file, tmp_path / "o2", steps=1, lr_schedule="step"))
    with pytest.raises(VidiffError, match="unet-tiny"):  # unknown preset lists known names
        train(_cfg(data_dir, "unet-nope", tmp_path / "o3", steps=1))
    with pytest.raises(VidiffError, match="multiple"):
        train(_cfg(data_dir, model_file, tmp_path / "o4", steps=1, size=13))
    train(_cfg(data_dir, model_file, tmp_path / "o5", steps=1))
    with pytest.raises(VidiffError, match="--resume"):
        train(_cfg(data_dir, model_file, tmp_path / "o5", steps=2))


def test_cli_errors_are_one_line(data_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "vidiff.cli", "train", "--data", str(tmp_path / "nope"),
                        "--steps", "1", "--out", str(tmp_path / "o")], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "vidiff.cli", "sample", "--model", "no-such-model",
                        "--out", str(tmp_path)], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "unknown model" in r.stderr and "Traceback" not in r.stderr


def test_accelerate_two_processes_hold_identical_weights(data_dir, model_file, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "vidiff.train", "--data", str(data_dir), "--model", str(model_file), "--out", str(out),
           "--frames", "4", "--size", "16", "--batch", "2", "--steps", "3",
           "--sample-every", "0", "--save-every", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    state = _state(out)
    sums = state["rank_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    assert state["step"] == 3


def test_interrupt_saves_resumable_checkpoint(data_dir, model_file, tmp_path):
    import signal
    import time
    out = tmp_path / "intr"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "vidiff.train", "--data", str(data_dir), "--model", str(model_file),
           "--out", str(out), "--frames", "4", "--size", "16", "--batch", "2", "--steps", "100000",
           "--sample-every", "0", "--save-every", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log = out / "log.jsonl"
    deadline = time.time() + 120
    while not (log.exists() and log.read_text().count("\n") >= 2) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-1500:]
    assert "continue with --resume" in err
    state = _state(out)
    assert state["step"] >= 2 and len(state["losses"]) == state["step"]
    # and the run continues from there
    train(_cfg(data_dir, model_file, out, steps=state["step"] + 1), resume=True)
    assert len(_losses(out)) == state["step"] + 1


def test_self_conditioned_run_resumes_exactly_and_samples(data_dir, model_file, tmp_path):
    # self-conditioning (Chen et al. 2022) adds a draw and a no-gradient pass per step: resume stays exact,
    # the checkpoint records the wider backbone, and sampling feeds x̂₀ back (reproducibly)
    full = train(_cfg(data_dir, model_file, tmp_path / "full", steps=4, self_cond=0.5))
    part = tmp_path / "part"
    train(_cfg(data_dir, model_file, part, steps=2, self_cond=0.5))
    train(_cfg(data_dir, model_file, part, steps=4, self_cond=0.5), resume=True)
    assert _losses(part) == _losses(full)
    plain = train(_cfg(data_dir, model_file, tmp_path / "plain", steps=4))
    assert _losses(plain) != _losses(full)
    cfg = json.loads((Path(full) / "config.json").read_text())
    assert cfg["model"]["self_cond"] is True and cfg["train"]["self_cond"] == 0.5
    from vidiff import load_pipeline

    pipe = load_pipeline(str(full))
    a, b = pipe(num=2, frames=4, steps=3, seed=1), pipe(num=2, frames=4, steps=3, seed=1)
    assert a.shape == (2, 4, 16, 16, 3) and (a == b).all()
    with pytest.raises(VidiffError, match="self_cond is the share"):
        train(_cfg(data_dir, model_file, tmp_path / "bad", steps=1, self_cond=1.0))


def test_init_from_widens_input_layers_and_names_tensors_whose_shape_differs(tmp_path, capsys):
    """A plain checkpoint into a backbone with more input channels (self-conditioning, a first-frame
    concat): conv_in keeps the checkpoint's weights for x_t and gets zeros for the new inputs, so the
    widened model computes exactly the plain one whatever the new inputs hold. A tensor that differs
    otherwise (a wider network) is named and left to its initialisation."""
    import torch

    from vidiff.checkpoint import save_pretrained
    from vidiff.conditioning import Cond
    from vidiff.models import build_model
    from vidiff.train import init_weights_from

    torch.manual_seed(0)
    src = build_model(TINY_MODEL)
    save_pretrained(tmp_path / "plain", src, {"model": TINY_MODEL})
    dst = build_model({**TINY_MODEL, "self_cond": True})
    init_weights_from(dst, str(tmp_path / "plain"))
    err = capsys.readouterr().err
    assert "0 newly initialised" in err and "new input channels: conv_in.weight" in err
    w_src, w = src.state_dict()["conv_in.weight"], dst.state_dict()["conv_in.weight"]
    k = w_src.shape[1]
    assert torch.equal(w[:, :k], w_src) and not w[:, k:].any()
    assert torch.equal(dst.state_dict()["conv_in.bias"], src.state_dict()["conv_in.bias"])
    # a first-frame model (4 concat channels) from a plain one with the 2x2 space-to-depth stem, which
    # stacks each input channel's 2x2 pixels: x_t's 12 stem channels lead and the zeros follow
    plain = build_model({**TINY_MODEL, "patch_size": 2})
    save_pretrained(tmp_path / "plain2", plain, {"model": {**TINY_MODEL, "patch_size": 2}})
    dst = build_model({**TINY_MODEL, "patch_size": 2, "cond_channels": 4})
    init_weights_from(dst, str(tmp_path / "plain2"))
    assert "new input channels: conv_in.weight" in capsys.readouterr().err
    x, t = torch.randn(2, 3, 4, 16, 16), torch.tensor([0.3, 0.8])
    cond = Cond(concat=torch.randn(2, 4, 4, 16, 16))
    with torch.no_grad():
        assert torch.allclose(dst(x, t, cond), plain(x, t), atol=1e-5)
    wide = build_model({**TINY_MODEL, "base_channels": 16})
    init_weights_from(wide, str(tmp_path / "plain"))
    assert "not copied: conv_in.bias, conv_in.weight" in capsys.readouterr().err


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "vidiff.cli", "train", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)


def test_cli_stops_a_diverging_run_and_refuses_a_damaged_or_foreign_state_with_one_line(data_dir, model_file, tmp_path):
    base = ["--data", data_dir, "--frames", "4", "--size", "16", "--batch", "2", "--sample-every", "0"]
    # an absurd learning rate: the loss leaves the floats within a few steps; the last good state is kept
    out = tmp_path / "diverge"
    r = _cli(*base, "--model", model_file, "--out", out, "--steps", "50", "--lr", "1e30", "--save-every", "1")
    err = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and err.startswith("error: the model loss became") and "Traceback" not in r.stderr
    step = int(err.split(" at step ")[1].split(",")[0])
    assert f"keeps the checkpoint of step {step}" in err and committed(out).name == f"step_{step:07d}"
    json.loads((out / "config.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    # a truncated optimizer state, or another network than the run's: one line each, nothing trained
    run = tmp_path / "run"
    train(_cfg(data_dir, model_file, run, steps=1))
    wide = tmp_path / "wide.json"
    wide.write_text(json.dumps({**json.loads(model_file.read_text()), "base_channels": 16}))
    r = _cli(*base, "--model", wide, "--out", run, "--steps", "2", "--resume")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: cannot resume: ") and "another network" in r.stderr
    opt = committed(run) / "model.optimizer.pt"
    opt.write_bytes(opt.read_bytes()[:100])
    r = _cli(*base, "--model", model_file, "--out", run, "--steps", "2", "--resume")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "model.optimizer.pt does not match the checksum" in r.stderr.strip().splitlines()[-1]
    assert _state(run)["step"] == 1
