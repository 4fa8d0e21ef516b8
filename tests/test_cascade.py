"""Cascade (Imagen Video): tsr/ssr conditions, noise-conditioning augmentation, trainer, upsample, CLI."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidiff.checkpoint import save_pretrained
from vidiff.cli import main as cli
from vidiff.conditioning.tasks import (NOISE_AUG_MAX, model_overrides, parse_condition, request_cond,
                                       sr_request_cond, training_cond)
from vidiff.config import config_to_dict
from vidiff.data import io
from vidiff.models import build_model
from vidiff.pipelines import DiffusionConfig, VideoFormat, load_pipeline
from vidiff.pipelines.cascade import CascadeConfig, CascadePipeline, upsample
from vidiff.utils import VidiffError

TINY = {"arch": "unet3d", "base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "attention_levels": [1],
        "head_dim": 8, "scale_shift_norm": True, "min_group_channels": 4}


def _updown(x, k):
    """Reference bilinear up(down(x, k)) frame by frame, written out independently of tasks.py."""
    frames = []
    for f in range(x.shape[2]):
        im = x[:, :, f]  # (B, C, H, W)
        lo = F.interpolate(im, scale_factor=1 / k, mode="bilinear", antialias=True, align_corners=False)
        frames.append(F.interpolate(lo, size=im.shape[-2:], mode="bilinear", align_corners=False))
    return torch.stack(frames, dim=2)


def test_tsr_and_ssr_condition_shapes_masks_and_overrides():
    x0 = torch.rand(2, 3, 4, 8, 8) * 2 - 1
    assert parse_condition("tsr") == ("tsr",) and parse_condition("text+ssr") == ("text", "ssr")
    with pytest.raises(VidiffError, match="both fill the concat channels"):
        parse_condition("first_frame+ssr")
    assert model_overrides(("tsr",)) == {"cond_channels": 4} and model_overrides(("ssr",)) == {"cond_channels": 3}

    c = training_cond(("tsr",), x0=x0, generator=torch.Generator().manual_seed(0))
    assert c.concat.shape == (2, 4, 4, 8, 8) and c.noise_aug is None and c.drop is None
    torch.testing.assert_close(c.concat[:, :3, [0, 2]], x0[:, :, [0, 2]])  # known frames kept in their positions
    assert c.concat[:, :3, [1, 3]].abs().sum() == 0
    assert c.concat[:, 3, :, 0, 0].tolist() == [[1, 0, 1, 0]] * 2  # the frame mask

    s = training_cond(("ssr",), x0=x0, generator=torch.Generator().manual_seed(0))
    assert s.concat.shape == x0.shape and s.noise_aug.shape == (2,) and s.drop is None
    with pytest.raises(VidiffError, match="not divisible by the factor 2"):
        training_cond(("ssr",), x0=torch.zeros(1, 3, 4, 7, 7))
    with pytest.raises(VidiffError, match="not divisible by the factor 2"):
        training_cond(("tsr",), x0=torch.zeros(1, 3, 5, 8, 8))


def test_ssr_noise_aug_in_range_seeded_and_not_dropped():
    x0 = torch.rand(2000, 3, 2, 4, 4) * 2 - 1
    a = training_cond(("class", "ssr"), x0=x0, class_ids=torch.zeros(2000, dtype=torch.long), drop_prob=0.0,
                      generator=torch.Generator().manual_seed(3))
    b = training_cond(("class", "ssr"), x0=x0, class_ids=torch.zeros(2000, dtype=torch.long), drop_prob=1.0,
                      generator=torch.Generator().manual_seed(3))
    lv = a.noise_aug
    assert lv.min() >= 0 and lv.max() < NOISE_AUG_MAX
    assert abs(lv.mean().item() - NOISE_AUG_MAX / 2) < 4 * NOISE_AUG_MAX / math.sqrt(12 * 2000)  # U[0, max)
    assert b.drop.all() and not a.drop.any()
    torch.testing.assert_close(a.concat, b.concat)  # condition dropout never touches the SR input
    torch.testing.assert_close(a.noise_aug, b.noise_aug)
    c = training_cond(("ssr",), x0=x0[:4], generator=torch.Generator().manual_seed(4))
    d = training_cond(("ssr",), x0=x0[:4], generator=torch.Generator().manual_seed(4))
    e = training_cond(("ssr",), x0=x0[:4], generator=torch.Generator().manual_seed(5))
    assert torch.equal(c.concat, d.concat) and torch.equal(c.noise_aug, d.noise_aug)
    assert not torch.equal(c.noise_aug, e.noise_aug)
    # the noise grows with the level: residual std ≈ sin(π s / 2) for large s
    clean = _updown(x0[:4], 2)
    for i in range(4):
        s = c.noise_aug[i].item()
        resid = c.concat[i] - math.cos(math.pi * s / 2) * clean[i]
        assert abs(resid.std().item() - math.sin(math.pi * s / 2)) < 0.1


def test_ssr_at_level_zero_is_bilinear_up_of_down_and_request_side_matches():
    x0 = torch.rand(3, 3, 4, 8, 8) * 2 - 1
    c = training_cond(("ssr",), x0=x0, noise_aug_max=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(c.noise_aug, torch.zeros(3))
    ref = _updown(x0, 2)
    torch.testing.assert_close(c.concat, ref, atol=1e-6, rtol=0)
    low = F.interpolate(x0.transpose(1, 2).reshape(12, 3, 8, 8), size=(4, 4), mode="bilinear", antialias=True,
                        align_corners=False).reshape(3, 4, 3, 4, 4).transpose(1, 2)
    r = sr_request_cond("ssr", low, noise_aug=0.0)
    torch.testing.assert_close(r.concat, ref, atol=1e-6, rtol=0)
    # request side: fixed level; video i's noise depends only on seed + i
    r1 = sr_request_cond("ssr", low, noise_aug=0.1, seed=7)
    r2 = sr_request_cond("ssr", low[1:], noise_aug=0.1, seed=8)
    assert torch.equal(r1.noise_aug, torch.full((3,), 0.1)) and torch.equal(r1.concat[1:], r2.concat)
    t = sr_request_cond("tsr", low)
    assert t.concat.shape == (3, 4, 8, 4, 4) and t.noise_aug is None
    torch.testing.assert_close(t.concat[:, :3, ::2], low)
    assert t.concat[:, 3, :, 0, 0].tolist() == [[1, 0] * 4] * 3
    with pytest.raises(VidiffError, match="super-resolution stage"):
        request_cond(("ssr",), 1, frames=4)


# --- end to end: the real trainer, upsample, CascadePipeline, CLI ---------------------------------

@pytest.fixture(scope="module")
def sr_models(tmp_path_factory):
    """A tsr model (4 frames of 8x8) and an ssr model (4 frames, 8 -> 16) after 2 steps of `vidiff train`."""
    from vidiff.data.synth import generate_shapes
    from vidiff.train import TrainConfig, train

    root = tmp_path_factory.mktemp("cascade")
    generate_shapes(root / "shapes", num=4, frames=4, size=16, seed=0, progress=False)
    (root / "tiny.json").write_text(json.dumps(TINY))
    common = dict(data=str(root / "shapes"), model=str(root / "tiny.json"), frames=4, batch=2, steps=2, warmup=1,
                  save_every=0, sample_every=0, sample_steps=2, num_samples=1, cache=False)
    tsr = train(TrainConfig(out=str(root / "tsr"), size=8, condition="tsr", **common))
    ssr = train(TrainConfig(out=str(root / "ssr"), size=16, condition="ssr", **common))
    torch.manual_seed(0)
    base = root / "base"  # an untrained unconditional base: 2 frames of 8x8
    model = build_model(TINY)
    save_pretrained(base, model, {"model": config_to_dict(model.config), "diffusion": config_to_dict(DiffusionConfig()),
                                  "video": config_to_dict(VideoFormat(frames=2, size=8, fps=4))})
    return {"tsr": tsr, "ssr": ssr, "base": base, "root": root}


def test_trained_sr_models_upsample_to_the_right_shape(sr_models):
    for kind, ch in (("tsr", 4), ("ssr", 3)):
        cfg = json.loads((sr_models[kind] / "config.json").read_text())
        assert cfg["conditioning"]["condition"] == kind and cfg["model"]["cond_channels"] == ch
    tsr, ssr = load_pipeline(str(sr_models["tsr"])), load_pipeline(str(sr_models["ssr"]))
    video = torch.rand(2, 3, 2, 8, 8) * 2 - 1
    y = upsample(tsr, ssr, video, space=2, time=2, steps=2, seed=0)
    assert y.shape == (2, 3, 4, 16, 16) and y.min() >= -1 and y.max() <= 1
    # SSR on a larger size than it was trained at (convolutional U-Net), run twice for space=4
    z = upsample(None, ssr, video[0], space=4, time=1, steps=2, seed=0)
    assert z.shape == (3, 2, 32, 32)
    t = upsample(tsr, None, video, space=1, time=2, steps=2, seed=0)
    torch.testing.assert_close(t[:, :, ::2], video, atol=1 / 127.5, rtol=0)  # given frames kept in place
    again = upsample(tsr, None, video, space=1, time=2, steps=2, seed=0)
    assert torch.equal(t, again)


def test_upsample_errors_are_one_line(sr_models):
    tsr, ssr = load_pipeline(str(sr_models["tsr"])), load_pipeline(str(sr_models["ssr"]))
    video = torch.zeros(1, 3, 2, 8, 8)
    cases = [
        (dict(tsr=None, ssr=ssr, space=2, time=2),
         "--time 2 needs a temporal super-resolution model: pass --tsr-model"),
        (dict(tsr=tsr, ssr=None, space=2, time=1),
         "--space 2 needs a spatial super-resolution model: pass --ssr-model"),
        (dict(tsr=tsr, ssr=ssr, space=3, time=2), "power of 2"),
        (dict(tsr=ssr, ssr=None, space=1, time=2), "is not a temporal super-resolution model"),
        (dict(tsr=None, ssr=None, space=1, time=1), "nothing to upsample"),
    ]
    for kw, msg in cases:
        with pytest.raises(VidiffError, match=msg) as e:
            upsample(kw.pop("tsr"), kw.pop("ssr"), video, steps=1, **kw)
        assert "\n" not in str(e.value)
    with pytest.raises(VidiffError, match="square frames; the input is 10x8"):
        upsample(None, ssr, torch.zeros(3, 2, 8, 10), space=2, time=1)
    with pytest.raises(VidiffError, match="cannot turn 2 frames of 5x5 into 4 frames of 5x5"):
        upsample(tsr, None, torch.zeros(3, 2, 5, 5), space=1, time=2, steps=1)
    with pytest.raises(VidiffError, match="at least 2 frames"):
        upsample(tsr, None, torch.zeros(3, 1, 8, 8), space=1, time=2, steps=1)


def test_cascade_pipeline_and_config(sr_models, tmp_path):
    cfg_path = tmp_path / "cascade.yaml"
    cfg_path.write_text(f"base: {{model: {sr_models['base']}, steps: 2}}\n"
                        f"tsr: {{model: {sr_models['tsr']}, steps: 2}}\nssr: {sr_models['ssr']}\n")
    cfg = CascadeConfig.load(cfg_path)
    assert cfg.ssr.steps == 25 and cfg.factors == (2, 2)
    pipe = CascadePipeline.from_config(CascadeConfig(cfg.base, cfg.tsr, type(cfg.ssr)(cfg.ssr.model, 2)))
    stages = pipe(2, seed=0, return_stages=True)
    assert [tuple(v.shape) for v in stages.values()] == [(2, 2, 8, 8, 3), (2, 4, 8, 8, 3), (2, 4, 16, 16, 3)]
    assert pipe.fps == 8
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"tsr: {sr_models['tsr']}\n")
    with pytest.raises(VidiffError, match="no 'base' stage"):
        CascadeConfig.load(bad)
    bad.write_text(f"base: {sr_models['base']}\nssr: {sr_models['tsr']}\n")
    with pytest.raises(VidiffError, match="is not a spatial super-resolution model"):
        CascadePipeline.from_config(bad)


def test_cli_upsample_and_cascade_write_files(sr_models, tmp_path, capsys):
    inp = io.write_npy(tmp_path / "low.npy", np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8))
    args = ["upsample", str(inp), "--tsr-model", str(sr_models["tsr"]), "--ssr-model", str(sr_models["ssr"]),
            "--steps", "2", "--out", str(tmp_path / "o"), "--format", "npy,mp4"]
    assert cli(args) == 0
    assert np.load(tmp_path / "o" / "low_upsampled.npy").shape == (4, 16, 16, 3)
    assert io.read_video(tmp_path / "o" / "low_upsampled.mp4").shape[0] == 4
    assert "wrote" in capsys.readouterr().out
    yaml = tmp_path / "c.yaml"
    yaml.write_text(f"base: {{model: {sr_models['base']}, steps: 2}}\ntsr: {{model: {sr_models['tsr']}, steps: 2}}\n"
                    f"ssr: {{model: {sr_models['ssr']}, steps: 2}}\n")
    assert cli(["cascade", "--config", str(yaml), "--num", "2", "--out", str(tmp_path / "c"), "--format", "npy",
                "--stages"]) == 0
    assert np.load(tmp_path / "c" / "cascade.npy").shape == (2, 4, 16, 16, 3)
    assert np.load(tmp_path / "c" / "cascade_base.npy").shape == (2, 2, 8, 8, 3)
    assert np.load(tmp_path / "c" / "cascade_tsr.npy").shape == (2, 4, 8, 8, 3)
    capsys.readouterr()
    for bad, msg in [(["upsample", str(inp)], "give a super-resolution model"),
                     (["upsample", str(inp), "--ssr-model", str(sr_models["ssr"]), "--time", "2"],
                      "--time 2 needs a temporal super-resolution model"),
                     (["upsample", str(tmp_path / "none.mp4"), "--ssr-model", str(sr_models["ssr"])], "not found"),
                     (["sample", "--model", str(sr_models["ssr"]), "--num", "1", "--steps", "1"], "vidiff upsample")]:
        assert cli(bad) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and msg in err and "\n" not in err


def test_cli_upsample_without_a_model_uses_the_bundled_sr_stages(sr_models, tmp_path, capsys, monkeypatch):
    """`vidiff upsample IN --space 2 --time 2` with no model picks the bundled shapes-ssr-tiny and
    shapes-tsr-tiny (here stand-ins on a patched model search path), with a notice; the output equals the
    run with the models named; a factor whose stage is not bundled is a one-line error."""
    import shutil

    from vidiff import bundled

    inp = io.write_npy(tmp_path / "low.npy", np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8))
    weights = tmp_path / "weights"
    shutil.copytree(sr_models["ssr"], weights / "shapes-ssr-tiny")
    monkeypatch.setattr(bundled, "search_path", lambda: [weights])
    common = ["--steps", "2", "--format", "npy", "--name", "y"]
    assert cli(["upsample", str(inp), "--space", "2", "--out", str(tmp_path / "a")] + common) == 0
    assert "using the bundled shapes-ssr-tiny" in capsys.readouterr().err
    assert cli(["upsample", str(inp), "--ssr-model", str(sr_models["ssr"]), "--out", str(tmp_path / "b")] + common) == 0
    a, b = np.load(tmp_path / "a" / "y.npy"), np.load(tmp_path / "b" / "y.npy")
    assert a.shape == (2, 16, 16, 3) and np.array_equal(a, b)
    capsys.readouterr()
    assert cli(["upsample", str(inp), "--space", "2", "--time", "2", "--out", str(tmp_path / "c")] + common) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no bundled shapes-tsr-tiny" in err and "\n" not in err
    shutil.copytree(sr_models["tsr"], weights / "shapes-tsr-tiny")
    assert cli(["upsample", str(inp), "--space", "2", "--time", "2", "--out", str(tmp_path / "c")] + common) == 0
    assert "shapes-ssr-tiny and shapes-tsr-tiny" in capsys.readouterr().err
    assert np.load(tmp_path / "c" / "y.npy").shape == (4, 16, 16, 3)


def test_cascade_stage_samplers_override_the_cascade_sampler(sr_models):
    """A stage's own sampler is used for that stage only: each stage equals the stage run by hand."""
    from vidiff.data.io import from_uint8, to_uint8
    from vidiff.pipelines.cascade import StageConfig

    base, tsr, ssr = (str(sr_models[k]) for k in ("base", "tsr", "ssr"))
    cfg = CascadeConfig(StageConfig(base, 2, sampler="ddpm"), StageConfig(tsr, 2, sampler="ddpm"), StageConfig(ssr, 2))
    stages = CascadePipeline.from_config(cfg)(2, seed=0, return_stages=True)
    bp = load_pipeline(base)
    assert torch.equal(stages["base"], bp(2, steps=2, sampler="ddpm", seed=0))
    assert not torch.equal(stages["base"], bp(2, steps=2, sampler="ddim", seed=0))
    t = upsample(tsr, None, from_uint8(stages["base"]), space=1, time=2, steps=2, sampler="ddpm", seed=0)
    assert np.array_equal(stages["tsr"].numpy(), to_uint8(t))
    s = upsample(None, ssr, from_uint8(stages["tsr"]), space=2, time=1, steps=2, sampler="ddim", seed=0)
    assert np.array_equal(stages["ssr"].numpy(), to_uint8(s))
    with pytest.raises(VidiffError, match="unknown tsr.sampler 'lms'; choose one of ddim, ddpm, dpmpp_2m"):
        CascadeConfig(StageConfig(base), StageConfig(tsr, sampler="lms"))


def test_cascade_config_by_bundled_name(monkeypatch, tmp_path, sr_models):
    from vidiff import bundled
    from vidiff.pipelines.cascade import bundled_cascades, resolve_cascade

    monkeypatch.setattr(bundled, "search_path", lambda: [tmp_path])
    (tmp_path / "my-cascade.yaml").write_text(f"base: {{model: {sr_models['base']}, steps: 2}}\n"
                                              f"ssr: {{model: {sr_models['ssr']}, steps: 2}}\n")
    assert bundled_cascades() == ["my-cascade"]
    assert resolve_cascade("my-cascade") == tmp_path / "my-cascade.yaml"
    assert CascadeConfig.load("my-cascade").factors == (1, 2)
    with pytest.raises(VidiffError, match="unknown cascade config 'nope'.*available: my-cascade"):
        CascadeConfig.load("nope")
