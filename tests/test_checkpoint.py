"""Checkpoint folders: weights holding NaN/inf are refused at load with one line naming the file and the
tensor (so `sample`/`extend`/`--init-from` never run on them); config.json is always strict JSON."""
import json
import os
import subprocess
import sys

import pytest
import torch

from vidiff.checkpoint import dumps_json, load_state_dict, read_config, save_pretrained, save_state_dict
from vidiff.config import config_to_dict
from vidiff.diffusion.config import DiffusionConfig, VideoFormat
from vidiff.models import build_model
from vidiff.training.surgery import init_weights_from
from vidiff.utils import VidiffError

TINY = {"arch": "unet3d", "base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "attention_levels": [1],
        "head_dim": 8, "min_group_channels": 4}


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory):
    model = build_model(TINY)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if n == "conv_in.bias")[3] = float("nan")
    folder = tmp_path_factory.mktemp("nan") / "ckpt"
    save_pretrained(folder, model, {"model": config_to_dict(model.config),
                                    "diffusion": config_to_dict(DiffusionConfig()),
                                    "video": config_to_dict(VideoFormat(frames=4, size=16))})
    return folder


def test_non_finite_weights_are_refused_naming_file_and_tensor(nan_checkpoint, tmp_path):
    path = nan_checkpoint / "model.safetensors"
    with pytest.raises(VidiffError) as e:
        load_state_dict(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "'conv_in.bias'" in msg and "NaN or infinite" in msg
    assert torch.isnan(load_state_dict(path, check_finite=False)["conv_in.bias"]).any()  # on request, as is
    save_state_dict(tmp_path / "inf.safetensors", {"a": torch.ones(2), "b": torch.tensor([1.0, float("inf")]),
                                                   "steps": torch.tensor([3])})
    with pytest.raises(VidiffError, match="first in tensor 'b'"):
        load_state_dict(tmp_path / "inf.safetensors")
    from vidiff import load_pipeline

    with pytest.raises(VidiffError, match="NaN or infinite"):
        load_pipeline(str(nan_checkpoint))
    with pytest.raises(VidiffError, match="NaN or infinite"):
        init_weights_from(build_model(TINY), nan_checkpoint)


def test_sample_refuses_nan_weights_with_one_line(nan_checkpoint, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "vidiff.cli", "sample", "--model", str(nan_checkpoint), "--num", "1",
                        "--steps", "2", "--out", str(out)], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    err = r.stderr.strip()
    assert r.returncode == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err[-800:]
    assert "conv_in.bias" in err and not (out.exists() and any(out.rglob("*.mp4")))


def test_config_json_never_holds_a_bare_nan(tmp_path):
    model = build_model(TINY)
    save_pretrained(tmp_path / "c", model, {"summary": {"final_loss": float("nan"), "best": float("-inf"),
                                                        "losses": [1.0, float("inf")]}, "model": TINY})
    text = (tmp_path / "c" / "config.json").read_text()
    cfg = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in config.json"))
    assert cfg["summary"] == {"final_loss": None, "best": None, "losses": [1.0, None]}
    assert read_config(tmp_path / "c")["model"] == TINY
    assert dumps_json({"x": float("nan")}) == '{"x": null}\n'
