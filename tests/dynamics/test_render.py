"""Renderer: hole filling, the plain splat renderer, the learned renderer's training, VGG16 loading."""
import itertools

import pytest
import torch

from vidiff.dynamics.procedural import make_scene
from vidiff.dynamics.render import (ImageRenderer, PerceptualLoss, RendererConfig, SplatRenderer, fill_holes,
                                    gradient_loss, load_renderer, load_vgg16_features, render_loss, save_renderer,
                                    ScenePairs,
                                    train_renderer, vgg16_features)
from vidiff.training import StepBatches
from vidiff.utils import VidiffError


def test_fill_holes_keeps_known_pixels_and_fills_smoothly():
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(20.0), indexing="ij")
    ramp = torch.stack([0.05 * xx, 0.03 * yy, torch.full_like(xx, 0.7)])[None]  # (1, 3, H, W)
    cover = torch.ones(1, 1, 16, 20)
    torch.testing.assert_close(fill_holes(ramp, cover), ramp)
    cover[..., 5:9, 6:11] = 0
    holed = ramp * cover
    out = fill_holes(holed, cover)
    torch.testing.assert_close(out[cover.expand_as(out) > 0], ramp[cover.expand_as(out) > 0])
    torch.testing.assert_close(out[:, 2], ramp[:, 2])  # a constant channel is filled exactly
    assert (out - ramp).abs()[..., 5:9, 6:11].max() < 0.2  # ramp filled close to the truth, not 0


def test_splat_renderer_identity_and_shift():
    x = torch.rand(1, 3, 12, 12) * 2 - 1
    r = SplatRenderer()
    torch.testing.assert_close(r(x, torch.zeros(1, 2, 12, 12)), x)
    flow = torch.zeros(1, 2, 12, 12)
    flow[:, 0] = 2.0
    out = r(x, flow)
    torch.testing.assert_close(out[..., 2:], x[..., :-2])
    assert torch.isfinite(out).all()


def test_learned_renderer_starts_as_splat_renderer_and_training_lowers_loss(tmp_path):
    torch.manual_seed(0)
    scenes = [make_scene(s, (32, 32), frames=16, k=6, n_plants=2) for s in range(2)]
    model = ImageRenderer(RendererConfig(channels=(8, 16)))
    b = StepBatches(ScenePairs(scenes), 8, seed=7).at(0)  # a fixed batch
    torch.testing.assert_close(model(b["image"], b["flow"]), SplatRenderer()(b["image"], b["flow"]), atol=1e-2, rtol=0)
    with torch.no_grad():
        before = float(render_loss(model(b["image"], b["flow"]), b["target"]))
    train_renderer(model, itertools.repeat(b), steps=60, lr=3e-3)  # fits the pairs it sees
    with torch.no_grad():
        after = float(render_loss(model(b["image"], b["flow"]), b["target"]))
    assert after < 0.95 * before
    save_renderer(tmp_path / "r", model)
    back = load_renderer(tmp_path / "r")
    torch.testing.assert_close(back(b["image"], b["flow"]), model(b["image"], b["flow"]))


def test_gradient_loss_is_zero_for_offsets_and_positive_for_edges():
    a = torch.rand(1, 3, 16, 16)
    assert float(gradient_loss(a, a + 0.3)) < 1e-6
    assert float(gradient_loss(a, a.flip(-1))) > 0.05


def test_vgg16_loader_with_random_stand_in(tmp_path):
    stand_in = vgg16_features(16)
    state = {f"features.{k}": v for k, v in stand_in.state_dict().items()}  # torchvision full-model keys
    torch.save(state, tmp_path / "vgg16.pth")
    vgg = load_vgg16_features(tmp_path / "vgg16.pth")
    for k, v in stand_in.state_dict().items():
        torch.testing.assert_close(vgg.state_dict()[k], v)
    loss = PerceptualLoss(vgg)
    a, b = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    assert float(loss(a, a)) == 0.0 and float(loss(a, b)) > 0
    torch.save({k: v for k, v in list(stand_in.state_dict().items())[:2]}, tmp_path / "bad.pth")
    with pytest.raises(VidiffError):
        load_vgg16_features(tmp_path / "bad.pth")
    with pytest.raises(VidiffError):
        load_vgg16_features(tmp_path / "missing.pth")
