"""The app layer without a browser: errors become one line, clicks map back to photo pixels, uploads
reach the handlers undecoded."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

gr = pytest.importorskip("gradio", reason="the web UI needs the [ui] extra")

from vidiff.ui import animate  # noqa: E402
from vidiff.ui.app import App, build_app, one_line_errors, photo_upload  # noqa: E402
from vidiff.utils import VidiffError  # noqa: E402


def test_errors_become_one_line():
    def bad_input():
        raise VidiffError("the photo is too small\nsecond line")

    def bug():
        raise KeyError("secret/server/path")

    with pytest.raises(gr.Error) as e:
        one_line_errors(bad_input)()
    assert e.value.message == "the photo is too small"
    with pytest.raises(gr.Error) as e:
        one_line_errors(bug)()
    assert e.value.message.startswith("internal error (KeyError)") and "secret" not in e.value.message


def test_clicks_on_the_upscaled_canvas_map_to_photo_pixels(tmp_path):
    app = App(runs_dir=None, out_root=tmp_path)
    photo = np.zeros((48, 64, 3), np.uint8)
    s = animate.display_scale(photo)
    poke, canvas, x, y, dx, dy = app.click(photo, {"start": None, "end": None},
                                           SimpleNamespace(index=[10 * s + 1, 5 * s]))
    assert (x, y, dx, dy) == (10, 5, 0.0, 0.0) and canvas.shape == (48 * s, 64 * s, 3)
    poke, canvas, x, y, dx, dy = app.click(photo, poke, SimpleNamespace(index=[30 * s, 1 * s]))
    assert (x, y, dx, dy) == (10, 5, 20, -4)
    _, _, x, y, _, _ = app.click(photo, {"start": None, "end": None}, SimpleNamespace(index=[10_000, -5]))
    assert (x, y) == (63, 0)  # clamped into the photo


def test_photo_upload_hands_over_the_path_undecoded(tmp_path):
    junk = tmp_path / "x.png"
    junk.write_text("not an image")
    box = photo_upload(label="photo")
    assert box.get_block_name() == "image"
    from gradio.data_classes import ImageData

    assert box.preprocess(ImageData(path=str(junk))) == str(junk)
    assert box.preprocess(None) is None


def test_the_page_builds_with_a_queue_of_one(tmp_path):
    demo = build_app(runs_dir=None, out_root=tmp_path)
    assert demo.title == "vidiff"
    import vidiff.ui

    assert not list(Path(vidiff.ui.__file__).parent.glob("*.pyi"))  # Gradio wrote no stubs into the package
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"gen-run", "anim-run", "poke-canvas", "op-run"} <= ids
    heavy = [f for f in demo.fns.values() if f.name in ("generate", "animate", "poke", "poke_after_click", "video_op")]
    assert len(heavy) == 5
    assert {(f.concurrency_id, f.concurrency_limit) for f in heavy} == {("compute", 1)}  # one slot shared by all
    assert demo._queue.default_concurrency_limit == 1


def test_vidiff_ui_refuses_a_bad_port_in_one_line(capsys):
    from vidiff.cli import main

    assert main(["ui", "--port", "70000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --port must be between 1 and 65535; got 70000"
