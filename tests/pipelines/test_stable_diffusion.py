"""A user's Stable Diffusion diffusers folder driven by vidiff: a tiny random folder built here and saved
with save_pretrained reproduces diffusers' StableDiffusionPipeline (same latents, DDIM, CFG); bad folders
are one-line errors."""
import json
import shutil

import numpy as np
import pytest
import torch

import vidiff
from vidiff.models.diffusers_io import DDPMTimesteps, read_layout
from vidiff.pipelines.stable_diffusion import StableDiffusion, scheduler_grid
from vidiff.utils import VidiffError

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                 set_alpha_to_one=False, steps_offset=1)  # Stable Diffusion 1.x's scheduler config


def byte_chars():
    """GPT-2/CLIP's byte-to-unicode table: 256 printable characters, one per byte."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def tiny_tokenizer(folder, max_length=8):
    """A CLIP BPE tokenizer over single bytes plus two merges ("at", "cat")."""
    chars = byte_chars()
    tokens = chars + [c + "</w>" for c in chars] + ["at</w>", "cat</w>", "<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\na t</w>\nc at</w>\n")
    return transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                                      model_max_length=max_length)


def tiny_sd_pipeline(tmp, prediction_type="epsilon"):
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=4)
    vae = diffusers.AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3, latent_channels=4,
                                  down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                                  norm_num_groups=4, sample_size=16)
    tokenizer = tiny_tokenizer(tmp / "vocab")
    text_encoder = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=16, intermediate_size=32, num_attention_heads=2,
        num_hidden_layers=2, vocab_size=len(tokenizer), max_position_embeddings=8))
    scheduler = diffusers.DDIMScheduler(**SCHEDULER, prediction_type=prediction_type)
    return diffusers.StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                             scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                             requires_safety_checker=False)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sd")
    ref = tiny_sd_pipeline(tmp)
    ref.save_pretrained(tmp / "sd")
    return tmp / "sd", ref


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_reproduces_diffusers_stable_diffusion_pipeline(tmp_path, prediction_type):
    """Same seeds (video i from seed + i), DDIM on the scheduler's grid, CFG: diffusers' images to 1e-4."""
    ref = tiny_sd_pipeline(tmp_path, prediction_type)
    ref.save_pretrained(tmp_path / "sd")
    pipe = StableDiffusion.from_pretrained(tmp_path / "sd")
    assert pipe.parameterization == {"epsilon": "eps", "v_prediction": "v"}[prediction_type]
    prompts = ["a cat", "cat at a cat"]
    gens = [torch.Generator().manual_seed(5 + i) for i in range(2)]
    expected = ref(prompts, num_inference_steps=6, guidance_scale=4.0, height=16, width=16, generator=gens,
                   output_type="pt").images  # (2, 3, 16, 16) in [0, 1]
    ours = pipe(prompts, 2, guidance=3.0, steps=6, sampler="ddim", seed=5, height=16, width=16, output="float")
    assert ours.shape == (2, 3, 1, 16, 16)
    assert torch.allclose(ours[:, :, 0] / 2 + 0.5, expected, atol=1e-4)
    # video 0 alone is video 0 of the batch; the uint8 output is the same images
    alone = pipe(prompts[:1], 1, guidance=3.0, steps=6, seed=5, height=16, width=16, output="float")
    assert torch.allclose(alone, ours[:1], atol=1e-5)
    frames = pipe(prompts, 2, guidance=3.0, steps=6, seed=5, height=16, width=16)
    assert frames.dtype == np.uint8 and frames.shape == (2, 1, 16, 16, 3)


def test_other_samplers_and_frames_run_on_the_folder(sd_folder):
    folder, _ = sd_folder
    pipe = StableDiffusion.from_pretrained(folder)
    for sampler in ("dpmpp_2m", "euler"):
        x = pipe("a cat", 1, guidance=2.0, steps=4, sampler=sampler, height=16, width=16, frames=2, output="float")
        assert x.shape == (1, 3, 2, 16, 16) and torch.isfinite(x).all()
        assert not torch.allclose(x[:, :, 0], x[:, :, 1])  # frames are independent images


def test_scheduler_grid_and_time_convention():
    """Diffusers timestep k is vidiff t = (k + 1)/N; the grid follows the config's spacing and end point."""
    from diffusers import DDIMScheduler

    for spacing, n in (("leading", 7), ("trailing", 7), ("linspace", 5)):
        ref = DDIMScheduler(**SCHEDULER, timestep_spacing=spacing)
        ref.set_timesteps(n)
        grid = scheduler_grid(dict(ref.config), n)
        assert torch.allclose(grid[:n], (ref.timesteps.double() + 1) / 1000), spacing
        assert grid[-1] == 1 / 1000  # set_alpha_to_one = False: the last step lands on ᾱ₀, as DDIM's
    assert scheduler_grid({"set_alpha_to_one": True}, 4)[-1] == 0
    k = DDPMTimesteps(1000)(torch.tensor([982 / 1000, 0.5005], dtype=torch.float32))
    assert k.tolist() == [981.0, pytest.approx(499.5)]
    with pytest.raises(VidiffError, match="timestep_spacing"):
        scheduler_grid({"timestep_spacing": "karras"}, 4)


def test_bad_folders_are_one_line_errors(sd_folder, tmp_path):
    folder, _ = sd_folder
    assert read_layout(folder).components["unet"] == "UNet2DConditionModel"
    assert isinstance(vidiff.load_pipeline(str(folder)), StableDiffusion)  # the Python entry point knows the layout
    broken = tmp_path / "no_vae"
    shutil.copytree(folder, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(VidiffError, match=r"missing component 'vae' \(AutoencoderKL\)"):
        StableDiffusion.from_pretrained(broken)
    odd = tmp_path / "odd"
    shutil.copytree(folder, odd)
    cfg = json.loads((odd / "vae" / "config.json").read_text())
    (odd / "vae" / "config.json").write_text(json.dumps({**cfg, "_class_name": "VQModel"}))
    with pytest.raises(VidiffError, match=r"unsupported class 'VQModel' for component 'vae'"):
        StableDiffusion.from_pretrained(odd)
    cfg = json.loads((odd / "unet" / "config.json").read_text())
    (odd / "unet" / "config.json").write_text(json.dumps({**cfg, "_class_name": "UNet3DConditionModel"}))
    with pytest.raises(VidiffError, match=r"unsupported class 'UNet3DConditionModel' for component 'unet'"):
        read_layout(odd)
    no_text = tmp_path / "no_text"
    shutil.copytree(folder, no_text)
    shutil.rmtree(no_text / "tokenizer")
    with pytest.raises(VidiffError, match="missing component 'tokenizer'"):
        read_layout(no_text)
    shutil.rmtree(no_text / "text_encoder")
    pipe = StableDiffusion.from_pretrained(no_text)
    with pytest.raises(VidiffError, match="pass prompt_embeds"):
        pipe("a cat", height=16, width=16, steps=2)
    x = pipe(prompt_embeds=torch.zeros(1, 8, 16), negative_embeds=torch.zeros(1, 8, 16), height=16, width=16, steps=2,
             output="float")
    assert x.shape == (1, 3, 1, 16, 16)
    with pytest.raises(VidiffError, match="multiple of 4"):
        pipe(prompt_embeds=torch.zeros(1, 8, 16), height=18, width=16, steps=2)
