"""load_autoencoder: vidiff VAE folders, tiny random diffusers AutoencoderKL / AutoencoderKLTemporalDecoder folders
(built and saved here) reproduce diffusers' encode/decode, the identity autoencoder, fingerprints, bad folders."""
import hashlib
import json

import pytest
import torch

from vidiff.models.autoencoders import IdentityAutoencoder, load_autoencoder, vae_fingerprint
from vidiff.models.vae import VAEConfig, VideoAutoencoder, save_vae
from vidiff.utils import VidiffError

diffusers = pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    torch.manual_seed(0)
    model = diffusers.AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                                    up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                                    layers_per_block=1, scaling_factor=0.3).eval()
    folder = tmp_path_factory.mktemp("sd") / "vae"
    model.save_pretrained(folder)
    return model, folder


@pytest.fixture(scope="module")
def svd_folder(tmp_path_factory):
    torch.manual_seed(1)
    model = diffusers.AutoencoderKLTemporalDecoder(block_out_channels=(32, 32), latent_channels=4, layers_per_block=1,
                                                   down_block_types=("DownEncoderBlock2D",) * 2).eval()
    with torch.no_grad():  # SVD's temporal layers and mixing start near neutral: make them matter
        for name, p in model.decoder.named_parameters():
            if "temporal" in name or "time_conv_out" in name:
                p.add_(0.1 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("svd")
    model.save_pretrained(folder)
    return model, folder


def test_diffusers_autoencoder_kl_matches_diffusers(sd_folder):
    model, folder = sd_folder
    ae = load_autoencoder(folder.parent)  # a pipeline folder: the autoencoder is under vae/
    assert (ae.spatial_factor, ae.temporal_factor, ae.latent_channels) == (2, 1, 4)
    assert ae.scaling_factor == pytest.approx(0.3) and ae.shift_factor == 0.0
    x = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        q = ae.encode(x)
        ref = model.encode(x.permute(0, 2, 1, 3, 4).reshape(6, 3, 16, 16)).latent_dist
        torch.testing.assert_close(q.mean.permute(0, 2, 1, 3, 4).reshape(6, 4, 8, 8), ref.mean, atol=1e-5, rtol=0)
        torch.testing.assert_close(q.logvar.permute(0, 2, 1, 3, 4).reshape(6, 4, 8, 8), ref.logvar, atol=1e-5, rtol=0)
        z = torch.randn(2, 4, 3, 8, 8)
        ref_x = model.decode(z.permute(0, 2, 1, 3, 4).reshape(6, 4, 8, 8)).sample
        torch.testing.assert_close(ae.decode(z).permute(0, 2, 1, 3, 4).reshape(6, 3, 16, 16), ref_x, atol=1e-5, rtol=0)
        torch.testing.assert_close(ae.decode(z, chunk=1), ae.decode(z), atol=1e-6, rtol=0)  # per frame: exact


def test_diffusers_temporal_decoder_matches_diffusers_and_its_decode_chunks(svd_folder):
    model, folder = svd_folder
    ae = load_autoencoder(folder / "config.json")
    assert ae.decoder_halo is None  # its GroupNorms see every frame of a chunk: chunks are approximate
    x = torch.rand(1, 3, 4, 16, 16) * 2 - 1
    z = torch.randn(1, 4, 6, 2, 2)
    frames = z[0].permute(1, 0, 2, 3)  # (F, C, h, w), diffusers' layout
    with torch.no_grad():
        ref = model.encode(x[0].permute(1, 0, 2, 3)).latent_dist
        torch.testing.assert_close(ae.encode(x).mean[0].permute(1, 0, 2, 3), ref.mean, atol=1e-5, rtol=0)
        ref_x = model.decode(frames, num_frames=6).sample  # (F, 3, H, W)
        full = ae.decode(z)
        torch.testing.assert_close(full[0].permute(1, 0, 2, 3), ref_x, atol=1e-5, rtol=0)
        per_frame = model.decode(frames, num_frames=1).sample
        assert (per_frame - ref_x).abs().max() > 1e-3  # its decoder does mix frames
        # chunks without context are SVD's decode_chunk_size; with context, the middle of a longer window
        chunks = torch.cat([model.decode(frames[i:i + 2], num_frames=2).sample for i in (0, 2, 4)])
        torch.testing.assert_close(ae.decode(z, chunk=2, overlap=0)[0].permute(1, 0, 2, 3), chunks, atol=1e-5, rtol=0)
        window = model.decode(frames[1:5], num_frames=4).sample[1:3]
        torch.testing.assert_close(ae.decode(z, chunk=2, overlap=1)[0, :, 2:4].permute(1, 0, 2, 3), window,
                                   atol=1e-5, rtol=0)


def test_vidiff_vae_folder_round_trip_and_fingerprint(tmp_path):
    vae = VideoAutoencoder(VAEConfig(base_channels=8, norm_groups=4, scaling_factor=0.7)).eval()
    save_vae(tmp_path / "v", vae)
    ae = load_autoencoder(tmp_path / "v")
    assert isinstance(ae, VideoAutoencoder) and ae.scaling_factor == pytest.approx(0.7)
    assert ae.fingerprint == hashlib.sha256((tmp_path / "v" / "model.safetensors").read_bytes()).hexdigest()
    assert ae.source == str(tmp_path / "v")
    z = torch.randn(1, 4, 2, 4, 4)
    with torch.no_grad():
        assert torch.equal(ae.decode(z), vae.decode(z))
        next(vae.parameters()).add_(1.0)
    save_vae(tmp_path / "w", vae)
    assert vae_fingerprint(tmp_path / "w") != ae.fingerprint


def test_identity_autoencoder_is_exact():
    ae = IdentityAutoencoder()
    x = torch.rand(2, 3, 5, 7, 9) * 2 - 1
    q = ae.encode(x)
    assert torch.equal(q.mean, x) and torch.equal(q.sample(torch.Generator().manual_seed(0)), x)
    assert torch.equal(q.kl(), torch.zeros(2))
    assert torch.equal(ae.decode(x), x) and torch.equal(ae.decode(x, chunk=2, tile=4), x)
    assert (ae.spatial_factor, ae.temporal_factor, ae.scaling_factor, ae.shift_factor) == (1, 1, 1.0, 0.0)
    assert ae.fingerprint == "identity"


def test_unsupported_or_missing_folders_are_one_line_errors(tmp_path):
    with pytest.raises(VidiffError, match="not found"):
        load_autoencoder(tmp_path / "nope")
    with pytest.raises(VidiffError, match="holds no config.json"):
        load_autoencoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "AutoencoderTiny"}))
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    with pytest.raises(VidiffError, match=r"'AutoencoderTiny' is not a supported .* AutoencoderKL and "
                                          r"AutoencoderKLTemporalDecoder"):
        load_autoencoder(tmp_path)
    (tmp_path / "diffusion_pytorch_model.safetensors").unlink()
    (tmp_path / "diffusion_pytorch_model.bin").write_bytes(b"")
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(VidiffError, match="safetensors weights only"):
        load_autoencoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": {}}))
    with pytest.raises(VidiffError, match="neither a vidiff VAE config"):
        load_autoencoder(tmp_path)
