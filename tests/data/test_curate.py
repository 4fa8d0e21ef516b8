"""Curation: cuts found exactly at shot boundaries, none inside a shot; still clips filtered out."""
import json

import numpy as np
import pytest

from vidiff.data import curate, io, synth
from vidiff.utils import VidiffError


def _three_shots():
    a, _ = synth.render_shapes(1, 16, 32, seed=0)            # moving shape on black
    b, _ = synth.render_shapes(1, 16, 32, seed=1)
    b = np.maximum(b[0], 110).astype(np.uint8)               # another shot: grey background
    c = np.full((16, 32, 32, 3), (30, 60, 200), np.uint8)    # a still blue shot
    return np.concatenate([a[0], b, c])


def test_histogram_distance_oracle():
    black, white = np.zeros((1, 4, 4, 3), np.uint8), np.full((1, 4, 4, 3), 255, np.uint8)
    half = black.copy()
    half[:, :2] = 255
    d = curate.histogram_distances(np.concatenate([black, white, half, half]))
    np.testing.assert_allclose(d, [1.0, 0.5, 0.0])           # total variation of the colour histograms
    assert curate.motion_score(np.concatenate([black, white])) == pytest.approx(1.0, abs=1e-3)


def test_cuts_at_shot_boundaries_and_motion_filter():
    v = _three_shots()
    assert curate.scene_cuts(v) == [16, 32]
    clips = curate.split_clips(v, 8)
    assert [c.start for c in clips] == [0, 8, 16, 24]        # the still shot is dropped
    assert all(c.motion > 0.002 for c in clips)
    assert curate.motion_score(v[32:]) == 0.0


def test_curate_writes_clips_and_metadata(tmp_path):
    io.write_npy(tmp_path / "src" / "long.npy", _three_shots())
    (tmp_path / "src" / "broken.mp4").write_bytes(b"junk")
    stats = curate.curate(tmp_path / "src", tmp_path / "out", clip_frames=8, progress=False)
    assert stats == {"videos": 1, "unreadable": 1, "cuts": 2, "clips": 4, "rejected_motion": 2}
    recs = [json.loads(x) for x in (tmp_path / "out" / "metadata.jsonl").read_text().splitlines()]
    assert [r["start"] for r in recs] == [0, 8, 16, 24] and recs[0]["source"] == "long.npy"
    assert io.read_video(tmp_path / "out" / recs[0]["file"]).shape == (8, 32, 32, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VidiffError, match="no videos found"):
        curate.curate(tmp_path / "empty", tmp_path / "x")
