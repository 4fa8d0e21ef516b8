"""Curation of raw videos into a training set of WebDataset shards (Stable Video Diffusion's pipeline).

`curate(RAW_DIR, DATASET)` does, per source video (in parallel: Ray Data, else a process pool):
shot cuts (PySceneDetect), clips of `min_frames..max_frames` frames inside each shot, cut from the
source without re-encoding when a clip starts on a keyframe (else re-encoded with H.264, recorded as
"reencoded"), and every score of `curate_scores` per clip. Each source's clips and scores go to
`DATASET/parts/NNNNNN.tar` + `.json`, written atomically, so an interrupted run resumes by skipping
finished parts. Then, in the driver, the filters (thresholds in `Filters`) and near-duplicate removal
decide which clips are kept; kept clips are copied into `DATASET/000000.tar, 000001.tar, ...`
(WebDataset: `KEY.mp4` + `KEY.json` with the clip's metadata and scores), and `manifest.json` keeps
every clip's scores, so `refilter` applies new thresholds without decoding any video.
"""
from __future__ import annotations

import io as _io
import json
import logging
import math
import socket
import subprocess
import tarfile
import tempfile
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import cv2
import numpy as np

from ..limits import check_memory, check_positive
from ..utils import VidiffError, atomic_path, atomic_write_text, notice
from . import curate_scores as S
from .io import VIDEO_EXTS, iter_video, list_videos, read_video, video_fps, write_mp4
from .synth import read_metadata

MANIFEST, CONFIG = "manifest.json", "curate.json"
COPYABLE_CODECS = ("h264", "hevc", "mpeg4", "av1", "vp9")  # stream-copied into .mp4 without re-encoding
T = TypeVar("T")  # what a span walker keeps of each frame


@dataclass(frozen=True)
class CurateConfig:
    """How clips are cut and measured (changing it means recomputing; saved as DATASET/curate.json)."""

    min_frames: int = 16          # shots (or their last piece) shorter than this give no clip
    max_frames: int = 64          # longer shots are cut into pieces of this many frames
    detector: str = "content"     # PySceneDetect detector: "content" or "adaptive"
    cut_threshold: float | None = None  # the detector's threshold (None: its default, content 27, adaptive 3.0)
    min_scene_len: int = 15       # frames between two cuts at least
    ocr: bool = True              # measure on-screen text (needs tesseract)


@dataclass(frozen=True)
class Filters:
    """Thresholds deciding which clips are kept; None disables a bound. Motion is in pixels per frame at
    the analysis size (long side 256), sharpness the Laplacian variance, brightness mean luma in [0, 1],
    aspect width / height, text the fraction of the frame covered by OCR'd words, dedupe the mean Hamming
    distance (bits of 64) under which a clip is a near-duplicate of an earlier one."""

    min_motion: float | None = 0.05
    max_motion: float | None = 24.0
    max_camera: float | None = None   # camera motion (px/frame at the analysis size); set it for still-camera sets
    min_sharpness: float | None = 15.0
    min_brightness: float | None = 0.06
    min_aspect: float | None = 0.5
    max_aspect: float | None = 2.5
    max_text: float | None = 0.03
    dedupe_distance: float | None = 6.0
    caption_query: str | None = None
    min_caption_similarity: float | None = None


FILTER_NAMES = ("static", "too_fast", "camera", "blurry", "dark", "aspect", "text", "caption", "duplicate")


# --- one source video -------------------------------------------------------------------------------------
def _container(path: Path) -> dict:
    """What a video file's container says of its video stream (PyAV; demuxed, nothing decoded): "codec",
    "frames" (the header's frame count, 0 when unknown), "coded" (frames stored: non-empty packets), "fps",
    and "keyframes" {frame index as `iter_video` decodes the file, at a constant fps from the file's start:
    seconds from the start}; {} when PyAV is not installed or cannot parse the container."""
    try:
        import av
    except ImportError:
        return {}
    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            rate, tb = s.guessed_rate or s.average_rate, float(s.time_base)
            t0 = (c.start_time or 0) / 1e6  # FFmpeg counts time from the file's start
            packets = [(p.pts * tb - t0, p.is_keyframe) for p in c.demux(s) if p.pts is not None and p.size > 0]
            info = {"codec": s.codec_context.name, "frames": int(s.frames or 0), "coded": len(packets),
                    "fps": float(rate) if rate else None}
    except Exception:  # noqa: BLE001 - any container problem: re-encode instead
        return {}
    info["keyframes"] = {round(t * info["fps"]): t for t, key in packets if key and t >= 0} if info["fps"] else {}
    return info


def _ffmpeg_clip(src: Path, seek: float, length: int, fps: float, copy: bool) -> bytes | None:
    """`length` frames of a video file from time `seek` as mp4 bytes (stream copy, or H.264 with constant
    frame timing at `fps`); None on failure."""
    import imageio_ffmpeg

    with tempfile.TemporaryDirectory(prefix="vidiff_clip_") as d:
        tmp = Path(d) / "clip.mp4"
        codec = ["-c:v", "copy"] if copy else ["-vf", f"setpts=N/({fps:.6f}*TB)", "-r", f"{fps:.6f}", "-c:v",
                                               "libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-preset", "veryfast"]
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-ss", f"{seek:.6f}", "-i", str(src),
               "-frames:v", str(length), "-an", "-fps_mode", "passthrough", *codec, "-f", "mp4", str(tmp)]
        r = subprocess.run(cmd, capture_output=True)
        return tmp.read_bytes() if r.returncode == 0 and tmp.exists() and tmp.stat().st_size else None


def _matches(data: bytes | None, clip: list[np.ndarray]) -> bool:
    """True when mp4 bytes decode (as vidiff reads videos) to len(clip) frames whose first and last look
    like the clip's analysis frames."""
    if data is None:
        return False
    with tempfile.TemporaryDirectory(prefix="vidiff_clip_") as d:
        (Path(d) / "c.mp4").write_bytes(data)
        try:
            got = read_video(Path(d) / "c.mp4", max_frames=len(clip) + 1)
        except VidiffError:
            return False
    if len(got) != len(clip):
        return False
    for g, want in ((got[0], clip[0]), (got[-1], clip[-1])):
        g = S.analysis_frame(g)
        if g.shape != want.shape or np.abs(g.astype(np.int16) - want).mean() > 8:
            return False
    return True


def _decode_spans(path: Path, spans: list[tuple[int, int]], fps: float) -> dict[int, bytes]:
    """Fallback: decode the file once in order and encode the full-size frames of each span; {start: mp4
    bytes} (the spans reached when the file cannot be decoded to its end this time)."""
    out = {}
    with closing(_walk_spans(path, None, spans, range, lambda frame: frame)) as walk:
        for start, n, frames in walk:  # frames: {offset: (H, W, 3) uint8} for every offset of the span
            with tempfile.TemporaryDirectory(prefix="vidiff_clip_") as d:
                out[start] = write_mp4(Path(d) / "clip.mp4", np.stack([frames[i] for i in range(n)]),
                                       fps=fps).read_bytes()
            del frames  # one span's full-size frames held at a time
    return out


def _frames(path: Path, held: np.ndarray | None) -> Iterator[np.ndarray]:
    """A source's full-size frames in order: a video file streamed one frame at a time (`iter_video`), else
    those of the source already read whole (`held`: .npy, GIF or a folder of frames)."""
    if held is not None:
        yield from held
        return
    with closing(iter_video(path)) as stream:
        yield from stream


def _walk_spans(path: Path, held: np.ndarray | None, spans: list[tuple[int, int]],
                keep: Callable[[int], Iterable[int]],
                transform: Callable[[np.ndarray], T]) -> Iterator[tuple[int, int, dict[int, T]]]:
    """One in-order pass over a source's frames (`_frames`) for the spans (start, length), taken by start:
    for each, (start, length, {offset: transform(frame)} for the offsets `keep(length)` names), holding those
    of one span at a time; ends early (leaving the rest out) if the source cannot be decoded this time."""
    todo = iter(sorted(spans))
    span = next(todo, None)
    if span is None:
        return
    want, got = set(keep(span[1])), {}
    try:
        with closing(_frames(path, held)) as stream:
            for t, frame in enumerate(stream):
                start, n = span
                if t - start in want:
                    got[t - start] = transform(frame)
                if t == start + n - 1:
                    kept, got = got, {}
                    span = next(todo, None)
                    yield start, n, kept
                    del kept
                    if span is None:
                        return
                    want = set(keep(span[1]))
    except VidiffError:  # decoded fine the first time: the spans not reached are left out
        return


def _scan(path: Path, cfg: CurateConfig) -> dict:
    """First pass over a source (a video file streamed frame by frame, as `read_video` decodes it; nothing
    kept but the cut detector's state): "frames" (the count), "cuts", "fps", "size", "is_file", "container"
    (what a file's container says) and "held" (the frames of a source that is not a video file, read whole)."""
    is_file = path.is_file() and path.suffix.lower() in VIDEO_EXTS
    info = _container(path) if is_file else {}
    held = None if is_file else read_video(path)
    fps = info.get("fps") or video_fps(path)
    det = S.CutDetector(cfg.detector, cfg.cut_threshold, cfg.min_scene_len, fps)
    cuts, n, size = [], 0, None
    with closing(_frames(path, held)) as stream:
        for t, frame in enumerate(stream):
            if size is None and is_file:  # a clip is extracted and checked with its full-size frames in memory
                check_memory((cfg.max_frames + 1) * frame.size, f"curating {path.name} ({frame.shape[1]}x"
                             f"{frame.shape[0]}) in clips of up to {cfg.max_frames} frames", "lower --max-frames")
            size, n = (frame.shape[1], frame.shape[0]), t + 1
            cuts += det.push(t, S.analysis_frame(frame))
    coded, declared = info.get("coded", 0), info.get("frames", 0)
    if n and any(k and k != n for k in (coded, declared)):
        said = f"{coded} coded frames" + (f" in {declared} frame slots" if declared not in (0, coded) else "")
        why = ("its time stamps leave gaps, filled by repeating the frame before"
               if n > (coded or declared) else "the file may be truncated or damaged")
        notice(f"{path}: the container holds {said}; {n} were decoded at a constant {fps:.4g} "
               f"frames/s ({why}); clips and scores follow the decoded frames")
    if not n:
        raise VidiffError(f"cannot read video {path}: no frames could be decoded")
    cuts = sorted({c for c in cuts + det.finish() if 0 < c < n})
    return {"frames": n, "held": held, "fps": float(fps), "size": size, "cuts": cuts, "is_file": is_file,
            "container": info}


def _clips(path: Path, held: np.ndarray | None,
           spans: list[tuple[int, int]]) -> Iterator[tuple[int, S.ClipFrames]]:
    """Second pass over a source: for each span (start, length), in order, (start, the analysis frames its
    scores read, `S.needed_frames`), holding those of one clip at a time; ends early (leaving the rest out)
    if the source cannot be decoded this time."""
    with closing(_walk_spans(path, held, spans, S.needed_frames, S.analysis_frame)) as walk:
        for start, n, frames in walk:
            clip = S.ClipFrames(n, frames)
            del frames
            yield start, clip
            del clip


def clip_spans(num_frames: int, cuts: list[int], min_frames: int, max_frames: int) -> list[tuple[int, int]]:
    """(start, length) of the clips: each shot [cut_i, cut_i+1) cut into pieces of max_frames, pieces
    shorter than min_frames dropped."""
    bounds = [0, *cuts, num_frames]
    spans = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        for s in range(a, b, max_frames):
            n = min(max_frames, b - s)
            if n >= min_frames:
                spans.append((s, n))
    return spans


def _clip_bytes(path: Path, start: int, clip: S.ClipFrames, a: dict) -> tuple[bytes | None, bool]:
    """A clip of a source as mp4 bytes, and whether it is a stream copy: copied when it starts on a
    keyframe, else an exact re-encode (None when seeking is not frame-exact in this file)."""
    n, fps = len(clip), a["fps"]
    if not a["is_file"]:
        with tempfile.TemporaryDirectory(prefix="vidiff_clip_") as d:
            return write_mp4(Path(d) / "clip.mp4", a["held"][start:start + n], fps=fps).read_bytes(), False
    keyframes, codec = a["container"].get("keyframes", {}), a["container"].get("codec")
    if start in keyframes and codec in COPYABLE_CODECS:
        b = _ffmpeg_clip(path, keyframes[start], n, fps, copy=True)
        if _matches(b, clip):
            return b, True
    b = _ffmpeg_clip(path, start / fps, n, fps, copy=False)
    return (b if _matches(b, clip) else None), False


def _clip_record(job: dict, key: str, start: int, clip: S.ClipFrames, a: dict, ocr: bool) -> tuple[dict, bytes]:
    """A clip's manifest record (every score of `curate_scores`) and its thumbnail (PNG, 96 px high)."""
    w, h = a["size"]
    mid = clip[len(clip) // 2]
    flows = S.pair_flows(clip)
    scores = {"motion": S.flow_motion(clip, flows=flows), "camera": S.camera_motion(clip, flows=flows),
              "sharpness": S.sharpness(clip), "brightness": S.brightness(clip), "aspect": w / h,
              "text": S.text_area(mid) if ocr else None}
    rec = {"key": key, "source": job["rel"], "start": start, "frames": len(clip), "fps": a["fps"], "width": w,
           "height": h, "reencoded": True, "caption": job.get("caption"), "hashes": S.clip_hashes(clip),
           "scores": scores}
    th = cv2.resize(mid, (max(1, round(96 * mid.shape[1] / mid.shape[0])), 96), interpolation=cv2.INTER_AREA)
    return rec, cv2.imencode(".png", cv2.cvtColor(th, cv2.COLOR_RGB2BGR))[1].tobytes()


def process_source(job: dict) -> dict:
    """Worker: cut, measure and store one source as parts/NNNNNN.tar + .json; returns {"index", "status"}.
    Two passes over the source (cuts, then clips and scores), holding the few analysis frames that one
    clip's scores read: memory does not grow with the source's length (a video file's; other sources are
    read whole)."""
    cv2.setNumThreads(1)
    out, cfg = Path(job["out"]), CurateConfig(**job["config"])
    part = out / "parts" / f"{job['index']:06d}"
    path = Path(job["path"])
    summary = {"source": job["rel"], "index": job["index"], "status": "ok", "clips": []}
    try:
        a = _scan(path, cfg)
    except VidiffError as e:
        summary.update(status="unreadable", error=str(e))
        atomic_write_text(part.with_suffix(".json"), json.dumps(summary))
        return {"index": job["index"], "status": "unreadable"}
    w, h = a["size"]
    summary.update(frames=a["frames"], fps=a["fps"], width=w, height=h, cuts=a["cuts"],
                   codec=a["container"].get("codec"))
    spans = clip_spans(a["frames"], a["cuts"], cfg.min_frames, cfg.max_frames)
    keys = {start: f"{job['index']:06d}_{k:04d}" for k, (start, _) in enumerate(spans)}
    recs, pending = {}, {}  # pending: clips whose seek was not frame-exact, {start: (record, thumbnail)}
    with atomic_path(part.with_suffix(".tar")) as tmp, tarfile.open(tmp, "w") as tar:
        with closing(_clips(path, a["held"], spans)) as clips:
            for start, clip in clips:
                rec, png = _clip_record(job, keys[start], start, clip, a, cfg.ocr)
                data, copied = _clip_bytes(path, start, clip, a)
                del clip
                rec["reencoded"] = not copied
                if data is None:
                    pending[start] = rec, png
                    continue
                _add_clip(tar, rec, data, png)
                recs[start] = rec
        if pending:  # seeking was not frame-exact in this file: decode it in order
            found = _decode_spans(path, [(st, rec["frames"]) for st, (rec, _) in pending.items()], a["fps"])
            for st, data in found.items():
                rec, png = pending[st]
                _add_clip(tar, rec, data, png)
                recs[st] = rec
    summary["clips"] = [recs[st] for st, _ in spans if st in recs]
    atomic_write_text(part.with_suffix(".json"), json.dumps(summary))  # written last: the part is finished
    return {"index": job["index"], "status": "ok"}


def _add_clip(tar: tarfile.TarFile, rec: dict, data: bytes, png: bytes) -> None:
    for name, payload in ((f"{rec['key']}.mp4", data), (f"{rec['key']}.json", json.dumps(rec).encode()),
                          (f"{rec['key']}.thumb.png", png)):
        _add(tar, name, payload)


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(payload), 0, 0o644
    tar.addfile(info, _io.BytesIO(payload))


# --- engines ------------------------------------------------------------------------------------------------
def _check_ray_address(address: str) -> None:
    """One line when nothing answers at a Ray address (host:port or ray://host:port)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host or hostport, int(port or 6379)), timeout=5).close()
    except (OSError, ValueError):
        raise VidiffError(f"no Ray cluster answers at {address}; give its head's address (host:6379 or "
                          "ray://host:10001) or leave --ray out to run locally") from None


def run_jobs(jobs: list[dict], workers: int, engine: str, address: str | None = None,
             progress: bool = True) -> list[dict]:
    """Run process_source over jobs: engine "ray" (Ray Data, local when address is None), "process" (a
    process pool; in-process with 1 worker)."""
    if not jobs:
        return []
    if engine == "ray":
        import ray

        if not ray.is_initialized():
            ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = ctx.print_on_execution_start = ctx.enable_auto_log_stats = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        ds = ray.data.from_items(jobs, override_num_blocks=len(jobs))
        return ds.map(process_source, num_cpus=1, compute=ray.data.TaskPoolStrategy(size=workers)).take_all()
    from tqdm import tqdm

    if workers == 1:
        return [process_source(j) for j in tqdm(jobs, desc="curating", unit="video", disable=not progress)]
    import multiprocessing

    # spawn, not fork: a forked worker can inherit a lock held by one of the parent's threads and hang
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(tqdm(pool.map(process_source, jobs), total=len(jobs), desc="curating", unit="video",
                         disable=not progress))


def pick_engine(engine: str, address: str | None) -> str:
    """"auto" -> "ray" when ray is installed (or an address is given), else "process"."""
    if engine not in ("auto", "ray", "process"):
        raise VidiffError(f"unknown engine {engine!r}; use auto, ray or process")
    try:
        import ray  # noqa: F401
        has_ray = True
    except ImportError:
        has_ray = False
    if (engine == "ray" or address) and not has_ray:
        raise VidiffError("Ray is not installed: pip install 'vidiff[data]', or use --engine process")
    if engine == "auto":
        return "ray" if has_ray else "process"
    return engine


# --- filters -------------------------------------------------------------------------------------------------
def failed_filters(scores: dict, f: Filters) -> list[str]:
    """Names of the per-clip filters a clip's scores fail (duplicates are decided across clips)."""

    def below(x, lo):
        return lo is not None and x is not None and x < lo

    def above(x, hi):
        return hi is not None and x is not None and x > hi

    checks = (("static", below(scores["motion"], f.min_motion)), ("too_fast", above(scores["motion"], f.max_motion)),
              ("camera", above(scores.get("camera"), f.max_camera)),
              ("blurry", below(scores["sharpness"], f.min_sharpness)),
              ("dark", below(scores["brightness"], f.min_brightness)),
              ("aspect", below(scores["aspect"], f.min_aspect) or above(scores["aspect"], f.max_aspect)),
              ("text", above(scores.get("text"), f.max_text)),
              ("caption", below(scores.get("caption_similarity"), f.min_caption_similarity)))
    return [name for name, bad in checks if bad]


def apply_filters(clips: list[dict], f: Filters) -> dict:
    """Mark each clip `keep` / `dropped_by` in place; return counts per filter."""
    if f.caption_query:
        idx = [i for i, c in enumerate(clips) if c.get("caption")]
        if idx:
            sims = S.caption_similarity([clips[i]["caption"] for i in idx], f.caption_query)
            for i, s in zip(idx, sims):
                clips[i]["scores"]["caption_similarity"] = s
        else:
            notice("no clip has a caption (metadata.jsonl in RAW_DIR): the caption filter is skipped")
    for c in clips:
        if not f.caption_query:
            c["scores"].pop("caption_similarity", None)
        c["dropped_by"] = failed_filters(c["scores"], f)
    if f.dedupe_distance is not None:
        passing = [c for c in clips if not c["dropped_by"]]
        for i in S.near_duplicates([c["hashes"] for c in passing], f.dedupe_distance):
            passing[i]["dropped_by"].append("duplicate")
    counts = {name: sum(name in c["dropped_by"] for c in clips) for name in FILTER_NAMES}
    for c in clips:
        c["keep"] = not c["dropped_by"]
    counts.update(clips=len(clips), kept=sum(c["keep"] for c in clips))
    return counts


# --- the dataset folder -------------------------------------------------------------------------------------
def _check_out(out: Path, raw: Path, cfg: CurateConfig, resume: bool) -> None:
    saved = out / CONFIG
    if saved.exists():
        prev = json.loads(saved.read_text())
        if not resume:
            raise VidiffError(f"{out} already holds a curated dataset; pass --resume to continue it "
                              "or choose another --out")
        if prev.get("config") != asdict(cfg) or prev.get("raw") != str(raw.resolve()):
            raise VidiffError(f"{out} was curated from {prev.get('raw')} with other settings "
                              f"({prev.get('config')}); resume with the same ones or choose another --out")
    elif out.exists() and (out.is_file() or any(out.iterdir())):
        raise VidiffError(f"{out} is not empty and holds no curated dataset; choose a new or empty --out")


def curate(raw: str | Path, out: str | Path, cfg: CurateConfig = CurateConfig(), filters: Filters = Filters(),
           workers: int = 1, engine: str = "auto", ray_address: str | None = None, resume: bool = False,
           shard_size: int = 256, progress: bool = True) -> dict:
    """Curate every video under `raw` into the dataset folder `out`; return the counts (see module doc)."""
    raw, out = Path(raw), Path(out)
    if cfg.min_frames < 2 or cfg.max_frames < cfg.min_frames:
        raise VidiffError(f"clip lengths must satisfy 2 <= --min-frames <= --max-frames; got "
                          f"{cfg.min_frames}, {cfg.max_frames}")
    check_positive(workers, "--workers")
    check_positive(shard_size, "--shard-size")
    engine = pick_engine(engine, ray_address)
    if ray_address:
        _check_ray_address(ray_address)
    sources = list_videos(raw)
    if not sources:
        raise VidiffError(f"no videos found in {raw}; expected video files or folders of frames")
    _check_out(out, raw, cfg, resume)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CONFIG, json.dumps({"raw": str(raw.resolve()), "config": asdict(cfg)}, indent=1))
    meta = read_metadata(raw) if raw.is_dir() else {}
    jobs, done = [], 0
    for i, p in enumerate(sources):
        rel = p.relative_to(raw).as_posix() if raw.is_dir() else p.name
        js = out / "parts" / f"{i:06d}.json"
        if js.exists() and json.loads(js.read_text()).get("source") == rel:
            done += 1
            continue
        jobs.append({"index": i, "path": str(p), "rel": rel, "out": str(out), "config": asdict(cfg),
                     "caption": meta.get(rel, {}).get("caption")})
    if done:
        notice(f"resuming: {done} of {len(sources)} source(s) already curated are skipped")
    run_jobs(jobs, workers, engine, ray_address, progress)
    parts = [json.loads((out / "parts" / f"{i:06d}.json").read_text()) for i in range(len(sources))]
    bad = [p for p in parts if p["status"] != "ok"]
    if len(bad) == len(parts):
        raise VidiffError(f"none of the {len(parts)} video(s) in {raw} could be read ({bad[0]['error']})")
    for p in bad:
        notice(f"skipped {p['source']}: {p['error']}")
    manifest = {"raw": str(raw.resolve()), "config": asdict(cfg), "engine": engine,
                "sources": [{k: p.get(k) for k in ("source", "index", "status", "error", "frames", "fps",
                                                   "width", "height", "cuts", "codec")} for p in parts],
                "clips": [c for p in parts for c in p["clips"]]}
    return _finish(out, manifest, filters, shard_size)


def refilter(dataset: str | Path, shard_size: int | None = None, **thresholds) -> dict:
    """Apply new thresholds (Filters fields; None = keep the dataset's) from the manifest's scores and
    rewrite the shards, manifest and report; nothing is decoded or measured again."""
    dataset = Path(dataset)
    if not (dataset / MANIFEST).is_file():
        raise VidiffError(f"{dataset} holds no {MANIFEST}; give a folder written by vidiff data curate")
    manifest = json.loads((dataset / MANIFEST).read_text())
    known = {f.name for f in fields(Filters)}
    unknown = set(thresholds) - known
    if unknown:
        raise VidiffError(f"unknown filter(s) {sorted(unknown)}; known: {sorted(known)}")
    f = replace(Filters(**manifest["filters"]), **{k: v for k, v in thresholds.items() if v is not None})
    return _finish(dataset, manifest, f, shard_size or manifest.get("shard_size", 256))


def _finish(out: Path, manifest: dict, filters: Filters, shard_size: int) -> dict:
    """Filters, shards, manifest and report from the parts' records."""
    from .curate_report import write_report

    clips = manifest["clips"]
    counts = apply_filters(clips, filters)
    kept = [c for c in clips if c["keep"]]
    n_shards = math.ceil(len(kept) / shard_size)
    for c in clips:
        c.pop("shard", None)
    for s in range(n_shards):
        group = kept[s * shard_size:(s + 1) * shard_size]
        for j, c in enumerate(group):
            c["shard"], c["index"] = f"{s:06d}.tar", s * shard_size + j
        _write_shard(out, out / f"{s:06d}.tar", group)
    for stale in sorted(out.glob("[0-9]" * 6 + ".tar"))[n_shards:]:
        stale.unlink()
    counts["sources"] = len(manifest["sources"])
    counts["unreadable"] = sum(s["status"] != "ok" for s in manifest["sources"])
    counts["shards"] = n_shards
    counts["reencoded"] = sum(c["reencoded"] for c in kept)
    manifest.update(filters=asdict(filters), counts=counts, shard_size=shard_size,
                    shards=f"{{000000..{max(n_shards - 1, 0):06d}}}.tar")
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1))
    write_report(out, manifest)
    return counts


def _shard_record(c: dict) -> dict:
    return {k: c[k] for k in ("key", "index", "source", "start", "frames", "fps", "width", "height",
                              "reencoded", "caption", "scores")}


def _write_shard(out: Path, path: Path, clips: list[dict]) -> None:
    """One WebDataset shard (KEY.mp4, KEY.json), skipped when an identical one is there (resume)."""
    want = [f"{c['key']}.{ext}" for c in clips for ext in ("mp4", "json")]
    records = {c["key"]: json.dumps(_shard_record(c)).encode() for c in clips}
    if path.exists():
        try:
            with tarfile.open(path) as t:
                same = t.getnames() == want and all(
                    t.extractfile(f"{k}.json").read() == v for k, v in records.items())
            if same:
                return
        except (tarfile.TarError, OSError, KeyError):
            pass
    by_part: dict[str, list[dict]] = {}
    for c in clips:
        by_part.setdefault(c["key"].split("_")[0], []).append(c)
    videos = {}
    for part, cs in by_part.items():
        with tarfile.open(out / "parts" / f"{part}.tar") as t:
            for c in cs:
                videos[c["key"]] = t.extractfile(f"{c['key']}.mp4").read()
    with atomic_path(path) as tmp, tarfile.open(tmp, "w") as tar:
        for c in clips:
            _add(tar, f"{c['key']}.mp4", videos[c["key"]])
            _add(tar, f"{c['key']}.json", records[c["key"]])


def read_thumbnails(out: Path, keys: list[str]) -> dict[str, np.ndarray]:
    """RGB thumbnails (96 px high) of clips, from the parts."""
    res, by_part = {}, {}
    for k in keys:
        by_part.setdefault(k.split("_")[0], []).append(k)
    for part, ks in by_part.items():
        with tarfile.open(out / "parts" / f"{part}.tar") as t:
            for k in ks:
                buf = np.frombuffer(t.extractfile(f"{k}.thumb.png").read(), np.uint8)
                res[k] = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return res
