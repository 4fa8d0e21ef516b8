"""The scoring of benchmarks/bench_adapt.py on synthetic videos of known motion: a clip moving by its true
velocity passes, the same clip scored against the opposite δ, with shuffled frames or with a colour change
half-way fails; the prompts cover the 8 compass steps at both speeds; a colour edit renames the colour only."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from vidiff.data.synth import DIRECTIONS, render_shapes

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_adapt.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_adapt", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def clip():
    videos, meta = render_shapes(1, 8, 32, seed=1)
    return videos[0], meta[0]


def test_true_motion_passes_and_wrong_motion_fails(bench, clip):
    video, m = clip
    want = {"colour": m["colour"], "shape": m["shape"], "delta": (m["vx"], m["vy"])}
    ok = bench.score_motion(video, want)
    assert ok["persists"] and ok["moves_along"] and ok["direction"] and ok["all"]
    assert ok["speed_ratio"] == pytest.approx(1.0, abs=0.05)
    back = bench.score_motion(video, {**want, "delta": (-m["vx"], -m["vy"])})
    assert back["persists"] and not back["moves_along"] and not back["direction"] and not back["all"]
    order = np.random.default_rng(0).permutation(len(video))
    shuffled = bench.score_motion(video[order], want)  # every frame alike, positions out of order
    assert not shuffled["moves_along"]
    other = [c for c in ("red", "green", "blue") if c != m["colour"]][0]
    assert not bench.score_motion(video, {**want, "colour": other})["all"]


def test_a_colour_change_midway_breaks_persistence(bench, clip):
    video, _ = clip
    changed = video.copy()
    changed[4:] = changed[4:, :, :, [1, 2, 0]]  # channels rotated from frame 4: same object, another colour
    assert bench.persists(video) and not bench.persists(changed)
    assert bench.persistence(changed) == {"one_object": True, "constant_colour": False, "constant_size": True,
                                          "constant_shape": True}


def test_prompts_and_colour_edits(bench):
    prompts = bench.t2v_prompts(32)
    deltas = {w["delta"] for _, w in prompts}
    assert len(deltas) == 16 and {(0.0, -2.0), (-1.0, 1.0)} <= deltas
    assert all(w["colour"] in p and w["shape"] in p for p, w in prompts)
    assert all(np.sign(w["delta"]).tolist() == list(DIRECTIONS[w["direction"]]) for _, w in prompts)
    text, new = bench.edited_prompt("a large red square moves to the right", "red", 0)
    assert new != "red" and text == f"a large {new} square moves to the right"
