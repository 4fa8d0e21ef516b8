"""A torch Dataset over any folder of videos: strided clips, resized and cropped, as (C, F, H, W) in [-1, 1].

Sources are whatever `vidiff.data.io.list_videos` finds (mp4/avi/webm/mov/mkv/gif/npy files and
folders of frames). Captions and class ids come from `metadata.jsonl` in the folder when present.
Small datasets are decoded once, resized, and kept in memory as uint8.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..utils import VidiffError, notice
from .io import READABLE, _frames_dir, list_videos, read_video
from .synth import read_metadata


def resize_short_side(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (F, H, W, 3) with the shorter side resized to `size` (area filter down, bilinear up)."""
    import cv2

    f, h, w, _ = frames.shape
    if min(h, w) == size:
        return frames
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return np.stack([cv2.resize(fr, (nw, nh), interpolation=interp) for fr in frames])


def pick_caption(options: list[str], seed: int, epoch: int, index: int) -> str:
    """One of a clip's captions, a pure function of (seed, epoch, index); "" when it has none."""
    if len(options) > 1:  # a stream of its own, so clip starts and crops stay as with captions="first"
        return options[int(np.random.default_rng([seed, epoch, index, 3]).integers(len(options)))]
    return options[0] if options else ""


def num_frames(path: Path) -> int:
    """Frame count of a video source without decoding it fully; VidiffError if unreadable."""
    try:
        if path.is_dir():
            return len(_frames_dir(path))
        suffix = path.suffix.lower()
        if suffix == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            shape = arr.shape[1:] if arr.ndim == 5 and arr.shape[0] == 1 else arr.shape
            if len(shape) != 4 or shape[-1] != 3:
                raise VidiffError(f"{path}: expected an array (F, H, W, 3), got {arr.shape}")
            return int(shape[0])
        if suffix == ".gif":
            from PIL import Image

            with Image.open(path) as im:
                return int(getattr(im, "n_frames", 1))
        import imageio_ffmpeg

        n, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
        if n <= 0:
            raise VidiffError(f"{path}: no frames")
        return int(n)
    except VidiffError:
        raise
    except Exception as e:  # noqa: BLE001 - decoders raise many types
        raise VidiffError(f"cannot read video {path}: "
                          f"{(str(e).strip() or type(e).__name__).splitlines()[0][:200]}") from None


class VideoDataset(torch.utils.data.Dataset):
    """Clips of `frames` frames taken every `stride` frames from a random start, shorter side resized to
    `size`, center- or random-cropped to size x size; item = {"video": (C, F, H, W) in [-1, 1], "caption",
    "class_id" (-1 if unknown), "index", "path"}. The start and crop are a pure function of (seed, epoch, index).
    With `captions="random"` the caption is drawn from the record's "caption" and its "captions" list of
    alternatives (several captions per clip, as in COCO), again a pure function of (seed, epoch, index)."""

    def __init__(self, root: str | Path, frames: int = 16, size: int = 32, stride: int = 1,
                 crop: str = "center", cache: bool | str = "auto", cache_max_mb: float = 2048,
                 seed: int = 0, progress: bool = True, captions: str = "first"):
        if frames < 1 or size < 1 or stride < 1:
            raise VidiffError(f"frames, size and stride must be >= 1, got {frames}, {size}, {stride}")
        if crop not in ("center", "random"):
            raise VidiffError(f"unknown crop {crop!r}; use 'center' or 'random'")
        if captions not in ("first", "random"):
            raise VidiffError(f"unknown captions setting {captions!r}; use 'first' (the \"caption\" field) "
                              "or 'random' (one of \"caption\" and \"captions\" per epoch)")
        self.captions = captions
        if cache not in (True, False, "auto"):
            raise VidiffError(f"unknown cache setting {cache!r}; use true, false or 'auto'")
        self.root = Path(root)
        self.frames, self.size, self.stride, self.crop = frames, size, stride, crop
        self.seed, self.epoch = seed, 0
        self.need = (frames - 1) * stride + 1
        sources = list_videos(self.root)
        if not sources:
            exts = "/".join(e.lstrip(".") for e in READABLE)
            raise VidiffError(f"no videos found in {self.root}; "
                              f"expected .{exts.replace('/', '/.')} files or folders of frames")
        meta = read_metadata(self.root) if self.root.is_dir() else {}

        self.paths: list[Path] = []
        self.lengths: list[int] = []
        self.cached: list[np.ndarray] | None = [] if cache else None
        self.unreadable: list[tuple[Path, str]] = []
        self.too_short: list[tuple[Path, int]] = []
        budget = cache_max_mb * 2**20
        used = 0.0
        import os
        from concurrent.futures import ThreadPoolExecutor

        from tqdm import tqdm

        def load(p: Path, decode: bool):
            try:  # decoders are ffmpeg subprocesses: threads overlap them
                if decode:
                    v = resize_short_side(read_video(p), size)
                    return len(v), v, None
                return num_frames(p), None, None
            except VidiffError as e:
                return 0, None, str(e)

        chunk = 64
        with tqdm(total=len(sources), desc="decoding videos" if cache else "probing videos", unit="video",
                  disable=not progress or len(sources) < 2) as bar, ThreadPoolExecutor(min(4,
                          os.cpu_count() or 1)) as pool:
            for c in range(0, len(sources), chunk):
                part = sources[c:c + chunk]
                decode = self.cached is not None
                for p, (n, v, err) in zip(part, pool.map(lambda q: load(q, decode), part)):
                    bar.update(1)
                    if err is not None:
                        self.unreadable.append((p, err))
                        continue
                    if n < self.need:
                        self.too_short.append((p, n))
                        continue
                    if self.cached is not None and v is not None:
                        used += v.nbytes
                        if cache == "auto" and used > budget:  # too big to hold: decode per item instead
                            self.cached = None
                        else:
                            self.cached.append(v)
                    self.paths.append(p)
                    self.lengths.append(n)

        if self.unreadable:
            notice(f"skipped {len(self.unreadable)} unreadable video(s) in {self.root}, "
                   f"e.g. {self.unreadable[0][1]}")
        if self.too_short and self.paths:
            notice(f"skipped {len(self.too_short)} video(s) shorter than the {self.need} frames "
                   f"needed (frames={frames}, stride={stride})")
        if not self.paths:
            if self.too_short:
                longest = max(n for _, n in self.too_short)
                raise VidiffError(
                    f"no video in {self.root} is long enough: frames={frames} with stride={stride} needs "
                    f"{self.need} frames but the longest has {longest}; lower --frames or --stride")
            raise VidiffError(f"none of the {len(sources)} video(s) in {self.root} could be read, "
                              f"e.g. {self.unreadable[0][1]}")

        rel = [p.relative_to(self.root).as_posix() if self.root.is_dir() else p.name for p in self.paths]
        self.rel_paths = rel
        self.meta = [meta.get(r, {}) for r in rel]
        self.caption_lists = [self._caption_options(m, r) for m, r in zip(self.meta, rel)]
        ids = [m.get("class_id") for m in self.meta if isinstance(m.get("class_id"), int)]
        declared = [m["num_classes"] for m in self.meta if isinstance(m.get("num_classes"), int)]
        self.num_classes = max(declared + [max(ids) + 1 if ids else 0])

    def _caption_options(self, m: dict, rel: str) -> list[str]:
        """The captions a record can be shown with: its "caption", then (captions="random") its "captions"."""
        first = [str(m["caption"])] if m.get("caption") else []
        extra = m.get("captions") if self.captions == "random" else None
        if extra is not None and not (isinstance(extra, list) and all(isinstance(c, str) and c for c in extra)):
            raise VidiffError(f"{rel}: \"captions\" in metadata.jsonl must be a list of non-empty strings")
        return first + list(extra or [])

    def all_captions(self) -> list[str]:
        """Every caption any item can be shown with, sorted (to encode them once)."""
        return sorted({c for options in self.caption_lists for c in options})

    @property
    def num_skipped(self) -> int:
        """Videos left out (unreadable or too short)."""
        return len(self.unreadable) + len(self.too_short)

    def set_epoch(self, epoch: int) -> None:
        """Change the clip starts and crops drawn for every index (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def clip_params(self, index: int, height: int, width: int) -> tuple[int, int, int]:
        """(start frame, crop top, crop left) for `index`, a pure function of (seed, epoch, index)."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        start = int(rng.integers(0, self.lengths[index] - self.need + 1))
        if self.crop == "random":
            return start, int(rng.integers(0, height - self.size + 1)), int(rng.integers(0, width - self.size + 1))
        return start, (height - self.size) // 2, (width - self.size) // 2

    def __getitem__(self, index: int) -> dict:
        if self.cached is not None:
            video = self.cached[index]
        else:
            start = self.clip_params(index, self.size, self.size)[0]  # the start is drawn first
            video = resize_short_side(read_video(self.paths[index], max_frames=start + self.need), self.size)
            if len(video) < start + self.need:
                raise VidiffError(f"{self.paths[index]}: decoded {len(video)} frames, fewer than its header says; "
                                  "re-encode it or remove it")
        h, w = video.shape[1:3]
        start, top, left = self.clip_params(index, h, w)
        clip = video[start:start + self.need:self.stride, top:top + self.size, left:left + self.size]
        x = torch.from_numpy(np.ascontiguousarray(clip)).permute(3, 0, 1, 2).float() / 127.5 - 1  # (C, F, H, W)
        m = self.meta[index]
        text = pick_caption(self.caption_lists[index], self.seed, self.epoch, index)
        return {"video": x, "caption": text, "class_id": int(m.get("class_id", -1)),
                "index": index, "path": self.rel_paths[index]}
