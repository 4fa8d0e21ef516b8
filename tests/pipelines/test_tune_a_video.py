"""Tune-A-Video: sparse-causal attention reads frames 0 and k − 1 only; tuning moves exactly the trainable set
(temporal attention, query projections) and lowers the loss on the clip; DDIM inversion + sampling with the
source caption reconstructs the clip; the tune-a-video / edit commands and their bad inputs."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from vidiff.checkpoint import save_pretrained
from vidiff.conditioning import Cond
from vidiff.config import config_to_dict
from vidiff.data.io import write_video
from vidiff.diffusion.loss import diffusion_loss
from vidiff.models import build_model
from vidiff.models.layers import Attention
from vidiff.pipelines import DiffusionConfig
from vidiff.pipelines.frame_attention import diffusers_frame_processor, frame_attention
from vidiff.pipelines.tune_a_video import (clip_tensor, inflate_tune_a_video, invert_and_sample, tunable_parameters,
                                           tune)
from vidiff.utils import VidiffError

from .conftest import TINY

IMAGE_TEXT = {**TINY, "temporal": "none", "text_dim": 16}


def text_cond(seed):
    g = torch.Generator().manual_seed(seed)
    return Cond(text=torch.randn(1, 4, 16, generator=g), text_mask=torch.ones(1, 4, dtype=torch.bool),
                pooled=torch.randn(1, 16, generator=g))


def inflated(**overrides):
    torch.manual_seed(0)
    return inflate_tune_a_video(build_model({**IMAGE_TEXT, **overrides}).eval())


def test_sparse_causal_reads_frames_zero_and_previous_only():
    """Perturbing frame 1 of 4 changes the attention output of frames 1 and 2 only (frame 3 reads 0 and 2),
    for vidiff's processor and the diffusers one alike."""
    torch.manual_seed(0)
    attn = Attention(16, 2)
    x = torch.randn(4, 5, 16)  # one clip of 4 frames, 5 tokens
    y = x.clone()
    y[1] += torch.randn(5, 16)
    with frame_attention(attn, "sparse_causal", 4):
        a, b = attn(x, frames=4), attn(y, frames=4)
    changed = [(a[k] - b[k]).abs().max().item() > 1e-6 for k in range(4)]
    assert changed == [False, True, True, False]
    ap = pytest.importorskip("diffusers.models.attention_processor")
    theirs = ap.Attention(16, heads=2, dim_head=8, bias=True)
    theirs.set_processor(diffusers_frame_processor("sparse_causal", 4))
    with torch.no_grad():
        a, b = theirs(x[None].flatten(0, 1)), theirs(y[None].flatten(0, 1))
    assert [(a[k] - b[k]).abs().max().item() > 1e-6 for k in range(4)] == [False, True, True, False]


def test_tuning_moves_only_the_trainable_set_and_lowers_the_loss():
    model = inflated()
    x0 = torch.rand(1, 3, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    diffusion, cond = DiffusionConfig(), text_cond(1)
    schedule = diffusion.build_schedule()

    def loss():  # the same 8 (t, ε) draws before and after
        with torch.no_grad(), frame_attention(model, "sparse_causal", 3):
            return sum(diffusion_loss(model, x0, schedule, cond=cond, generator=torch.Generator().manual_seed(s)).item()
                       for s in range(8)) / 8

    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    before = loss()
    tune(model, x0, cond, schedule=schedule, parameterization="v", steps=12, lr=5e-3)
    after_state = model.state_dict()
    masks = tunable_parameters(model)
    assert any(k.endswith("to_q.weight") for k in masks) and any("temporal" in k for k in masks)
    for key, value in after_state.items():
        mask = masks.get(key)
        if key not in masks:
            assert torch.equal(value, before_state[key]), f"frozen {key} moved"
        elif mask is not None:  # fused q/k/v: key and value rows frozen, query rows trained
            rows = mask.flatten().bool()
            assert torch.equal(value[~rows], before_state[key][~rows]), f"key/value rows of {key} moved"
            assert not torch.equal(value[rows], before_state[key][rows])
    assert all(p.requires_grad for p in model.parameters())  # tune() leaves the model as it found it
    assert loss() < before


def test_inversion_then_sampling_reconstructs_the_clip():
    """DDIM inversion (one fixed-point iteration per step) under the source caption, then DDIM under the same
    caption without guidance, 20 steps: the clip back to max |error| < 0.05 on [-1, 1] (tiny random model)."""
    model = inflated()
    x0 = torch.rand(1, 3, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1
    kw = dict(schedule=DiffusionConfig().build_schedule(), parameterization="v", steps=20)
    z_T, x = invert_and_sample(model, x0, text_cond(1), text_cond(1), **kw)
    assert (x - x0).abs().max() < 0.05
    assert (z_T - x0).abs().mean() > 0.3  # it really went to noise and back
    _, edited = invert_and_sample(model, x0, text_cond(1), text_cond(5), guidance=2.0, **kw)
    assert (edited - x0).abs().max() > 0.05  # another caption gives another video


def test_bad_inputs():
    with pytest.raises(VidiffError, match="fewer than the 5 asked"):
        clip_tensor(np.zeros((3, 8, 8, 3), np.uint8), 5, 8)
    with pytest.raises(VidiffError, match="at least 2 frames"):
        clip_tensor(np.zeros((1, 8, 8, 3), np.uint8), None, 8)
    with pytest.raises(VidiffError, match="video model"):
        inflate_tune_a_video(build_model({**IMAGE_TEXT, "temporal": "attention"}))
    with pytest.raises(VidiffError, match="spatial self-attention"):
        inflate_tune_a_video(build_model({**IMAGE_TEXT, "attention_levels": [], "mid_attention": False}))


# ----------------------------------------------------------------------------- command line


def _checkpoint(folder, text: bool):
    torch.manual_seed(0)
    model = build_model({**IMAGE_TEXT, "text_dim": 384 if text else 0})
    save_pretrained(folder, model, {"model": config_to_dict(model.config),
                                    "diffusion": config_to_dict(DiffusionConfig()),
                                    "video": {"channels": 3, "frames": 1, "size": 16, "fps": 8.0},
                                    "conditioning": {"condition": "text" if text else "none", "cond_drop": 0.1,
                                                     "text_encoder": "minilm" if text else None}})
    return folder


def moving_square(frames=4, size=16):
    video = np.full((frames, size, size, 3), 30, np.uint8)
    for k in range(frames):
        video[k, 5:10, 2 + 2 * k:7 + 2 * k] = (220, 40, 40)
    return video


def test_cli_tune_then_edit_a_text_model(tmp_path, capsys):
    """In process (MiniLM loads once per session): tune on a captioned clip, edit it to an mp4; bad inputs."""
    pytest.importorskip("sentence_transformers")
    from vidiff.cli import main

    ckpt = _checkpoint(tmp_path / "t2i", text=True)
    clip = write_video(tmp_path / "clip.mp4", moving_square(), fps=8)
    code = main(["tune-a-video", str(clip), "--model", str(ckpt), "--prompt", "a red square moving right",
                 "--steps", "2", "--out", str(tmp_path / "tav")])
    assert code == 0, capsys.readouterr().err
    code = main(["edit", str(clip), "--model", str(tmp_path / "tav"), "--prompt", "a blue square moving right",
                 "--steps", "3", "--out", str(tmp_path / "e.mp4")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "e.mp4").stat().st_size > 0
    bad = [(["edit", str(clip), "--model", str(ckpt), "--out", str(tmp_path / "x.mp4")], "not an editing model"),
           (["tune-a-video", str(clip), "--model", str(ckpt), "--frames", "9", "--steps", "1",
             "--out", str(tmp_path / "t9")], "fewer than the 9 asked"),
           (["tune-a-video", str(clip), "--model", str(ckpt), "--steps", "1", "--out", str(tmp_path / "tav")],
            "already holds a model")]
    for args, words in bad:
        capsys.readouterr()
        code = main(args)
        err = capsys.readouterr().err
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "t9").exists()


def test_cli_edit_subprocess_writes_an_mp4(tmp_path, capsys):
    """`vidiff edit` as a command (an unconditional image model, so no text encoder loads)."""
    from vidiff.cli import main

    ckpt = _checkpoint(tmp_path / "img", text=False)
    clip = write_video(tmp_path / "clip.npy", moving_square(), fps=8)
    assert main(["tune-a-video", str(clip), "--model", str(ckpt), "--steps", "1", "--out", str(tmp_path / "tav")]) == 0
    capsys.readouterr()
    assert main(["tune-a-video", str(clip), "--model", str(ckpt), "--prompt", "a cat", "--steps", "1",
                 "--out", str(tmp_path / "tav2")]) == 2
    assert "not trained with text" in capsys.readouterr().err
    r = subprocess.run([sys.executable, "-m", "vidiff.cli", "edit", str(clip), "--model", str(tmp_path / "tav"),
                        "--steps", "2", "--out", str(tmp_path / "e.mp4")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    from vidiff.data.io import read_video

    assert read_video(tmp_path / "e.mp4").shape == (4, 16, 16, 3)


# ----------------------------------------------------------------------------- Stable Diffusion folder


def test_stable_diffusion_folder_tune_and_edit(tmp_path, capsys):
    """On a tiny random SD folder: only the temporal attention layers and the attn1/attn2 query projections move
    (every other UNet tensor and the identity temporal conv blocks bit-identical), the loss on the clip's latents
    goes down, and tune-a-video → edit through the CLI writes the clip's frames. (Reconstruction is not checked
    here: a random ε-network's DDIM inversion is ill-conditioned, x̂₀ = (z − σ ε̂)/α with α_T ≈ 0.07.)"""
    pytest.importorskip("diffusers")
    from vidiff.cli import main
    from vidiff.models.temporal import VideoLDM
    from vidiff.pipelines.stable_diffusion import StableDiffusion
    from vidiff.pipelines.tune_a_video import TuneAVideo, encode_clip

    from .test_stable_diffusion import tiny_sd_pipeline

    tiny_sd_pipeline(tmp_path).save_pretrained(tmp_path / "sd")
    sd = StableDiffusion.from_pretrained(tmp_path / "sd")
    model = VideoLDM(sd.unet)
    z0 = encode_clip(sd, clip_tensor(moving_square(), None, 16))  # (1, 4, 4, 8, 8)
    cond = Cond(text=sd.encode_prompt(["a cat"]))
    kw = dict(schedule=sd.schedule, parameterization=sd.parameterization)

    def loss():
        with torch.no_grad(), frame_attention(model, "sparse_causal", 4):
            return sum(diffusion_loss(model, z0, generator=torch.Generator().manual_seed(s), cond=cond,
                                      t=torch.tensor([0.2 + 0.1 * s]), **kw).item() for s in range(6)) / 6

    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    before = loss()
    tune(model, z0, cond, steps=15, lr=3e-3, num_train_steps=1000, **kw)
    masks = tunable_parameters(model)
    assert any(".attn1.to_q." in k for k in masks) and any(".attn2.to_q." in k for k in masks)
    assert any(k.startswith("temporal.") for k in masks)
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before_state[k])}
    assert moved and moved <= set(masks)
    assert loss() < before

    clip = write_video(tmp_path / "clip.mp4", moving_square(), fps=8)
    assert main(["tune-a-video", str(clip), "--model", str(tmp_path / "sd"), "--prompt", "a cat", "--steps", "2",
                 "--out", str(tmp_path / "tav")]) == 0
    assert type(TuneAVideo.from_pretrained(tmp_path / "tav")).__name__ == "TuneAVideoSD"
    assert main(["edit", str(clip), "--model", str(tmp_path / "tav"), "--prompt", "cat at a cat", "--steps", "3",
                 "--out", str(tmp_path / "e.npy")]) == 0
    assert np.load(tmp_path / "e.npy").shape == (4, 16, 16, 3)
    capsys.readouterr()
    assert main(["tune-a-video", str(clip), "--model", str(tmp_path / "sd"), "--steps", "1",
                 "--out", str(tmp_path / "np")]) == 2
    assert "give the clip's caption" in capsys.readouterr().err
