#!/usr/bin/env bash
# Trains a Gen-1 editing model on the moving shapes on a CPU and measures it:
#   1. generates the synthetic moving-shapes dataset if missing (seed 0),
#   2. fine-tunes src/vidiff/weights/shapes-tiny (scripts/train_demo.sh makes it) with Canny-edge structure
#      and a jointly trained content encoder (configs/shapes-gen1-tiny.yaml: 32x32, 16 frames, pixel space,
#      4000 steps). A step cost about 1.25x a shapes-tiny step in CPU time (structure extraction: ~3% of
#      it), so an estimated 2.8 steps/s on 2 idle cores: ~24 min (`minutes: 40` caps it),
#   3. edits 64 held-out clips with references of another colour and shape at structure strengths 1, 0.5
#      and 0.25 and writes runs/shapes-gen1-tiny/bench_gen1.json (benchmarks/bench_gen1.py, ~5 min).
# Usage: bash scripts/train_gen1.sh [extra `vidiff train` flags, e.g. --minutes 20]
# Then: vidiff edit IN.mp4 --content REF.png --model runs/shapes-gen1-tiny --out OUT.mp4
source "$(dirname "$0")/common.sh"

ensure_shapes_data
$VIDIFF train --config configs/shapes-gen1-tiny.yaml "$@"
$PY benchmarks/bench_gen1.py --model runs/shapes-gen1-tiny --num 64 --out runs/shapes-gen1-tiny/bench_gen1.json
