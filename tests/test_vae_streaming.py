"""Streaming decoding of the temporal decoder (conv caches carried between chunks): equals the one-shot decode to
1e-5 for the centred and the causal conv3d decoders (with temporal compression too, and inside spatial tiles),
decodes every latent frame once, holds bounded caches, emits a causal decoder's frames as soon as their latents
arrive; decoders with temporal attention keep the overlapped chunks."""
import pytest
import torch

from vidiff.models.vae import VAEConfig, VideoAutoencoder
from vidiff.models.vae_stream import DecoderStream, stream_decode, streamable

VARIANTS = {"conv3d": {}, "causal": {"causal": True},
            "causal-x4": {"causal": True, "temporal_compression": 4}, "per-frame": {"temporal_decoder": "none"}}


def _vae(seed: int = 0, **kw) -> VideoAutoencoder:
    """A tiny VAE whose temporal layers are perturbed away from their identity initialisation."""
    torch.manual_seed(seed)
    ae = VideoAutoencoder(VAEConfig(base_channels=8, norm_groups=4, mid_attention=False, **kw)).eval()
    with torch.no_grad():
        for p in ae.temporal_parameters():
            p.add_(0.1 * torch.randn(p.shape))
    return ae


@pytest.mark.parametrize("name", list(VARIANTS))
def test_streaming_equals_one_shot(name):
    ae = _vae(**VARIANTS[name])
    z = torch.randn(2, 4, 7, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = ae.decode(z)  # (2, 3, F, 16, 16)
        for chunk in (1, 3):
            torch.testing.assert_close(stream_decode(ae.decoder, z, chunk), full, atol=1e-5, rtol=0)
        torch.testing.assert_close(ae.decode(z, chunk=2), full, atol=1e-5, rtol=0)  # the default chunked path
        if name == "conv3d":  # within spatial tiles: the tiled one-shot decode, streamed
            torch.testing.assert_close(ae.decode(z[:1], chunk=3, tile=3, tile_overlap=1),
                                       ae.decode(z[:1], tile=3, tile_overlap=1), atol=1e-5, rtol=0)
    assert full.shape[2] == ae.pixel_frames(7)


def _frames_decoded(ae, fn) -> int:
    """Latent frames that pass through the decoder's first 2D convolution while fn runs."""
    seen = []
    handle = ae.decoder.conv_in.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    try:
        with torch.no_grad():
            fn()
    finally:
        handle.remove()
    return sum(seen)


@pytest.mark.parametrize("name", ["conv3d", "causal"])
def test_each_latent_frame_is_decoded_once(name):
    ae = _vae(**VARIANTS[name])
    z = torch.randn(1, 4, 12, 4, 4)
    assert _frames_decoded(ae, lambda: ae.decode(z, chunk=3)) == 12
    overlapped = _frames_decoded(ae, lambda: ae.decode(z, chunk=3, stream=False))  # context recomputed
    assert overlapped > 12
    with torch.no_grad():
        torch.testing.assert_close(ae.decode(z, chunk=3, stream=False), ae.decode(z, chunk=3), atol=1e-5, rtol=0)


def test_causal_frames_are_emitted_as_their_latents_arrive_and_caches_stay_bounded():
    z = torch.randn(1, 4, 9, 4, 4)
    causal, centred = _vae(**VARIANTS["causal"]), _vae(**VARIANTS["conv3d"])
    with torch.no_grad():
        full = causal.decode(z)
        stream = DecoderStream(causal.decoder)
        for s in range(0, 8, 2):  # no look-ahead: each chunk's frames are final at once
            torch.testing.assert_close(stream.push(z[:, :, s:s + 2]), full[:, :, s:s + 2], atol=1e-5, rtol=0)
        centred_stream = DecoderStream(centred.decoder)
        # a centred kernel needs one frame ahead per convolution: the first frames wait for later chunks
        assert centred_stream.push(z[:, :, :2]) is None
        for s in range(2, 8, 2):
            centred_stream.push(z[:, :, s:s + 2])
    for st in (stream, centred_stream):
        blocks = [b.temporal for b in st.mid + [b for blocks, _ in st.up for b in blocks]]
        for res in blocks:
            for conv in (res.conv1, res.conv2):
                assert conv.tail is None or conv.tail.shape[1] <= conv.left + conv.right  # the cache: k − 1 frames
            assert res.skip is None or res.skip.shape[1] <= res.conv1.right + res.conv2.right


def test_the_look_ahead_is_flushed_a_chunk_at_a_time():
    """A centred decoder holds its receptive field until the clip ends; with a chunk limit no call decodes more than
    a chunk's worth of frames at any layer, the flush included, and the frames are still the one-shot decode."""
    ae, z = _vae(**VARIANTS["conv3d"]), torch.randn(1, 4, 6, 4, 4)
    with torch.no_grad():
        stream = DecoderStream(ae.decoder, chunk=2)
        outs = [stream.push(z[:, :, s:s + 2]) for s in (0, 2, 4)]
        outs += [stream.push(None, final=True) for _ in range(40)]
        got = torch.cat([y for y in outs if y is not None], dim=2)
        torch.testing.assert_close(got, ae.decode(z), atol=1e-5, rtol=0)
    assert all(y is None or y.shape[2] <= 2 for y in outs) and sum(y is not None for y in outs) >= 3


def test_temporal_attention_keeps_the_overlapped_chunks():
    for kind in ("attention", "both"):
        ae = _vae(temporal_decoder=kind)
        assert not streamable(ae.decoder) and ae.stream_fn(2) is None
        with pytest.raises(ValueError, match="temporal attention cannot stream"):
            DecoderStream(ae.decoder)
        z = torch.randn(1, 4, 5, 4, 4)
        with torch.no_grad():
            assert torch.equal(ae.decode(z, chunk=2), ae.decode(z, chunk=2, stream=False))
