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

The trainer (`vidiff train --data SHARDS`) reads shards through `ShardClips` instead: a map-style view
indexed once from the tar headers (byte offset of each clip), streamed by `training.data.EpochBatches` epoch
by epoch, shard by shard, in an order drawn from (seed, epoch). There a step's batch is a pure function of
(seed, step, rank, world size), so a run resumed at any step, inside an epoch too, continues with exactly
the batches of the uninterrupted run (bit-identical weights on CPU) — no cursor is stored.
"""
from __future__ import annotations

from io import BytesIO
import json
import re
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..utils import VidiffError
from .dataset import pick_caption, resize_short_side
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
    """mp4 bytes -> uint8 (F, H, W, 3): decoded in memory by PyAV when it is installed (the same pixels as
    ffmpeg's, without a subprocess and a temporary file per clip), else through a temporary file."""
    try:
        import av
    except ImportError:
        av = None
    if av is not None:
        try:
            with av.open(BytesIO(data)) as container:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        except (av.FFmpegError, ValueError, IndexError, OSError) as e:
            raise VidiffError(f"cannot decode the clip: {' '.join(str(e).split())[:160] or type(e).__name__}") from None
        if not frames:
            raise VidiffError("cannot decode the clip: no frames")
        return np.stack(frames)
    with tempfile.TemporaryDirectory(prefix="vidiff_shard_") as d:
        p = Path(d) / "clip.mp4"
        p.write_bytes(data)
        return read_video(p)


def crop_clip(v: np.ndarray, frames: int, size: int, stride: int, crop: str, rng: np.random.Generator) -> torch.Tensor:
    """uint8 (F, H, W, 3) -> the training clip (C, frames, size, size) in [-1, 1]: `frames` frames every `stride`-th
    (a clip too short repeats its last frame), shorter side resized to `size`, cropped; a random crop draws
    its start frame, then its top and left, from `rng`."""
    need = (frames - 1) * stride + 1
    if len(v) < need:  # a short clip: repeat its last frame (curation keeps clips >= --min-frames)
        v = np.concatenate([v, np.repeat(v[-1:], need - len(v), axis=0)])
    start = int(rng.integers(len(v) - need + 1)) if crop == "random" else 0
    v = resize_short_side(v[start:start + need:stride], size)
    f, h, w, _ = v.shape
    if crop == "random":
        y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    else:
        y, x = (h - size) // 2, (w - size) // 2
    v = v[:, y:y + size, x:x + size]
    return torch.from_numpy(np.ascontiguousarray(v)).permute(3, 0, 1, 2).float() / 127.5 - 1  # (C, F, H, W)


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
        rng = np.random.default_rng([self.seed, self.epoch, index])
        item["video"] = crop_clip(decode_mp4(data), self.frames, self.size, self.stride, self.crop, rng)
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


def is_shard_data(spec: str | Path) -> bool:
    """Whether `spec` names WebDataset shards: a brace range or a .tar file, or a folder holding NNNNNN.tar
    files and no videos (what `vidiff data curate` writes)."""
    spec = str(spec)
    if re.search(r"\{\d+\.\.\d+\}", spec) or spec.endswith(".tar"):
        return True
    return Path(spec).is_dir() and any(Path(spec).glob("[0-9]" * 6 + ".tar"))


def index_shard(path: Path) -> list[tuple[str, int, int, dict]]:
    """(key, byte offset of its mp4, mp4 size, metadata) of each clip of one shard, in stored order, reading
    only the tar headers and the small .json members; a truncated or damaged shard is one error naming it."""
    def bad(why: str) -> VidiffError:
        return VidiffError(f"shard {path} is {why}; re-run vidiff data curate --resume to rewrite it")

    try:
        total = path.stat().st_size
        videos: dict[str, tuple[int, int]] = {}
        metas: dict[str, dict] = {}
        with tarfile.open(path) as tar:
            for member in tar:
                if member.offset_data + member.size > total:
                    raise bad(f"truncated ({member.name} ends past the end of the file)")
                key, _, ext = member.name.partition(".")
                if ext == "mp4":
                    videos[key] = (member.offset_data, member.size)
                elif ext == "json":
                    metas[key] = json.loads(tar.extractfile(member).read())
            if tar.offset + 2 * tarfile.BLOCKSIZE > total:  # no end-of-archive blocks: cut at a member boundary
                raise bad("truncated (no end-of-archive marker)")
    except VidiffError:
        raise
    except (tarfile.TarError, OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"not a readable tar of clips ({str(e).strip() or type(e).__name__})") from None
    alone = sorted(videos.keys() ^ metas.keys())
    if alone:
        raise bad(f"damaged: clip {alone[0]} lacks its {'.json' if alone[0] in videos else '.mp4'}")
    return [(key, off, size, metas[key]) for key, (off, size) in videos.items()]


class ShardClips(torch.utils.data.Dataset):
    """Map-style view of WebDataset shards for the trainer: clip i is read from its shard by byte offset (the
    tar index is built once from headers) and decoded on demand, so DataLoader workers decode off the
    training thread. Items are shaped like `ShardDataset`'s with "index" = i. `epoch_order(seed, epoch)` is
    the shard-local order `training.data.EpochBatches` streams an epoch in: shards in an order drawn from
    (seed, epoch), clips shuffled within each shard. Start frame, crop and caption (captions="random": one
    of the record's "caption" and "captions") are a pure function of (seed, epoch, i)."""

    def __init__(self, shards: str | Path | list[Path], frames: int = 16, size: int = 32, stride: int = 1,
                 crop: str = "center", seed: int = 0, captions: str = "first"):
        if frames < 1 or size < 1 or stride < 1:
            raise VidiffError(f"frames, size and stride must be >= 1, got {frames}, {size}, {stride}")
        if crop not in ("center", "random"):
            raise VidiffError(f"unknown crop {crop!r}; use 'center' or 'random'")
        if captions not in ("first", "random"):
            raise VidiffError(f"unknown captions setting {captions!r}; use 'first' or 'random'")
        self.shards = list(shards) if isinstance(shards, list) else expand_shards(shards)
        self.frames, self.size, self.stride, self.crop = frames, size, stride, crop
        self.seed, self.epoch = seed, 0
        self.records: list[tuple[int, str, int, int, dict]] = []  # (shard, key, offset, size, metadata)
        self.by_shard: list[list[int]] = []
        for s, path in enumerate(self.shards):
            start = len(self.records)
            self.records += [(s, *clip) for clip in index_shard(path)]
            self.by_shard.append(list(range(start, len(self.records))))
        if not self.records:
            raise VidiffError(f"the {len(self.shards)} shard(s) starting with {self.shards[0]} hold no clips")
        self.caption_lists = []
        for *_, meta in self.records:
            extra = meta.get("captions") if captions == "random" else None
            self.caption_lists.append(([str(meta["caption"])] if meta.get("caption") else []) +
                                      [str(c) for c in extra or []])
        ids = [m["class_id"] for *_, m in self.records if isinstance(m.get("class_id"), int)]
        self.num_classes = max(ids) + 1 if ids else 0

    def all_captions(self) -> list[str]:
        """Every caption any clip can be shown with, sorted (to encode them once)."""
        return sorted({c for options in self.caption_lists for c in options})

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_order(self, seed: int, epoch: int) -> list[int]:
        """The clip indices of one epoch, each once: shards permuted, clips permuted within each shard."""
        order = []
        for s in np.random.default_rng([seed, epoch, 11]).permutation(len(self.shards)).tolist():
            clips = self.by_shard[s]
            order += [clips[j] for j in np.random.default_rng([seed, epoch, 12, s]).permutation(len(clips))]
        return order

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        s, key, offset, size, meta = self.records[i]
        path = self.shards[s]
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(size)
            if len(data) != size:
                raise VidiffError("truncated")
            video = decode_mp4(data)
        except (OSError, VidiffError) as e:
            raise VidiffError(f"cannot read clip {key} of shard {path} ({' '.join(str(e).split())[:160]}); "
                              "re-run vidiff data curate --resume to rewrite it") from None
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return {"video": crop_clip(video, self.frames, self.size, self.stride, self.crop, rng),
                "caption": pick_caption(self.caption_lists[i], self.seed, self.epoch, i),
                "class_id": int(meta.get("class_id", -1)), "index": i, "path": f"{path.name}/{key}"}
