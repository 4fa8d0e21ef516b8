"""Video autoencoder: temporal decoder at init = per-frame decoder, causality, chunked/tiled = one-shot,
the KL closed form, and clear errors for sizes it cannot take."""
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vidiff.models.vae import DiagonalGaussian, VAEConfig, VideoAutoencoder, tiled
from vidiff.utils import VidiffError

TINY = dict(base_channels=8, latent_channels=4, norm_groups=4)


def vae(**kw) -> VideoAutoencoder:
    return VideoAutoencoder(VAEConfig(**{**TINY, **kw})).eval()


@pytest.mark.parametrize("kw, frames, latent", [
    (dict(), 5, (4, 5, 4, 4)),
    (dict(spatial_factor=8, temporal_decoder="attention"), 3, (4, 3, 2, 2)),
    (dict(causal=True, temporal_compression=4, temporal_decoder="both"), 9, (4, 3, 4, 4)),
])
def test_shapes(kw, frames, latent):
    m = vae(**kw)
    x = torch.rand(2, 3, frames, 16, 16) * 2 - 1
    with torch.no_grad():
        q = m.encode(x)
        assert q.mean.shape == q.logvar.shape == (2, *latent)
        assert m.latent_shape(frames, 16, 16) == latent
        assert m.decode(q.sample()).shape == x.shape


@pytest.mark.parametrize("kind, causal", [("conv3d", False), ("attention", False), ("both", False), ("both", True)])
def test_temporal_decoder_at_init_is_the_per_frame_decoder(kind, causal):
    video = vae(temporal_decoder=kind, causal=causal)
    per_frame = vae(temporal_decoder="none")
    missing, unexpected = per_frame.load_state_dict(video.state_dict(), strict=False)
    assert not missing and unexpected and all(".temporal." in k for k in unexpected)
    assert {id(p) for p in video.temporal_parameters()} == \
        {id(p) for n, p in video.named_parameters() if n in set(unexpected)}
    z = torch.randn(2, 4, 6, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(video.decode(z), per_frame.decode(z), atol=1e-5, rtol=0)
        for p in video.temporal_parameters():  # the temporal layers are live once trained
            p.add_(0.1 * torch.randn_like(p))
        assert (video.decode(z) - per_frame.decode(z)).abs().max() > 1e-3


def test_causal_vae_first_frame_ignores_later_latents_and_frames(perturb):
    m = perturb(vae(causal=True, temporal_compression=4, temporal_decoder="both"), 0.1)
    z = torch.randn(1, 4, 4, 4, 4)  # 1 + 3 latent frames -> 13 frames
    x = torch.rand(1, 3, 13, 16, 16) * 2 - 1
    with torch.no_grad():
        y = m.decode(z)
        z2 = z.clone()
        z2[:, :, 2:] += torch.randn_like(z2[:, :, 2:])
        y2 = m.decode(z2)
        change = (y2 - y).abs().amax(dim=(0, 1, 3, 4))  # (13,) per decoded frame
        assert change[:5].max() == 0 and change[5:].min() > 1e-4  # frame 0 and group 1 depend on latents <= 1
        q = m.encode(x).mean
        x2 = x.clone()
        x2[:, :, 6] += 1.0  # a frame of group 2 (frames 5..8)
        change = (m.encode(x2).mean - q).abs().amax(dim=(0, 1, 3, 4))  # (4,) per latent frame
        assert change[:2].max() == 0 and change[2:].min() > 1e-5


@pytest.mark.parametrize("kw, frames", [(dict(), 11), (dict(causal=True), 11),
                                        (dict(causal=True, temporal_compression=4), 1 + 4 * 10)])
def test_chunked_decode_and_encode_equal_one_shot_when_the_receptive_field_is_covered(kw, frames, perturb):
    """Exact (float rounding) with the default overlap, the temporal receptive field; a short overlap is not."""
    m = perturb(vae(mid_attention=False, **kw), 0.1)
    with torch.no_grad():
        z = torch.randn(1, 4, m.latent_frames(frames), 2, 2)
        full = m.decode(z)
        for chunk in (1, 3):
            torch.testing.assert_close(m.decode(z, chunk=chunk), full, atol=1e-5, rtol=0)
        assert (m.decode(z, chunk=2, overlap=1) - full).abs().max() > 1e-3
        x = torch.rand(1, 3, frames, 8, 8) * 2 - 1
        full = m.encode(x).mean
        for chunk in (1, 3):
            torch.testing.assert_close(m.encode(x, chunk=chunk).mean, full, atol=1e-5, rtol=0)
        if m.temporal_factor > 1:  # the causal encoder mixes groups: a short context is not exact
            assert (m.encode(x, chunk=2, overlap=0).mean - full).abs().max() > 1e-4


def test_tiles_blend_exactly_for_a_pointwise_map():
    """The blending bookkeeping: weights sum to one everywhere, for any tile/overlap, uneven sizes included."""
    fn = lambda z: torch.tanh(z).repeat_interleave(4, -1).repeat_interleave(4, -2)  # noqa: E731
    z = torch.randn(2, 4, 3, 19, 23)
    for tile, overlap in [(8, 2), (8, 4), (5, 1), (7, 3)]:
        torch.testing.assert_close(tiled(fn, z, tile, overlap, 4), fn(z), atol=1e-6, rtol=0)


def test_tiled_decode_close_to_one_shot_and_seams_blended():
    """Tolerance: GroupNorm statistics and zero padding differ per tile, so tiles are not exact. On a random
    decoder, 32-latent-pixel tiles with 8 of overlap stay within 10 % of the output's std on average, a single
    tile is bit-identical, and blending beats butting tiles together (overlap 0)."""
    m = vae()
    z = torch.randn(1, 4, 2, 48, 48)
    with torch.no_grad():
        full = m.decode(z)
        assert torch.equal(m.decode(z, tile=48), full)
        err = (m.decode(z, tile=32, tile_overlap=8) - full).abs()
        assert err.mean() < 0.1 * full.std()
        butted = (m.decode(z, tile=24, tile_overlap=0) - full).abs()
        blended = (m.decode(z, tile=24, tile_overlap=8) - full).abs()
        seam = slice(4 * 24 - 8, 4 * 24 + 8)  # output rows around the first horizontal seam
        assert blended[..., seam, :].mean() < butted[..., seam, :].mean()
        x = torch.rand(1, 3, 2, 96, 96) * 2 - 1
        q = m.encode(x).mean
        assert (m.encode(x, tile=16, tile_overlap=4).mean - q).abs().mean() < 0.2 * q.std()


def test_kl_is_the_closed_form_of_a_diagonal_gaussian():
    mean, logvar = torch.randn(3, 4, 2, 5, 5), torch.randn(3, 4, 2, 5, 5)
    q = DiagonalGaussian(mean, logvar)
    expect = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(dim=(1, 2, 3, 4))
    torch.testing.assert_close(q.kl(), expect, rtol=1e-5, atol=1e-5)
    assert q.kl().shape == (3,)
    torch.testing.assert_close(DiagonalGaussian(torch.zeros(2, 4), torch.zeros(2, 4)).kl(), torch.zeros(2))
    g = torch.Generator().manual_seed(3)
    samples = torch.stack([q.sample(torch.Generator().manual_seed(3)) for _ in range(2)])
    assert torch.equal(samples[0], samples[1]) and torch.equal(q.sample(g), samples[0])
    big = DiagonalGaussian(torch.full((20000,), 2.0)[None], torch.full((20000,), 2 * torch.tensor(3.0).log())[None])
    s = big.sample(torch.Generator().manual_seed(0))
    assert abs(s.mean().item() - 2.0) < 0.1 and abs(s.std().item() - 3.0) < 0.1
    point = DiagonalGaussian(mean, logvar, deterministic=True)
    assert torch.equal(point.sample(), mean) and torch.equal(point.kl(), torch.zeros(3))


def test_forward_returns_reconstruction_and_posterior():
    m = vae()
    x = torch.rand(2, 3, 2, 16, 16) * 2 - 1
    rec, q = m(x, torch.Generator().manual_seed(0))
    assert rec.shape == x.shape and q.mean.shape == (2, 4, 2, 4, 4) and rec.requires_grad


def test_bad_sizes_and_configs_are_one_line_errors():
    m = vae()
    with pytest.raises(VidiffError, match=r"height 30 is not divisible by .* spatial factor 4; .* e\.g\. 28 or 32"):
        m.encode(torch.zeros(1, 3, 2, 30, 32))
    c = vae(causal=True, temporal_compression=4)
    with pytest.raises(VidiffError, match=r"6 frames .* 1 \+ 4k frames, e\.g\. 5 or 9"):
        c.encode(torch.zeros(1, 3, 6, 16, 16))
    with pytest.raises(VidiffError, match="expected latents"):
        m.decode(torch.zeros(1, 3, 2, 4, 4))
    with pytest.raises(VidiffError, match=r"tile of 4 latent pixels needs an overlap in \[0, 4\)"):
        m.decode(torch.zeros(1, 4, 1, 8, 8), tile=4, tile_overlap=4)
    with pytest.raises(VidiffError, match=r"expected videos \(B, 3, F, H, W\)"):
        m.encode(torch.zeros(1, 1, 2, 16, 16))
    for bad, match in [(dict(spatial_factor=6), "4 or 8"), (dict(channel_mult=(1, 2)), "3 entries"),
                       (dict(temporal_compression=4), "causal=True"),
                       (dict(causal=True, temporal_compression=4, temporal_decoder="none"), "temporal decoder")]:
        with pytest.raises(VidiffError, match=match):
            VAEConfig(**bad)
    with pytest.raises(VidiffError) as e:
        m.encode(torch.zeros(1, 3, 2, 32, 31))
    assert "\n" not in str(e.value) and "width 31" in str(e.value)
