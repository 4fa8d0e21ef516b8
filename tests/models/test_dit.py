"""Video DiT: shapes, unseen sizes, temporal independence/causality, is_image, checkpointing, conditioning."""
import dataclasses

import pytest
import torch

from vidiff.conditioning import Cond
from vidiff.models import DiT, DiTConfig
from vidiff.utils import VidiffError

TINY = DiTConfig(hidden_size=16, depth=2, heads=2, patch_size=2, window=(2, 2, 2))
SPACE_TIME = ["factorized", "joint", "window"]


def tiny(**kw) -> DiT:
    return DiT(dataclasses.replace(TINY, **kw))




def test_adaln_zero_starts_at_zero():
    y = tiny()(torch.randn(1, 3, 4, 8, 8), torch.rand(1))
    assert torch.equal(y, torch.zeros_like(y))


@pytest.mark.parametrize("space_time", SPACE_TIME)
@pytest.mark.parametrize("shape", [(2, 3, 4, 8, 8), (1, 3, 7, 6, 10)])
def test_shapes_and_unseen_sizes(space_time, shape, perturb):
    model = perturb(tiny(space_time=space_time, out_channels=5), scale=0.05)
    y = model(torch.randn(shape), torch.rand(shape[0]))
    assert y.shape == (shape[0], 5, *shape[2:]) and torch.isfinite(y).all()


def test_patch_t_and_size_errors(perturb):
    model = perturb(tiny(patch_t=2), scale=0.05)
    assert model(torch.randn(1, 3, 6, 4, 4), torch.rand(1)).shape == (1, 3, 6, 4, 4)
    with pytest.raises(VidiffError, match="multiple of patch_t=2"):
        model(torch.randn(1, 3, 5, 4, 4), torch.rand(1))
    with pytest.raises(VidiffError, match="multiples of the patch size 2"):
        model(torch.randn(1, 3, 4, 5, 4), torch.rand(1))
    with pytest.raises(VidiffError, match="patch_t=1"):
        model(torch.randn(1, 3, 4, 4, 4), torch.rand(1), Cond(is_image=torch.tensor([True])))
    with pytest.raises(VidiffError, match="patch_t=1"):
        tiny(temporal="none", patch_t=2)


def test_temporal_none_frames_independent(perturb, frame_change):
    model = perturb(tiny(temporal="none"), scale=0.1)
    d = frame_change(model, torch.randn(2, 3, 4, 4, 4), torch.rand(2), i=2)
    assert d[:, 2].min() > 1e-3 and d[:, [0, 1, 3]].max() == 0


@pytest.mark.parametrize("space_time", SPACE_TIME)
def test_frames_interact_and_causal(space_time, perturb, frame_change):
    # depth 3: with 2-frame shifted windows information travels one window per block
    model = perturb(tiny(space_time=space_time, depth=3), scale=0.1)
    x, t = torch.randn(1, 3, 5, 4, 4), torch.rand(1)
    assert frame_change(model, x, t, i=2).min() > 1e-4
    causal = perturb(tiny(space_time=space_time, causal=True, depth=3), scale=0.1)
    d = frame_change(causal, x, t, i=2)
    assert d[0, :2].max() == 0 and d[0, 2:].min() > 1e-4


@pytest.mark.parametrize("space_time", SPACE_TIME)
def test_is_image_makes_frames_independent(space_time, perturb, frame_change):
    model = perturb(tiny(space_time=space_time, depth=3), scale=0.1)
    cond = Cond(is_image=torch.tensor([False, True]))
    d = frame_change(model, torch.randn(2, 3, 4, 4, 4), torch.rand(2), i=1, cond=cond)
    assert d[0].min() > 1e-4
    assert d[1, [0, 2, 3]].max() == 0 and d[1, 1] > 1e-3


@pytest.mark.parametrize("space_time", SPACE_TIME)
def test_gradient_checkpointing_same_gradients(space_time, perturb):
    model = perturb(tiny(space_time=space_time, text_dim=4), scale=0.05)
    x, t, cond = torch.randn(2, 3, 4, 4, 4), torch.rand(2), Cond(text=torch.randn(2, 3, 4))

    def grads():
        model.zero_grad()
        model(x, t, cond).square().mean().backward()
        return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]

    g0 = grads()
    model.set_gradient_checkpointing(True)
    for a, b in zip(g0, grads()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_conditioning_changes_output(perturb):
    model = perturb(tiny(num_classes=3, text_dim=4, cond_channels=2), scale=0.05)
    x, t = torch.randn(2, 3, 4, 4, 4), torch.rand(2)
    with torch.no_grad():
        base = model(x, t)
        torch.testing.assert_close(base, model(x, t, Cond(class_ids=torch.tensor([3, 3]))))
        for name, cond in {
            "class": Cond(class_ids=torch.tensor([0, 1])),
            "text": Cond(text=torch.randn(2, 3, 4)),
            "pooled": Cond(pooled=torch.randn(2, 4)),
            "concat": Cond(concat=torch.randn(2, 2, 4, 4, 4)),
        }.items():
            y = model(x, t, cond)
            assert y.shape == base.shape and (y - base).abs().max() > 1e-4, name
