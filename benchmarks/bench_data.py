"""Data at scale: how fast `vidiff data curate` runs on 1 worker, a process pool and Ray, and how fast the
trainer's shard loader serves batches next to the folder loader.

    OMP_NUM_THREADS=2 python benchmarks/bench_data.py [--raw DIR] [--videos 8] [--workers 2] [--batches 30]
        [--train-steps 60]
    python benchmarks/bench_data.py --quick         # a reduced run that only checks the script works

Without --raw it writes `--videos` synthetic videos into a temporary folder: each is two shots (textures
panning in opposite directions) spliced together, so curation finds a cut and keeps two moving clips per
video. Measured in one run, as ratios against baselines from the same run:
  * curation throughput (source videos/s, the whole `curate()` call: cuts, flow motion, hashes, OCR when
    --ocr, shards, report) with 1 worker, a process pool of --workers and Ray Data with --workers (when Ray is
    installed; its start-up is included, as a user pays it);
  * loader throughput (batches/s of `--batch` clips of 16×32×32 after the first batch, and the seconds to the
    first batch) over the same kept clips: the curated WebDataset shards (`ShardClips` + `EpochBatches`, what
    `vidiff train --data SHARDS` uses) vs the clips as a folder of mp4 files decoded per item
    (`VideoDataset(cache=False)` + `StepBatches`) and vs the folder decoded into memory up front (the default
    `VideoDataset`, whose decode is the start-up time), each with 0 and --workers DataLoader workers;
  * training throughput (steps/s of `vidiff.train.train`, in process: unet-nano-joint on batches of `--batch`
    clips of 16×32×32, `--train-steps` steps on the CPU) reading the same clips as a folder (the default,
    decoded into memory before the first step; and decoded per item, `--no-cache`) and as the curated shards,
    with 0 and --workers DataLoader workers, after one untimed 2-step warm-up run. Steps/s are counted between
    the first and the last log entry (every `--train-steps`/12 steps), so the start-up is left out: the loop's
    seconds to the first entry (the first batch and steps) and the seconds outside the loop (dataset index or
    in-memory decode, model, DataLoader workers' start, final save and preview) are reported on their own.
"""
from __future__ import annotations

import argparse
import contextlib
import io as text_io
import json
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from vidiff.data import io
from vidiff.data.curate import CurateConfig, Filters, curate
from vidiff.data.dataset import VideoDataset
from vidiff.data.shards import ShardClips, expand_shards, iter_shard
from vidiff.train import TrainConfig, train
from vidiff.training.data import EpochBatches, StepBatches


def synthetic_videos(root: Path, n: int, frames: int, height: int = 72, width: int = 96) -> Path:
    """`n` videos of `frames` frames: two textured shots panning 1.5 px/frame in opposite directions."""
    root.mkdir(parents=True, exist_ok=True)
    half = frames // 2
    for i in range(n):
        shots = []
        for s, direction in ((2 * i, 1), (2 * i + 1, -1)):
            rng = np.random.default_rng(s)
            tex = cv2.GaussianBlur((rng.random((height + 8, width + 2 * half + 8, 3)) * 255).astype(np.uint8),
                                   (0, 0), 2)
            tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX)
            xs = [int(4 + 1.5 * f) for f in range(half)][::direction]
            shots.append(np.stack([tex[4:4 + height, x:x + width] for x in xs]))
        io.write_mp4(root / f"video_{i:03d}.mp4", np.concatenate(shots), fps=8)
    return root


def time_curation(raw: Path, work: Path, workers: int, engine: str, ocr: bool, n: int) -> dict:
    out = work / f"curated_{engine}_{workers}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = CurateConfig(min_frames=16, max_frames=24, min_scene_len=8, ocr=ocr)
    t = time.perf_counter()
    counts = curate(raw, out, cfg, Filters(), workers=workers, engine=engine, shard_size=8, progress=False)
    seconds = time.perf_counter() - t
    if engine == "ray":
        import ray

        ray.shutdown()
    return {"engine": engine, "workers": workers, "seconds": seconds, "videos_per_s": n / seconds,
            "kept": counts.get("kept"), "out": out}


def clips_as_folder(shards: Path, folder: Path) -> int:
    """The shards' clips written as KEY.mp4 files (the folder loader's input: the same clips)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for path in expand_shards(shards):
        for key, data, _ in iter_shard(path):
            (folder / f"{key}.mp4").write_bytes(data)
            n += 1
    return n


def time_loader(name: str, make, batches: int) -> dict:
    """Seconds to the first batch (dataset construction included) and batches/s over the next `batches`."""
    t = time.perf_counter()
    it = make()
    next(it)
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    per_s = batches / (time.perf_counter() - t)
    del it
    return {"loader": name, "first_batch_s": first, "batches_per_s": per_s}


def time_training(name: str, data: Path, out: Path, *, workers: int, cache: bool, steps: int, batch: int) -> dict:
    """`vidiff.train.train` for `steps` steps of unet-nano-joint at 16×32×32 reading `data`: steps/s between
    the first and the last log entry; the loop's seconds to the first entry (first batch included); the
    seconds outside the loop (dataset, model, DataLoader workers' start, final save and preview)."""
    every = max(1, steps // 12)
    cfg = TrainConfig(data=str(data), out=str(out), model="unet-nano-joint", frames=16, size=32, batch=batch,
                      steps=steps, log_every=every, save_every=0, sample_every=0, sample_steps=1, num_samples=1,
                      num_workers=workers, cache=cache, device="cpu")
    t = time.perf_counter()
    with contextlib.redirect_stderr(text_io.StringIO()):  # progress bars and the final line
        train(cfg)
    wall = time.perf_counter() - t
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    first, last = log[0], log[-1]
    per_s = (last["step"] - first["step"]) / (last["elapsed"] - first["elapsed"])
    # the loop's clock ("elapsed") starts after the dataset, the model and the DataLoader iterator are made and
    # stops before the last save and preview: what lies outside it is start-up (in-memory decode included) and
    # wrap-up
    return {"training": name, "steps_per_s": per_s, "first_log_step": first["step"],
            "first_log_s": first["elapsed"], "outside_loop_s": wall - last["elapsed"], "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", help="a folder of videos to curate (default: synthetic videos in a temp folder)")
    ap.add_argument("--videos", type=int, default=8, help="synthetic videos to write (without --raw)")
    ap.add_argument("--frames", type=int, default=48, help="frames per synthetic video (two shots)")
    ap.add_argument("--workers", type=int, default=2, help="process-pool / Ray / DataLoader workers")
    ap.add_argument("--batches", type=int, default=30, help="batches timed per loader (after the first)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--train-steps", type=int, default=60, help="training steps timed per data source (0: none)")
    ap.add_argument("--ocr", action="store_true", help="measure on-screen text too (needs tesseract)")
    ap.add_argument("--no-ray", action="store_true", help="leave Ray out even when it is installed")
    ap.add_argument("--quick", action="store_true",
                    help="3 videos, 1 curation worker (no pool, no Ray), 6 batches, 6 training steps: check that "
                         "the script works")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if args.quick:
        args.videos, args.batches = min(args.videos, 3), min(args.batches, 6)
        args.train_steps = min(args.train_steps, 6)

    work = Path(tempfile.mkdtemp(prefix="vidiff_bench_data_"))
    try:
        raw = Path(args.raw) if args.raw else synthetic_videos(work / "raw", args.videos, args.frames)
        n = len([p for p in raw.iterdir()]) if raw.is_dir() else 1
        runs = [("process", 1)] if args.quick else [("process", 1), ("process", args.workers)]
        try:
            import ray  # noqa: F401

            if not (args.no_ray or args.quick):
                runs.append(("ray", args.workers))
        except ImportError:
            print("Ray is not installed: its row is left out (pip install 'vidiff[data]')")
        curation = [time_curation(raw, work, w, engine, args.ocr, n) for engine, w in runs]
        base = curation[0]["videos_per_s"]
        print(f"\ncuration of {n} source videos ({'with' if args.ocr else 'without'} OCR)")
        print(f"{'engine':<10}{'workers':>8}{'seconds':>10}{'videos/s':>10}{'kept':>6}{'vs 1 worker':>13}")
        for r in curation:
            print(f"{r['engine']:<10}{r['workers']:>8}{r['seconds']:>10.2f}{r['videos_per_s']:>10.2f}"
                  f"{r['kept']:>6}{r['videos_per_s'] / base:>12.2f}x")

        shards = curation[0]["out"]
        folder = work / "clips"
        kept = clips_as_folder(shards, folder)
        frames, size, b = 16, 32, args.batch

        def folder_decoded(workers):
            return lambda: StepBatches(VideoDataset(folder, frames, size, cache=False, progress=False), b,
                                       num_workers=workers).iterate(0)

        def folder_memory(workers):
            return lambda: StepBatches(VideoDataset(folder, frames, size, progress=False), b,
                                       num_workers=workers).iterate(0)

        def shard_stream(workers):
            return lambda: EpochBatches(ShardClips(shards, frames, size), b, num_workers=workers).iterate(0)

        loaders = []
        for w in sorted({0, args.workers}):
            loaders += [time_loader(f"folder, decoded per item, {w} workers", folder_decoded(w), args.batches),
                        time_loader(f"folder, in memory, {w} workers", folder_memory(w), args.batches),
                        time_loader(f"shards, {w} workers", shard_stream(w), args.batches)]
        print(f"\nloaders over the {kept} kept clips: batches of {b} x 3x{frames}x{size}x{size}")
        print(f"{'loader':<40}{'first batch s':>14}{'batches/s':>11}")
        for r in loaders:
            print(f"{r['loader']:<40}{r['first_batch_s']:>14.2f}{r['batches_per_s']:>11.2f}")
        rows = {r["loader"]: r for r in loaders}
        ratios = {}
        if len(curation) > 1:
            for r in curation[1:]:
                ratios[f"curation {r['engine']} x{r['workers']} / 1 worker"] = r["videos_per_s"] / base
        for w in sorted({0, args.workers}):
            s = rows[f"shards, {w} workers"]["batches_per_s"]
            ratios[f"shards / folder decoded per item, {w} workers"] = \
                s / rows[f"folder, decoded per item, {w} workers"]["batches_per_s"]
            ratios[f"shards / folder in memory, {w} workers"] = s / rows[f"folder, in memory, {w} workers"][
                "batches_per_s"]
        if args.workers:
            ratios[f"shards {args.workers} workers / shards 0 workers"] = \
                rows[f"shards, {args.workers} workers"]["batches_per_s"] / rows["shards, 0 workers"]["batches_per_s"]
        training = []
        if args.train_steps:
            runs = [("folder, in memory", folder, 0, True)]
            for w in sorted({0, args.workers}):
                runs += [(f"folder, decoded per item, {w} workers", folder, w, False),
                         (f"shards, {w} workers", shards, w, True)]
            # untimed: one-time costs (lazy imports, first allocations, the preview sampler) fall on no row
            time_training("warm-up", folder, work / "train_warmup", workers=0, cache=False, steps=2, batch=b)
            training = [time_training(name, data, work / f"train_{i}", workers=w, cache=cache,
                                      steps=args.train_steps, batch=b)
                        for i, (name, data, w, cache) in enumerate(runs)]
            base_steps = training[0]["steps_per_s"]
            print(f"\ntraining (vidiff.train.train, unet-nano-joint, batches of {b} x 3x{frames}x{size}x{size}, "
                  f"{args.train_steps} steps, CPU) over the {kept} kept clips")
            print(f"{'data':<40}{'steps/s':>9}{'vs folder':>11}{'loop s to step k':>18}{'outside loop s':>16}")
            for r in training:
                print(f"{r['training']:<40}{r['steps_per_s']:>9.2f}{r['steps_per_s'] / base_steps:>10.2f}x"
                      f"{r['first_log_s']:>12.2f} @ {r['first_log_step']:<3}{r['outside_loop_s']:>16.2f}")
                if r is not training[0]:
                    ratios[f"training steps/s, {r['training']} / folder in memory"] = r["steps_per_s"] / base_steps
        print("\nratios (same run):")
        for k, v in ratios.items():
            print(f"  {k:<72}{v:6.2f}x")
        if args.json:
            result = {"curation": [{k: v for k, v in r.items() if k != "out"} for r in curation],
                      "loaders": loaders, "training": training, "ratios": ratios, "videos": n, "kept_clips": kept}
            Path(args.json).write_text(json.dumps(result, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
