"""`vidiff data curate` and `vidiff data filter` end to end on a tiny folder (process engine)."""
import json

import numpy as np

from vidiff.cli import main
from vidiff.data import io


def _pan(step: float, frames: int = 20) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = (rng.random((64, 200, 3)) * 255).astype(np.uint8).repeat(2, 0)[:64]
    return np.stack([np.roll(t, int(step * i), axis=1)[:, :48] for i in range(frames)])


def test_curate_then_filter(tmp_path, capsys):
    io.write_npy(tmp_path / "raw" / "moving.npy", _pan(1.0))
    io.write_npy(tmp_path / "raw" / "still.npy", _pan(0.0))
    out = tmp_path / "ds"
    args = ["data", "curate", str(tmp_path / "raw"), "--out", str(out), "--engine", "process", "--no-ocr",
            "--min-frames", "8"]
    assert main(args) == 0
    assert "kept 1 of 2 clip(s) from 2 video(s)" in capsys.readouterr().out
    assert main(args) == 2 and "--resume" in capsys.readouterr().err          # the folder holds a dataset
    assert main(["data", "filter", str(out), "--min-motion", "-1"]) == 0
    assert "kept 2 of 2" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["counts"]["kept"] == 2
    assert main([*args[:5], "--ray", "127.0.0.1:9", "--resume"]) == 2           # checked before any work
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("no Ray cluster answers" in err or "Ray is not installed" in err)
