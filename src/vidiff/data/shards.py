"""Streaming WebDataset shards (the output of `vidiff data curate`) through DataLoader workers.

A shard is a tar of `KEY.mp4` + `KEY.json` per clip. `ShardDataset` is an IterableDataset: in each epoch
the shards are put in an order drawn from (seed, epoch) and dealt to the slots `rank * num_workers +
worker_id` round-robin (each DataLoader worker of each rank reads its own shards, decoding off the
training thread); with fewer shards than slots, every slot reads all shards and keeps every
(world_size * num_workers)-th clip. Clips within a shard are shuffled, and each clip's start frame and
crop are drawn, from (seed, epoch, clip index). So an epoch is a pure function of (seed, epoch, ranks,
workers): every kept clip is yielded exactly once per epoch across all ranks and workers, in an order
that does not depend on timing (a DataLoader takes its workers' batches round-robin). "Exact resume"
with streaming therefore means: a run resumed at an epoch boundary, with the same seed, ranks and
workers, sees the same clips in the same batches as an uninterrupted one. A run resumed inside an
epoch restarts that epoch's stream: the clips of the epoch it had already consumed come again.
"""
from __future__ import annotations

import json
import re
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..utils import VidiffError
from .dataset import resize_short_side
from .io import read_video


def expand_shards(spec: str | Path) -> list[Path]:
    """Shard paths from 'DIR/{000000..000099}.tar' (brace ranges, zero-padding kept), a dataset folder
    (its NNNNNN.tar files) or one .tar file; missing files are an error naming the first one."""
    spec = str(spec)
    m = re.search(r"\{(\d+)\.\.(\d+)\}", spec)
    if m:
        a, b = m.group(1), m.group(2)
        width = len(a)
        paths = [Path(spec[:m.start()] + f"{i:0{width}d}" + spec[m.end():]) for i in range(int(a), int(b) + 1)]
    elif Path(spec).is_dir():
        paths = sorted(Path(spec).glob("[0-9]" * 6 + ".tar"))
        if not paths:
            raise VidiffError(f"no shards (NNNNNN.tar) in {spec}; give a folder written by vidiff data curate")
    else:
        paths = [Path(spec)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise VidiffError(f"shard not found: {missing[0]} ({len(missing)} of {len(paths)} missing)")
    return paths


def iter_shard(path: Path) -> Iterator[tuple[str, bytes, dict]]:
    """(key, mp4 bytes, metadata) for each clip of one shard, in stored order."""
    try:
        with tarfile.open(path) as tar:
            pending: dict[str, dict] = {}
            for member in tar:
                key, _, ext = member.name.partition(".")
                data = tar.extractfile(member).read()
                pending.setdefault(key, {})[ext] = data
                if {"mp4", "json"} <= pending[key].keys():
                    item = pending.pop(key)
                    yield key, item["mp4"], json.loads(item["json"])
    except (tarfile.TarError, OSError, json.JSONDecodeError) as e:
        raise VidiffError(f"cannot read shard {path}: {e}; re-run vidiff data curate --resume to rewrite it") from None


def decode_mp4(data: bytes) -> np.ndarray:
    """mp4 bytes -> uint8 (F, H, W, 3)."""
    with tempfile.TemporaryDirectory(prefix="vidiff_shard_") as d:
        p = Path(d) / "clip.mp4"
        p.write_bytes(data)
        return read_video(p)


class ShardDataset(torch.utils.data.IterableDataset):
    """Clips of `frames` frames (every `stride`-th) from WebDataset shards, shorter side resized to `size`
    and cropped to size x size; items are shaped like VideoDataset's: {"video": (C, F, H, W) in [-1, 1],
    "caption", "class_id", "index", "path" (shard/key)}. See the module doc for the order."""

    def __init__(self, shards: str | Path | list[Path], frames: int = 16, size: int = 32, stride: int = 1,
                 crop: str = "center", seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, decode: bool = True):
        if frames < 1 or size < 1 or stride < 1:
            raise VidiffError(f"frames, size and stride must be >= 1, got {frames}, {size}, {stride}")
        if crop not in ("center", "random"):
            raise VidiffError(f"unknown crop {crop!r}; use 'center' or 'random'")
        if not 0 <= rank < world_size:
            raise VidiffError(f"rank {rank} is not in [0, {world_size})")
        self.shards = list(shards) if isinstance(shards, list) else expand_shards(shards)
        self.frames, self.size, self.stride, self.crop = frames, size, stride, crop
        self.seed, self.rank, self.world_size, self.shuffle, self.decode = seed, rank, world_size, shuffle, decode
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch to stream next (its shard order, shuffles and crops)."""
        self.epoch = epoch

    def _slot(self) -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        workers, wid = (info.num_workers, info.id) if info is not None else (1, 0)
        return self.rank * workers + wid, self.world_size * workers

    def _order(self) -> list[int]:
        n = len(self.shards)
        if not self.shuffle:
            return list(range(n))
        return np.random.default_rng([self.seed, self.epoch, 11]).permutation(n).tolist()

    def _clips(self) -> Iterator[tuple[int, str, bytes, dict]]:
        slot, slots = self._slot()
        order = self._order()
        by_shard = len(order) >= slots
        mine = order[slot::slots] if by_shard else order
        counter = 0
        for s in mine:
            clips = list(iter_shard(self.shards[s]))
            if self.shuffle:
                perm = np.random.default_rng([self.seed, self.epoch, 12, s]).permutation(len(clips))
                clips = [clips[i] for i in perm]
            for key, data, meta in clips:
                take = by_shard or counter % slots == slot
                counter += 1
                if take:
                    yield s, key, data, meta

    def _item(self, s: int, key: str, data: bytes, meta: dict) -> dict:
        index = int(meta.get("index", 0))
        item = {"caption": meta.get("caption") or "", "class_id": int(meta.get("class_id", -1)), "index": index,
                "path": f"{self.shards[s].name}/{key}"}
        if not self.decode:
            return item
        v = decode_mp4(data)
        need = (self.frames - 1) * self.stride + 1
        if len(v) < need:  # a short clip: repeat its last frame (curation keeps clips >= --min-frames)
            v = np.concatenate([v, np.repeat(v[-1:], need - len(v), axis=0)])
        rng = np.random.default_rng([self.seed, self.epoch, index])
        start = int(rng.integers(len(v) - need + 1)) if self.crop == "random" else 0
        v = resize_short_side(v[start:start + need:self.stride], self.size)
        f, h, w, _ = v.shape
        if self.crop == "random":
            y, x = int(rng.integers(h - self.size + 1)), int(rng.integers(w - self.size + 1))
        else:
            y, x = (h - self.size) // 2, (w - self.size) // 2
        v = v[:, y:y + self.size, x:x + self.size]
        item["video"] = torch.from_numpy(np.ascontiguousarray(v)).permute(3, 0, 1,
                2).float() / 127.5 - 1  # (C, F, H, W)
        return item

    def __iter__(self) -> Iterator[dict]:
        for clip in self._clips():
            yield self._item(*clip)


def shard_loader(shards: str | Path, batch_size: int, num_workers: int = 2, **kwargs) -> torch.utils.data.DataLoader:
    """A DataLoader streaming `ShardDataset(shards, **kwargs)` with `num_workers` decoding processes; call
    `loader.dataset.set_epoch(e)` before each epoch."""
    ds = ShardDataset(shards, **kwargs)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=num_workers,
                                       persistent_workers=False, drop_last=False)
