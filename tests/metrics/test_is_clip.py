"""Inception Score and CLIP score: analytic IS values, IS through the FID Inception equal to the formula on its
logits, a tiny random CLIP checked against transformers' CLIP (converted to OpenCLIP's names) and its tokenizer,
the protocol record, refusals, and `vidiff eval` end to end."""
import gzip
import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from vidiff.cli import main
from vidiff.metrics.clip import CLIP_CONFIGS, CLIP_MEAN, CLIP_STD, clip_config, from_transformers, load_clip, preprocess
from vidiff.metrics.clip_tokenizer import CLIPTokenizer, byte_symbols
from vidiff.metrics.evaluation import evaluate
from vidiff.metrics.inception import FIDInceptionV3
from vidiff.metrics.inception_score import inception_score
from vidiff.metrics.protocol import as_video_tensor, resize_video
from vidiff.utils import VidiffError

WORDS = ["a", "red", "cat", "jumps", "over", "the", "dog", "slowly", "3", "!"]
CTX, WIDTH, EMBED, IMAGE = 12, 32, 16, 32


# ----------------------------------------------------------------------------------------------- Inception Score
def test_is_of_uniform_predictions_is_one():
    mean, std = inception_score(np.zeros((40, 1008)), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("classes", [1, 4, 25])
def test_is_of_confident_equally_frequent_classes_is_their_count(classes):
    logits = np.full((classes * 10, 1008), -60.0)
    logits[np.arange(classes * 10), np.arange(classes * 10) % classes] = 60.0  # each split sees every class
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(classes, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)


def test_is_of_confident_unequal_classes_is_exp_marginal_entropy():
    logits = np.full((8, 1008), -60.0)
    logits[np.arange(8), [0, 0, 0, 0, 0, 0, 1, 2]] = 60.0  # marginal (6/8, 1/8, 1/8)
    p = np.array([6, 1, 1]) / 8
    assert inception_score(logits, splits=1)[0] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-6)


def test_is_refuses_more_splits_than_images():
    with pytest.raises(VidiffError, match="--is-splits"):
        inception_score(np.zeros((3, 1008)), splits=10)


def reference_is(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """Salimans et al.'s formula, written out: exp(mean_x sum_y p(y|x) (log p(y|x) - log p(y))) per split."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(0, keepdims=True)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), 1))))
    return float(np.mean(scores)), float(np.std(scores))


def test_is_through_the_inception_module_equals_the_formula_on_its_logits(tmp_path, capsys):
    torch.manual_seed(0)
    model = FIDInceptionV3().eval()
    videos = np.random.default_rng(0).integers(0, 256, (2, 2, 40, 40, 3), dtype=np.uint8)
    np.save(tmp_path / "fake.npy", videos)
    with torch.no_grad():
        frames = resize_video(as_video_tensor(videos), 299).permute(0, 2, 1, 3, 4).reshape(4, 3, 299, 299)
        feats = model.features(frames)  # (4, 2048), video-major like the metric
        # random pool3 features barely differ: a fc on their standardized values makes p(y|x) differ per image
        mean, scale = feats.mean(0), feats.std(0).mean()
        model.fc.weight.copy_(torch.randn(1008, 2048) * 0.05 / scale)
        model.fc.bias.copy_(-model.fc.weight @ mean)
        logits = model.fc(feats).double().numpy()  # (4, 1008)
    weights = tmp_path / "pt_inception.safetensors"
    save_file(model.state_dict(), str(weights))
    out = tmp_path / "r.json"
    rc = main(["eval", "--real", str(tmp_path / "fake.npy"), "--fake", str(tmp_path / "fake.npy"), "--metrics", "is",
               "--inception", str(weights), "--is-splits", "2", "--frames", "2", "--out", str(out), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    s = json.loads(out.read_text())["scores"]["is"]
    mean, std = reference_is(logits, 2)
    assert 1.05 < mean < 4  # the posteriors differ per image: a score that could be wrong
    assert s["value"] == pytest.approx(mean, rel=1e-4) and s["std"] == pytest.approx(std, rel=1e-3, abs=1e-6)
    p = s["protocol"]
    assert p["extractor_weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (p["splits"], p["images"], p["frames"], p["resize_size"], s["classes"]) == (2, 4, 2, 299, 1008)
    assert p["extractor"] == "inception-v3-fid-logits" and any("50,000" in w for w in p["warnings"])
    assert any("C3D" in w for w in p["warnings"])  # not the UCF-101 video IS


# ------------------------------------------------------------------------------------------------- CLIP score
def write_tokenizer_files(d):
    """A tiny BPE merges file (merges learnt from WORDS) and the matching vocab.json, in CLIP's order."""
    sym = byte_symbols()
    merges, vocab_words = [], set()
    for w in WORDS:
        parts = [sym[b] for b in w.encode()]
        parts[-1] += "</w>"
        while len(parts) > 1:  # merge left to right: every word becomes one token
            m = (parts[0], parts[1])
            if m not in merges:
                merges.append(m)
            parts = ["".join(m)] + parts[2:]
        vocab_words.add(parts[0])
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    symbols = list(sym.values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>",
                                                                                       "<|endoftext|>"]
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    return len(vocab)


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    """A tiny random transformers CLIP, its weights under OpenCLIP's names, an OpenCLIP config and tokenizer."""
    transformers = pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("clip")
    vocab_size = write_tokenizer_files(d)
    torch.manual_seed(0)
    common = dict(hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=2, num_attention_heads=2,
                  hidden_act="gelu")
    cfg = transformers.CLIPConfig(
        text_config=dict(vocab_size=vocab_size, max_position_embeddings=CTX, bos_token_id=vocab_size - 2,
                         eos_token_id=vocab_size - 1, pad_token_id=0, **common),
        vision_config=dict(image_size=IMAGE, patch_size=8, **common), projection_dim=EMBED)
    hf = transformers.CLIPModel(cfg).eval()
    with torch.no_grad():  # one projection for both towers: random image/text cosines of both signs
        hf.text_projection.weight.copy_(hf.visual_projection.weight)
    save_file(from_transformers(hf.state_dict()), str(d / "open_clip_model.safetensors"))
    (d / "hf").mkdir()
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, str(d / "hf" / "model.safetensors"))
    cfg.save_pretrained(str(d / "hf"))  # config.json: hidden_act gelu
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": {
        "embed_dim": EMBED, "vision_cfg": {"image_size": IMAGE, "layers": 2, "width": WIDTH, "patch_size": 8,
                                           "head_width": WIDTH // 2, "mlp_ratio": 2},
        "text_cfg": {"context_length": CTX, "vocab_size": vocab_size, "width": WIDTH, "heads": 2, "layers": 2,
                     "mlp_ratio": 2}}, "preprocess_cfg": {}}))
    hf_tok = transformers.CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    return d, hf, hf_tok


def features(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


PROMPTS = ["A red cat jumps over the dog!", "the dog   slowly jumps 33", "a cat", "over the red red red dog " * 3]


def test_tokenizer_matches_transformers_clip_tokenizer(clip_files, tmp_path):
    d, _, hf_tok = clip_files
    ours = CLIPTokenizer.from_file(d / "merges.txt", hf_tok.vocab_size, CTX)
    ids = ours(PROMPTS)
    ref = hf_tok(PROMPTS, truncation=True, max_length=CTX)["input_ids"]
    for row, r in zip(ids, ref):
        assert row[:len(r)].tolist() == r and not row[len(r):].any()  # zeros after the end token
    assert ids[3, -1] == ours.eot and len(ref[3]) == CTX  # a long prompt is cut and still ends with the end token
    assert (ids == ours.eot).sum() == len(PROMPTS)
    # OpenAI/OpenCLIP's gzip file: the same merges after a `"bpe_simple_vocab_16e6.txt#version: 0.2` line
    merges = (d / "merges.txt").read_text().split("\n", 1)[1]
    gz = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    gz.write_bytes(gzip.compress(('"bpe_simple_vocab_16e6.txt#version: 0.2\n' + merges).encode()))
    assert torch.equal(CLIPTokenizer.from_file(gz, hf_tok.vocab_size, CTX)(PROMPTS), ids)
    with pytest.raises(VidiffError, match="fewer than"):
        CLIPTokenizer.from_file(gz, hf_tok.vocab_size + 5, CTX)


@pytest.mark.parametrize("weights", ["open_clip_model.safetensors", "hf/model.safetensors"])
def test_clip_towers_match_transformers_clip(clip_files, weights):
    d, hf, hf_tok = clip_files
    model = load_clip(d / weights, str(d / "open_clip_config.json"))
    x = torch.randn(3, 3, IMAGE, IMAGE)
    ids = torch.tensor([r + [0] * (CTX - len(r)) for r in hf_tok(PROMPTS[:3])["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(x), features(hf.get_image_features(pixel_values=x)),
                                   rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model.encode_text(ids), features(hf.get_text_features(input_ids=ids)),
                                   rtol=1e-4, atol=1e-5)
    quick = json.loads((d / "open_clip_config.json").read_text())["model_cfg"] | {"quick_gelu": True}
    if weights.startswith("hf/"):  # its config.json says gelu: a QuickGELU architecture is refused
        with pytest.raises(VidiffError, match="hidden_act 'gelu'"):
            load_clip(d / weights, quick)


def test_preprocess_resizes_the_short_side_and_centre_crops_like_pil():
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    x = preprocess(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1, 32)
    assert x.shape == (1, 3, 32, 32)
    ref = np.asarray(Image.fromarray(rgb).resize((43, 32), Image.BICUBIC))[:, 5:37] / 255.0  # (32, 32, 3)
    back = x[0].permute(1, 2, 0) * torch.tensor(CLIP_STD) + torch.tensor(CLIP_MEAN)
    assert np.abs(back.numpy() - ref).mean() < 0.01


def test_clip_score_equals_the_cosine_formula_and_records_its_protocol(clip_files):
    d, hf, hf_tok = clip_files
    videos = np.random.default_rng(2).integers(0, 256, (4, 2, IMAGE, IMAGE, 3), dtype=np.uint8)
    prompts = PROMPTS
    res = evaluate(videos, videos, "clip", frames=2, clip_model=str(d / "open_clip_config.json"),
                   clip_weights=str(d / "open_clip_model.safetensors"), prompts=prompts, batch_size=2)
    s = res["scores"]["clip"]
    x = torch.from_numpy(videos).float().div(255).permute(0, 1, 4, 2, 3).reshape(8, 3, IMAGE, IMAGE)
    x = (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        img = features(hf.get_image_features(pixel_values=x)).view(4, 2, -1)
        ids = hf_tok(prompts, truncation=True, max_length=CTX)["input_ids"]
        txt = features(hf.get_text_features(input_ids=torch.tensor([r + [0] * (CTX - len(r)) for r in ids])))
    cos = torch.nn.functional.cosine_similarity(img, txt[:, None], dim=-1)  # (4 videos, 2 frames)
    assert (cos > 0).any() and (cos < 0).any()  # the clamp at 0 is exercised
    per_video = (100 * cos.clamp(min=0)).mean(1)
    assert s["per_video"] == pytest.approx(per_video.tolist(), rel=1e-4, abs=1e-4)
    assert s["value"] == pytest.approx(float(per_video.mean()), rel=1e-4, abs=1e-4) and s["value"] > 0
    p = s["protocol"]
    w = d / "open_clip_model.safetensors"
    assert p["extractor_weights_sha256"] == hashlib.sha256(w.read_bytes()).hexdigest()
    assert (p["images"], p["frames"], p["resize_size"], p["prompts"]) == (8, 2, IMAGE, "list")
    assert p["prompts_sha256"] == hashlib.sha256(json.dumps(prompts).encode()).hexdigest()
    assert s["tokenizer"].endswith("merges.txt")  # found next to the weights


def test_clip_config_names_and_refusals(tmp_path):
    assert clip_config("ViT-B-32")["quick_gelu"] is False and clip_config("ViT-L-14-quickgelu")["quick_gelu"]
    assert clip_config("ViT-H-14")["vision_cfg"]["head_width"] == 80
    with pytest.raises(VidiffError, match="unknown --clip-model"):
        clip_config("RN50")
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"embed_dim": 8, "vision_cfg": {"timm_model_name": "x"}, "text_cfg": {}}))
    with pytest.raises(VidiffError, match="timm_model_name"):
        clip_config(str(bad))
    pre = {"mean": [0.5] * 3, "std": [0.5] * 3, "size": 224, "interpolation": "bicubic", "mode": "RGB"}
    release = {"model_cfg": CLIP_CONFIGS["ViT-B-32"], "preprocess_cfg": pre}
    bad.write_text(json.dumps(release))
    assert clip_config(str(bad))["mean"] == (0.5, 0.5, 0.5) and clip_config("ViT-B-32")["std"] == CLIP_STD
    release["preprocess_cfg"]["resize_mode"] = "squash"
    bad.write_text(json.dumps(release))
    with pytest.raises(VidiffError, match="resize_mode=squash"):
        clip_config(str(bad))


def test_refusals_name_the_flag_to_pass(clip_files):
    d, _, _ = clip_files
    v = np.zeros((2, 2, 8, 8, 3), np.uint8)
    with pytest.raises(VidiffError, match="--inception"):
        evaluate(v, v, "is", frames=2)
    with pytest.raises(VidiffError, match="--clip-weights"):
        evaluate(v, v, "clip", frames=2, prompt="a cat")
    with pytest.raises(VidiffError, match="--clip-model"):
        evaluate(v, v, "clip", frames=2, clip_weights=str(d / "open_clip_model.safetensors"), prompt="a cat")
    kw = dict(frames=2, clip_model=str(d / "open_clip_config.json"),
              clip_weights=str(d / "open_clip_model.safetensors"))
    with pytest.raises(VidiffError, match="--prompt"):
        evaluate(v, v, "clip", **kw)
    with pytest.raises(VidiffError, match="3 prompts for 2"):
        evaluate(v, v, "clip", prompts=PROMPTS[:3], **kw)
    with pytest.raises(VidiffError, match="does not match CLIP"):  # weights of another architecture
        evaluate(v, v, "clip", frames=2, clip_model="ViT-B-32", clip_weights=kw["clip_weights"], prompt="a cat")


def test_cli_clip_score_and_refusal(clip_files, tmp_path, capsys):
    d, _, _ = clip_files
    videos = np.random.default_rng(3).integers(0, 256, (2, 3, 40, 48, 3), dtype=np.uint8)
    np.save(tmp_path / "v.npy", videos)
    (tmp_path / "prompts.txt").write_text("a red cat\nthe dog jumps\n")
    base = ["eval", "--fake", str(tmp_path / "v.npy"), "--metrics", "clip", "--frames", "3"]  # no --real needed
    assert main(base + ["--prompts", str(tmp_path / "prompts.txt")]) == 2
    err = capsys.readouterr().err
    assert "--clip-weights" in err and "Traceback" not in err
    assert main(["eval", "--fake", str(tmp_path / "v.npy"), "--metrics", "clip,psnr", "--frames", "3"]) == 2
    assert "psnr compare with real videos: pass --real" in capsys.readouterr().err
    out = tmp_path / "r.json"
    rc = main(base + ["--prompts", str(tmp_path / "prompts.txt"), "--clip-model", str(d / "open_clip_config.json"),
                      "--clip-weights", str(d / "open_clip_model.safetensors"), "--clip-tokenizer",
                      str(d / "merges.txt"), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads(out.read_text())
    s = rep["scores"]["clip"]
    assert rep["real"] is None and s["protocol"]["num_real"] == 0 and s["protocol"]["num_fake"] == 2
    assert len(s["per_video"]) == 2 and 0 <= s["value"] <= 100
    assert s["protocol"]["prompts"] == str(tmp_path / "prompts.txt")
    assert s["protocol"]["prompts_sha256"] == hashlib.sha256((tmp_path / "prompts.txt").read_bytes()).hexdigest()
    assert s["protocol"]["extractor"] == "open-clip-open_clip_config" and s["protocol"]["images"] == 6
