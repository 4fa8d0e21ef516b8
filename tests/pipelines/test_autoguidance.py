"""Autoguidance through the pipeline: a checkpoint that ships a guide model (`vidiff export
--guide`), its default weight, the explicit weights, long videos, and the one-line errors."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidiff.checkpoint import save_pretrained
from vidiff.config import config_to_dict
from vidiff.diffusion import AutoGuidance, Denoiser
from vidiff.pipelines import load_pipeline, sample_long, sample_videos
from vidiff.utils import VidiffError

from .conftest import TINY, _tiny_model


def _perturbed(scale: float):
    model = _tiny_model()
    with torch.no_grad():
        g = torch.Generator().manual_seed(7)
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def guided_ckpt(tmp_path_factory, tiny_pipe, tiny_ckpt):
    """The tiny checkpoint exported with a perturbed copy of itself as its guide (default w = 1.5)."""
    root = tmp_path_factory.mktemp("ag")
    guide_src = root / "snapshot"
    save_pretrained(guide_src, _perturbed(0.05), {
        "model": config_to_dict(tiny_pipe.model.config), "diffusion": config_to_dict(tiny_pipe.diffusion),
        "video": config_to_dict(tiny_pipe.video), "summary": {"steps": 3}})
    dest = root / "exported"
    r = subprocess.run([sys.executable, "-m", "vidiff.cli", "export", str(tiny_ckpt), str(dest),
                        "--guide", str(guide_src), "--autoguidance", "1.5"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return dest


def test_exported_guide_is_loaded_and_used_by_default(guided_ckpt, tiny_pipe):
    cfg = json.loads((guided_ckpt / "config.json").read_text())
    assert cfg["autoguidance"] == {"guide": "guide", "w": 1.5, "guide_steps": 3}
    pipe = load_pipeline(str(guided_ckpt))
    assert pipe.guide is not None and pipe.autoguidance == 1.5
    for a, b in zip(pipe.guide.state_dict().values(), _perturbed(0.05).state_dict().values()):
        assert torch.equal(a, b)
    # w = 0 is the plain model, bit for bit; the default (1.5) equals sampling with AutoGuidance by hand
    plain = tiny_pipe(num=2, steps=4, seed=3)
    assert torch.equal(pipe(num=2, steps=4, seed=3, autoguidance=0), plain)
    by_hand = sample_videos(pipe.model, pipe.diffusion, (2, 3, 4, 16, 16), steps=4, seed=3, denoiser_wrapper=(
        lambda d: AutoGuidance(d, Denoiser(pipe.guide, parameterization="v"), 1.5)))
    from vidiff.data.io import to_uint8

    guided = pipe(num=2, steps=4, seed=3)
    assert torch.equal(guided, torch.from_numpy(to_uint8(by_hand)))
    assert not torch.equal(guided, plain)
    assert torch.equal(pipe(num=2, steps=4, seed=3, autoguidance=1.5), guided)


def test_default_weight_per_noise_range(guided_ckpt, tmp_path):
    # --autoguidance-high-noise: the default guides the noisier steps with another weight; an explicit
    # --autoguidance W is one constant weight
    dest = tmp_path / "interval"
    r = subprocess.run([sys.executable, "-m", "vidiff.cli", "export", str(guided_ckpt), str(dest),
                        "--guide", str(guided_ckpt / "guide"), "--autoguidance", "1",
                        "--autoguidance-high-noise", "2", "--logsnr-split", "-1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pipe = load_pipeline(str(dest))
    den = pipe.autoguided(Denoiser(pipe.model, parameterization="v"))
    assert (den.w, den.w_high_noise, den.logsnr_split) == (1.0, 2.0, -1.0)
    const = pipe.autoguided(Denoiser(pipe.model, parameterization="v"), 1.0)
    assert const.w_high_noise is None
    spec = lambda d: AutoGuidance(d, Denoiser(pipe.guide, parameterization="v"), 1.0, 2.0, -1.0)  # noqa: E731
    from vidiff.data.io import to_uint8

    by_hand = sample_videos(pipe.model, pipe.diffusion, (1, 3, 4, 16, 16), steps=4, seed=5, denoiser_wrapper=spec)
    assert torch.equal(pipe(num=1, steps=4, seed=5), torch.from_numpy(to_uint8(by_hand)))
    assert not torch.equal(pipe(num=1, steps=4, seed=5), pipe(num=1, steps=4, seed=5, autoguidance=1.0))
    # a weight for the noisier steps without a guide to weight is refused before anything is written
    from vidiff.pipelines.export import export_model

    with pytest.raises(VidiffError, match="--autoguidance-high-noise needs --guide"):
        export_model(guided_ckpt, tmp_path / "none", autoguidance_high_noise=2.0)
    assert not (tmp_path / "none").exists()


def test_long_videos_guide_each_window(guided_ckpt):
    pipe = load_pipeline(str(guided_ckpt))
    # one window: long sampling is plain sampling, with the same guidance
    one = sample_long(pipe, 1, frames=4, steps=3, seed=0)
    ref = sample_videos(pipe.model, pipe.diffusion, (1, 3, 4, 16, 16), steps=3, seed=0,
                        denoiser_wrapper=pipe.autoguided)
    assert torch.allclose(one, ref, atol=1e-6)
    assert not torch.allclose(sample_long(pipe, 1, frames=4, steps=3, seed=0, autoguidance=0), one, atol=1e-4)
    assert sample_long(pipe, 1, frames=8, window=4, steps=2, seed=0).shape == (1, 3, 8, 16, 16)


def test_autoguidance_errors(guided_ckpt, tiny_pipe, tmp_path):
    with pytest.raises(VidiffError, match="ships no guide model"):
        tiny_pipe(num=1, steps=2, autoguidance=1.0)
    with pytest.raises(VidiffError, match="ships no guide model"):
        sample_long(tiny_pipe, 1, frames=8, window=4, steps=2, autoguidance=1.0)
    broken = tmp_path / "broken"
    shutil.copytree(guided_ckpt, broken)
    shutil.rmtree(broken / "guide")
    with pytest.raises(VidiffError, match="names an autoguidance guide"):
        load_pipeline(str(broken))


def test_extend_and_interpolate_use_the_guide(guided_ckpt, tiny_pipe):
    """Reconstruction-guided extension and interpolation run the autoguided denoiser: the checkpoint's
    weight by default, the plain model at 0, and a guide equal to the model changes nothing."""
    import copy

    from vidiff.pipelines import extend, interpolate

    pipe = load_pipeline(str(guided_ckpt))
    video = torch.rand(1, 3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for op, kw in [(extend, dict(frames_total=5)), (interpolate, dict(factor=2))]:
        plain = op(tiny_pipe, video, steps=2, seed=0, **kw)
        assert torch.equal(op(pipe, video, steps=2, seed=0, autoguidance=0, **kw), plain)
        guided = op(pipe, video, steps=2, seed=0, **kw)  # the checkpoint's default, w = 1.5
        assert torch.equal(op(pipe, video, steps=2, seed=0, autoguidance=1.5, **kw), guided)
        assert not torch.allclose(guided, plain, atol=1e-4)
        same = copy.copy(pipe)
        same.guide = pipe.model  # D_w = D + w (D - D) = D
        torch.testing.assert_close(op(same, video, steps=2, seed=0, **kw), plain, atol=1e-5, rtol=0)
        with pytest.raises(VidiffError, match="ships no guide model"):
            op(tiny_pipe, video, steps=2, autoguidance=1.0, **kw)


def _export_with_guide(tmp_path, model, condition: str, tiny_pipe, tiny_ckpt) -> tuple[Path, Path]:
    """Save `model` as a `condition` run and export it with the unconditional tiny checkpoint as its guide."""
    run, dest = tmp_path / condition, tmp_path / "exported"
    save_pretrained(run, model, {"model": config_to_dict(model.config),
                                 "diffusion": config_to_dict(tiny_pipe.diffusion),
                                 "video": config_to_dict(tiny_pipe.video), "summary": {"steps": 5},
                                 "conditioning": {"condition": condition}})
    r = subprocess.run([sys.executable, "-m", "vidiff.cli", "export", str(run), str(dest),
                        "--guide", str(tiny_ckpt)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return run, dest


def test_unconditional_guide_is_widened_for_a_first_frame_model(tmp_path, tiny_pipe, tiny_ckpt):
    """`vidiff export --guide` with an unconditional snapshot for a first-frame model (the bundled
    shapes-i2v-tiny): the guide is stored in the run's architecture, with zero weights for the frame
    and mask inputs, so whatever the concat holds it predicts what the unconditional snapshot does."""
    from vidiff.conditioning import Cond
    from vidiff.conditioning.tasks import known_frames_concat
    from vidiff.models import build_model

    torch.manual_seed(3)
    i2v = build_model({**TINY, "cond_channels": 4}).eval()  # x_t + first frame + mask
    run, dest = _export_with_guide(tmp_path, i2v, "first_frame", tiny_pipe, tiny_ckpt)
    guide_cfg = json.loads((dest / "guide" / "config.json").read_text())
    assert guide_cfg["model"] == config_to_dict(i2v.config) and guide_cfg["widened_from"]["cond_channels"] == 0
    pipe = load_pipeline(str(dest))
    x = torch.randn(2, 3, 4, 16, 16)
    t = torch.full((2,), 0.4)
    cond = Cond(concat=known_frames_concat(torch.rand(2, 3, 1, 16, 16) * 2 - 1, 4))
    with torch.no_grad():
        assert torch.allclose(pipe.guide(x, t, cond), tiny_pipe.model(x, t), atol=1e-5)
        assert not torch.allclose(pipe.model(x, t, cond), pipe.model(x, t), atol=1e-3)  # the run itself reads it
    # guided sampling from a first frame runs and differs from the unguided
    a = pipe(num=1, steps=2, seed=0, image=torch.zeros(3, 16, 16), autoguidance=1.0)
    assert not torch.equal(a, pipe(num=1, steps=2, seed=0, image=torch.zeros(3, 16, 16), autoguidance=0))
    # a guide of another backbone cannot be widened: one line naming the problem
    other = tmp_path / "other"
    wide = build_model({**TINY, "base_channels": 16, "norm_groups": 8})
    save_pretrained(other, wide, {"model": config_to_dict(wide.config),
                                  "diffusion": config_to_dict(tiny_pipe.diffusion),
                                  "video": config_to_dict(tiny_pipe.video), "summary": {"steps": 1}})
    r = subprocess.run([sys.executable, "-m", "vidiff.cli", "export", str(run), str(tmp_path / "bad"),
                        "--guide", str(other)], capture_output=True, text=True)
    assert r.returncode != 0 and "is another backbone" in r.stderr and "base_channels" in r.stderr
    assert "Traceback" not in r.stderr


def test_unconditional_guide_gets_zero_text_layers_for_a_text_model(tmp_path, tiny_pipe, tiny_ckpt):
    """`vidiff export --guide` with an unconditional snapshot for a text fine-tune of it (the bundled
    shapes-t2v-tiny): the guide gains the run's cross-attention and pooled projection as zeros, so
    whatever the prompt it predicts what the unconditional snapshot does, while the run reads the text."""
    from vidiff.conditioning import Cond
    from vidiff.models import build_model

    torch.manual_seed(4)
    t2v = build_model({**TINY, "text_dim": 12}).eval()
    with torch.no_grad():  # a trained text model: its text layers are not zero
        for p in t2v.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    _, dest = _export_with_guide(tmp_path, t2v, "text", tiny_pipe, tiny_ckpt)
    assert json.loads((dest / "guide" / "config.json").read_text())["widened_from"].get("text_dim") in (None, 0)
    pipe = load_pipeline(str(dest))
    x, t = torch.randn(2, 3, 4, 16, 16), torch.full((2,), 0.4)
    cond = Cond(text=torch.randn(2, 5, 12), text_mask=torch.ones(2, 5, dtype=torch.bool), pooled=torch.randn(2, 12))
    with torch.no_grad():
        assert torch.allclose(pipe.guide(x, t, cond), tiny_pipe.model(x, t), atol=1e-5)
        assert not torch.allclose(pipe.model(x, t, cond), pipe.model(x, t, Cond(drop=torch.ones(2, dtype=torch.bool))),
                                  atol=1e-3)
