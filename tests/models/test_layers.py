"""Shared layers against analytic or reference oracles."""
import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from vidiff.models import DiT, DiTConfig, UNet3D, UNet3DConfig
from vidiff.models.layers import (Attention, CrossFrameAttnProcessor, RelativePositionBias, SparseCausalAttnProcessor,
                                  TemporalConv, VideoCtx, WindowAttention3D, apply_rope, frame_mask, group_norm,
                                  rope_angles, rope_angles_grid, set_attn_processor, sincos_3d, timestep_embedding)
from vidiff.utils import VidiffError


def test_timestep_embedding_matches_diffusers():
    from diffusers.models.embeddings import get_timestep_embedding

    t = torch.tensor([0.0, 1.5, 250.0, 999.0])
    ref = get_timestep_embedding(t, 32, flip_sin_to_cos=True, downscale_freq_shift=0)
    torch.testing.assert_close(timestep_embedding(t, 32), ref)


def test_attention_matches_explicit_softmax():
    attn = Attention(8, heads=2)
    x = torch.randn(3, 5, 8)
    bias = torch.randn(1, 2, 5, 5)
    q, k, v = attn.to_qkv(x).chunk(3, dim=-1)
    q, k, v = (rearrange(z, "n l (h d) -> n h l d", h=2) for z in (q, k, v))
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4) + bias, dim=-1)
    ref = attn.to_out(rearrange(w @ v, "n h l d -> n l (h d)"))
    torch.testing.assert_close(attn(x, mask=bias), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_temporal_conv_identity_init_and_conv1d_oracle(causal):
    b, f, c, h, w = 2, 5, 4, 3, 3
    conv = TemporalConv(c, 3, causal=causal)
    x = torch.randn(b * f, c, h, w)
    ctx = VideoCtx(b, f, torch.zeros(b, 1))
    torch.testing.assert_close(conv(x, ctx), x)  # identity at init (Make-A-Video)
    with torch.no_grad():
        conv.weight.normal_()
        conv.bias.normal_()
    seq = rearrange(x, "(b f) c h w -> (b h w) c f", b=b)
    seq = F.pad(seq, (2, 0) if causal else (1, 1))
    ref = rearrange(F.conv1d(seq, conv.weight, conv.bias), "(b h w) c f -> (b f) c h w", b=b, h=h)
    torch.testing.assert_close(conv(x, ctx), ref, atol=1e-5, rtol=1e-5)


def test_rope_scores_depend_only_on_offset():
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    def score(i, j):
        cq, sq = rope_angles(torch.tensor([i]), 8)
        ck, sk = rope_angles(torch.tensor([j]), 8)
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum()
    torch.testing.assert_close(score(3, 1), score(7, 5))
    torch.testing.assert_close(score(0, 0), (q * k).sum())  # position 0 is the identity
    assert not torch.allclose(score(3, 1), score(1, 3))


def test_axial_rope_scores_depend_only_on_the_space_time_offset():
    grid = (4, 3, 5)  # (F, H, W), tokens flattened f-major as in joint attention
    cos, sin = rope_angles_grid(grid, 16)
    assert cos.shape == sin.shape == (60, 8)
    q0, k0 = torch.randn(16), torch.randn(16)  # one query/key vector placed at different tokens
    qr, kr = apply_rope(q0.expand(1, 1, 60, 16), cos, sin)[0, 0], apply_rope(k0.expand(1, 1, 60, 16), cos, sin)[0, 0]

    def score(a, b):  # a, b: (f, h, w) positions
        i, j = (p[0] * 15 + p[1] * 5 + p[2] for p in (a, b))
        return qr[i] @ kr[j]
    torch.testing.assert_close(score((2, 1, 3), (0, 0, 1)), score((3, 2, 4), (1, 1, 2)))
    torch.testing.assert_close(score((0, 0, 0), (0, 0, 0)), q0 @ k0)  # the origin is the identity
    for other in ((0, 0, 2), (0, 1, 1), (1, 0, 1)):  # a different offset along any one axis changes it
        assert not torch.allclose(score((2, 1, 3), (0, 0, 1)), score((2, 1, 3), other))
    with pytest.raises(ValueError, match="even head_dim"):
        rope_angles_grid(grid, 4)


def test_relative_bias_is_toeplitz():
    rb = RelativePositionBias(2, max_distance=3)
    with torch.no_grad():
        rb.table.normal_()
    b = rb(6)
    assert b.shape == (2, 6, 6)
    torch.testing.assert_close(b[:, 1, 3], b[:, 2, 4])
    torch.testing.assert_close(b[:, 0, 5], b[:, 1, 5])  # clamped beyond max_distance


def test_frame_mask():
    m = frame_mask(3, 2, causal=True, keep=torch.tensor([1.0, 0.0]))
    f = torch.arange(3).repeat_interleave(2)
    assert torch.equal(m[0, 0], f[None, :] <= f[:, None])
    assert torch.equal(m[1, 0], f[None, :] == f[:, None])
    assert frame_mask(3, 2, causal=False, keep=None) is None


def test_window_attention_equals_full_attention_when_window_covers_grid():
    wa = WindowAttention3D(8, 2, window=(4, 4, 4))
    x = torch.randn(2, 3, 4, 2, 8)
    ref = rearrange(wa.attn(rearrange(x, "b t h w d -> b (t h w) d")), "b (t h w) d -> b t h w d", t=3, h=4)
    torch.testing.assert_close(wa(x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shift", [False, True])
def test_window_attention_locality(shift):
    """A token only influences tokens of its own (shifted) window; padding never leaks."""
    wa = WindowAttention3D(8, 2, window=(2, 2, 2), shift=shift)
    x = torch.randn(1, 5, 6, 5, 8)
    x1 = x.clone()
    x1[0, 2, 2, 2] += 1.0
    d = (wa(x1) - wa(x)).abs().amax(-1)[0]  # (T, H, W)
    lo = 1 if shift else 2  # unshifted windows start at even indices; shifted ones at odd
    changed = torch.zeros_like(d, dtype=torch.bool)
    changed[lo:lo + 2, lo:lo + 2, lo:lo + 2] = True
    assert d[changed].min() > 0 and d[~changed].max() == 0


def test_sincos_3d_distinct_positions():
    pe = sincos_3d(3, 2, 4, 16)
    assert pe.shape == (3, 8, 16)
    flat = pe.reshape(-1, 16)
    assert torch.cdist(flat, flat).add(torch.eye(24) * 9).min() > 1e-3


def _explicit_attention(attn, x, frames, key_frames):
    """softmax(q kᵀ/√d) v with the keys/values of frame i taken from the frames key_frames(i) (concatenated)."""
    q, k, v = (rearrange(z, "(b f) l (h d) -> b f h l d", f=frames, h=attn.heads) for z in attn.to_qkv(x).chunk(3, -1))
    out = []
    for i in range(frames):
        ks = torch.cat([k[:, j] for j in key_frames(i)], dim=2)
        vs = torch.cat([v[:, j] for j in key_frames(i)], dim=2)
        w = torch.softmax(q[:, i] @ ks.transpose(-1, -2) / math.sqrt(attn.head_dim), dim=-1)
        out.append(w @ vs)  # (B, heads, L, d)
    return attn.to_out(rearrange(torch.stack(out, 1), "b f h l d -> (b f) l (h d)"))


@pytest.mark.parametrize("processor,key_frames", [(CrossFrameAttnProcessor(), lambda i: [0]),
                                                  (SparseCausalAttnProcessor(), lambda i: [0, max(i - 1, 0)])])
def test_frame_processors_match_explicit_attention(processor, key_frames):
    attn = Attention(8, heads=2)
    x = torch.randn(2 * 3, 5, 8)  # (B·F, L, D)
    plain = attn(x)
    attn.processor = processor
    torch.testing.assert_close(attn(x, frames=3), _explicit_attention(attn, x, 3, key_frames), atol=1e-5, rtol=1e-5)
    if isinstance(processor, CrossFrameAttnProcessor):  # frame 0 attends to itself: unchanged
        torch.testing.assert_close(attn(x, frames=3).view(2, 3, 5, 8)[:, 0], plain.view(2, 3, 5, 8)[:, 0])
    with pytest.raises(VidiffError, match="per-frame spatial attention"):
        attn(x)


def test_cross_frame_attention_in_a_backbone(perturb, frame_change):
    unet = perturb(UNet3D(UNet3DConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), head_dim=8,
                                       norm_groups=4, temporal="none")))
    dit = perturb(DiT(DiTConfig(hidden_size=16, depth=2, heads=2, temporal="none")), scale=0.1)
    x, t = torch.randn(1, 3, 4, 8, 8), torch.rand(1)
    for model, n_layers in ((unet, 4), (dit, 2)):  # U-Net: down level 1, middle, 2 up blocks
        with torch.no_grad():
            before = model(x, t)
        assert set_attn_processor(model, CrossFrameAttnProcessor(), role="spatial") == n_layers
        d = frame_change(model, x, t, i=2)
        assert d[0, 2] > 1e-3 and d[0, [0, 1, 3]].max() == 0  # only frame 0 is read by other frames
        assert frame_change(model, x, t, i=0).min() > 1e-4  # ... and every frame reads it
        set_attn_processor(model, None, role="spatial")  # back to the default: processors hold no weights
        with torch.no_grad():
            assert torch.equal(model(x, t), before)
    with pytest.raises(VidiffError, match="no 'temporal' attention layers"):
        set_attn_processor(unet, CrossFrameAttnProcessor(), role="temporal")
    with pytest.raises(VidiffError, match="unknown attention role"):
        set_attn_processor(unet, CrossFrameAttnProcessor(), role="frame")


def test_group_norm_trains_on_a_frozen_channels_last_input():
    norm = group_norm(8, 4)
    x = torch.randn(2, 8, 5, 5)
    norm(x.contiguous(memory_format=torch.channels_last)).square().sum().backward()  # crashes plain nn.GroupNorm on CPU
    g = norm.weight.grad.clone()
    norm.zero_grad()
    norm(x).square().sum().backward()
    torch.testing.assert_close(g, norm.weight.grad)
