"""The textbook chapter's temporal mixers (models.temporal_mixers) and the temporal-consistency loss:
shapes, identity at initialisation (an inflated image model keeps its output frame by frame), which
frames each mixer reads, the (2+1)D delta kernel, the content/motion split and the flow-warp loss."""
import dataclasses
import json

import pytest
import torch
from torch import nn

from vidiff.cli import main
from vidiff.conditioning.cond import Cond
from vidiff.diffusion.schedule import get_schedule
from vidiff.diffusion.temporal_loss import temporal_consistency_loss, warp_residual
from vidiff.diffusion.loss import diffusion_loss
from vidiff.models.layers import VideoCtx
from vidiff.models.temporal import select_parameters, video_ldm_from_image
from vidiff.models.temporal_mixers import (MIXERS, DepthwiseTemporalConv, HierarchicalTemporalBlock,
                                           MotionDecompositionBlock, RecurrentTemporalBlock)
from vidiff.models.unet3d import UNet3D, UNet3DConfig
from vidiff.utils import VidiffError

IMAGE = UNet3DConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), head_dim=8,
                     temporal="none", min_group_channels=4)
B, C, FRAMES, H = 2, 8, 5, 6


def _randomise(module: nn.Module) -> nn.Module:
    """Every parameter drawn at random, so no branch starts at zero or at the identity."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module


def _blocks(causal: bool = False) -> dict[str, nn.Module]:
    blocks = {"convgru": RecurrentTemporalBlock(C, 4),
              "hierarchical": HierarchicalTemporalBlock(C, 2, 4, causal=causal),
              "motion": MotionDecompositionBlock(C, 4, causal=causal),
              "dwconv": DepthwiseTemporalConv(C, 3, causal=causal)}
    if not causal:
        blocks["biconvgru"] = RecurrentTemporalBlock(C, 4, bidirectional=True)
    return blocks


def _frame_grad(block: nn.Module, out_frame: int) -> torch.Tensor:
    """|∂ out[frame] / ∂ x| summed per input frame, (F,)."""
    x = torch.randn(B * FRAMES, C, H, H, requires_grad=True)
    y = block(x, VideoCtx(B, FRAMES, None)).view(B, FRAMES, C, H, H)  # (B, F, C, H, W)
    y[:, out_frame].sum().backward()
    return x.grad.view(B, FRAMES, -1).abs().sum(dim=(0, 2))


@pytest.mark.parametrize("kind", MIXERS)
def test_unet_with_each_mixer_keeps_the_shape_and_starts_as_the_image_model_frame_by_frame(kind):
    torch.manual_seed(0)
    image = _randomise(UNet3D(IMAGE)).eval()  # random weights everywhere, also the zero-initialised output conv
    video = video_ldm_from_image(image, temporal=kind).eval()
    assert video.config.temporal == kind
    new = select_parameters(video, "temporal")
    assert new and not set(new) & set(image.state_dict())  # only the mixer's weights are new
    x, t = torch.randn(B, 3, FRAMES, 8, 8), torch.rand(B)
    with torch.no_grad():
        out = video(x, t)  # (B, 3, F, H, W)
        per_frame = torch.cat([image(x[:, :, f:f + 1], t) for f in range(FRAMES)], dim=2)
    assert out.shape == x.shape
    torch.testing.assert_close(out, per_frame, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["convgru", "biconvgru", "hierarchical", "motion", "dwconv"])
def test_each_block_preserves_shape_and_is_the_identity_at_initialisation(kind):
    block = _blocks()[kind]
    x = torch.randn(B * FRAMES, C, H, H)
    with torch.no_grad():
        y = block(x, VideoCtx(B, FRAMES, None))
        # image samples (keep = 0) pass through even with trained weights
        _randomise(block)
        keep = torch.tensor([1.0, 0.0])
        z = block(x, VideoCtx(B, FRAMES, None, keep=keep))
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(z[FRAMES:], x[FRAMES:])
    assert not torch.allclose(z[:FRAMES], x[:FRAMES])


def test_forward_gru_reads_only_past_frames_and_the_bidirectional_one_reads_both_sides():
    f = 2
    forward = _frame_grad(_randomise(RecurrentTemporalBlock(C, 4)), f)
    both = _frame_grad(_randomise(RecurrentTemporalBlock(C, 4, bidirectional=True)), f)
    assert (forward[: f + 1] > 0).all() and (forward[f + 1:] == 0).all()
    assert (both > 0).all()


@pytest.mark.parametrize("kind", ["hierarchical", "motion", "dwconv"])
def test_causal_mixers_read_only_frames_up_to_the_current_one(kind):
    f = 2
    causal = _frame_grad(_randomise(_blocks(causal=True)[kind]), f)
    full = _frame_grad(_randomise(_blocks(causal=False)[kind]), f)
    assert (causal[: f + 1] > 0).all() and (causal[f + 1:] == 0).all()
    assert (full[f + 1] > 0).all()  # the non-causal one sees the next frame


def _frame_change(model, x, t, i, cond=None):
    """Per-(sample, frame) max |Δ output| when frame i of every sample is perturbed, (B, F)."""
    with torch.no_grad():
        y0 = model(x, t, cond)
        x1 = x.clone()
        x1[:, :, i] += torch.randn_like(x1[:, :, i])
        return (model(x1, t, cond) - y0).abs().amax(dim=(1, 3, 4))


@pytest.mark.parametrize("kind", MIXERS)
def test_trained_mixers_let_frames_interact_in_the_unet_except_for_image_samples(kind):
    model = _randomise(UNet3D(dataclasses.replace(IMAGE, temporal=kind))).eval()
    cond = Cond(is_image=torch.tensor([True, False]))
    d = _frame_change(model, torch.randn(2, 3, 4, 8, 8), torch.rand(2), i=1, cond=cond)
    assert d[0, [0, 2, 3]].max() == 0 and d[0, 1] > 1e-3  # image sample: independent frames
    if kind == "convgru":  # forward in time only: frame 0 never sees frame 1
        assert d[1, 0] == 0 and d[1, 1:].min() > 1e-5
    else:
        assert d[1].min() > 1e-5  # video sample: every frame feels frame 1


@pytest.mark.parametrize("kind", [k for k in MIXERS if k != "biconvgru"])
def test_causal_unet_with_each_mixer_keeps_the_past_blind_to_the_future(kind):
    model = _randomise(UNet3D(dataclasses.replace(IMAGE, temporal=kind, causal=True))).eval()
    d = _frame_change(model, torch.randn(1, 3, 5, 8, 8), torch.rand(1), i=2)
    assert d[0, :2].max() == 0 and d[0, 2:].min() > 1e-5


def test_bidirectional_gru_cannot_be_causal():
    with pytest.raises(VidiffError, match="cannot be causal"):
        UNet3D(dataclasses.replace(IMAGE, temporal="biconvgru", causal=True))


def test_two_plus_one_d_with_delta_temporal_kernel_is_the_2d_conv_and_mixes_frames_otherwise():
    torch.manual_seed(0)
    conv2d, temporal = nn.Conv2d(C, C, 3, padding=1), DepthwiseTemporalConv(C, 3)
    x, ctx = torch.randn(B * FRAMES, C, H, H), VideoCtx(B, FRAMES, None)
    with torch.no_grad():
        torch.testing.assert_close(temporal(conv2d(x), ctx), conv2d(x))
        temporal.weight.copy_(torch.tensor([0.25, 0.5, 0.25]).expand(C, 3))  # a temporal blur
        y = temporal(conv2d(x), ctx).view(B, FRAMES, C, H, H)
        s = conv2d(x).view(B, FRAMES, C, H, H)
    torch.testing.assert_close(y[:, 1], 0.25 * s[:, 0] + 0.5 * s[:, 1] + 0.25 * s[:, 2])
    torch.testing.assert_close(y[:, 0], 0.5 * s[:, 0] + 0.25 * s[:, 1])  # zeros before the clip
    # as many temporal weights as channels x taps, against channels² x taps for Make-A-Video's conv
    assert temporal.weight.numel() == C * 3


@pytest.mark.parametrize("causal", [False, True])
def test_motion_decomposition_reconstructs_its_input_and_a_static_video_has_no_motion(causal):
    block, ctx = MotionDecompositionBlock(C, 4, causal=causal), VideoCtx(B, FRAMES, None)
    x = torch.randn(B * FRAMES, C, H, H)
    content, motion = block.decompose(x, ctx)
    torch.testing.assert_close(content + motion, x)
    v = x.view(B, FRAMES, C, H, H)
    expected0 = v[:, 0] if causal else v.mean(1)
    torch.testing.assert_close(content.view(B, FRAMES, C, H, H)[:, 0], expected0)
    static = v[:, :1].expand(-1, FRAMES, -1, -1, -1).reshape(B * FRAMES, C, H, H)
    content, motion = block.decompose(static, ctx)
    torch.testing.assert_close(content, static)
    assert motion.abs().max() < 1e-6


def test_temporal_consistency_loss_is_zero_for_static_and_exactly_warped_videos_and_positive_with_flicker():
    torch.manual_seed(0)
    frame = torch.rand(B, 3, 12, 12)
    static = frame[:, :, None].expand(-1, -1, 4, -1, -1)  # (B, C, F, H, W)
    assert temporal_consistency_loss(static).abs().max() == 0
    # frames that pan right by 1 px and down by 2 px per frame: v_{f+1}(x, y) = v_f(x - 1, y - 2)
    pan = torch.stack([torch.roll(frame, shifts=(2 * f, f), dims=(2, 3)) for f in range(4)], dim=2)
    flow = torch.zeros(B, 2, 3, 12, 12)
    flow[:, 0], flow[:, 1] = -1.0, -2.0
    _, valid = warp_residual(pan, flow)
    assert 0 < valid.mean() < 1  # the border rows/columns that come from outside the frame are left out
    assert temporal_consistency_loss(pan, flow).abs().max() < 1e-5
    assert (temporal_consistency_loss(pan) > 0.1).all()  # without the flow, the pan is a change
    flicker = static * torch.tensor([1.0, 0.8, 1.0, 0.8])[None, None, :, None, None]
    assert (temporal_consistency_loss(flicker) > 0.01).all()
    # against a reference: only the changes the reference does not have count
    assert temporal_consistency_loss(pan, reference=pan).abs().max() == 0
    assert (temporal_consistency_loss(flicker, reference=static) > 0.01).all()
    with pytest.raises(VidiffError, match="F >= 2"):
        temporal_consistency_loss(static[:, :, :1])


def test_temporal_consistency_weight_zero_keeps_the_loss_and_positive_adds_the_penalty():
    torch.manual_seed(0)
    model = _randomise(UNet3D(dataclasses.replace(IMAGE, temporal="convgru")))
    x0, schedule = torch.rand(B, 3, 4, 8, 8) * 2 - 1, get_schedule("cosine")

    def loss(weight):
        return diffusion_loss(model, x0, schedule, generator=torch.Generator().manual_seed(3),
                              temporal_consistency=weight, reduction="none")

    base = diffusion_loss(model, x0, schedule, generator=torch.Generator().manual_seed(3), reduction="none")
    torch.testing.assert_close(loss(0.0), base)
    assert (loss(1.0) > base).all()


def test_vidiff_train_with_a_chapter_mixer_trains_a_tiny_model(tmp_path):
    import numpy as np

    data = tmp_path / "videos"
    data.mkdir()
    for i in range(2):
        v = np.zeros((4, 8, 8, 3), np.uint8)
        for f in range(4):
            v[f, 2:5, f + i:f + i + 3] = 220
        np.save(data / f"v{i}.npy", v)
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps({"arch": "unet3d", "base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1,
                                 "attention_levels": [], "mid_attention": False, "head_dim": 8,
                                 "min_group_channels": 4}))
    out = tmp_path / "run"
    main(["train", "--data", str(data), "--model", str(model), "--temporal", "convgru", "--temporal-consistency",
          "0.1", "--frames", "4", "--size", "8", "--batch", "2", "--steps", "2", "--sample-every", "0",
          "--save-every", "0", "--out", str(out)])
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["temporal"] == "convgru"
    assert config["train"]["temporal_consistency"] == 0.1
    assert (out / "model.safetensors").is_file()


def test_train_recipe_refuses_a_temporal_layer_for_a_dit_and_a_negative_consistency_weight():
    from vidiff.training.diffusion_task import TrainConfig, build_model_for, check_config

    with pytest.raises(VidiffError, match="not a UNet3D"):
        build_model_for(TrainConfig(data="x", model="dit-tiny", temporal="convgru", frames=4, size=8))
    with pytest.raises(VidiffError, match="temporal must be one of"):
        build_model_for(TrainConfig(data="x", model="unet-nano-image", temporal="lstm", frames=4, size=8))
    with pytest.raises(VidiffError, match="--temporal-consistency"):
        check_config(TrainConfig(data="x", steps=1, temporal_consistency=-1.0))
    model = build_model_for(TrainConfig(data="x", model="unet-nano-image", temporal="motion", frames=4, size=8))
    assert model.config.temporal == "motion"
