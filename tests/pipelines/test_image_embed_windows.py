"""Window-based sampling of a first-frame model that embeds its frame (`--image-embed`): long videos, extension
and interpolation give the backbone the frame's embedding where the window holds the frame and the model's null
embedding elsewhere or without a frame; a first-frame model without the embedding samples bit for bit as when
these paths did not complete the Cond."""
import importlib

import pytest
import torch

from vidiff.conditioning import Cond
from vidiff.conditioning.content import CONTENT_DIM, CONTENT_TOKENS
from vidiff.conditioning.image_embed import drop_unheld_frames, frame_embedding_cond, image_embed_overrides
from vidiff.conditioning.tasks import request_cond
from vidiff.models import build_model
from vidiff.pipelines import DiffusionConfig, VideoFormat, VideoPipeline, extend, interpolate, sample_long
from vidiff.pipelines.long import window_starts
from vidiff.utils import VidiffError

from .conftest import TINY


def _pipe(embed: bool) -> VideoPipeline:
    """A tiny first-frame UNet3D (4-frame windows of 16x16), with or without the frame's embedding."""
    torch.manual_seed(0)
    model = build_model({**TINY, "cond_channels": 4, **(image_embed_overrides(3) if embed else {})})
    with torch.no_grad():  # perturbed, so that the zero-initialised output layers pass the conditions through
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return VideoPipeline(model.eval(), DiffusionConfig(), VideoFormat(frames=4, size=16, fps=6),
                         {"conditioning": {"condition": "first_frame", "image_embed": embed}}, name="i2v")


def _spy(model):
    """Record the Cond of every backbone call and the tokens of every image-encoder call."""
    seen = {"conds": [], "tokens": []}
    hooks = [model.register_forward_pre_hook(lambda m, args: seen["conds"].append(args[2]))]
    if model.content_encoder is not None:
        hooks.append(model.content_encoder.register_forward_hook(lambda m, i, o: seen["tokens"].append(o.shape)))
    return seen, hooks


def _video(frames=4, seed=0):
    return torch.rand(1, 3, frames, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_extend_and_interpolate_without_a_frame_give_the_null_embedding():
    """No Cond: every window's backbone call carries the null embedding (all samples flagged to the model's null),
    which is exactly the request without an image; given the frame (make_cond), the encoder embeds it."""
    pipe = _pipe(embed=True)
    seen, hooks = _spy(pipe.model)
    try:
        y = extend(pipe, _video(), 8, steps=2, seed=3)
        conds = list(seen["conds"])
        null = request_cond(("first_frame",), 1, frames=4, image_embed=True)
        assert torch.equal(extend(pipe, _video(), 8, steps=2, seed=3, cond=null), y)
        seen["conds"].clear()
        frame = _video(seed=5)[0, :, 0]  # (3, H, W)
        with_frame = extend(pipe, _video(), 8, steps=2, seed=3, cond=pipe.make_cond(1, 4, 16, image=frame))
        z = interpolate(pipe, _video(3), 2, steps=2)
    finally:
        for h in hooks:
            h.remove()
    assert y.shape == (1, 3, 8, 16, 16) and z.shape == (1, 3, 5, 16, 16)
    assert conds and all(c.drop.all() and c.text.shape == (1, 1, CONTENT_DIM) for c in conds)
    assert seen["tokens"] and seen["tokens"][0] == (1, CONTENT_TOKENS, CONTENT_DIM)  # the frame reached the encoder
    assert not torch.equal(with_frame, y)
    with pytest.raises(VidiffError, match="embeds an image") as e:  # a frame-only concat: refused, not embedded
        extend(pipe, _video(), 8, steps=1, cond=Cond(concat=torch.ones(1, 4, 4, 16, 16)))
    assert "\n" not in str(e.value)


def test_long_video_embeds_the_frame_only_in_the_windows_holding_it():
    """A long video's windows: the one starting at frame 0 sees the embedded first frame, the others the null
    (their concat holds no known frame, and training drops the embedding with the frame); no frame: the null."""
    pipe = _pipe(embed=True)
    starts = window_starts(8, 4, 2)  # [0, 2, 4]
    frame = _video(seed=5)[0, :, 0]
    seen, hooks = _spy(pipe.model)
    try:
        y = sample_long(pipe, 2, frames=8, steps=2, cond=pipe.make_cond(2, 8, 16, image=frame))
        conds = list(seen["conds"])
        seen["conds"].clear()
        plain = sample_long(pipe, 1, frames=8, steps=2)
    finally:
        for h in hooks:
            h.remove()
    assert y.shape == (2, 3, 8, 16, 16) and plain.shape == (1, 3, 8, 16, 16)
    expected = torch.tensor([s > 0 for s in starts] * 2)  # sample-major (sample, window) pairs
    assert conds and all(torch.equal(c.drop.cpu(), expected) for c in conds)
    assert all(torch.equal(c.content[0], frame) for c in conds)
    assert seen["tokens"] and all(t == (2 * len(starts), CONTENT_TOKENS, CONTENT_DIM) for t in seen["tokens"])
    assert seen["conds"] and all(c.drop.all() and c.content is None for c in seen["conds"])


def test_the_completion_leaves_other_conds_alone():
    pipe = _pipe(embed=False)
    cond = Cond(concat=torch.zeros(1, 4, 4, 16, 16))
    assert frame_embedding_cond(None, pipe.condition, pipe.model.config, 2) is None
    assert frame_embedding_cond(cond, pipe.condition, pipe.model.config, 2) is cond
    embedded = _pipe(embed=True)
    assert frame_embedding_cond(cond, embedded.condition, embedded.model.config, 1) is cond  # left to the backbone
    micro = Cond(micro=torch.ones(2, 1))
    filled = frame_embedding_cond(micro, embedded.condition, embedded.model.config, 2)
    assert filled is not micro and micro.text is None and filled.drop.all() and torch.equal(filled.micro, micro.micro)
    assert drop_unheld_frames(cond, [0, 2]) is cond


def test_a_model_without_the_embedding_samples_as_before(monkeypatch):
    """The first-frame model without `--image-embed`: extend, interpolate, long videos and plain sampling are bit
    for bit what they give with the Cond completion switched off (the paths as they were)."""
    pipe = _pipe(embed=False)

    def runs():
        return [extend(pipe, _video(), 8, steps=2, seed=1), interpolate(pipe, _video(3), 2, steps=2),
                sample_long(pipe, 1, frames=8, steps=2), pipe(num=1, steps=2),
                sample_long(pipe, 1, frames=8, steps=2, cond=pipe.make_cond(1, 8, 16, image=_video()[0, :, 0]))]

    now = runs()
    modules = {name: importlib.import_module(f"vidiff.pipelines.{name}") for name in ("extend", "long", "base")}
    for module in modules.values():
        monkeypatch.setattr(module, "frame_embedding_cond", lambda cond, *a: cond)
    monkeypatch.setattr(modules["long"], "drop_unheld_frames", lambda cond, starts: cond)
    before = runs()
    assert all(torch.equal(a, b) for a, b in zip(now, before))
