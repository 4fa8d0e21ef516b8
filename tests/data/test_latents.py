"""Latent cache: items equal direct encodings, the recorded scaling factor gives unit variance, captions and
class ids carried over, resume skips finished shards, crashes leave no partial shard, NaN shards refused."""
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vidiff.data.dataset import VideoDataset
from vidiff.data.latents import INDEX_NAME, LatentDataset, encode_latent_cache, read_latent_index, shard_name
from vidiff.data.synth import generate_shapes
from vidiff.models.autoencoders import load_autoencoder
from vidiff.models.vae import VAEConfig, VideoAutoencoder, save_vae
from vidiff.utils import VidiffError


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    generate_shapes(root, num=10, frames=4, size=16, fmt="npy", progress=False, workers=1)
    return VideoDataset(root, frames=4, size=16, progress=False, captions="random")


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    torch.manual_seed(0)
    vae = VideoAutoencoder(VAEConfig(base_channels=8, norm_groups=4, shift_factor=0.1))
    with torch.no_grad():  # latents with a spread far from 1, so the scaling factor has work to do
        vae.encoder.conv_out.weight[:4].mul_(10.0)
    folder = tmp_path_factory.mktemp("vae")
    save_vae(folder, vae)
    return folder


class Counting:
    """Wraps an autoencoder's encode to count the clips it encodes (and optionally fail or emit NaN)."""

    def __init__(self, ae, fail_after: int | None = None, nan: bool = False):
        self.ae, self.clips, self.fail_after, self.nan = ae, 0, fail_after, nan
        self.original = ae.encode_moments
        ae.encode_moments = self

    def __call__(self, x):
        if self.fail_after is not None and self.clips >= self.fail_after:
            raise KeyboardInterrupt
        self.clips += x.shape[0]
        moments = self.original(x)
        return moments * float("nan") if self.nan else moments


def test_items_are_scaled_encodings_with_metadata(videos, vae_dir, tmp_path):
    ae = load_autoencoder(vae_dir)
    index = encode_latent_cache(videos, ae, tmp_path, shard_size=4, batch_size=3, progress=False)
    assert [s["clips"] for s in index["shards"]] == [4, 4, 2] and index["latent_shape"] == [4, 4, 4, 4]
    assert index["autoencoder"]["fingerprint"] == ae.fingerprint and index["shift_factor"] == pytest.approx(0.1)
    ds = LatentDataset(tmp_path, captions="random")
    assert len(ds) == 10 and ds.num_classes == videos.num_classes
    assert ds.all_captions() == videos.all_captions()
    scale = index["scaling_factor"]
    for i in (0, 5, 9):
        item, src = ds[i], videos[i]
        with torch.no_grad():
            q = ae.encode(src["video"][None])
        torch.testing.assert_close(item["video"], (q.mean[0] - 0.1) * scale, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(item["latent_std"], q.std[0] * scale, atol=1e-5, rtol=1e-5)
        assert item["path"] == src["path"] and item["class_id"] == src["class_id"] >= 0
        assert item["caption"] in videos.caption_lists[i] and item["index"] == i
    drawn = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        drawn.add(ds[0]["caption"])
    assert len(drawn) > 1  # captions="random" draws among the clip's alternatives
    assert LatentDataset(tmp_path)[0]["caption"] == videos.caption_lists[0][0]


@pytest.mark.parametrize("store_std", [False, True])
def test_scaling_factor_gives_unit_variance(videos, vae_dir, tmp_path, store_std):
    ae = load_autoencoder(vae_dir)
    index = encode_latent_cache(videos, ae, tmp_path, shard_size=4, store_std=store_std, progress=False)
    assert abs(index["latent_std"] - 1) > 0.5  # the raw latents are far from unit variance
    ds = LatentDataset(tmp_path)
    items = [ds[i] for i in range(len(ds))]
    mean = torch.stack([it["video"] for it in items])  # (N, C, f, h, w)
    if not store_std:
        assert "latent_std" not in items[0]
        assert abs(mean.var(unbiased=False).item() - 1) < 1e-3
        return
    std = torch.stack([it["latent_std"] for it in items])
    g = torch.Generator().manual_seed(0)
    z = torch.stack([mean + std * torch.randn(mean.shape, generator=g) for _ in range(16)])  # z ~ q(z|x), scaled
    assert abs(z.var().item() - 1) < 0.05


def test_resume_skips_finished_shards_and_crash_leaves_no_partial_shard(videos, vae_dir, tmp_path):
    ae = load_autoencoder(vae_dir)
    counter = Counting(ae, fail_after=6)
    with pytest.raises(KeyboardInterrupt):
        encode_latent_cache(videos, ae, tmp_path, shard_size=4, batch_size=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [shard_name(0)]  # shard 1 absent, no temp file
    counter.fail_after = None
    counter.clips = 0
    index = encode_latent_cache(videos, ae, tmp_path, shard_size=4, batch_size=2, progress=False)
    assert counter.clips == 6  # shards 1 and 2 only
    (tmp_path / shard_name(1)).unlink()
    (tmp_path / INDEX_NAME).unlink()
    counter.clips = 0
    again = encode_latent_cache(videos, ae, tmp_path, shard_size=4, batch_size=2, progress=False)
    assert counter.clips == 4 and again == index == read_latent_index(tmp_path)
    fresh = tmp_path / "fresh"
    encode_latent_cache(videos, ae, fresh, shard_size=4, batch_size=2, progress=False)
    for k in range(3):
        with safe_open(str(tmp_path / shard_name(k)), "pt") as a, safe_open(str(fresh / shard_name(k)), "pt") as b:
            assert torch.equal(a.get_tensor("mean"), b.get_tensor("mean"))


def test_nan_shards_and_mismatches_are_refused(videos, vae_dir, tmp_path):
    ae = load_autoencoder(vae_dir)
    encode_latent_cache(videos, ae, tmp_path, shard_size=4, progress=False)
    path = tmp_path / shard_name(2)
    with safe_open(str(path), "pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    tensors["mean"][1, 0, 0, 0, 0] = float("nan")
    save_file(tensors, str(path), metadata=meta)
    ds = LatentDataset(tmp_path)
    assert torch.isfinite(ds[8]["video"]).all()
    with pytest.raises(VidiffError, match=f"latent shard .*{shard_name(2)} holds NaN/inf latents"):
        ds[9]
    ds.check_autoencoder(ae.fingerprint)
    with pytest.raises(VidiffError, match="was encoded by autoencoder sha256"):
        ds.check_autoencoder("0" * 64)
    other = VideoAutoencoder(VAEConfig(base_channels=8, norm_groups=4))
    save_vae(tmp_path / "other_vae", other)
    with pytest.raises(VidiffError, match="latents of another autoencoder"):
        encode_latent_cache(videos, load_autoencoder(tmp_path / "other_vae"), tmp_path, shard_size=4, progress=False)
    with pytest.raises(VidiffError, match="not a latent cache"):
        LatentDataset(tmp_path / "other_vae")
    (tmp_path / shard_name(0)).unlink()
    with pytest.raises(VidiffError, match="is missing; rerun"):
        ds[0]
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    index["version"] = 99
    (tmp_path / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(VidiffError, match="version 99"):
        LatentDataset(tmp_path)


def test_nan_latents_are_refused_while_encoding(videos, vae_dir, tmp_path):
    ae = load_autoencoder(vae_dir)
    Counting(ae, nan=True)
    with pytest.raises(VidiffError, match=r"NaN/inf latents for shape_00000"):
        encode_latent_cache(videos, ae, tmp_path, progress=False)
    assert not any(tmp_path.iterdir())
    with pytest.raises(VidiffError, match="no fingerprint"):
        encode_latent_cache(videos, VideoAutoencoder(VAEConfig(base_channels=8, norm_groups=4)), tmp_path)
