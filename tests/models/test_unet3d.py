"""UNet3D: shapes, size errors, temporal independence/causality, identity inflation, checkpointing, conditioning."""
import dataclasses

import pytest
import torch

from vidiff.conditioning import Cond
from vidiff.models import UNet3D, UNet3DConfig
from vidiff.utils import VidiffError

TINY = UNet3DConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,),
                    head_dim=8, norm_groups=4)
TEMPORAL = ["attention", "conv", "full3d", "videoldm"]


def tiny(**kw) -> UNet3D:
    return UNet3D(dataclasses.replace(TINY, **kw))




@pytest.mark.parametrize("kw,shape", [
    (dict(temporal="attention"), (2, 3, 5, 12, 8)),
    (dict(temporal="attention", temporal_pos="rope", causal=True), (1, 3, 3, 8, 6)),
    (dict(temporal="conv"), (2, 3, 5, 6, 10)),
    (dict(temporal="conv", causal=True), (1, 3, 4, 8, 8)),
    (dict(temporal="full3d"), (1, 3, 3, 8, 8)),
    (dict(temporal="none"), (2, 3, 1, 8, 8)),
    (dict(temporal="attention", temporal_down_levels=(0,)), (1, 3, 6, 8, 8)),
    (dict(patch_size=2, out_channels=5), (1, 3, 4, 12, 8)),
    (dict(channel_mults=(1, 2, 2), attention_levels=(2,), num_res_blocks=2), (1, 3, 4, 12, 8)),
])
def test_shapes(kw, shape):
    model = tiny(**kw)
    y = model(torch.randn(shape), torch.rand(shape[0]))
    assert y.shape == (shape[0], model.config.out_channels, *shape[2:])
    assert torch.isfinite(y).all()


def test_invalid_sizes_say_which_sizes_work():
    with pytest.raises(VidiffError, match="multiples of 2"):
        tiny()(torch.randn(1, 3, 4, 7, 8), torch.rand(1))
    with pytest.raises(VidiffError, match="multiples of 4"):
        tiny(patch_size=2)(torch.randn(1, 3, 4, 6, 8), torch.rand(1))
    with pytest.raises(VidiffError, match="frame count must be a positive multiple of 2"):
        tiny(temporal_down_levels=(0,))(torch.randn(1, 3, 5, 8, 8), torch.rand(1))
    with pytest.raises(VidiffError, match="input channels"):
        tiny()(torch.randn(1, 4, 4, 8, 8), torch.rand(1))
    with pytest.raises(VidiffError, match="causal"):
        tiny(causal=True, temporal_down_levels=(0,))


def test_temporal_none_frames_independent(perturb, frame_change):
    model = perturb(tiny(temporal="none"))
    d = frame_change(model, torch.randn(2, 3, 4, 8, 8), torch.rand(2), i=1)
    assert d[:, 1].min() > 1e-3
    assert d[:, [0, 2, 3]].max() == 0


@pytest.mark.parametrize("temporal", TEMPORAL)
def test_temporal_mixing_interacts(temporal, perturb, frame_change):
    model = perturb(tiny(temporal=temporal))
    d = frame_change(model, torch.randn(1, 3, 4, 8, 8), torch.rand(1), i=1)
    assert d.min() > 1e-4  # every frame feels frame 1


@pytest.mark.parametrize("temporal", TEMPORAL)
def test_causal(temporal, perturb, frame_change):
    model = perturb(tiny(temporal=temporal, causal=True))
    d = frame_change(model, torch.randn(1, 3, 5, 8, 8), torch.rand(1), i=2)
    assert d[0, :2].max() == 0  # past frames do not see the future
    assert d[0, 2:].min() > 1e-4  # frame 2 and later do


@pytest.mark.parametrize("temporal", TEMPORAL)
def test_is_image_makes_frames_independent_per_sample(temporal, perturb, frame_change):
    model = perturb(tiny(temporal=temporal))
    cond = Cond(is_image=torch.tensor([True, False]))
    d = frame_change(model, torch.randn(2, 3, 4, 8, 8), torch.rand(2), i=1, cond=cond)
    assert d[0, [0, 2, 3]].max() == 0 and d[0, 1] > 1e-3  # image sample: independent frames
    assert d[1].min() > 1e-4  # video sample: frames interact


@pytest.mark.parametrize("temporal,pos", [("attention", "bias"), ("attention", "rope"), ("conv", "bias")])
def test_identity_temporal_init_equals_per_frame_image_model(temporal, pos):
    video = tiny(temporal=temporal, temporal_pos=pos)
    image = tiny(temporal="none")
    with torch.no_grad():  # give the shared 2D layers non-trivial weights
        for name, p in image.named_parameters():
            p.add_(0.1 * torch.randn_like(p))
    missing, unexpected = video.load_state_dict(image.state_dict(), strict=False)
    assert not unexpected and all("temporal" in k or "tconv" in k for k in missing)
    x, t = torch.randn(2, 3, 5, 8, 8), torch.rand(2)
    with torch.no_grad():
        y = video(x, t)
        per_frame = torch.cat([image(x[:, :, i:i + 1], t) for i in range(5)], dim=2)
    torch.testing.assert_close(y, per_frame, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kw", [dict(temporal="attention", text_dim=6), dict(temporal="full3d"),
                                dict(temporal="conv", temporal_down_levels=(0,)), dict(temporal="videoldm")])
def test_gradient_checkpointing_same_gradients(kw, perturb):
    model = perturb(tiny(**kw), scale=0.05)
    x, t = torch.randn(2, 3, 4, 8, 8), torch.rand(2)
    cond = Cond(text=torch.randn(2, 3, 6)) if kw.get("text_dim") else None

    def grads():
        model.zero_grad()
        model(x, t, cond).square().mean().backward()
        return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]

    g0 = grads()
    model.set_gradient_checkpointing(True)
    g1 = grads()
    for a, b in zip(g0, g1):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert dataclasses.replace(TINY, gradient_checkpointing=True).gradient_checkpointing


def test_conditioning_changes_output(perturb):
    model = perturb(tiny(num_classes=3, text_dim=6, cond_channels=2), scale=0.05)
    x, t = torch.randn(2, 3, 4, 8, 8), torch.rand(2)
    with torch.no_grad():
        base = model(x, t)
        null = model(x, t, Cond(class_ids=torch.tensor([3, 3])))
        torch.testing.assert_close(base, null)  # missing class ids = the null class (CFG)
        outs = {
            "class": model(x, t, Cond(class_ids=torch.tensor([0, 2]))),
            "text": model(x, t, Cond(text=torch.randn(2, 5, 6), text_mask=torch.tensor([[1, 1, 0, 0, 0]] * 2).bool())),
            "pooled": model(x, t, Cond(pooled=torch.randn(2, 6))),
            "concat": model(x, t, Cond(concat=torch.randn(2, 2, 4, 8, 8))),
            "noise_aug": model(x, t, Cond(concat=torch.zeros(2, 2, 4, 8, 8), noise_aug=torch.rand(2))),
        }
    for name, y in outs.items():
        assert y.shape == base.shape
        assert (y - base).abs().max() > 1e-4, name
    # text padding is ignored: changing masked-out tokens does not change the output
    text = torch.randn(2, 5, 6)
    mask = torch.tensor([[1, 1, 0, 0, 0]] * 2).bool()
    text2 = text.clone()
    text2[:, 2:] = 9.0
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, Cond(text=text, text_mask=mask)),
                                   model(x, t, Cond(text=text2, text_mask=mask)))


def test_condition_errors():
    model = tiny()
    x, t = torch.randn(1, 3, 2, 8, 8), torch.rand(1)
    for cond, msg in [(Cond(class_ids=torch.tensor([0])), "num_classes"), (Cond(text=torch.randn(1, 2, 4)), "text_dim"),
                      (Cond(concat=torch.randn(1, 1, 2, 8, 8)), "cond_channels")]:
        with pytest.raises(VidiffError, match=msg):
            model(x, t, cond)
    with pytest.raises(VidiffError, match="cond.concat must have shape"):
        tiny(cond_channels=2)(x, t, Cond(concat=torch.randn(1, 1, 2, 8, 8)))


def test_scale_shift_norm_keeps_the_embedding_that_single_channel_groups_erase():
    """An embedding added before a GroupNorm whose groups hold one channel is a per-channel constant
    that the norm subtracts again: the output cannot depend on t. AdaGN (scale-shift after the norm)
    and groups of >= 4 channels both keep it."""
    import torch

    from vidiff.models import build_model
    from vidiff.models.unet3d import UNet3DConfig

    base = dict(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(), head_dim=8,
                mid_attention=False, temporal="none", norm_groups=32)
    x = torch.randn(1, 3, 2, 8, 8)

    def t_effect(**kw):
        torch.manual_seed(0)
        m = build_model(UNet3DConfig(**base, **kw)).eval()
        with torch.no_grad():
            for p in m.parameters():
                if p.abs().sum() == 0:
                    p.normal_(0, 0.3)
            return (m(x, torch.tensor([0.1])) - m(x, torch.tensor([0.9]))).abs().max().item()

    assert t_effect() < 1e-4  # 8 and 16 channels in groups of one: t is normalised away
    assert t_effect(scale_shift_norm=True) > 1e-2
    assert t_effect(min_group_channels=4) > 1e-2


def test_joint_spatial_attention_mixes_frames_respects_causality_and_images(perturb, frame_change):
    # temporal="none" leaves the joint attention as the only path between frames
    joint = perturb(tiny(temporal="none", spatial_attention="joint"))
    d = frame_change(joint, torch.randn(1, 3, 4, 8, 8), torch.rand(1), i=1)
    assert d.min() > 1e-4  # every frame feels frame 1 through the one attention level
    causal = perturb(tiny(temporal="none", spatial_attention="joint", causal=True))
    d = frame_change(causal, torch.randn(1, 3, 5, 8, 8), torch.rand(1), i=2)
    assert d[0, :2].max() == 0 and d[0, 2:].min() > 1e-4
    cond = Cond(is_image=torch.tensor([True, False]))
    d = frame_change(joint, torch.randn(2, 3, 4, 8, 8), torch.rand(2), i=1, cond=cond)
    assert d[0, [0, 2, 3]].max() == 0 and d[1].min() > 1e-4


def test_joint_attention_without_positions_cannot_tell_frame_order_with_rope_it_can(perturb):
    # temporal="none": the joint attention is the only path between frames. Without a position
    # encoding it is a function of the set of tokens, so reversing the clip reverses the output.
    x, t = torch.randn(1, 3, 4, 8, 8), torch.rand(1)
    with torch.no_grad():
        plain = perturb(tiny(temporal="none", spatial_attention="joint"))
        torch.testing.assert_close(plain(x.flip(2), t), plain(x, t).flip(2), atol=1e-5, rtol=0)
        rope = tiny(temporal="none", spatial_attention="joint", spatial_pos="rope")
        rope.load_state_dict(plain.state_dict())  # RoPE adds no parameters
        assert (rope(x.flip(2), t) - rope(x, t).flip(2)).abs().max() > 1e-3
    with pytest.raises(VidiffError, match="spatial_pos"):
        tiny(spatial_pos="absolute")


def test_joint_spatial_attention_on_one_frame_equals_per_frame_attention(perturb):
    per_frame = perturb(tiny(spatial_attention="frame"))
    joint = tiny(spatial_attention="joint")
    joint.load_state_dict(per_frame.state_dict())  # the same parameters: only the token set differs
    x, t = torch.randn(2, 3, 1, 8, 8), torch.rand(2)
    with torch.no_grad():
        torch.testing.assert_close(joint(x, t), per_frame(x, t), atol=1e-5, rtol=0)
        clip = torch.randn(1, 3, 3, 8, 8)
        assert (joint(clip, t[:1]) - per_frame(clip, t[:1])).abs().max() > 1e-4  # several frames: they differ
    with pytest.raises(VidiffError, match="spatial_attention"):
        tiny(spatial_attention="global")
