"""Fine-tuning a model without an image embedding into an image-to-video model with one (`--init-from BASE
--condition first_frame --image-embed`, as scripts/train_svd_shapes.sh does from shapes-tiny): the new
cross-attention and pooled projection start as a no-op, so at step 0 the model computes the base model's output
(the widened concat input is zero-weighted, as for any first-frame fine-tune), and training grows them. So does
a new noise-augmentation embedder (`--cond-noise-aug`), whatever the noise level."""
import json

import numpy as np
import pytest
import torch

from vidiff.checkpoint import load_state_dict, save_pretrained
from vidiff.conditioning import Cond
from vidiff.conditioning.image_embed import with_frame_embedding
from vidiff.conditioning.micro import augment_first_frame
from vidiff.conditioning.tasks import known_frames_concat, training_cond
from vidiff.config import config_to_dict
from vidiff.diffusion.loss import diffusion_loss
from vidiff.diffusion.schedule import CosineSchedule
from vidiff.models import build_model
from vidiff.train import TrainConfig
from vidiff.training.diffusion_task import build_model_for

from ._tiny import TINY, run

DIT = {"arch": "dit", "hidden_size": 16, "depth": 1, "heads": 2, "patch_size": 2}


def _base(tmp_path, arch: dict):
    """A plain (unconditional) model with every weight perturbed, saved as the init checkpoint, and its file."""
    torch.manual_seed(0)
    model = build_model(arch)
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    save_pretrained(tmp_path / "base", model, {"model": config_to_dict(model.config)})
    (tmp_path / "arch.json").write_text(json.dumps(arch))
    return model.eval()


def _finetune(tmp_path) -> torch.nn.Module:
    cfg = TrainConfig(model=str(tmp_path / "arch.json"), frames=4, size=16, condition="first_frame",
                      image_embed=True, init_from=str(tmp_path / "base"))
    return build_model_for(cfg)


@pytest.mark.parametrize("arch", [TINY, DIT], ids=["unet3d", "dit"])
def test_the_new_embedding_paths_start_as_a_no_op(tmp_path, capsys, arch):
    base = _base(tmp_path, arch)
    model = _finetune(tmp_path).eval()
    err = capsys.readouterr().err
    own = model.state_dict()
    zeroed = model.conditioning_outputs()
    assert zeroed and f"{len(zeroed)} output projections of new conditioning paths zeroed" in err
    assert all(not own[k].any() for k in zeroed)
    assert any(own[k].abs().sum() > 0 for k in own if k.startswith("content_encoder."))  # encoder: random init
    g = torch.Generator().manual_seed(2)
    x, t = torch.randn(2, 3, 4, 16, 16, generator=g), torch.tensor([0.3, 0.8])
    frame = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    cond = with_frame_embedding(Cond(concat=known_frames_concat(frame[:, :, None], 4)), frame, 2)
    null = with_frame_embedding(Cond(), None, 2)  # no frame: zeros in the concat, the null embedding
    with torch.no_grad():
        ref, out = base(x, t), model(x, t, cond)
        assert ref.abs().mean() > 1e-2  # a base whose output is not trivially zero
        # bit for bit, the frame and its embedding add nothing: the concat meets zero conv_in weights (exact zero
        # products) and the new cross-attention and pooled projection output exact zeros
        assert torch.equal(out, model(x, t, null))
        # and that is the base model's output: exactly here; a wider conv_in may sum in another order, so to
        # 1e-5 as for any first-frame fine-tune (tests/test_train.py)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_a_checkpoint_that_has_the_paths_keeps_them(tmp_path, capsys):
    """Only tensors absent from the checkpoint are zeroed: an image-embed checkpoint fine-tuned again keeps its
    trained cross-attention and pooled projection."""
    _base(tmp_path, TINY)
    first = _finetune(tmp_path)
    with torch.no_grad():
        for k in first.conditioning_outputs():
            first.get_parameter(k).fill_(0.5)
    save_pretrained(tmp_path / "embedded", first, {"model": config_to_dict(first.config)})
    capsys.readouterr()
    again = build_model_for(TrainConfig(model=str(tmp_path / "arch.json"), frames=4, size=16,
                                        condition="first_frame", image_embed=True,
                                        init_from=str(tmp_path / "embedded")))
    assert "zeroed" not in capsys.readouterr().err
    assert all(torch.equal(again.get_parameter(k), torch.full_like(again.get_parameter(k), 0.5))
               for k in again.conditioning_outputs())


def test_training_grows_the_new_paths(tmp_path):
    """From the zero start, a few optimiser steps move the output projections (the noise-augmentation
    embedder's too, trained with the first frame noised as `--cond-noise-aug` does) and then the image encoder
    behind them (their gradient flows once the projections are non-zero)."""
    _base(tmp_path, TINY)
    model = _finetune(tmp_path).train()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(2, 3, 4, 16, 16, generator=g) * 2 - 1
    for _ in range(3):
        cond = training_cond(("first_frame",), x0=x0, drop_prob=0.0, generator=g, image_embed=True)
        level, noise = torch.rand(2, generator=g) * 0.5, torch.randn(cond.concat.shape, generator=g)
        cond = augment_first_frame(cond, level, noise, 3)
        opt.zero_grad()
        diffusion_loss(model, x0, CosineSchedule(), cond=cond, generator=g).backward()
        opt.step()
    now = model.state_dict()
    assert all(now[k].abs().sum() > 0 for k in model.conditioning_outputs())
    encoder = [k for k in now if k.startswith("content_encoder.")]
    assert encoder and any(not torch.equal(now[k], start[k]) for k in encoder)


def test_cli_fine_tune_from_a_plain_checkpoint(tmp_path, capsys):
    """`vidiff train --init-from BASE --condition first_frame --image-embed` says what it zeroed and trains it."""
    _base(tmp_path, TINY)
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        np.save(data / f"v{i}.npy", rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8))
    code, _, err = run(capsys, "train", "--data", data, "--model", tmp_path / "arch.json", "--frames", "4", "--size",
                       "16", "--steps", "2", "--batch", "2", "--condition", "first_frame", "--image-embed",
                       "--init-from", tmp_path / "base", "--sample-every", "0", "--save-every",
                       "0", "--out", tmp_path / "run")
    assert code == 0, err
    assert "output projections of new conditioning paths zeroed" in err
    weights = load_state_dict(tmp_path / "run" / "model.safetensors")
    assert weights["pooled_proj.weight"].abs().sum() > 0  # moved off its zero start (the EMA weights are saved)


@pytest.mark.parametrize("arch", [TINY, DIT], ids=["unet3d", "dit"])
def test_a_new_noise_augmentation_embedder_starts_as_a_no_op(tmp_path, capsys, arch):
    """`--init-from BASE --condition first_frame --cond-noise-aug S` on a base without a concat condition (so
    without a noise-augmentation embedder): the new embedder's last layer starts at zero, so at step 0 the
    fine-tune computes the base model's output at any noise level s of the first frame."""
    base = _base(tmp_path, arch)
    model = build_model_for(TrainConfig(model=str(tmp_path / "arch.json"), frames=4, size=16,
                                        condition="first_frame", cond_noise_aug=0.5,
                                        init_from=str(tmp_path / "base"))).eval()
    assert "noise_aug_embed.fc2.weight" in model.conditioning_outputs()
    assert "output projections of new conditioning paths zeroed" in capsys.readouterr().err
    g = torch.Generator().manual_seed(4)
    x, t = torch.randn(2, 3, 4, 16, 16, generator=g), torch.tensor([0.3, 0.8])
    frame = torch.rand(2, 3, 1, 16, 16, generator=g) * 2 - 1
    concat = known_frames_concat(frame, 4)

    def cond(s: float) -> Cond:
        return augment_first_frame(Cond(concat=concat), torch.full((2,), s), torch.randn(concat.shape, generator=g), 3)

    with torch.no_grad():
        ref, low, high = base(x, t), model(x, t, cond(0.02)), model(x, t, cond(0.45))
        assert ref.abs().mean() > 1e-2
        assert torch.equal(low, high)  # the level (and the noised frame, on zero conv_in weights) adds nothing
        torch.testing.assert_close(high, ref, rtol=0, atol=1e-5)  # the base's output (conv_in summed wider)
        model.noise_aug_embed.fc2.weight.normal_(generator=g)  # a randomly initialised embedder would not be
        assert (model(x, t, cond(0.45)) - ref).abs().max() > 1e-3
