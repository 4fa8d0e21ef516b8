"""Shapes checker: real synthetic videos pass and their attributes are recovered; each corruption fails."""
import numpy as np
import pytest

from vidiff.data import checker, synth
from vidiff.data.io import read_video


@pytest.fixture(scope="module")
def real():
    return synth.render_shapes(96, 16, 32, seed=11)


@pytest.fixture(scope="module")
def real_mp4(tmp_path_factory):
    out = synth.generate_shapes(tmp_path_factory.mktemp("mp4"), 32, 16, 32, seed=12, progress=False)
    meta = synth.read_metadata(out)
    files = sorted(meta)
    return np.stack([read_video(out / f) for f in files]), [meta[f] for f in files]


def test_real_videos_pass_and_attributes_recovered(real):
    videos, meta = real
    s = checker.check_batch(videos, meta)
    for c in ("ok",) + checker.CRITERIA:
        assert s[c] == 1.0, c
    assert s["colour_acc"] == s["shape_acc"] == s["direction_acc"] == s["all_attrs_acc"] == 1.0
    r = s["results"][0]
    assert r.num_objects == [1] * 16 and r.velocity is not None
    # the measured speed is the true speed (centroids are sub-pixel exact on clean renders)
    speeds = np.array([x.velocity for x in s["results"]])
    true = np.array([[m["vx"], m["vy"]] for m in meta])
    np.testing.assert_allclose(speeds, true, atol=0.1)


def test_real_h264_videos_pass(real_mp4):
    videos, meta = real_mp4
    s = checker.check_batch(videos, meta)
    assert s["ok"] == 1.0 and s["all_attrs_acc"] == 1.0


def _fails(videos, criterion=None):
    s = checker.check_batch(np.stack(videos))
    assert s["ok"] == 0.0
    if criterion:
        assert s[criterion] == 0.0, (criterion, s)


def test_shuffled_frames_fail(real):
    rng = np.random.default_rng(0)
    out = []
    for v in real[0][:24]:
        p = rng.permutation(len(v))
        while np.all(np.abs(np.diff(p)) == 1):
            p = rng.permutation(len(v))
        out.append(v[p])
    _fails(out, "smooth_motion")


def test_object_missing_in_one_frame_fails(real):
    out = []
    for i, v in enumerate(real[0][:24]):
        v = v.copy()
        v[1 + i % 14] = synth.BACKGROUND
        out.append(v)
    _fails(out, "one_object")


def test_colour_change_mid_video_fails(real):
    videos, meta = real
    out = []
    for v, m in zip(videos[:24], meta):
        other = synth.DEFAULT_COLOURS[(synth.DEFAULT_COLOURS.index(m["colour"]) + 1) % 4]
        cov = v[8:].max(-1, keepdims=True) / max(m["rgb"])
        v = v.copy()
        v[8:] = np.round(cov * np.array(synth.PALETTE[other])).astype(np.uint8)
        out.append(v)
    _fails(out, "constant_colour")


def test_two_objects_fail(real):
    from scipy import ndimage

    videos, _ = real
    masks = videos.max(-1) > 0                                    # (N, F, H, W)
    grown = ndimage.binary_dilation(masks, np.ones((1, 1, 3, 3), bool))
    out = []
    for i in range(len(videos)):
        for j in range(i + 1, len(videos)):
            # keep pairs whose objects never touch (no shared 8-neighbourhood in any frame)
            if len(out) < 16 and not (grown[i] & masks[j]).any():
                out.append(np.maximum(videos[i], videos[j]))
    assert len(out) == 16
    _fails(out, "one_object")


def test_noise_and_static_fail(real):
    rng = np.random.default_rng(1)
    _fails([rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8) for _ in range(8)], "one_object")
    _fails([np.repeat(v[:1], 16, axis=0) for v in real[0][:8]], "moving")
    _fails([np.zeros((16, 32, 32, 3), np.uint8)], "one_object")


def test_size_change_fails(real):
    # the object grows by 2x in area halfway: render the same trajectory at two sizes
    cfg = synth.ShapesConfig(frames=16, size=32)
    out = []
    for i in range(8):
        p = synth.sample_params(i, 5, cfg)
        big = p.__class__(**{**p.__dict__, "extent": p.extent * 1.42})
        v, w = synth.render([p], 16, 32)[0], synth.render([big], 16, 32)[0]
        out.append(np.concatenate([v[:8], w[8:]]))
    _fails(out, "constant_size")


def test_attribute_helpers_are_exact_on_their_definitions():
    for name, (dx, dy) in synth.DIRECTIONS.items():
        assert checker.direction_name(3 * dx, 3 * dy) == name
    assert checker.direction_name(1.0, 0.2, ways=4) == "right"
    assert checker.direction_name(-0.2, -1.0, ways=4) == "up"
    for name, rgb in synth.PALETTE.items():
        assert checker.nearest_colour(rgb) == name
        assert checker.nearest_colour(0.5 * np.array(rgb)) == name  # dim samples keep their hue
    assert checker.shape_from_features(1.0, 0.0) == "square"
    assert checker.shape_from_features(np.pi / 4, 0.0) == "circle"
    assert checker.shape_from_features(0.5, -0.57) == "triangle"


def test_batch_rates_are_means_of_verdicts(real):
    videos = list(real[0][:4]) + [np.repeat(v[:1], 16, axis=0) for v in real[0][4:8]]
    s = checker.check_batch(np.stack(videos))
    assert s["num"] == 8 and s["ok"] == 0.5 and s["moving"] == 0.5 and s["one_object"] == 1.0
    d = s["results"][0].to_dict()
    assert d["ok"] is True and d["colour"] in synth.PALETTE
    with pytest.raises(ValueError, match="metadata"):
        checker.check_batch(np.stack(videos), expected=[{}])


def test_attributes_at_64px_and_bigger_palette():
    cfg = synth.ShapesConfig(frames=12, size=64, colours=tuple(synth.PALETTE))
    videos, meta = synth.render_shapes(24, seed=2, cfg=cfg)
    s = checker.check_batch(videos, meta)
    assert s["ok"] == 1.0 and s["all_attrs_acc"] == 1.0


def test_benign_perturbations_still_pass(real):
    """What a good generator may do (mild noise, dimmer colour, slight blur) is not a failure."""
    import cv2

    videos, meta = real[0][:32], real[1][:32]
    rng = np.random.default_rng(0)
    noisy = np.clip(videos + rng.normal(0, 4, videos.shape), 0, 255).astype(np.uint8)
    dim = (videos * 0.75).astype(np.uint8)
    blur = np.stack([[cv2.GaussianBlur(f, (3, 3), 0.7) for f in v] for v in videos])
    for x in (noisy, dim, blur):
        s = checker.check_batch(x, meta)
        assert s["ok"] == 1.0 and s["all_attrs_acc"] == 1.0


def test_foreground_centroid_and_centroid_distance():
    # a 4x6 block of pixels at x 10..15, y 20..23 on grey: centre (12.5, 21.5); a blank frame has none
    frame = np.full((32, 32, 3), 128, np.uint8)
    frame[20:24, 10:16] = (230, 30, 30)
    assert checker.foreground_centroid(frame) == (12.5, 21.5)
    assert checker.foreground_centroid(np.full((8, 8, 3), 40, np.uint8)) is None
    moved = np.full((32, 32, 3), 128, np.uint8)
    moved[23:27, 14:20] = (230, 30, 30)  # the block shifted by (4, 3): 5 px away; no object: inf
    assert checker.centroid_distance(frame, moved) == 5.0
    assert checker.centroid_distance(frame, np.full((32, 32, 3), 128, np.uint8)) == float("inf")


def test_track_distance_of_a_shifted_clip_and_of_a_clip_without_object():
    video = synth.render_shapes(1, 8, 32, seed=1)[0][0]
    shifted = np.roll(video, 2, axis=2)  # 2 px to the right
    assert checker.track_distance(shifted, video) == pytest.approx(2.0, abs=0.01)
    assert checker.track_distance(np.zeros_like(video), video) == float("inf")
    # on rendered circles and squares (symmetric: centre of mass = the metadata's box centre, in a
    # frame where pixel i spans [i, i+1), so half a pixel above the index) it is within the half pixel
    # that thresholding the antialiased edge can shift it
    videos, meta = synth.render_shapes(16, 2, 32, seed=3)
    sym = [(v, m) for v, m in zip(videos, meta) if m["shape"] != "triangle"]
    assert len(sym) >= 8
    for v, m in sym:
        x, y = checker.foreground_centroid(v[0])
        assert abs(x + 0.5 - m["x0"]) < 0.5 and abs(y + 0.5 - m["y0"]) < 0.5
