"""Curation: cuts at known splice points, flow motion of a known translation, the filters, dedupe,
shards + manifest, re-filtering without decoding, resume, bad input."""
import json
import os
import sys
import tarfile
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidiff.data import curate as C
from vidiff.data import curate_scores as S
from vidiff.data import io, synth
from vidiff.utils import VidiffError

FOOTAGE = Path(__file__).resolve().parents[2] / "data" / "footage" / "tree.avi"


def _texture(seed: int, size: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur((rng.random((size, size, 3)) * 255).astype(np.uint8), (0, 0), 2)
    return cv2.normalize(t, None, 0, 255, cv2.NORM_MINMAX)


def _panning(seed: int, frames: int, step: float, size: int = 64) -> np.ndarray:
    """A textured view translating `step` pixels per frame to the right: flow magnitude = step."""
    t = _texture(seed)
    return np.stack([t[20:20 + size, int(20 + step * i):int(20 + step * i) + size] for i in range(frames)])


def test_cuts_at_splice_points():
    a, _ = synth.render_shapes(1, 24, 64, seed=0)
    b = _panning(1, 24, 1.0)
    c = np.maximum(synth.render_shapes(1, 24, 64, seed=2)[0][0], 110).astype(np.uint8)
    v = np.concatenate([a[0], b, c])
    for method in ("content", "adaptive"):
        assert S.detect_cuts(v, method, min_scene_len=8) == [24, 48], method
    for method in ("content", "adaptive"):
        assert S.detect_cuts(b, method, min_scene_len=8) == [], method    # a pan is not a cut
    assert C.CurateConfig().detector == "content"                        # the more accurate one is the default
    assert C.clip_spans(72, [24, 48], 16, 64) == [(0, 24), (24, 24), (48, 24)]
    assert C.clip_spans(100, [10], 16, 40) == [(10, 40), (50, 40)]       # shot 0..10 too short, tail of 10 dropped


def test_cuts_without_scenedetect(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "scenedetect", None)               # import fails: histogram fallback
    monkeypatch.setattr(S, "_notified", set())
    v = np.concatenate([_panning(0, 20, 1.0), _panning(1, 20, 1.0) // 3 + 150])
    assert S.detect_cuts(v, min_scene_len=8) == [20]
    assert S.detect_cuts(v, min_scene_len=8) == [20]
    assert capsys.readouterr().err.count("PySceneDetect is not installed") == 1


def test_flow_motion_oracle():
    assert S.flow_motion(_panning(0, 10, 2.0)) == pytest.approx(2.0, abs=0.1)
    assert S.flow_motion(_panning(0, 10, 5.0)) == pytest.approx(5.0, abs=0.25)
    assert S.flow_motion(_panning(0, 10, 0.0)) == pytest.approx(0.0, abs=1e-3)


def test_sharpness_brightness_and_hashes():
    v = _panning(0, 8, 1.0)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 3) for f in v])
    assert S.sharpness(blurred) < 0.2 * S.sharpness(v)
    assert S.brightness(v // 8) < 0.1 < S.brightness(v)
    noisy = np.clip(v.astype(int) + np.random.default_rng(0).integers(-6, 7, v.shape), 0, 255).astype(np.uint8)
    h = [S.clip_hashes(v), S.clip_hashes(_panning(5, 8, 1.0)), S.clip_hashes(noisy), S.clip_hashes(v[::-1])]
    assert S.hash_distance(h[0], h[2]) <= 4 and S.hash_distance(h[0], h[1]) > 12
    assert S.near_duplicates(h, 6.0) == [2]                               # the noisy copy only


def _need_tesseract():
    """Skip without tesseract, naming the fix; under CI=true (.ci/run installs it) fail instead."""
    if S.ocr_available():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but tesseract is not installed: apt-get install tesseract-ocr (.ci/run does) and "
                    "pip install pytesseract (the [data] extra)")
    pytest.skip("tesseract is not installed (apt-get install tesseract-ocr; pip install pytesseract); .ci/run "
                "installs it, and with CI=true the OCR tests fail without it")


def test_text_area_finds_an_overlay():
    _need_tesseract()
    frame = np.full((192, 256, 3), 40, np.uint8)
    assert S.text_area(frame) == 0.0
    cv2.putText(frame, "BREAKING NEWS", (10, 110), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    assert S.text_area(frame) > 0.02


def test_curation_drops_a_clip_with_a_text_overlay(tmp_path):
    _need_tesseract()
    raw = tmp_path / "raw"
    news = np.full((8, 192, 256, 3), 40, np.uint8)  # flat frames: tesseract's page segmentation reads them reliably
    plain = news.copy()
    for f, g in zip(news, plain):
        cv2.putText(f, "BREAKING NEWS", (10, 110), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        cv2.rectangle(g, (10, 86), (236, 112), (255, 255, 255), -1)  # as bright and as large, no text
    io.write_mp4(raw / "news.mp4", news, fps=8)
    io.write_mp4(raw / "plain.mp4", plain, fps=8)
    cfg = C.CurateConfig(min_frames=8, max_frames=8, min_scene_len=8, ocr=True)
    only_text = C.Filters(min_motion=None, max_motion=None, min_sharpness=None, dedupe_distance=None)
    C.curate(raw, tmp_path / "ds", cfg, only_text, engine="process", progress=False)
    clips = {c["source"]: c for c in json.loads((tmp_path / "ds" / C.MANIFEST).read_text())["clips"]}
    assert clips["news.mp4"]["dropped_by"] == ["text"] and clips["news.mp4"]["scores"]["text"] > 0.03
    assert clips["plain.mp4"]["keep"] and clips["plain.mp4"]["scores"]["text"] < 0.03


def _raw(tmp_path):
    raw = tmp_path / "raw"
    io.write_mp4(raw / "moving.mp4", _panning(0, 24, 1.5), fps=8)
    io.write_mp4(raw / "still.mp4", _panning(1, 24, 0.0), fps=8)
    io.write_mp4(raw / "fast.mp4", _panning(2, 24, 6.0)[:, :, ::-1], fps=8)     # 6 px/frame leftwards
    (raw / "copy.mp4").write_bytes((raw / "moving.mp4").read_bytes())
    io.write_npy(raw / "two_shots.npy", np.concatenate([_panning(3, 20, 1.0), _panning(4, 20, 1.0)[:, ::-1]]))
    (raw / "broken.mp4").write_bytes(b"not a video")
    return raw


CFG = C.CurateConfig(min_frames=16, max_frames=64, min_scene_len=8, ocr=False)
# motion bounds for 64 px frames (the analysis size leaves them as they are)
FILTERS = C.Filters(min_motion=0.05, max_motion=3.0)


def _curate(raw, out, **kw):
    return C.curate(raw, out, CFG, FILTERS, engine="process", shard_size=2, progress=False, **kw)


def test_curate_filters_shards_and_refilter(tmp_path, monkeypatch):
    raw, out = _raw(tmp_path), tmp_path / "ds"
    counts = _curate(raw, out)
    m = json.loads((out / C.MANIFEST).read_text())
    by_source = {}
    for c in m["clips"]:
        by_source.setdefault(c["source"], []).append(c)
    assert by_source["still.mp4"][0]["dropped_by"] == ["static"]
    assert by_source["fast.mp4"][0]["dropped_by"] == ["too_fast"]
    # sources are taken in name order: copy.mp4 comes first and is kept, moving.mp4 is its duplicate
    assert by_source["moving.mp4"][0]["dropped_by"] == ["duplicate"] and by_source["copy.mp4"][0]["keep"]
    assert [(c["start"], c["frames"]) for c in by_source["two_shots.npy"]] == [(0, 20), (20, 20)]
    assert by_source["copy.mp4"][0]["reencoded"] is False               # starts on a keyframe: stream copy
    assert counts["static"] == counts["too_fast"] == counts["duplicate"] == 1
    assert counts["unreadable"] == 1 and counts["kept"] == 3 and counts["shards"] == 2
    # WebDataset shards: KEY.mp4 + KEY.json, the kept clips in order; the copied clip decodes to its frames
    with tarfile.open(out / "000000.tar") as t:
        names = t.getnames()
        recs = [json.loads(t.extractfile(n).read()) for n in names[1::2]]
        (tmp_path / "clip.mp4").write_bytes(t.extractfile(names[0]).read())
    kept = [c for c in m["clips"] if c["keep"]]
    assert names == [f"{c['key']}.{e}" for c in kept[:2] for e in ("mp4", "json")]
    assert [r["index"] for r in recs] == [0, 1] and recs[0]["scores"] == kept[0]["scores"]
    assert io.read_video(tmp_path / "clip.mp4").shape == (24, 64, 64, 3)
    for f in ("histograms.png", "contact_sheet.png", "report.json"):
        assert (out / "report" / f).stat().st_size > 0
    # re-filtering reads scores only: nothing is decoded again
    monkeypatch.setattr(C, "process_source", lambda job: pytest.fail("re-filtering decoded a video"))
    monkeypatch.setattr(io, "read_video", lambda *a, **k: pytest.fail("re-filtering decoded a video"))
    counts = C.refilter(out, min_motion=-1.0, max_motion=100.0)
    assert counts["static"] == counts["too_fast"] == 0 and counts["kept"] == 5 and counts["shards"] == 3
    assert json.loads((out / C.MANIFEST).read_text())["filters"]["min_motion"] == -1.0
    assert not (out / "000003.tar").exists()


def test_resume_skips_finished_parts_and_matches(tmp_path, monkeypatch):
    raw = _raw(tmp_path)
    _curate(raw, tmp_path / "full")
    whole = json.loads((tmp_path / "full" / C.MANIFEST).read_text())
    with pytest.raises(VidiffError, match="--resume"):
        _curate(raw, tmp_path / "full")
    # an interrupted run: parts 0 and 1 finished, the rest never started
    out = tmp_path / "cut"
    real = C.process_source

    def dies_after_two(job):
        if job["index"] >= 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(C, "process_source", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        _curate(raw, out)
    done = {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()}
    assert sorted(done) == ["000000.json", "000001.json", "000001.tar"]     # 0 is broken.mp4: no clips
    seen = []
    monkeypatch.setattr(C, "process_source", lambda job: seen.append(job["index"]) or real(job))
    _curate(raw, out, resume=True)
    assert seen == [2, 3, 4, 5]
    assert all((out / "parts" / n).stat().st_mtime_ns == t for n, t in done.items())
    resumed = json.loads((out / C.MANIFEST).read_text())
    for k in ("clips", "counts", "filters", "config"):
        assert resumed[k] == whole[k], k
    with pytest.raises(VidiffError, match="other settings"):
        C.curate(raw, out, C.CurateConfig(min_frames=8), FILTERS, engine="process", resume=True, progress=False)


def _gapped_mp4(path, times, size=64):
    """An H.264 MP4 (8 frames/s time base) whose random frames are stamped at `times` (in 1/8 s)."""
    av = pytest.importorskip("av")
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=8)
        s.width = s.height = size
        s.pix_fmt, s.time_base = "yuv420p", Fraction(1, 8)
        for t in times:
            f = av.VideoFrame.from_ndarray((rng.random((size, size, 3)) * 255).astype(np.uint8), format="rgb24")
            f.pts, f.time_base = t, s.time_base
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


def test_curation_reads_every_frame_as_read_video(tmp_path, monkeypatch, capsys):
    cfg = C.CurateConfig(min_frames=8, min_scene_len=8, ocr=False)
    # three shots of 20 frames in an MP4 written by vidiff: every frame, cuts at the splice points
    shots = [_panning(5, 20, 1.0), _panning(6, 20, 1.0)[:, ::-1] // 2 + 100, _panning(7, 20, 0.5)[:, :, ::-1]]
    io.write_mp4(tmp_path / "raw" / "three.mp4", np.concatenate(shots), fps=8)
    a = C._scan(tmp_path / "raw" / "three.mp4", cfg)
    assert a["frames"] == len(io.read_video(tmp_path / "raw" / "three.mp4")) == 60
    assert a["cuts"] == [20, 40] and a["fps"] == pytest.approx(8.0)
    C.curate(tmp_path / "raw", tmp_path / "ds", cfg, C.Filters(min_motion=None, max_motion=None, dedupe_distance=None),
             engine="process", progress=False)
    m = json.loads((tmp_path / "ds" / C.MANIFEST).read_text())
    assert m["sources"][0]["frames"] == 60 and m["sources"][0]["cuts"] == [20, 40]
    assert [(c["start"], c["frames"]) for c in m["clips"]] == [(0, 20), (20, 20), (40, 20)]
    # time stamps with a gap (frames at 0..9 and 20..29 eighths of a second): decoded as read_video decodes
    # it, at a constant rate with the held frame repeated, and said once (OpenCV reads the 20 coded frames)
    monkeypatch.setattr(C, "notice", lambda msg: print(msg, file=sys.stderr))
    gapped = _gapped_mp4(tmp_path / "gapped.mp4", [*range(10), *range(20, 30)])
    a = C._scan(gapped, cfg)
    assert a["frames"] == len(io.read_video(gapped)) >= 30 and a["fps"] == pytest.approx(8.0)
    err = capsys.readouterr().err
    assert err.count("holds 20 coded frames;") == 1 and "repeating" in err
    spans = C.clip_spans(a["frames"], [], 8, 16)
    clips = C._decode_spans(gapped, spans, a["fps"])                    # the in-order fallback agrees
    assert all(io.read_video(_bytes_file(tmp_path, clips[st])).shape[0] == n for st, n in spans)


def _bytes_file(tmp_path, data):
    (tmp_path / "span.mp4").write_bytes(data)
    return tmp_path / "span.mp4"


@pytest.mark.skipif(not FOOTAGE.is_file(), reason="data/footage/tree.avi absent (bash scripts/get_footage.sh)")
def test_curation_reads_every_frame_of_tree_avi():
    # 68 coded frames over 444 frame slots at 15 frames/s: curation sees read_video's frames, not the 68
    a = C._scan(FOOTAGE, C.CurateConfig(ocr=False))
    assert a["frames"] == len(io.read_video(FOOTAGE)) > 400


def test_bad_inputs(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.mp4").write_bytes(b"x")
    with pytest.raises(VidiffError, match="none of the 1 video"):
        _curate(tmp_path / "junk", tmp_path / "o1")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(VidiffError, match="not empty"):
        _curate(tmp_path / "junk", tmp_path / "busy")
    with pytest.raises(VidiffError, match="holds no manifest"):
        C.refilter(tmp_path / "busy")
