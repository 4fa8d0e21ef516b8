"""`vidiff plan`: its memory estimates against a measured training and sampling step, its FLOPs against
`vidiff models`' count, and the options that must lower the estimate."""
from __future__ import annotations

import json
import os

import pytest

from vidiff.cli import main
from vidiff.models.stats import preset_stats
from vidiff.models.vae import VAEConfig, VideoAutoencoder, save_vae
from vidiff.planner import plan
from vidiff.utils import VidiffError

from ._measure import measured_step_bytes

NAME, FRAMES, SIZE, BATCH = "unet-nano-joint", 8, 32, 2



@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak RSS is read from /proc")
def test_peak_memory_within_2x_of_a_measured_step():
    measured = measured_step_bytes(NAME, frames=FRAMES, size=SIZE, batch=BATCH)
    p = plan(NAME, frames=FRAMES, size=SIZE, batch=BATCH)
    assert 0.5 <= p.train_bytes / measured["train"] <= 2.0, (p.train_bytes, measured)
    assert 0.5 <= p.sample_bytes / measured["sample"] <= 2.0, (p.sample_bytes, measured)
    assert p.train_bytes > p.sample_bytes


def test_flops_and_params_match_vidiff_models_count():
    p = plan(NAME, frames=FRAMES, size=SIZE, batch=BATCH)
    params, gflops = preset_stats(NAME, FRAMES, SIZE, batch=BATCH)
    assert p.params == params
    assert p.gflops_forward == pytest.approx(gflops)
    assert p.gflops_train == pytest.approx(3 * gflops)
    assert p.backbone_shape == (3, FRAMES, SIZE, SIZE)


def test_bundled_model_name_gives_its_recorded_parameter_count():
    from vidiff.bundled import find_model

    recorded = json.loads((find_model("shapes-tiny") / "config.json").read_text())["summary"]["params"]
    assert plan("shapes-tiny", frames=FRAMES, size=SIZE).params == recorded
    assert plan(str(find_model("shapes-tiny") / "config.json"), frames=FRAMES, size=SIZE).params == recorded


def test_grad_ckpt_and_bf16_lower_the_training_estimate():
    base = plan(NAME, frames=16, size=64, batch=BATCH)
    ckpt = plan(NAME, frames=16, size=64, batch=BATCH, grad_ckpt=True)
    bf16 = plan(NAME, frames=16, size=64, batch=BATCH, bf16=True)
    assert ckpt.train_bytes < base.train_bytes and ckpt.sample_bytes == base.sample_bytes
    assert bf16.train_bytes < base.train_bytes and bf16.sample_bytes < base.sample_bytes
    assert ckpt.gflops_forward == pytest.approx(base.gflops_forward)


def test_latent_space_is_cheaper_than_pixel_space_at_the_same_size(tmp_path):
    vae = VideoAutoencoder(VAEConfig(base_channels=8, channel_mult=(1, 1, 1), spatial_factor=4, norm_groups=4,
                                     temporal_decoder="none"))
    folder = save_vae(tmp_path / "vae", vae)
    pixel = plan(NAME, frames=FRAMES, size=64, batch=BATCH)
    latent = plan(NAME, frames=FRAMES, size=64, batch=BATCH, latent=folder)
    assert latent.backbone_shape == (4, FRAMES, 16, 16)
    assert latent.train_bytes < pixel.train_bytes
    assert latent.gflops_forward < pixel.gflops_forward
    assert latent.decode_gflops > 0 and latent.vae_params == sum(q.numel() for q in vae.parameters())
    with pytest.raises(VidiffError, match="spatial factor 4"):
        plan(NAME, frames=FRAMES, size=66, batch=BATCH, latent=folder)


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--model", NAME, "--size", "30"], "multiples of 8"),
    (["--model", NAME, "--batch", "0"], "--batch must be at least 1"),
])
def test_bad_input_is_one_line(args, message, capsys):
    assert main(["plan", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_cli_prints_the_plan_and_exits_1_when_training_does_not_fit(capsys, monkeypatch):
    assert main(["plan", "--model", NAME, "--frames", "8", "--size", "32", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "GFLOPs / step" in out and "training step" in out and "sampling step" in out and "fits" in out
    monkeypatch.setenv("VIDIFF_MAX_MEMORY", "1M")
    assert main(["plan", "--model", NAME, "--frames", "8", "--size", "32"]) == 1
    assert "does NOT fit" in capsys.readouterr().out
