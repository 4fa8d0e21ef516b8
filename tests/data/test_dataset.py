"""VideoDataset: strided clip sampling, resize and crop, metadata, caching, and clear errors on bad folders."""
import json
import warnings

import numpy as np
import pytest
import torch

from vidiff.data import io, synth
from vidiff.data.dataset import VideoDataset, resize_short_side
from vidiff.utils import VidiffError


def _indexed(f, h, w, offset=0):
    """Frame t is uniform with value 3 t + offset in R; G holds the column index, B the row index."""
    v = np.zeros((f, h, w, 3), np.uint8)
    v[..., 0] = (3 * np.arange(f) + offset)[:, None, None]
    v[..., 1] = np.arange(w)[None, None, :]
    v[..., 2] = np.arange(h)[None, :, None]
    return v


def _frame_ids(x, offset=0):
    r = (x[0].mean(dim=(1, 2)) + 1) * 127.5                   # (F,) mean R per frame
    return ((r - offset) / 3).round().long().tolist()


def test_stride_start_and_determinism(tmp_path):
    for k in range(3):
        io.write_npy(tmp_path / f"v{k}.npy", _indexed(30, 16, 16, offset=k))
    ds = VideoDataset(tmp_path, frames=5, size=16, stride=3, progress=False, seed=1)
    assert len(ds) == 3 and ds.need == 13
    starts = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(3):
            item = ds[i]
            assert item["video"].shape == (3, 5, 16, 16) and item["video"].dtype == torch.float32
            ids = _frame_ids(item["video"], offset=i)
            assert np.all(np.diff(ids) == 3) and 0 <= ids[0] and ids[-1] <= 29
            starts.add(ids[0])
            assert item["caption"] == "" and item["class_id"] == -1 and item["path"] == f"v{i}.npy"
    assert len(starts) > 5  # random starts cover the range
    ds.set_epoch(2)
    again = VideoDataset(tmp_path, frames=5, size=16, stride=3, progress=False, seed=1)
    again.set_epoch(2)
    assert torch.equal(ds[1]["video"], again[1]["video"])
    assert not all(torch.equal(ds[i]["video"], VideoDataset(tmp_path, frames=5, size=16, stride=3,
                                                               progress=False, seed=2)[i]["video"]) for i in range(3))


def test_resize_short_side_and_center_crop(tmp_path):
    v = _indexed(8, 24, 48)
    io.write_npy(tmp_path / "wide.npy", v)
    ds = VideoDataset(tmp_path, frames=4, size=12, progress=False)
    x = ds[0]["video"]                                         # (C, F, H, W)
    assert x.shape == (3, 4, 12, 12) and x.min() >= -1 and x.max() <= 1
    u = (x + 1) * 127.5
    # 2x area downscale of 24x48 -> 12x24, then the central 12 columns (6..17 of 24 -> source 12..35)
    np.testing.assert_allclose(u[1, 0, 0].numpy(), np.arange(12, 36, 2) + 0.5, atol=0.6)
    np.testing.assert_allclose(u[2, 0, :, 0].numpy(), np.arange(0, 24, 2) + 0.5, atol=0.6)
    up = resize_short_side(v[:, :6, :12], 12)                # bilinear upsampling keeps a uniform frame
    assert up.shape == (8, 12, 24, 3) and np.all(up[..., 0] == v[:, :1, :1, 0])


def test_random_crop_in_bounds_and_varies(tmp_path):
    io.write_npy(tmp_path / "a.npy", _indexed(6, 16, 40))
    ds = VideoDataset(tmp_path, frames=2, size=16, crop="random", progress=False)
    lefts = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        g = ((ds[0]["video"][1, 0, 0] + 1) * 127.5).round().numpy()  # column indices of the crop
        assert np.all(np.diff(g) == 1) and g[0] >= 0 and g[-1] <= 39
        lefts.add(int(g[0]))
    assert len(lefts) > 3


def test_metadata_cache_and_mp4_sources(tmp_path):
    synth.generate_shapes(tmp_path, 4, frames=8, size=32, seed=0, progress=False)
    cached = VideoDataset(tmp_path, frames=4, size=32, stride=2, progress=False)
    lazy = VideoDataset(tmp_path, frames=4, size=32, stride=2, cache=False, progress=False)
    assert cached.cached is not None and lazy.cached is None and cached.num_classes == 12
    meta = synth.read_metadata(tmp_path)
    for i in range(4):
        a, b = cached[i], lazy[i]
        assert torch.equal(a["video"], b["video"])
        assert a["caption"] == meta[a["path"]]["caption"] and a["class_id"] == meta[a["path"]]["class_id"]
    batch = next(iter(torch.utils.data.DataLoader(cached, batch_size=4)))
    assert batch["video"].shape == (4, 3, 4, 32, 32) and batch["class_id"].shape == (4,)
    # a tiny memory budget falls back to decoding per item
    assert VideoDataset(tmp_path, frames=4, size=32, cache_max_mb=1e-3, progress=False).cached is None


def test_mixed_sources_gif_and_frame_folders(tmp_path):
    v = _indexed(6, 16, 16)
    io.write_gif(tmp_path / "a.gif", v)
    d = tmp_path / "frames"
    d.mkdir()
    for t, fr in enumerate(v):
        io.write_png(d / f"{t:03d}.png", fr)
    ds = VideoDataset(tmp_path, frames=6, size=16, progress=False)
    assert sorted(ds.rel_paths) == ["a.gif", "frames"]
    x = ds[ds.rel_paths.index("frames")]["video"]
    np.testing.assert_array_equal(io.to_uint8(x), v)


def test_corrupt_files_skipped_with_count(tmp_path, capsys):
    io.write_npy(tmp_path / "good.npy", _indexed(8, 16, 16))
    (tmp_path / "bad.mp4").write_bytes(b"\x00garbage" * 50)
    (tmp_path / "bad2.avi").write_bytes(b"")
    for cache in (True, False):
        ds = VideoDataset(tmp_path, frames=4, size=16, cache=cache, progress=False)
        assert "note: skipped 2 unreadable" in capsys.readouterr().err  # a plain line, not a UserWarning
        assert len(ds) == 1 and len(ds.unreadable) == 2 and ds.num_skipped == 2
    (tmp_path / "good.npy").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(VidiffError, match="none of the 2 video"):
            VideoDataset(tmp_path, frames=4, size=16, progress=False)


def test_empty_folder_and_too_short_videos(tmp_path, capsys):
    with pytest.raises(VidiffError, match=r"no videos found in .*\.mp4"):
        VideoDataset(tmp_path, frames=4, size=16)
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(VidiffError, match="no videos found"):
        VideoDataset(tmp_path, frames=4, size=16)
    io.write_npy(tmp_path / "a.npy", _indexed(5, 16, 16))
    io.write_npy(tmp_path / "b.npy", _indexed(7, 16, 16))
    with pytest.raises(VidiffError, match="needs 10 frames but the longest has 7"):
        VideoDataset(tmp_path, frames=4, size=16, stride=3, progress=False)
    ds = VideoDataset(tmp_path, frames=4, size=16, stride=2, progress=False)
    assert "note: skipped 1 video" in capsys.readouterr().err
    assert ds.rel_paths == ["b.npy"] and len(ds.too_short) == 1
    with pytest.raises(VidiffError, match="stride"):
        VideoDataset(tmp_path, frames=4, size=16, stride=0)
    with pytest.raises(VidiffError, match="not found"):
        VideoDataset(tmp_path / "missing", frames=4, size=16)


def test_metadata_in_subfolders(tmp_path):
    sub = tmp_path / "part1"
    sub.mkdir()
    io.write_npy(sub / "x.npy", _indexed(4, 16, 16))
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file": "part1/x.npy", "caption": "hi", "class_id": 3}) + "\n")
    ds = VideoDataset(tmp_path, frames=4, size=16, progress=False)
    assert ds[0]["caption"] == "hi" and ds[0]["class_id"] == 3 and ds.num_classes == 4


def test_random_captions_draw_every_alternative_per_epoch(tmp_path):
    io.write_npy(tmp_path / "x.npy", _indexed(4, 16, 16))
    rec = {"file": "x.npy", "caption": "a red circle moving left", "captions": ["a ruby orb rolling left", "b", "c"]}
    (tmp_path / "metadata.jsonl").write_text(json.dumps(rec) + "\n")
    first = VideoDataset(tmp_path, frames=4, size=16, progress=False)
    rand = VideoDataset(tmp_path, frames=4, size=16, progress=False, captions="random")
    assert first.all_captions() == [rec["caption"]]
    assert rand.all_captions() == sorted([rec["caption"], *rec["captions"]])
    seen = []
    for epoch in range(40):
        first.set_epoch(epoch)
        rand.set_epoch(epoch)
        assert first[0]["caption"] == rec["caption"]
        a, b = rand[0], rand[0]
        assert a["caption"] == b["caption"]                     # a pure function of (seed, epoch, index)
        assert torch.equal(a["video"], first[0]["video"])       # the clip does not depend on the captions
        seen.append(a["caption"])
    assert set(seen) == {rec["caption"], *rec["captions"]}
    assert max(seen.count(c) for c in set(seen)) < 20           # roughly uniform over the 4 options
    with pytest.raises(VidiffError, match="unknown captions setting"):
        VideoDataset(tmp_path, frames=4, size=16, progress=False, captions="all")
    (tmp_path / "metadata.jsonl").write_text(json.dumps({**rec, "captions": "not a list"}) + "\n")
    VideoDataset(tmp_path, frames=4, size=16, progress=False)  # ignored unless captions="random"
    with pytest.raises(VidiffError, match="must be a list of non-empty strings"):
        VideoDataset(tmp_path, frames=4, size=16, progress=False, captions="random")
