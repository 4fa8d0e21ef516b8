"""Video LDM: α-merged temporal layers over a frozen image UNet3D; training only the temporal parameters."""
import copy
import dataclasses

import pytest
import torch
from einops import rearrange

from vidiff.conditioning import Cond
from vidiff.models import (DiT, DiTConfig, UNet3D, UNet3DConfig, VideoLDM, load_model, save_model,
                           select_parameters, set_trainable, video_ldm_from_image)
from vidiff.models.layers import AlphaBlend, TemporalResBlock, VideoCtx
from vidiff.utils import VidiffError

IMAGE = UNet3DConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), head_dim=8,
                     norm_groups=4, temporal="none", num_classes=3)


@pytest.fixture
def image_model(perturb):
    torch.manual_seed(0)
    return perturb(UNet3D(IMAGE), scale=0.1).eval()  # every image weight non-trivial


@pytest.mark.parametrize("temporal,kw", [("videoldm", {}), ("videoldm", dict(causal=True, temporal_pos="rope")),
                                         ("attention", {}), ("conv", {})])
def test_video_model_at_init_is_the_image_model_frame_by_frame(image_model, temporal, kw):
    video = video_ldm_from_image(image_model, temporal=temporal, **kw).eval()
    image_state, video_state = image_model.state_dict(), video.state_dict()
    assert all(torch.equal(video_state[k], v) for k, v in image_state.items())  # copied exactly
    assert set(video_state) - set(image_state) == set(select_parameters(video, "temporal"))
    x, t, cond = torch.randn(2, 3, 5, 8, 8), torch.rand(2), Cond(class_ids=torch.tensor([0, 2]))
    with torch.no_grad():
        y = video(x, t, cond)
        per_frame = torch.cat([image_model(x[:, :, i:i + 1], t, cond) for i in range(5)], dim=2)
    torch.testing.assert_close(y, per_frame, atol=1e-5, rtol=0)


def test_training_only_temporal_parameters_keeps_the_image_model_bit_identical(image_model):
    video = video_ldm_from_image(image_model)
    temporal = select_parameters(video, "temporal")
    spatial = select_parameters(video, "spatial")
    assert set(spatial) == set(image_model.state_dict()) and not set(spatial) & set(temporal)
    assert any(name.endswith("alpha_logit") for name in temporal)
    before = {k: v.clone() for k, v in video.state_dict().items()}
    params = dict(video.named_parameters())
    for name, p in params.items():
        p.requires_grad_(name in temporal)
    opt = torch.optim.AdamW([params[n] for n in temporal], lr=1e-2, weight_decay=0.1)
    g = torch.Generator().manual_seed(0)
    x, target = torch.randn(2, 3, 4, 8, 8, generator=g), torch.randn(2, 3, 4, 8, 8, generator=g)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.mse_loss(video(x, torch.rand(2, generator=g)), target).backward()
        opt.step()
    after = video.state_dict()
    assert all(torch.equal(after[n], before[n]) for n in spatial)  # the image model is bit-identical
    assert all(params[n].grad is None for n in spatial)  # no gradients ...
    assert len(opt.state) == len(temporal)  # ... and no optimizer state for frozen weights
    assert all(not torch.equal(after[n], before[n]) for n in temporal)  # every temporal tensor learned


def test_set_trainable_freezes_the_rest(image_model):
    video = video_ldm_from_image(image_model)
    trainable = set_trainable(video, "temporal")
    names = set(select_parameters(video, "temporal"))
    assert {id(p) for p in trainable} == {id(p) for n, p in video.named_parameters() if n in names}
    assert all(p.requires_grad == (n in names) for n, p in video.named_parameters())
    assert len(set_trainable(video, "all")) == len(list(video.parameters()))


def test_train_temporal_without_separable_temporal_layers_is_a_one_line_error(image_model):
    cases = [(image_model, "no temporal layers"),
             (UNet3D(dataclasses.replace(IMAGE, temporal="full3d")), "full3d"),
             (DiT(DiTConfig(hidden_size=16, depth=1, heads=2)), "DiT does not keep its temporal layers apart")]
    for model, match in cases:
        with pytest.raises(VidiffError, match=match) as err:
            select_parameters(model, "temporal")
        assert "\n" not in str(err.value)
    with pytest.raises(VidiffError, match="unknown parameter selection"):
        select_parameters(image_model, "time")
    assert select_parameters(image_model, "all") == [n for n, _ in image_model.named_parameters()]


def test_video_ldm_from_image_rejects_what_is_not_an_image_model(image_model):
    with pytest.raises(VidiffError, match="treat frames independently"):
        video_ldm_from_image(video_ldm_from_image(image_model))
    with pytest.raises(VidiffError, match="treat frames independently"):
        video_ldm_from_image(UNet3D(dataclasses.replace(IMAGE, spatial_attention="joint")))
    with pytest.raises(VidiffError, match="must be a vidiff UNet3D"):
        video_ldm_from_image(DiT(DiTConfig(hidden_size=16, depth=1, heads=2, temporal="none")))
    with pytest.raises(VidiffError, match="cannot be trained over a frozen image model"):
        video_ldm_from_image(image_model, temporal="full3d")


def test_video_ldm_from_a_checkpoint_folder_and_save_load_round_trip(image_model, tmp_path, perturb):
    save_model(tmp_path / "image", image_model)
    video = perturb(video_ldm_from_image(tmp_path / "image"), scale=0.05).eval()
    assert video.config.temporal == "videoldm"
    save_model(tmp_path / "video", video)
    loaded = load_model(tmp_path / "video")
    x, t = torch.randn(1, 3, 3, 8, 8), torch.rand(1)
    with torch.no_grad():
        assert torch.equal(loaded(x, t), video(x, t))


def test_alpha_blend_is_eq2_and_passes_image_samples_through():
    b, f, c = 2, 3, 4
    block = TemporalResBlock(c, groups=2)
    with torch.no_grad():
        block.conv2.weight.normal_()
    merge = AlphaBlend(block, alpha_logit=0.7)
    x = torch.randn(b * f, c, 5, 5)
    ctx = VideoCtx(b, f, torch.zeros(b, 1))
    alpha = torch.sigmoid(torch.tensor(0.7))
    z_temporal = block(x, ctx)
    assert (z_temporal - x).abs().max() > 1e-3
    torch.testing.assert_close(merge(x, ctx), alpha * x + (1 - alpha) * z_temporal)  # Video LDM eq. 2
    ctx.keep = torch.tensor([0.0, 1.0])  # sample 0 is an image: its frames pass through unchanged
    z = merge(x, ctx)
    assert torch.equal(z[:f], x[:f])
    torch.testing.assert_close(z[f:], (alpha * x + (1 - alpha) * z_temporal)[f:])


class FoldFrames(torch.nn.Module):
    """A diffusers UNet2DConditionModel as a backbone that folds frames into the batch (as an SD backbone does)."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, cond):
        b, frames = x.shape[0], x.shape[2]
        h = rearrange(x, "b c f h w -> (b f) c h w")
        text = cond.text.repeat_interleave(frames, 0)  # (B·F, L, D)
        out = self.unet(h, (1000 * t).repeat_interleave(frames), encoder_hidden_states=text).sample
        return rearrange(out, "(b f) c h w -> b c f h w", b=b)


def _train_temporal(video, x, t, cond, steps=3):
    temporal = select_parameters(video, "temporal")
    opt = torch.optim.AdamW(set_trainable(video, "temporal"), lr=1e-2, weight_decay=0.1)
    target = torch.randn_like(x)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(video(x, t, cond), target).backward()
        opt.step()
    return temporal


def test_video_ldm_over_a_diffusers_sd_unet(frame_change):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=8, attention_head_dim=4, norm_num_groups=4)
    image = FoldFrames(unet).eval()
    keys = list(unet.state_dict())
    video = video_ldm_from_image(image)
    assert isinstance(video, VideoLDM) and list(unet.state_dict()) == keys  # SD's weights keep their names
    assert len(video.temporal.layers) == 2 + 2 + 3 + 3 + 2  # resnets + attentions (down, mid, up)
    x, t, cond = torch.randn(2, 4, 3, 8, 8), torch.rand(2), Cond(text=torch.randn(2, 5, 8))
    with torch.no_grad():
        y = video(x, t, cond)
        per_frame = torch.cat([image(x[:, :, i:i + 1], t, cond) for i in range(3)], dim=2)
    torch.testing.assert_close(y, per_frame, atol=1e-5, rtol=0)  # identity at initialisation

    before = {k: v.clone() for k, v in video.state_dict().items()}
    temporal = _train_temporal(video, x, t, cond)
    after = video.state_dict()
    assert all(torch.equal(after[k], before[k]) == (k not in temporal) for k in before)  # only temporal changed
    video.eval()
    cond_img = Cond(text=cond.text, is_image=torch.tensor([True, False]))
    d = frame_change(video, x, t, i=1, cond=cond_img)
    assert d[0, [0, 2]].max() == 0 and d[0, 1] > 1e-4 and d[1].min() > 1e-6  # image sample: frames independent
    ema = copy.deepcopy(video)  # an EMA copy runs its own temporal layers
    with torch.no_grad():
        for p in ema.temporal.parameters():
            p.zero_()
        assert torch.equal(ema(x, t, cond), image(x, t, cond)) and not torch.equal(video(x, t, cond), ema(x, t, cond))
