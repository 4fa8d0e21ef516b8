"""Synthetic shapes: determinism, bouncing trajectories, analytic areas/centroids, metadata, files, captions."""
import json

import numpy as np
import pytest

from vidiff.data import synth
from vidiff.data.io import read_video
from vidiff.utils import VidiffError


def test_deterministic_per_seed_and_index():
    a, ma = synth.render_shapes(6, 8, 16, seed=3)
    b, mb = synth.render_shapes(6, 8, 16, seed=3)
    np.testing.assert_array_equal(a, b)
    assert ma == mb
    # video i does not depend on which batch it was rendered in
    c, mc = synth.render_shapes(2, 8, 16, seed=3, start=4)
    np.testing.assert_array_equal(c, a[4:6])
    assert mc == ma[4:6]
    d, _ = synth.render_shapes(6, 8, 16, seed=4)
    assert not np.array_equal(a, d)


def test_bounce_is_a_reflection_and_stays_inside():
    S, F = 32, 120
    cfg = synth.ShapesConfig(frames=F, size=S)
    params = [synth.sample_params(i, 0, cfg) for i in range(40)]
    c = synth.trajectories(params, F, S)                       # (N, F, 2)
    r = np.array([p.extent / 2 for p in params])[:, None, None]
    assert np.all(c - r >= -1e-9) and np.all(c + r <= S + 1e-9)
    d = np.diff(c, axis=1)                                     # (N, F-1, 2)
    v = np.array([[p.vx, p.vy] for p in params])[:, None]
    # away from a wall the step is exactly the velocity; every step keeps |component| <= |v|
    assert np.all(np.abs(d) <= np.abs(v) + 1e-9)
    flips = 0
    for n in range(len(params)):
        for k in range(2):
            if abs(v[n, 0, k]) < 1e-9:
                continue
            s = np.sign(np.round(d[n, :, k] / abs(v[n, 0, k]), 9))
            for t in np.flatnonzero(s[1:] * s[:-1] < 0):       # velocity reversed between steps t, t+1
                flips += 1
                wall_dist = min(c[n, t + 1, k] - r[n, 0, 0], S - r[n, 0, 0] - c[n, t + 1, k])
                assert wall_dist <= abs(v[n, 0, k]) + 1e-9
            # reflection keeps speed: full steps have |component| == |v|
            full = np.isclose(np.abs(d[n, :, k]), abs(v[n, 0, k]))
            assert full.mean() > 0.6
    assert flips > 40  # over 120 frames every moving object bounces several times
    # the first safe_frames steps are straight (no bounce), so the caption's direction is visible
    np.testing.assert_allclose(d[:, :cfg.safe_frames], np.broadcast_to(v, d[:, :cfg.safe_frames].shape), atol=1e-9)


def test_rendered_area_and_centroid_match_geometry():
    S, F = 32, 6
    cfg = synth.ShapesConfig(frames=F, size=S)
    params = [synth.sample_params(i, 1, cfg) for i in range(30)]
    videos = synth.render(params, F, S)                        # (N, F, H, W, 3)
    centres = synth.trajectories(params, F, S)
    ys, xs = np.mgrid[0:S, 0:S] + 0.5
    for p, v, c in zip(params, videos, centres):
        ch = int(np.argmax(p.rgb))
        cov = v[..., ch].astype(float) / p.rgb[ch]             # (F, H, W) coverage in [0, 1]
        r = p.extent / 2
        area = {"circle": np.pi * r**2, "square": 4 * r**2, "triangle": 2 * r**2}[p.shape]
        perimeter = {"circle": 2 * np.pi * r, "square": 8 * r, "triangle": (2 + 2 * np.sqrt(5)) * r}[p.shape]
        # point-sampling 4x4 per pixel misplaces each edge by < 1/8 px; the errors average over frames
        np.testing.assert_allclose(cov.sum(axis=(1, 2)), area, atol=perimeter / 8)
        assert cov.sum(axis=(1, 2)).mean() == pytest.approx(area, rel=0.03)
        cx = (cov * xs).sum(axis=(1, 2)) / cov.sum(axis=(1, 2))
        cy = (cov * ys).sum(axis=(1, 2)) / cov.sum(axis=(1, 2))
        # triangle centroid sits r/3 below the box centre
        dy = r / 3 if p.shape == "triangle" else 0.0
        np.testing.assert_allclose(cx, c[:, 0], atol=0.15)  # 4x supersampling quantizes edges to 1/4 px
        np.testing.assert_allclose(cy, c[:, 1] + dy, atol=0.15)
        assert v[0, 0, 0].tolist() == list(synth.BACKGROUND)  # the corners stay background


def test_metadata_and_captions_consistent():
    _, meta = synth.render_shapes(200, 4, 32, seed=0)
    cfg = synth.ShapesConfig()
    for m in meta:
        assert m["colour"] in m["caption"] and m["shape"] in m["caption"]
        assert synth.class_name(m["class_id"], cfg) == (m["colour"], m["shape"])
        assert tuple(m["rgb"]) == synth.PALETTE[m["colour"]]
        ang = np.degrees(np.arctan2(-m["vy"], m["vx"])) % 360
        assert ang == pytest.approx(45 * list(synth.DIRECTIONS).index(m["direction"]), abs=1e-6)
        assert np.hypot(m["vx"], m["vy"]) == pytest.approx(m["speed"])
    # every class, direction and template occurs
    assert len({m["class_id"] for m in meta}) == cfg.num_classes
    assert len({m["direction"] for m in meta}) == 8
    assert len({m["caption"].split(m["shape"])[1].split()[0] for m in meta}) >= 2
    assert synth.caption("red", "circle", "left") == "a red circle moving left"


def test_paraphrases_are_held_out_of_training_captions():
    vocab = synth.training_vocabulary()
    _, meta = synth.render_shapes(300, 2, 16, seed=0)
    for m in meta:
        assert set(m["caption"].split()) <= vocab
    prompts = list(synth.paraphrase_prompts(64, seed=0))
    assert len(prompts) == 64 and prompts == list(synth.paraphrase_prompts(64, seed=0))
    for text, target in prompts:
        words = set(text.split())
        assert target["colour"] not in words and target["shape"] not in words
        assert words & {w for s in synth.COLOUR_SYNONYMS[target["colour"]] for w in s.split()}
        assert words & {w for s in synth.SHAPE_SYNONYMS[target["shape"]] for w in s.split()}
        assert words & set(synth.PARAPHRASE_VERBS)
    canon = list(synth.canonical_prompts(32, seed=0))
    for text, target in canon:
        assert text == synth.caption(target["colour"], target["shape"], target["direction"])
        assert set(text.split()) <= vocab
    # the held-out colour/shape/verb words never occur in training captions
    held = {w for d in (synth.COLOUR_SYNONYMS, synth.SHAPE_SYNONYMS) for s in d.values() for x in s
            for w in x.split()} | set(synth.PARAPHRASE_VERBS)
    assert not (held & vocab)


def _parts(words):
    return {p for w in words for p in w.split("-") if p}


def test_caption_variants_name_the_right_attributes_with_words_held_out_of_paraphrases():
    cfg = synth.ShapesConfig(caption_variants=6)
    _, meta = synth.render_shapes(200, 2, 16, seed=3, cfg=cfg)
    _, again = synth.render_shapes(200, 2, 16, seed=3, cfg=cfg)
    _, plain = synth.render_shapes(200, 2, 16, seed=3, cfg=synth.ShapesConfig(caption_variants=0))
    assert meta == again and all("captions" not in m for m in plain)
    assert [{k: v for k, v in m.items() if k != "captions"} for m in meta] == plain  # videos unchanged
    vocab = synth.training_vocabulary()
    colour_words = {c: {c, *synth.VARIANT_COLOURS[c]} for c in synth.DEFAULT_COLOURS}
    shape_words = {s: {s, *synth.VARIANT_SHAPES[s]} for s in synth.SHAPES}
    dir_phrases = {d: {synth._DIR_PHRASE[d], synth._DIR_PHRASE_TO[d], *synth.VARIANT_DIRECTIONS[d]}
                   for d in synth.DIRECTIONS}
    used = set()
    for m in meta:
        assert len(m["captions"]) == 6
        for text in m["captions"]:
            assert set(text.split()) <= vocab
            used |= set(text.split())
            # exactly the video's colour and shape are named, by their word or a bank synonym
            for words, own in ((colour_words, m["colour"]), (shape_words, m["shape"])):
                named = {k for k, ws in words.items() if any(f" {w} " in f" {text} " for w in ws)}
                assert named == {own}, (text, named)
            # the longest direction phrase in it is one of the video's direction
            found = [(len(p), d) for d, ps in dir_phrases.items() for p in ps if f" {p} " in f" {text} "]
            assert found and max(found)[1] == m["direction"], text
    assert len(used & {w for c in synth.VARIANT_COLOURS.values() for w in c}) > 30  # the bank is used
    # no held-out paraphrase word, nor a word sharing its stem, occurs in any training caption
    held = _parts(w for d in (synth.COLOUR_SYNONYMS, synth.SHAPE_SYNONYMS, synth._PARA_DIR)
                  for s in d.values() for x in s for w in x.split()) | set(synth.PARAPHRASE_VERBS)
    held -= {"to", "the", "right", "left"}           # the direction phrases' function words are shared
    canonical = " ".join((*synth.TEMPLATES, *synth.PALETTE, *synth.SHAPES, *synth.SIZE_NAMES,
                          *synth._DIR_PHRASE.values(), *synth._DIR_PHRASE_TO.values())).split()
    train = _parts(vocab) - _parts(canonical)  # (the canonical "downwards" predates the held-out "downward")
    clash = {(t, h) for t in train for h in held if min(len(t), len(h)) >= 3 and (t.startswith(h) or h.startswith(t))}
    assert not clash, clash


def test_generate_shapes_writes_mp4_and_metadata(tmp_path):
    out = synth.generate_shapes(tmp_path / "shapes", 6, frames=8, size=32, seed=2, progress=False)
    lines = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert [x["file"] for x in lines] == [f"shape_{i:05d}.mp4" for i in range(6)]
    assert sorted(p.name for p in out.iterdir()) == sorted([x["file"] for x in lines] + ["metadata.jsonl"])
    raw, meta = synth.render_shapes(6, 8, 32, seed=2)
    for rec, m, v in zip(lines, meta, raw):
        assert {k: rec[k] for k in m} == m
        dec = read_video(out / rec["file"])
        assert dec.shape == v.shape
        # a saturated solid colour survives H.264 4:2:0: the object's core keeps its RGB
        core = v.astype(int).max(-1) >= 0.99 * max(m["rgb"])
        np.testing.assert_allclose(np.median(dec[core].astype(float), axis=0), m["rgb"], atol=20)
        assert np.abs(dec.astype(int) - v).mean() < 4
    assert synth.read_metadata(out)["shape_00003.mp4"]["caption"] == meta[3]["caption"]


def test_shapes_tensor_in_memory_matches_render():
    x, y, caps = synth.shapes_tensor(5, 4, 16, seed=1)
    v, meta = synth.render_shapes(5, 4, 16, seed=1)
    assert x.shape == (5, 3, 4, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert y.tolist() == [m["class_id"] for m in meta] and caps == [m["caption"] for m in meta]
    from vidiff.data.io import to_uint8
    np.testing.assert_array_equal(to_uint8(x), v)


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(VidiffError, match="choose from"):
        synth.render_shapes(2, cfg=synth.ShapesConfig(colours=("purple",)))
    with pytest.raises(VidiffError, match="format"):
        synth.generate_shapes(tmp_path, 2, fmt="avi")
    with pytest.raises(VidiffError, match="--num"):
        synth.generate_shapes(tmp_path, 0)
    (tmp_path / "metadata.jsonl").write_text("{not json\n")
    with pytest.raises(VidiffError, match="metadata"):
        synth.read_metadata(tmp_path)
