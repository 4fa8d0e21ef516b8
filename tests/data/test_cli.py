"""`vidiff data synth shapes` and `vidiff data check` end to end on tiny inputs."""
import json

import numpy as np
import typer
from typer.testing import CliRunner

from vidiff.data import synth
from vidiff.cli.data import register
from vidiff.data.io import write_npy
from vidiff.utils import VidiffError


def _app():
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root():  # a group, so "data" stays a sub-command
        pass

    return app


def test_synth_then_check_folder(tmp_path):
    runner = CliRunner()
    out = tmp_path / "shapes"
    r = runner.invoke(_app(), ["data", "synth", "shapes", str(out), "--num", "6", "--frames", "8",
                               "--size", "32", "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert len(list(out.glob("*.mp4"))) == 6 and len((out / "metadata.jsonl").read_text().splitlines()) == 6
    r = runner.invoke(_app(), ["data", "check", str(out), "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    assert "overall" in r.output and "100.0%" in r.output and "shape accuracy" in r.output
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["num"] == 6 and s["ok"] == 1.0 and s["all_attrs_acc"] == 1.0


def test_check_npy_counts_failures(tmp_path):
    videos, _ = synth.render_shapes(4, 8, 32, seed=0)
    videos[2:] = videos[2:, :1]  # two static videos
    write_npy(tmp_path / "samples.npy", videos)
    r = CliRunner().invoke(_app(), ["data", "check", str(tmp_path / "samples.npy"), "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["num"] == 4 and s["ok"] == 0.5 and s["moving"] == 0.5 and "colour_acc" not in s


def test_bad_input_errors(tmp_path):
    runner = CliRunner()
    r = runner.invoke(_app(), ["data", "check", str(tmp_path)])
    assert isinstance(r.exception, VidiffError) and "no videos found" in str(r.exception)
    write_npy(tmp_path / "x.npy", np.zeros((2, 3), np.uint8))
    r = runner.invoke(_app(), ["data", "check", str(tmp_path / "x.npy")])
    assert isinstance(r.exception, VidiffError) and "(N, F, H, W, 3)" in str(r.exception)
    r = runner.invoke(_app(), ["data", "synth", "shapes", str(tmp_path / "o"), "--colours", "purple"])
    assert isinstance(r.exception, VidiffError) and "purple" in str(r.exception)


def test_vidiff_main_prints_one_line(tmp_path, capsys):
    from vidiff.cli import main

    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "not found" in err
