"""Stable Video Diffusion through vidiff's EDM path: a tiny random diffusers SVD folder built here and saved
with save_pretrained reproduces diffusers' StableVideoDiffusionPipeline (same seed, Euler on EDM's σ grid,
guidance rising over the frames); bad requests are one-line errors or notices."""
import json
import shutil

import numpy as np
import pytest
import torch

import vidiff
from vidiff.models.diffusers_io import EDMTimesteps, read_layout
from vidiff.pipelines.image_to_video import ImageToVideo, clip_resize
from vidiff.utils import VidiffError

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")
Image = pytest.importorskip("PIL.Image")

SVD_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
                     prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002, steps_offset=1,
                     timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True)  # SVD's config


def tiny_svd_pipeline():
    torch.manual_seed(0)
    unet = diffusers.UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=32,
        num_attention_heads=(4, 8), projection_class_embeddings_input_dim=24, addition_time_embed_dim=8, num_frames=3)
    vae = diffusers.AutoencoderKLTemporalDecoder(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                                                 down_block_types=["DownEncoderBlock2D"] * 2, latent_channels=4,
                                                 layers_per_block=1)
    encoder = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4, image_size=224,
        intermediate_size=37, patch_size=32))
    return diffusers.StableVideoDiffusionPipeline(
        vae=vae, image_encoder=encoder, unet=unet, scheduler=diffusers.EulerDiscreteScheduler(**SVD_SCHEDULER),
        feature_extractor=transformers.CLIPImageProcessor(crop_size=224, size=224))


@pytest.fixture(scope="module")
def svd(tmp_path_factory):
    folder = tmp_path_factory.mktemp("svd") / "svd"
    ref = tiny_svd_pipeline()
    ref.save_pretrained(folder)
    return folder, ref, ImageToVideo.from_pretrained(folder)


def _image(h=32, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_reproduces_diffusers_stable_video_diffusion_pipeline(svd):
    """Same seed (image noise, then latents), Euler on EDM's σ grid, CFG from 1 + 0.5 on the first frame to
    1 + 2 on the last: diffusers' frames to 1e-4."""
    _, ref, pipe = svd
    image = _image()
    expected = ref(Image.fromarray(image), height=32, width=32, num_frames=3, num_inference_steps=4,
                   min_guidance_scale=1.5, max_guidance_scale=3.0, fps=9, motion_bucket_id=90, noise_aug_strength=0.1,
                   generator=torch.Generator().manual_seed(3), output_type="pt").frames  # (1, F, 3, H, W) in [0, 1]
    ours = pipe(image, frames=3, height=32, width=32, steps=4, guidance_first=0.5, guidance_last=2.0, fps=9,
                motion_bucket=90, noise_aug=0.1, seed=3, output="float")  # (1, 3, F, H, W) in [-1, 1]
    assert ours.shape == (1, 3, 3, 32, 32)
    assert torch.allclose(ours.permute(0, 2, 1, 3, 4) / 2 + 0.5, expected, atol=1e-4)
    # each video depends on its seed alone; the micro-conditions reach the network
    two = pipe(image, 2, frames=3, height=32, width=32, steps=4, fps=9, motion_bucket=90, noise_aug=0.1, seed=3,
               guidance_first=0.5, guidance_last=2.0, output="float")
    assert torch.allclose(two[:1], ours, atol=1e-4)
    other = pipe(image, frames=3, height=32, width=32, steps=4, fps=9, motion_bucket=200, noise_aug=0.1, seed=3,
                 guidance_first=0.5, guidance_last=2.0, output="float")
    assert (other - ours).abs().max() > 1e-3


def test_heun_and_uint8_output(svd):
    _, _, pipe = svd
    video = pipe(_image(), frames=2, height=32, width=32, steps=3, sampler="heun")
    assert video.dtype == np.uint8 and video.shape == (1, 2, 32, 32, 3)


def test_clip_resize_is_svds_antialiased_resize():
    """Our blur + bicubic resize against diffusers' helper (test-only use), down- and up-sampling."""
    from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing

    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for size in ((16, 24), (224, 224), (40, 56)):
        assert torch.allclose(clip_resize(x, size), _resize_with_antialiasing(x, size), atol=1e-6), size


def test_time_convention_is_c_noise(svd):
    _, ref, pipe = svd
    ref.scheduler.set_timesteps(5)
    sigmas = ref.scheduler.sigmas[:-1].double()
    t = torch.tensor([float(pipe.schedule._t(-2 * torch.log(s))) for s in sigmas])
    assert torch.allclose(EDMTimesteps(pipe.schedule)(t), ref.scheduler.timesteps, atol=1e-5)


def test_bad_requests(svd, tmp_path, capsys):
    folder, _, pipe = svd
    assert isinstance(vidiff.load_pipeline(str(folder)), ImageToVideo)  # the Python entry point knows the layout
    kw = dict(frames=2, height=32, width=32, steps=2, output="float")
    # an image of another size is resized with a notice
    out = pipe(_image(48, 40), **kw)
    assert out.shape == (1, 3, 2, 32, 32) and "resizing the 40x48 image to the model's 32x32" in capsys.readouterr().err
    # a motion bucket outside the trained range is clamped with a notice: the same video as the edge bucket
    a = pipe(_image(), motion_bucket=400, **kw)
    assert "motion bucket 400 is outside the trained range [0, 255]; using 255" in capsys.readouterr().err
    assert torch.allclose(a, pipe(_image(), motion_bucket=255, **kw))
    with pytest.raises(VidiffError, match="multiple of 4"):
        pipe(_image(), frames=2, height=30, width=32, steps=2)
    with pytest.raises(VidiffError, match="fps must be"):
        pipe(_image(), fps=0, **kw)
    with pytest.raises(VidiffError, match="not found"):
        pipe(tmp_path / "missing.png", **kw)
    broken = tmp_path / "svd"
    shutil.copytree(folder, broken)
    shutil.rmtree(broken / "image_encoder")
    with pytest.raises(VidiffError, match=r"missing component 'image_encoder' \(CLIPVisionModelWithProjection\)"):
        ImageToVideo.from_pretrained(broken)
    cfg = json.loads((folder / "vae" / "config.json").read_text())
    shutil.copytree(folder / "image_encoder", broken / "image_encoder")
    (broken / "vae" / "config.json").write_text(json.dumps({**cfg, "_class_name": "AutoencoderKL"}))
    with pytest.raises(VidiffError, match=r"unsupported class 'AutoencoderKL' for component 'vae'.*"
                                          "AutoencoderKLTemporalDecoder"):
        read_layout(broken)
