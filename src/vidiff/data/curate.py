"""Curation of raw videos into training clips: shot cuts by colour-histogram differences, a motion filter.

A cut is declared between frames t-1 and t when the histogram distance d_t = 1/2 sum |h_t - h_{t-1}|
(total variation between per-channel colour histograms, in [0, 1]) exceeds `cut_threshold`.
Motion is the mean absolute difference of consecutive grey frames, in [0, 1].
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..utils import VidiffError, atomic_path


def colour_histograms(frames: np.ndarray, bins: int = 16) -> np.ndarray:
    """Per-frame normalized RGB histograms, (F, 3 * bins), each channel summing to 1/3."""
    f = frames.shape[0]
    q = (frames.reshape(f, -1, 3).astype(np.int64) * bins) // 256           # (F, P, 3) bin per channel
    q = q + np.arange(3) * bins                                               # channels in separate bins
    h = np.stack([np.bincount(x.ravel(), minlength=3 * bins) for x in q]).astype(np.float64)
    return h / h.sum(axis=1, keepdims=True)


def histogram_distances(frames: np.ndarray, bins: int = 16) -> np.ndarray:
    """d_t for t = 1..F-1: total variation distance between consecutive colour histograms, (F-1,)."""
    h = colour_histograms(frames, bins)
    return 0.5 * np.abs(np.diff(h, axis=0)).sum(axis=1)


def scene_cuts(frames: np.ndarray, cut_threshold: float = 0.4, bins: int = 16) -> list[int]:
    """Frame indices t where a new shot starts (a cut between t-1 and t)."""
    if len(frames) < 2:
        return []
    return [int(t) + 1 for t in np.flatnonzero(histogram_distances(frames, bins) > cut_threshold)]


def motion_score(frames: np.ndarray) -> float:
    """Mean |grey_t - grey_{t-1}| / 255 over the clip (0 for a still clip)."""
    if len(frames) < 2:
        return 0.0
    grey = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # (F, H, W)
    return float(np.abs(np.diff(grey, axis=0)).mean() / 255)


@dataclass(frozen=True)
class Clip:
    """One curated clip: frames [start, start + length) of `source`."""

    source: str
    start: int
    length: int
    motion: float


def split_clips(frames: np.ndarray, clip_frames: int, cut_threshold: float = 0.4,
                min_motion: float = 0.002, max_motion: float = 0.25, source: str = "") -> list[Clip]:
    """Non-overlapping clips of `clip_frames` inside each shot, kept when min_motion <= motion <= max_motion."""
    bounds = [0] + scene_cuts(frames, cut_threshold) + [len(frames)]
    clips = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        for s in range(a, b - clip_frames + 1, clip_frames):
            m = motion_score(frames[s:s + clip_frames])
            if min_motion <= m <= max_motion:
                clips.append(Clip(source, s, clip_frames, m))
    return clips


def curate(src: str | Path, out_dir: str | Path, clip_frames: int = 16, cut_threshold: float = 0.4,
           min_motion: float = 0.002, max_motion: float = 0.25, fps: float = 8.0, progress: bool = True) -> dict:
    """Cut every video under `src` into shot-internal clips that move enough (but not chaotically), write them
    as MP4 into `out_dir` with `metadata.jsonl` (file, source, start, motion); return counts."""
    from tqdm import tqdm

    from .io import list_videos, read_video, write_mp4

    if clip_frames < 2:
        raise VidiffError(f"--frames must be at least 2, got {clip_frames}")
    sources = list_videos(src)
    if not sources:
        raise VidiffError(f"no videos found in {src}; expected video files or folders of frames")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = Path(src)
    lines, stats = [], {"videos": 0, "unreadable": 0, "cuts": 0, "clips": 0, "rejected_motion": 0}
    for p in tqdm(sources, desc="curating", unit="video", disable=not progress):
        try:
            frames = read_video(p)
        except VidiffError:
            stats["unreadable"] += 1
            continue
        stats["videos"] += 1
        stats["cuts"] += len(scene_cuts(frames, cut_threshold))
        rel = p.relative_to(src).as_posix() if src.is_dir() else p.name
        every = split_clips(frames, clip_frames, cut_threshold, 0.0, float("inf"), rel)
        kept = [c for c in every if min_motion <= c.motion <= max_motion]
        stats["rejected_motion"] += len(every) - len(kept)
        for c in kept:
            name = f"clip_{stats['clips']:06d}.mp4"
            write_mp4(out_dir / name, frames[c.start:c.start + c.length], fps=fps)
            lines.append(json.dumps({"file": name, "source": c.source, "start": c.start, "motion": round(c.motion, 5)}))
            stats["clips"] += 1
    with atomic_path(out_dir / "metadata.jsonl") as tmp:
        tmp.write_text("".join(x + "\n" for x in lines))
    return stats
