"""Micro-conditioning (SVD's fps / motion bucket, and speed): the backbone embedder, the motion bucket from
optical flow, the per-video values, requests clamped to the trained range, first-frame noise augmentation."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from vidiff.checkpoint import load_state_dict
from vidiff.conditioning import Cond
from vidiff.conditioning.micro import (augment_first_frame, micro_section, micro_tensor, parse_micro,
                                       request_micro)
from vidiff.conditioning.tasks import known_frames_concat
from vidiff.data.clip_stats import (MOTION_FULL_SCALE, dataset_micro_values, motion_bucket,
                                    video_micro_values)
from vidiff.models import DiT, DiTConfig, UNet3D, UNet3DConfig, load_model
from vidiff.utils import VidiffError

UNET = UNet3DConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), head_dim=8, norm_groups=4,
                    cond_channels=4)
DIT = DiTConfig(hidden_size=16, depth=1, heads=2, patch_size=2, cond_channels=4)


def _perturb(model, scale=0.1):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("make, cfg", [(UNet3D, UNET), (DiT, DIT)])
def test_micro_zero_model_unchanged_and_embedder_starts_at_zero(make, cfg):
    """micro_conds=0 builds no new tensor (old checkpoints load strictly); a model with micro-conditions and
    the same other weights computes exactly the same output at initialisation, whatever the micro values."""
    torch.manual_seed(0)
    plain = _perturb(make(cfg))
    assert not any("micro" in k for k in plain.state_dict())
    withm = make(dataclasses.replace(cfg, micro_conds=2)).eval()
    missing, unexpected = withm.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("micro_embed.") for k in missing)
    x, t = torch.randn(2, 3, 4, 8, 8), torch.rand(2)
    with torch.no_grad():
        y0 = plain(x, t)
        y1 = withm(x, t, Cond(micro=torch.tensor([[7.0, 30.0], [7.0, 200.0]])))
    assert torch.equal(y0, y1)


@pytest.mark.parametrize("make, cfg", [(UNet3D, UNET), (DiT, DIT)])
def test_changing_micro_changes_output(make, cfg):
    model = _perturb(make(dataclasses.replace(cfg, micro_conds=2)))
    x, t = torch.randn(1, 3, 4, 8, 8), torch.rand(1)
    with torch.no_grad():
        a = model(x, t, Cond(micro=torch.tensor([[7.0, 30.0]])))
        b = model(x, t, Cond(micro=torch.tensor([[7.0, 200.0]])))
        c = model(x, t, Cond(micro=torch.tensor([[7.0, 30.0]])))
    assert (a - b).abs().max() > 1e-4
    assert torch.equal(a, c)


def test_micro_errors_are_one_line():
    x, t = torch.randn(1, 3, 4, 8, 8), torch.rand(1)
    needs = UNet3D(dataclasses.replace(UNET, micro_conds=2))
    for cond, words in ((None, "micro-condition"), (Cond(micro=torch.ones(1, 3)), "shape")):
        with pytest.raises(VidiffError, match=words) as e:
            needs(x, t, cond)
        assert "\n" not in str(e.value)
    with pytest.raises(VidiffError, match="micro_conds=0"):
        UNet3D(UNET)(x, t, Cond(micro=torch.ones(1, 2)))


def test_bundled_checkpoint_still_loads(tmp_path):
    """A checkpoint saved before micro-conditioning existed loads strictly and runs."""
    model = load_model("models/shapes-i2v-tiny")
    assert model.config.micro_conds == 0
    assert set(model.state_dict()) == set(load_state_dict("models/shapes-i2v-tiny/model.safetensors"))


def test_motion_bucket_mapping_and_flow_oracle():
    """A texture translated by d pixels per frame has mean flow d: its bucket is 255 d / size / 0.04."""
    assert motion_bucket(0.0, 32) == 0
    assert motion_bucket(MOTION_FULL_SCALE * 32, 32) == 255
    assert motion_bucket(10 * 32, 32) == 255  # clipped
    assert motion_bucket(0.5 * MOTION_FULL_SCALE * 64, 64) in (127, 128)
    rng = np.random.default_rng(0)
    import cv2

    base = cv2.GaussianBlur((rng.random((96, 96, 3)) * 255).astype(np.uint8), (0, 0), 2.0)
    for d in (1, 2):
        video = np.stack([np.roll(base, d * i, axis=1) for i in range(9)])[:, 16:80, 16:80]  # (9, 64, 64, 3)
        got = video_micro_values(video, {}, ["motion"], size=64, stride=1, fps=8)
        assert got["motion_score"] == pytest.approx(d, rel=0.15)
        assert got["motion"] == pytest.approx(255 * d / 64 / MOTION_FULL_SCALE, rel=0.15)


def test_speed_and_fps_follow_resize_and_stride():
    video = np.zeros((6, 64, 96, 3), np.uint8)
    got = video_micro_values(video, {"speed": 2.0, "fps": 24}, ["fps", "speed"], size=32, stride=2, fps=8)
    assert got == {"fps": 12.0, "speed": 2.0 * 32 / 64 * 2}
    assert video_micro_values(video, {}, ["fps"], size=32, stride=2, fps=8) == {"fps": 8.0}
    with pytest.raises(VidiffError, match="speed"):
        video_micro_values(video, {}, ["speed"], size=32, stride=1, fps=8)


def test_dataset_values_are_cached(tmp_path):
    from vidiff.data.dataset import VideoDataset
    from vidiff.data.synth import generate_shapes

    generate_shapes(tmp_path / "d", 3, frames=8, size=32, seed=0)
    ds = VideoDataset(tmp_path / "d", frames=8, size=32, progress=False)
    cache = tmp_path / "micro.json"
    first = dataset_micro_values(ds, ["motion", "speed"], size=32, stride=1, fps=8, cache=cache)
    meta = {json.loads(ln)["file"]: json.loads(ln) for ln in (tmp_path / "d" / "metadata.jsonl").read_text().split("\n")
            if ln}
    for rel, v in first.items():
        assert v["speed"] == pytest.approx(meta[rel]["speed"])
        assert 0 <= v["motion"] <= 255
    stored = json.loads(cache.read_text())
    stored["values"][ds.rel_paths[0]]["motion"] = -1.0  # a cached value is used, not re-measured
    cache.write_text(json.dumps(stored))
    again = dataset_micro_values(ds, ["motion", "speed"], size=32, stride=1, fps=8, cache=cache)
    assert again[ds.rel_paths[0]]["motion"] == -1.0
    other = dataset_micro_values(ds, ["motion"], size=32, stride=2, fps=8, cache=cache)  # another key: measured
    assert other[ds.rel_paths[0]]["motion"] >= 0
    # frames the dataset holds in memory give the values decoding does
    assert ds.cached is not None
    decoded = VideoDataset(tmp_path / "d", frames=8, size=32, cache=False, progress=False)
    assert dataset_micro_values(decoded, ["motion", "speed"], size=32, stride=1, fps=8) == first


def test_parse_section_and_request(capsys):
    assert parse_micro("fps, motion") == ("fps", "motion")
    assert parse_micro("none") == () and parse_micro(None) == ()
    for bad, words in (("fps,wind", "unknown micro-condition"), ("fps,fps", "twice")):
        with pytest.raises(VidiffError, match=words):
            parse_micro(bad)
    values = {"a": {"fps": 8, "motion": 40}, "b": {"fps": 8, "motion": 100}, "c": {"fps": 8, "motion": 60}}
    section = micro_section(["fps", "motion"], values)
    assert section["range"]["motion"] == [40, 100] and section["default"]["motion"] == 60
    assert torch.equal(micro_tensor(["motion", "fps"], [values["a"]]), torch.tensor([[40.0, 8.0]]))
    m = request_micro(section, 3, fps=None, motion=70)
    assert m.shape == (3, 2) and m[0].tolist() == [8.0, 70.0]
    m = request_micro(section, 1, motion=127)
    assert m[0].tolist() == [8.0, 100.0]
    assert "outside the range" in capsys.readouterr().err
    with pytest.raises(VidiffError, match="--speed"):
        request_micro(section, 1, speed=2.0)
    assert request_micro(None, 2, fps=None) is None


def test_first_frame_noise_augmentation():
    x0 = torch.randn(2, 3, 4, 8, 8)
    concat = known_frames_concat(x0[:, :, :1], 4)
    concat[1] = 0  # sample 1: the condition dropped (classifier-free guidance)
    noise = torch.randn_like(concat)
    same = augment_first_frame(Cond(concat=concat), torch.zeros(2), noise)
    assert torch.equal(same.concat, concat) and torch.equal(same.noise_aug, torch.zeros(2))
    aug = augment_first_frame(Cond(concat=concat), torch.full((2,), 0.5), noise)
    assert torch.equal(aug.concat[:, 3], concat[:, 3])  # the mask channel
    assert torch.equal(aug.concat[1], torch.zeros_like(concat[1]))  # a dropped condition stays zero
    assert torch.equal(aug.concat[:, :, 1:], torch.zeros_like(concat[:, :, 1:]))  # unknown frames stay zero
    phi = torch.tensor(0.25 * torch.pi)
    expect = torch.cos(phi) * x0[0, :, 0] + torch.sin(phi) * noise[0, :3, 0]
    assert torch.allclose(aug.concat[0, :3, 0], expect, atol=1e-6)
