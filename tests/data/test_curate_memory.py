"""Curation measures a source while it streams: the cuts and scores equal those of the whole video held in
memory, and the analysis frames alive at once do not grow with the video's length."""
import json
import weakref
from dataclasses import asdict

import cv2
import numpy as np
import pytest

from vidiff.data import curate as C
from vidiff.data import curate_scores as S
from vidiff.data import io

CFG = C.CurateConfig(min_frames=16, max_frames=32, min_scene_len=8, ocr=False)


def _shots(frames: int, shot: int = 50, size: int = 64) -> np.ndarray:
    """`frames` frames of 64x64 shots `shot` frames long, each a different texture panning at its own speed."""
    out = []
    for k in range(-(-frames // shot)):
        rng = np.random.default_rng(k)
        t = cv2.GaussianBlur((rng.random((size + 8, size + 160, 3)) * 255).astype(np.uint8), (0, 0), 2)
        step = 0.5 + (k % 3) * 0.75
        out += [t[4:4 + size, int(step * i):int(step * i) + size] for i in range(shot)]
    return np.stack(out[:frames])


def _analyse(path, out) -> dict:
    """The analysis of one source as `curate` runs it (process_source): its part's summary."""
    (out / "parts").mkdir(parents=True)
    C.process_source({"index": 0, "path": str(path), "rel": path.name, "out": str(out), "config": asdict(CFG)})
    return json.loads((out / "parts" / "000000.json").read_text())


def _whole_video_reference(path, cfg: C.CurateConfig, fps: float) -> tuple[list[int], list[dict]]:
    """Cuts and per-clip scores from every analysis frame of the source held at once (the path the streaming
    analysis replaces)."""
    frames = [S.analysis_frame(f) for f in io.read_video(path)]
    cuts = S.detect_cuts(np.stack(frames), cfg.detector, cfg.cut_threshold, cfg.min_scene_len, fps)
    w, h = io.read_video(path, max_frames=1).shape[2:0:-1]
    clips = []
    for start, n in C.clip_spans(len(frames), cuts, cfg.min_frames, cfg.max_frames):
        clip = frames[start:start + n]
        clips.append({"start": start, "frames": n, "hashes": S.clip_hashes(clip), "scores": {
            "motion": S.flow_motion(clip), "camera": S.camera_motion(clip), "sharpness": S.sharpness(clip),
            "brightness": S.brightness(clip), "aspect": w / h, "text": None}})
    return cuts, clips


def test_streamed_cuts_and_scores_equal_the_whole_video(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "_clip_bytes", lambda *a: (b"mp4", True))      # scores only: no clip extraction
    v = _shots(130)
    io.write_mp4(tmp_path / "shots.mp4", v, fps=8)
    io.write_npy(tmp_path / "shots.npy", v[:120])                          # a source read whole
    for src in ("shots.mp4", "shots.npy"):
        part = _analyse(tmp_path / src, tmp_path / src.replace(".", "_"))
        cuts, want = _whole_video_reference(tmp_path / src, CFG, part["fps"])
        assert part["cuts"] == cuts == [50, 100], src
        got = [{k: c[k] for k in ("start", "frames", "hashes", "scores")} for c in part["clips"]]
        assert got == want and len(got) >= 4, src                          # exactly equal, not approximately


def _max_alive_analysis_frames(tmp_path, monkeypatch, frames: int) -> tuple[int, int]:
    """Curate a `frames`-frame 64x64 video; the most analysis frames alive at once, and the clips made."""
    real, alive, peak = S.analysis_frame, [0], [0]

    def freed():
        alive[0] -= 1

    def tracked(frame, *a, **k):
        f = real(frame, *a, **k).copy()                                    # a new array, counted until freed
        alive[0] += 1
        weakref.finalize(f, freed)
        peak[0] = max(peak[0], alive[0])
        return f

    monkeypatch.setattr(S, "analysis_frame", tracked)
    io.write_mp4(tmp_path / f"{frames}.mp4", _shots(frames), fps=8)
    part = _analyse(tmp_path / f"{frames}.mp4", tmp_path / f"out{frames}")
    assert part["frames"] == frames
    return peak[0], len(part["clips"])


def test_analysis_memory_does_not_grow_with_the_video(tmp_path, monkeypatch):
    short, n_short = _max_alive_analysis_frames(tmp_path, monkeypatch, 60)
    long, n_long = _max_alive_analysis_frames(tmp_path, monkeypatch, 600)
    # one clip's frames that its scores read, and one frame being compared with an extracted clip's
    bound = max(len(S.needed_frames(n)) for n in range(CFG.min_frames, CFG.max_frames + 1)) + 1
    assert n_long >= 10 * n_short >= 10                                   # ten times the clips ...
    assert short <= bound and long <= bound <= 2 * S.PAIRS + 4            # ... the same few frames at once


def test_a_clip_holds_only_the_frames_its_scores_read():
    n = 32
    need = S.needed_frames(n)
    assert len(need) <= 2 * S.PAIRS + 3 and {0, n // 2, n - 1} <= set(need)
    full = list(_shots(n))
    clip = S.ClipFrames(n, {i: full[i] for i in need})
    assert S.clip_hashes(clip) == S.clip_hashes(full) and S.flow_motion(clip) == S.flow_motion(full)
    assert S.sharpness(clip) == S.sharpness(full) and S.brightness(clip) == S.brightness(full)
    with pytest.raises(IndexError, match="not held"):
        clip[next(i for i in range(n) if i not in need)]
    assert S.needed_frames(2) == [0, 1] and S.needed_frames(1) == [0]


def test_a_source_whose_clip_buffers_cannot_fit_is_refused_in_one_line(tmp_path, monkeypatch):
    io.write_mp4(tmp_path / "shots.mp4", _shots(20), fps=8)
    monkeypatch.setenv("VIDIFF_MAX_MEMORY", "100K")                      # 33 frames of 64x64x3 need ~400 KB
    part = _analyse(tmp_path / "shots.mp4", tmp_path / "out")
    assert part["status"] == "unreadable" and not part["clips"]
    assert "shots.mp4 (64x64) in clips of up to 32 frames needs about" in part["error"]
    assert part["error"].endswith("lower --max-frames") and "\n" not in part["error"]
    with pytest.raises(C.VidiffError, match="--workers must be at least 1"):
        C.curate(tmp_path, tmp_path / "ds", CFG, workers=0, engine="process", progress=False)
