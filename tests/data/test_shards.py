"""Shard streaming: brace expansion, every clip exactly once per epoch across ranks and DataLoader
workers, the same stream for the same (seed, epoch), another order for another epoch."""
import json
import tarfile
from collections import Counter

import numpy as np
import pytest
import torch

from vidiff.data import curate as C
from vidiff.data import io, shards
from vidiff.utils import VidiffError


def _write_shards(root, counts):
    """Shards of tiny clips; clip i is a constant video of value 2 * i (so content identifies it)."""
    i = 0
    for s, n in enumerate(counts):
        with tarfile.open(root / f"{s:06d}.tar", "w") as tar:
            for _ in range(n):
                p = io.write_mp4(root / "tmp.mp4", np.full((4, 16, 16, 3), 2 * i, np.uint8), fps=4)
                C._add(tar, f"k{i:04d}.mp4", p.read_bytes())
                C._add(tar, f"k{i:04d}.json", json.dumps({"index": i, "caption": f"clip {i}"}).encode())
                i += 1
    (root / "tmp.mp4").unlink()
    return i


def _epoch(root, epoch, world, workers, decode=False, seed=0):
    out = []
    for rank in range(world):
        ds = shards.ShardDataset(f"{root}/{{000000..000004}}.tar", frames=4, size=16, seed=seed, rank=rank,
                                 world_size=world, decode=decode)
        ds.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers)
        out.append([i for b in loader for i in b["index"].tolist()])
    return out


def test_every_clip_once_per_epoch_across_ranks_and_workers(tmp_path):
    n = _write_shards(tmp_path, [3, 2, 4, 1, 2])
    assert [p.name for p in shards.expand_shards(tmp_path)] == [f"{s:06d}.tar" for s in range(5)]
    for world, workers in ((2, 2), (2, 0), (1, 2), (3, 2)):         # 4 slots: by shard; 6 (> 5 shards): by clip
        per_rank = _epoch(tmp_path, 0, world, workers)
        seen = Counter(i for r in per_rank for i in r)
        assert sorted(seen) == list(range(n)) and set(seen.values()) == {1}, (world, workers)
    a, b = _epoch(tmp_path, 0, 2, 2), _epoch(tmp_path, 1, 2, 2)
    assert a == _epoch(tmp_path, 0, 2, 2) and a != b                 # a pure function of (seed, epoch)


def test_decoded_items_match_their_clip(tmp_path):
    _write_shards(tmp_path, [2, 1, 1, 1, 1])
    ds = shards.ShardDataset(tmp_path / "000000.tar", frames=3, size=8, stride=1)
    items = list(ds)
    assert len(items) == 2
    for it in items:
        assert it["video"].shape == (3, 3, 8, 8)                     # (C, F, H, W)
        want = 2 * it["index"] / 127.5 - 1
        assert it["video"].mean().item() == pytest.approx(want, abs=0.05)
        assert it["caption"] == f"clip {it['index']}"
    with pytest.raises(VidiffError, match="shard not found"):
        shards.expand_shards(f"{tmp_path}/{{000000..000009}}.tar")
