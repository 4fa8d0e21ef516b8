#!/usr/bin/env bash
# Trains the two super-resolution stages of the shapes cascade on a CPU (Imagen Video style):
#   1. generates the synthetic moving-shapes dataset if missing (seed 0),
#   2. trains the temporal SR stage  (configs/shapes-tsr-tiny.yaml: 16 frames from every 2nd, 16x16),
#   3. trains the spatial SR stage   (configs/shapes-ssr-tiny.yaml: 16x16 -> 32x32, noise augmentation),
#   4. exports both into models/shapes-tsr-tiny and models/shapes-ssr-tiny,
#   5. upsamples 16x16 data clips (8 frames, every 2nd frame) back to 16 frames of 32x32 as a smoke check,
#   6. scores both stages on 64 held-out clips against naive upsampling (benchmarks/bench_cascade.py,
#      DDPM 50 per stage, the setting docs/cascade_and_distill.md reports).
# About 70 minutes on 2 CPU cores (TSR 26 min, SSR 36 min, then ~7 min of evaluation).
# Usage: bash scripts/train_cascade.sh [extra `vidiff train` flags for both stages, e.g. --minutes 20]
source "$(dirname "$0")/common.sh"

ensure_shapes_data
$VIDIFF train --config configs/shapes-tsr-tiny.yaml "$@"
$VIDIFF export runs/shapes-tsr-tiny models/shapes-tsr-tiny
$VIDIFF train --config configs/shapes-ssr-tiny.yaml "$@"
$VIDIFF export runs/shapes-ssr-tiny models/shapes-ssr-tiny

# smoke check: a data clip at half the frame rate and half the size (8 frames of 16x16) -> 16 frames of 32x32
mkdir -p runs/cascade-check
$PY - <<'PY'
import numpy as np
from vidiff.data import io
from vidiff.data.dataset import resize_short_side
from vidiff.data.io import list_videos
clip = io.read_video(list_videos("data/shapes")[0])[:16]
io.write_npy("runs/cascade-check/low.npy", resize_short_side(clip, 16)[::2])  # (8, 16, 16, 3)
PY
$VIDIFF upsample runs/cascade-check/low.npy --tsr-model shapes-tsr-tiny --ssr-model shapes-ssr-tiny \
    --sampler ddpm --steps 50 --seed 0 --out runs/cascade-check --format mp4,gif,npy
$PY benchmarks/bench_cascade.py --sampler ddpm --steps 50 --out runs/cascade-check/bench_cascade.json
