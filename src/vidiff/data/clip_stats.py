"""Per-video values a model is micro-conditioned on (Stable Video Diffusion's fps and motion bucket,
Blattmann et al. 2023b, sec. 3; and the object's speed): measured once per training video and cached.

Motion bucket. The motion score is `curate_scores.flow_motion`: the mean optical-flow magnitude (OpenCV DIS)
in pixels per frame, measured on the video as training sees it (resized so its short side is the training
size, every `stride`-th frame). Divided by that short side it is a resolution-free fraction of the frame
per frame, m, and the bucket is linear in it:

    bucket = round(255 · min(1, m / MOTION_FULL_SCALE)),   MOTION_FULL_SCALE = 0.04,

so bucket 255 is an average displacement of 4 % of the frame per frame over the whole image (a fast pan),
and bucket 127 about 2 %. 32×32 moving shapes (one object covering ~6 % of the frame, 1.3–2.6 px/frame,
H.264-encoded) give buckets of about 70–230.

Speed is the object's displacement per frame in pixels of the training frames: the "speed" a record of
metadata.jsonl gives (pixels per frame of the source, as `vidiff data synth shapes` writes it), scaled by
the resize to the training size and by the stride. fps is the record's "fps" divided by the stride, or the
recipe's frame rate when the record has none.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..utils import VidiffError, atomic_write_text, notice, read_json
from .curate_scores import flow_motion
from .dataset import resize_short_side
from .io import read_video

MOTION_FULL_SCALE = 0.04  # mean flow, as a fraction of the frame's short side per frame, that maps to bucket 255
CACHE_VERSION = 1


def motion_bucket(score: float, short_side: int) -> int:
    """The motion bucket in [0, 255] of a mean flow `score` (pixels per frame) on frames whose short side
    is `short_side` pixels: round(255 · min(1, score / short_side / MOTION_FULL_SCALE))."""
    if not short_side > 0:
        raise VidiffError(f"motion_bucket needs a positive frame size; got {short_side}")
    return int(round(255 * min(1.0, max(0.0, float(score)) / short_side / MOTION_FULL_SCALE)))


def video_micro_values(video: np.ndarray, record: dict, kinds: Sequence[str], *, size: int, stride: int,
                       fps: float, where: str = "video", resized: np.ndarray | None = None) -> dict:
    """{kind: value} for one uint8 video (F, H, W, 3) at its source resolution (only its first frame is read
    when `resized`, the video already resized to the training size, is given) and its metadata record."""
    out: dict = {}
    short = min(video.shape[1:3])
    if "fps" in kinds:
        rec_fps = record.get("fps")
        out["fps"] = float(rec_fps) / stride if isinstance(rec_fps, (int, float)) and rec_fps > 0 else float(fps)
    if "motion" in kinds:
        frames = (resize_short_side(video, size) if resized is None else resized)[::stride]
        score = flow_motion(frames)
        out["motion_score"] = float(score)
        out["motion"] = float(motion_bucket(score, min(frames.shape[1:3])))
    if "speed" in kinds:
        speed = record.get("speed")
        if not isinstance(speed, (int, float)) or not math.isfinite(speed) or speed < 0:
            raise VidiffError(f"{where}: --micro speed needs a \"speed\" (pixels per frame) for every video in "
                              "metadata.jsonl, as `vidiff data synth shapes` writes it; this record has none")
        out["speed"] = float(speed) * size / short * stride
    return out


def dataset_micro_values(dataset, kinds: Sequence[str], *, size: int, stride: int, fps: float,
                         cache: str | Path | None = None) -> dict[str, dict]:
    """{relative path: {kind: value}} for every video of a `VideoDataset`, read from the JSON `cache` when it
    holds them for the same size and stride, else measured (and the cache written atomically)."""
    paths, rels = getattr(dataset, "paths", None), getattr(dataset, "rel_paths", None)
    if paths is None or rels is None:
        raise VidiffError("micro-conditions (--micro motion/speed) need a folder of videos as --data; "
                          "latent caches, shards and image folders are not supported")
    key = {"version": CACHE_VERSION, "size": size, "stride": stride, "fps": fps}
    known: dict[str, dict] = {}
    if cache is not None and Path(cache).is_file():
        stored = read_json(cache)
        if isinstance(stored, dict) and stored.get("key") == key and isinstance(stored.get("values"), dict):
            known = stored["values"]
    values, measured = {}, 0
    for i, (path, rel) in enumerate(zip(paths, rels)):
        have = known.get(rel)
        if isinstance(have, dict) and all(k in have for k in kinds):
            values[rel] = have
            continue
        record = dataset.meta[i] if hasattr(dataset, "meta") else {}
        cached = dataset.cached[i] if getattr(dataset, "cached", None) is not None else None  # at the training size
        if "motion" not in kinds and "speed" not in kinds:
            video = np.zeros((1, size, size, 3), np.uint8)
        else:
            video = read_video(path, max_frames=1 if cached is not None else None)
        values[rel] = {**(have or {}), **video_micro_values(video, record, kinds, size=size, stride=stride, fps=fps,
                                                             where=rel, resized=cached)}
        measured += 1
    if measured and cache is not None:
        atomic_write_text(cache, json.dumps({"key": key, "values": values}, indent=1, sort_keys=True))
    if measured and len(paths) > 1:
        notice(f"measured {', '.join(kinds)} of {measured} training video(s)")
    return values
