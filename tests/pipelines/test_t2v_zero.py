"""Text2Video-Zero: cross-frame attention (vidiff and diffusers processors against each other and their
invariants), the latent translation, the reduction to per-frame image sampling, frame 0 = the image model's
sample, a Stable Diffusion folder, the command line and its bad inputs."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from vidiff.diffusion import Denoiser, sample_generators, stacked_randn
from vidiff.diffusion.samplers import ddim, timesteps
from vidiff.models import build_model
from vidiff.models.layers import Attention
from vidiff.pipelines import DiffusionConfig, VideoFormat, VideoPipeline
from vidiff.pipelines.frame_attention import diffusers_frame_processor, frame_attention
from vidiff.pipelines.t2v_zero import (TextToVideoZero, default_t0_t1, motion_shifts, smooth_background,
                                       warp_translate)
from vidiff.utils import VidiffError

from .conftest import TINY

IMAGE = {**TINY, "temporal": "none"}


def image_pipe(**overrides):
    torch.manual_seed(0)
    model = build_model({**IMAGE, **overrides})
    with torch.no_grad():  # perturb so zero-initialised output layers do not hide the attention
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return VideoPipeline(model.eval(), DiffusionConfig(), VideoFormat(frames=1, size=16), name="tiny-image")


@pytest.fixture(scope="module")
def pipe():
    return image_pipe()


# ----------------------------------------------------------------------------- attention processors


def _paired_attention(dim=16, heads=2):
    """A vidiff Attention and a diffusers Attention with the same weights (to_qkv split into to_q/k/v)."""
    attention_processor = pytest.importorskip("diffusers.models.attention_processor")
    torch.manual_seed(0)
    ours = Attention(dim, heads)
    theirs = attention_processor.Attention(dim, heads=heads, dim_head=dim // heads, bias=True)
    with torch.no_grad():
        for name, w, b in zip(("to_q", "to_k", "to_v"), ours.to_qkv.weight.chunk(3), ours.to_qkv.bias.chunk(3)):
            getattr(theirs, name).weight.copy_(w)
            getattr(theirs, name).bias.copy_(b)
        theirs.to_out[0].weight.copy_(ours.to_out.weight)
        theirs.to_out[0].bias.copy_(ours.to_out.bias)
    return ours, theirs


@pytest.mark.parametrize("mode", ["cross_frame", "sparse_causal"])
def test_diffusers_processor_equals_vidiff_processor(mode):
    """The same frame attention through diffusers' Attention + our AttnProcessor2_0 subclass and through
    vidiff's Attention + its processor, on 2 clips of 3 frames: equal to 1e-6; frame 0 = plain attention."""
    ours, theirs = _paired_attention()
    frames, x = 3, torch.randn(2 * 3, 5, 16)
    plain = ours(x, frames=frames)
    with frame_attention(ours, mode, frames):
        a = ours(x, frames=frames)
    theirs.set_processor(diffusers_frame_processor(mode, frames))
    b = theirs(x)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    first = torch.arange(0, 6, frames)
    torch.testing.assert_close(a[first], plain[first], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(a, plain, atol=1e-4)  # the other frames do read other frames
    same = x[first].repeat_interleave(frames, 0)  # identical frames: every frame equals plain attention
    with frame_attention(ours, mode, frames):
        out = ours(same, frames=frames)
    torch.testing.assert_close(out, ours(same, frames=frames), atol=1e-6, rtol=1e-5)


def test_frame_attention_restores_processors(pipe):
    layers = [m for m in pipe.model.modules() if isinstance(m, Attention) and m.role == "spatial"]
    before = [type(m.processor) for m in layers]
    with frame_attention(pipe.model, "cross_frame", 3):
        assert all(type(m.processor).__name__ == "CrossFrameAttnProcessor" for m in layers)
    assert [type(m.processor) for m in layers] == before


# ----------------------------------------------------------------------------- motion dynamics


def test_warp_moves_a_pattern_by_k_lambda_delta():
    """Frame k of the warp is the pattern moved by exactly k·λ·δ pixels (δ = (1, -2), λ = 1 and 2)."""
    x = torch.randn(2, 3, 20, 24)
    for strength in (1.0, 2.0):
        shifts = motion_shifts(4, (1, -2), strength)
        out = warp_translate(x, shifts)  # (2, 3, 4, 20, 24)
        assert out.shape == (2, 3, 4, 20, 24)
        for k in range(4):
            dx, dy = int(k * strength * 1), int(k * strength * -2)
            moved = out[:, :, k, max(dy, 0):20 + min(dy, 0), max(dx, 0):24 + min(dx, 0)]
            src = x[:, :, max(-dy, 0):20 + min(-dy, 0), max(-dx, 0):24 - max(dx, 0)]
            assert torch.equal(moved, src)
        wrong = out[:, :, 1, 0:18, 1:24]  # a shift off by one pixel does not match
        assert not torch.allclose(wrong, x[:, :, 0:18, 0:23], atol=1e-2)


def test_smoothing_keeps_foreground_and_frame_zero():
    z, shifts = torch.randn(1, 3, 4, 8, 8), motion_shifts(4, (1, 0))
    assert torch.equal(smooth_background(z, torch.ones(1, 1, 4, 8, 8), shifts), z)
    out = smooth_background(z, torch.zeros(1, 1, 4, 8, 8), shifts, alpha=1.0)
    assert torch.equal(out[:, :, 0], z[:, :, 0])
    torch.testing.assert_close(out[:, :, 1:], warp_translate(z[:, :, 0], shifts)[:, :, 1:])


def test_default_t0_t1_is_the_papers():
    assert default_t0_t1(50) == (44, 47)
    t0, t1 = default_t0_t1(6)
    assert 0 <= t0 < t1 <= 5


def _image_samples(pipe, num, frames, steps, seed):
    """Per-frame image sampling: every frame starts from the sample's first-frame noise, full DDIM grid."""
    schedule = pipe.diffusion.build_schedule()
    noise = stacked_randn(torch.empty(num, 3, 1, 16, 16), sample_generators(seed, num))
    den = Denoiser(pipe.model, pipe.diffusion.parameterization)
    z = ddim(den, noise.expand(-1, -1, frames, -1, -1).contiguous(), schedule, steps,
             spacing=timesteps(schedule, steps, "uniform"))
    return pipe.to_pixels(z)


def test_reduces_to_per_frame_image_sampling(pipe):
    """Δt = 0, δ = 0 and no cross-frame attention: bit-identical to sampling each frame from the same noise."""
    ours = TextToVideoZero(pipe)(None, 2, frames=3, motion=(0, 0), t0=3, t1=3, steps=6, cross_frame=False,
                                 seed=4, output="float")
    assert torch.equal(ours, _image_samples(pipe, 2, 3, 6, 4))


def test_frame_zero_is_the_image_sample_and_motion_moves_the_rest(pipe):
    """With motion, Δt > 0 and cross-frame attention, frame 0 still equals the image model's sample from its
    noise (it attends to itself only); the other frames differ from it."""
    ours = TextToVideoZero(pipe)(None, 1, frames=3, motion=(2, 1), t0=2, t1=4, steps=6, seed=1, output="float")
    ref = _image_samples(pipe, 1, 1, 6, 1)
    torch.testing.assert_close(ours[:, :, :1], ref, atol=1e-5, rtol=0)
    assert (ours[:, :, 1:] - ours[:, :, :1]).abs().max() > 1e-3
    smoothed = TextToVideoZero(pipe)(None, 1, frames=3, motion=(2, 1), t0=2, t1=4, steps=6, seed=1,
                                     smooth_background=True, output="float")
    torch.testing.assert_close(smoothed[:, :, :1], ref, atol=1e-5, rtol=0)


def test_bad_inputs(pipe):
    t2v = TextToVideoZero(pipe)
    with pytest.raises(VidiffError, match="at least 2"):
        t2v(None, frames=1, steps=4)
    with pytest.raises(VidiffError, match="t0 <= t1"):
        t2v(None, frames=2, steps=4, t0=3, t1=2)
    with pytest.raises(VidiffError, match="not trained with text"):
        t2v("a red circle", frames=2, steps=4)
    with pytest.raises(VidiffError, match="video model"):
        TextToVideoZero(image_pipe(temporal="attention"))
    with pytest.raises(VidiffError, match="spatial self-attention"):
        TextToVideoZero(image_pipe(attention_levels=[], mid_attention=False))


# ----------------------------------------------------------------------------- Stable Diffusion folder


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    pytest.importorskip("diffusers")
    from vidiff.pipelines.stable_diffusion import StableDiffusion

    from .test_stable_diffusion import tiny_sd_pipeline

    tmp = tmp_path_factory.mktemp("t2vz_sd")
    tiny_sd_pipeline(tmp).save_pretrained(tmp / "sd")
    return tmp / "sd", StableDiffusion.from_pretrained(tmp / "sd")


def test_stable_diffusion_folder(sd):
    """On an SD folder: Δt = 0, δ = 0, no cross-frame attention = StableDiffusion from the repeated first-frame
    latents (1e-5); with cross-frame attention and motion, frame 0 = StableDiffusion's image (1e-4)."""
    folder, sd_pipe = sd
    t2v = TextToVideoZero.from_pretrained(folder)
    kw = dict(steps=5, guidance=2.0, seed=3, size=16, output="float")
    plain = t2v("a cat", 1, frames=3, motion=(0, 0), t0=2, t1=2, cross_frame=False, **kw)
    noise = stacked_randn(torch.empty(1, 4, 1, 8, 8), sample_generators(3, 1)).expand(-1, -1, 3, -1, -1)
    ref = sd_pipe("a cat", 1, guidance=2.0, steps=5, seed=3, height=16, width=16, frames=3,
                  latents=noise.contiguous(), output="float")
    torch.testing.assert_close(plain, ref, atol=1e-5, rtol=0)
    moving = t2v("a cat", 1, frames=3, motion=(8, 0), t0=1, t1=3, **kw)
    image = sd_pipe("a cat", 1, guidance=2.0, steps=5, seed=3, height=16, width=16, output="float")
    torch.testing.assert_close(moving[:, :, :1], image, atol=1e-4, rtol=0)
    assert (moving[:, :, 1:] - moving[:, :, :1]).abs().max() > 1e-3


def test_cli_on_a_stable_diffusion_folder(sd, tmp_path, capsys):
    from vidiff.cli import main

    folder, _ = sd
    code = main(["t2v-zero", "--model", str(folder), "--prompt", "a cat", "--frames", "3", "--motion", "4,0",
                 "--size", "16", "--steps", "3", "--smooth-background", "--out", str(tmp_path), "--format", "npy"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "smoothing" in captured.err and "off" in captured.err  # no foreground mask for latents: one notice
    assert np.load(tmp_path / "t2v_zero.npy").shape == (1, 3, 16, 16, 3)
    assert main(["t2v-zero", "--model", str(folder), "--frames", "3", "--size", "16", "--steps", "3",
                 "--out", str(tmp_path / "none")]) == 2
    assert "give a text prompt" in capsys.readouterr().err


def test_equals_diffusers_text_to_video_zero_pipeline(tmp_path):
    """diffusers' (deprecated) TextToVideoZeroPipeline on the same tiny SD components, latents and settings
    (DDIM 5 steps, guidance scale 3 = w 2, 3 frames): equal to 1e-5. Its forward_loop is replaced by the exact
    q(x_T1 | x_T0) with our noise: diffusers multiplies alphas[k0:k1] (one index off ᾱ_k1/ᾱ_k0) and draws the
    noise from its own generator. Its motion field m moves content by −m·w/512 latent pixels."""
    pytest.importorskip("diffusers")
    from diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_zero import (
        TextToVideoZeroPipeline)

    from .test_stable_diffusion import tiny_sd_pipeline

    ref = tiny_sd_pipeline(tmp_path)
    ref.save_pretrained(tmp_path / "sd")
    theirs = TextToVideoZeroPipeline(vae=ref.vae, text_encoder=ref.text_encoder, tokenizer=ref.tokenizer,
                                     unet=ref.unet, scheduler=ref.scheduler, safety_checker=None,
                                     feature_extractor=None, requires_safety_checker=False)
    theirs.set_progress_bar_config(disable=True)
    ours = TextToVideoZero.from_pretrained(tmp_path / "sd")
    gens = sample_generators(3, 1)
    noise = stacked_randn(torch.empty(1, 4, 1, 8, 8), gens)  # what ours draws for seed 3
    eps = stacked_randn(torch.empty(1, 4, 2, 8, 8), gens)[0].transpose(0, 1)  # ... then its re-noising noise
    cumprod = theirs.scheduler.alphas_cumprod

    def forward_loop(x_t0, t0, t1, generator):
        a = cumprod[t1] / cumprod[t0]
        return a.sqrt() * x_t0 + (1 - a).sqrt() * eps

    theirs.forward_loop = forward_loop
    for t0, t1, dx, dy in ((2, 2, 0, 0), (1, 3, 2, -2), (0, 4, -4, 2)):  # δ in image px; the latent is 2x smaller
        frames = theirs("a cat", video_length=3, height=16, width=16, num_inference_steps=5, guidance_scale=3.0,
                        latents=noise[:, :, 0].clone(), motion_field_strength_x=-dx / 2 * 512 / 8,
                        motion_field_strength_y=-dy / 2 * 512 / 8, t0=t0, t1=t1, output_type="np").images
        expected = torch.as_tensor(frames).permute(3, 0, 1, 2)[None] * 2 - 1  # (1, 3, F, H, W) in [-1, 1]
        got = ours("a cat", 1, frames=3, motion=(dx, dy), t0=t0, t1=t1, steps=5, guidance=2.0, seed=3, size=16,
                   output="float")
        torch.testing.assert_close(got, expected.float(), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def image_ckpt(tmp_path_factory):
    from vidiff.checkpoint import save_pretrained
    from vidiff.config import config_to_dict

    p = image_pipe()
    folder = tmp_path_factory.mktemp("image_ckpt")
    save_pretrained(folder, p.model, {"model": config_to_dict(p.model.config), "diffusion": config_to_dict(p.diffusion),
                                      "video": config_to_dict(p.video)})
    return folder


def _vidiff(*args, cwd):
    return subprocess.run([sys.executable, "-m", "vidiff.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_cli_writes_a_video_and_refuses_bad_input(image_ckpt, tmp_path, capsys):
    r = _vidiff("t2v-zero", "--model", image_ckpt, "--frames", "3", "--motion", "1,0", "--steps", "4",
                "--out", tmp_path / "out", "--format", "mp4,npy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    video = np.load(tmp_path / "out" / "t2v_zero.npy")
    assert video.shape == (1, 3, 16, 16, 3) and (tmp_path / "out" / "t2v_zero.mp4").stat().st_size > 0
    from vidiff.cli import main

    for bad, words in ((["--motion", "left"], "--motion"), (["--motion", "1,2,3"], "--motion"),
                       (["--frames", "1"], "at least 2"), (["--prompt", "a cat"], "not trained with text"),
                       (["--t0", "3", "--t1", "1"], "t0 <= t1")):
        capsys.readouterr()
        code = main(["t2v-zero", "--model", str(image_ckpt), "--steps", "4", "--frames", "3",
                     "--out", str(tmp_path / "bad"), *bad])
        err = capsys.readouterr().err
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
