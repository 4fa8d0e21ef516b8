#!/usr/bin/env bash
# Trains the trajectory-controlled shapes model `shapes-trajectory-tiny` on a CPU:
#   1. generates the synthetic moving-shapes dataset if missing (seed 0),
#   2. fine-tunes src/vidiff/weights/shapes-tiny with condition "trajectory" (each clip's own object track as
#      heat-map + flow channels; configs/shapes-trajectory-tiny.yaml, 6000 steps, ~25 min, capped at 40),
#   3. exports EMA weights + config into models/shapes-trajectory-tiny,
#   4. benchmarks it (benchmarks/bench_trajectory.py: 64 held-out paths, against the unconditional shapes-tiny;
#      physics guidance on and off at equal steps).
# Usage: bash scripts/train_trajectory.sh [extra `vidiff train` flags, e.g. --minutes 20]
source "$(dirname "$0")/common.sh"

ensure_shapes_data
$VIDIFF train --config configs/shapes-trajectory-tiny.yaml "$@"
$VIDIFF export runs/shapes-trajectory-tiny models/shapes-trajectory-tiny
$PY benchmarks/bench_trajectory.py --model models/shapes-trajectory-tiny --baseline shapes-tiny --num 64 \
    --out runs/shapes-trajectory-tiny/bench_trajectory.json
