"""Video IO round trips, atomic writes, and clear errors on bad input."""
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from vidiff.data import io
from vidiff.utils import VidiffError


def _video(f=6, h=16, w=20):
    rng = np.random.default_rng(0)
    # smooth content so lossy codecs reproduce it closely
    y, x = np.mgrid[0:h, 0:w]
    frames = [np.stack([(x * 10 + 20 * i) % 256, (y * 12) % 256, np.full_like(x, 128)], -1) for i in range(f)]
    return np.asarray(frames, np.uint8) + rng.integers(0, 2, (f, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext", [".npy", ".gif"])
def test_lossless_round_trip(tmp_path, ext):
    v = _video()
    io.write_video(tmp_path / f"a{ext}", v)
    r = io.read_video(tmp_path / f"a{ext}")
    if ext == ".npy":
        np.testing.assert_array_equal(r, v)
    else:  # GIF palette quantization: close, same shape
        assert r.shape == v.shape and np.abs(r.astype(int) - v).mean() < 12


def test_mp4_is_h264_and_round_trips(tmp_path):
    v = _video(f=8, h=16, w=20)
    io.write_mp4(tmp_path / "a.mp4", v, fps=10)
    r = io.read_video(tmp_path / "a.mp4")
    assert r.shape == v.shape
    assert np.abs(r.astype(int) - v).mean() < 10
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(tmp_path / "a.mp4")],
                           capture_output=True, text=True).stderr
    assert "h264" in probe and "yuv420p" in probe
    assert io.video_fps(tmp_path / "a.mp4") == pytest.approx(10)


def test_odd_size_mp4_padded(tmp_path):
    v = _video(f=3, h=15, w=17)
    io.write_mp4(tmp_path / "odd.mp4", v)
    assert io.read_video(tmp_path / "odd.mp4").shape == (3, 16, 18, 3)


def test_frames_folder_and_listing(tmp_path):
    v = _video(f=4)
    d = tmp_path / "clips" / "clip0"
    d.mkdir(parents=True)
    for i, fr in enumerate(v):
        io.write_png(d / f"{i:03d}.png", fr)
    io.write_video(tmp_path / "clips" / "b.npy", v)
    found = io.list_videos(tmp_path / "clips")
    assert [p.name for p in found] == ["b.npy", "clip0"]
    np.testing.assert_array_equal(io.read_video(d), v)


def test_corrupt_and_missing_give_one_line_errors(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(VidiffError, match="cannot read video"):
        io.read_video(bad)
    with pytest.raises(VidiffError, match="not found"):
        io.read_video(tmp_path / "nope.mp4")
    with pytest.raises(VidiffError, match="unknown extension"):
        io.write_video(tmp_path / "x.avi", _video())


def test_tensor_uint8_round_trip():
    v = _video()
    t = io.from_uint8(v)
    assert t.shape == (3, 6, 16, 20) and t.min() >= -1 and t.max() <= 1
    np.testing.assert_array_equal(io.to_uint8(t), v)
    np.testing.assert_array_equal(io.to_uint8(t[None]), v[None])


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.gif"
    with pytest.raises(VidiffError):
        io.write_gif(target, np.zeros((2, 4, 4), np.uint8))  # wrong shape, fails before writing
    assert not target.exists() and list(tmp_path.iterdir()) == []
    from vidiff.utils import atomic_path
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
