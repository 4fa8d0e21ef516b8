"""Latent sampling pipelines: with the identity "autoencoder" a latent pipeline is the pixel pipeline, bit for
bit (same seed, sampler, CFG, autoguidance, long videos by windows); a latent checkpoint finds only the
autoencoder it was trained with."""
import json
import shutil
from pathlib import Path
from dataclasses import replace

import pytest
import torch

from vidiff.checkpoint import save_pretrained
from vidiff.config import config_to_dict
from vidiff.models.autoencoders import IdentityAutoencoder, load_autoencoder, vae_fingerprint, weights_file
from vidiff.models.vae import VAEConfig, VideoAutoencoder, save_vae
from vidiff.pipelines import DiffusionConfig, LatentVideoPipeline, VideoFormat, VideoPipeline, load_pipeline
from vidiff.pipelines.latent import effective_chunk
from vidiff.utils import VidiffError

from ._tiny import perturbed_model as _model

TINY_VAE = VAEConfig(base_channels=8, norm_groups=4, latent_channels=4, spatial_factor=4, mid_attention=False)


@pytest.fixture(scope="module")
def class_pipe():
    """A tiny class-conditional pixel pipeline (4 frames of 16x16) with a perturbed guide model."""
    config = {"conditioning": {"condition": "class"}, "autoguidance": {"w": 1.0}}
    return VideoPipeline(_model(0, num_classes=3), DiffusionConfig(), VideoFormat(frames=4, size=16), config,
                         name="tiny", guide=_model(5, num_classes=3))


def test_identity_autoencoder_gives_the_pixel_pipeline_bit_for_bit(class_pipe):
    latent = LatentVideoPipeline.from_pixel_pipeline(class_pipe, IdentityAutoencoder())
    for num, kwargs in ((2, {"autoguidance": 0}), (1, {"class_id": 2, "guidance": 1.5}),
                        (1, {"sampler": "ddpm", "class_id": 0, "guidance": 2.0, "autoguidance": 0.5})):
        a = class_pipe(num=num, steps=3, seed=4, batch_size=1, **kwargs)
        b = latent(num=num, steps=3, seed=4, batch_size=1, **kwargs)
        assert a.shape == (num, 4, 16, 16, 3) and torch.equal(a, b), kwargs


def test_identity_autoencoder_long_videos_match(class_pipe):
    from vidiff.pipelines import sample_long

    latent = LatentVideoPipeline.from_pixel_pipeline(class_pipe, IdentityAutoencoder())
    a = sample_long(class_pipe, 1, frames=6, window=4, overlap=2, steps=3, seed=1, class_id=1, guidance=1.0)
    b = latent.sample_long(1, frames=6, window=4, overlap=2, steps=3, seed=1, class_id=1, guidance=1.0)
    assert b.shape == (1, 3, 6, 16, 16) and torch.equal(a, b)


def test_latent_pipeline_samples_latents_and_decodes_to_pixels(class_pipe):
    torch.manual_seed(0)
    ae = VideoAutoencoder(TINY_VAE).eval()
    model = _model(0, in_channels=4, out_channels=4, num_classes=3)
    pipe = LatentVideoPipeline(model, DiffusionConfig(), VideoFormat(frames=4, size=32), ae,
                               config={"conditioning": {"condition": "class"}}, scaling_factor=2.0)
    assert pipe.sample_shape(4, 32) == (4, 4, 8, 8)
    out = pipe(num=1, steps=2, class_id=1, guidance=1.0)
    assert out.shape == (1, 4, 32, 32, 3) and out.dtype == torch.uint8
    # a streaming decoder (temporal convolutions) is chunked whenever the clip is longer than a chunk; one with
    # temporal attention decodes a clip that one window with its context covers in one piece; a per-frame decoder
    # (no temporal reach) in chunks of 2 latent frames, to the same pixels
    assert effective_chunk(ae, 4, 2) == 2 and effective_chunk(ae, 2, 2) is None
    attention = VideoAutoencoder(replace(TINY_VAE, temporal_decoder="attention"))
    assert effective_chunk(attention, 6, 2) is None and effective_chunk(attention, 7, 2) == 2
    per_frame = VideoAutoencoder(replace(TINY_VAE, temporal_decoder="none")).eval()
    assert effective_chunk(per_frame, 4, 2) == 2
    z = torch.randn(1, 4, 4, 8, 8)
    fmt = VideoFormat(frames=4, size=32)
    whole = LatentVideoPipeline(model, DiffusionConfig(), fmt, per_frame, decode_chunk=0, tile=0)
    chunked = LatentVideoPipeline(model, DiffusionConfig(), fmt, per_frame, decode_chunk=2)
    torch.testing.assert_close(chunked.decode(z), whole.decode(z), atol=1e-5, rtol=0)
    with pytest.raises(VidiffError, match="spatial factor 4.*e.g. 28 or 32"):
        pipe(num=1, steps=2, size=30)


def _latent_checkpoint(root, vae_folder):
    """A tiny latent checkpoint that records `vae_folder` as its autoencoder."""
    ae = load_autoencoder(vae_folder)
    model = _model(0, in_channels=4, out_channels=4)
    folder = root / "latent_model"
    save_pretrained(folder, model, {
        "model": config_to_dict(model.config), "diffusion": config_to_dict(DiffusionConfig()),
        "video": config_to_dict(VideoFormat(frames=4, size=16)),
        "latent": {"vae": str(vae_folder), "vae_path": str(vae_folder.resolve()), "fingerprint": ae.fingerprint,
                   "weights": str(weights_file(vae_folder).resolve()), "scaling_factor": 1.5, "shift_factor": 0.0,
                   "spatial_factor": 4, "temporal_factor": 1, "latent_channels": 4}})
    return folder


def test_latent_checkpoint_needs_its_own_autoencoder(tmp_path):
    torch.manual_seed(0)
    vae_folder = tmp_path / "vae"
    save_vae(vae_folder, VideoAutoencoder(TINY_VAE))
    folder = _latent_checkpoint(tmp_path, vae_folder)
    pipe = load_pipeline(str(folder), decode_chunk=2)
    assert isinstance(pipe, LatentVideoPipeline) and pipe.scaling_factor == 1.5 and pipe.decode_chunk == 2
    assert pipe(num=1, steps=2).shape == (1, 4, 16, 16, 3)
    sha = vae_fingerprint(vae_folder)
    # replaced by other weights: refused, naming the expected file and its checksum
    torch.manual_seed(1)
    save_vae(vae_folder, VideoAutoencoder(TINY_VAE))
    with pytest.raises(VidiffError, match=f"model.safetensors \\(sha256 {sha}\\); found only other weights"):
        load_pipeline(str(folder))
    # removed: the same line says it is missing
    shutil.rmtree(vae_folder)
    with pytest.raises(VidiffError, match=f"sha256 {sha}\\) and it is missing"):
        load_pipeline(str(folder))
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["latent"]["fingerprint"] == sha


def test_autoencoders_are_found_by_name_on_the_model_search_path(tmp_path, monkeypatch):
    from vidiff.bundled import available, find_autoencoder

    save_vae(tmp_path / "vae-mine", VideoAutoencoder(TINY_VAE))
    monkeypatch.setenv("VIDIFF_MODELS", str(tmp_path))
    assert find_autoencoder("vae-mine") == tmp_path / "vae-mine"
    assert "vae-mine" not in available("model")  # an autoencoder is not a video model
    assert available("autoencoder")["vae-mine"] == tmp_path / "vae-mine"
    with pytest.raises(VidiffError,
                       match=f"autoencoder 'vae-other' not found: not a folder and not a name in .*{tmp_path}"):
        find_autoencoder("vae-other")


def test_a_moved_autoencoder_is_found_by_its_sha256_on_the_search_path(tmp_path, monkeypatch):
    """The recorded folder is gone, but the same weights sit under another name on $VIDIFF_MODELS: found by
    fingerprint; other weights there are not taken."""
    torch.manual_seed(0)
    vae_folder = tmp_path / "vae"
    save_vae(vae_folder, VideoAutoencoder(TINY_VAE))
    folder = _latent_checkpoint(tmp_path, vae_folder)
    models = tmp_path / "models"
    torch.manual_seed(1)
    save_vae(models / "vae-other", VideoAutoencoder(TINY_VAE))  # different weights
    shutil.copytree(vae_folder, models / "vae-renamed")
    shutil.rmtree(vae_folder)
    monkeypatch.setenv("VIDIFF_MODELS", str(models))
    pipe = load_pipeline(str(folder))
    assert Path(pipe.autoencoder.source) == models / "vae-renamed"
    shutil.rmtree(models / "vae-renamed")
    with pytest.raises(VidiffError, match="and it is missing"):
        load_pipeline(str(folder))
