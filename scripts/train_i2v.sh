#!/usr/bin/env bash
# Reproduces the bundled image-to-video demo `shapes-i2v-tiny` on a CPU (from the bundled demo model):
#   1. generates the synthetic moving-shapes dataset if missing (seed 0),
#   2. fine-tunes src/vidiff/weights/shapes-tiny (scripts/train_demo.sh makes it) with first-frame
#      conditioning (configs/shapes-i2v-tiny.yaml, 3000 steps, ~12 min),
#   3. exports EMA weights + config into models/shapes-i2v-tiny, with the base's own
#      autoguidance guide (its step-4500 snapshot) widened to take the first frame with zero weights,
#      so the guide is a weaker model that ignores the frame (default weight 1),
#   4. scores 64 held-out first frames (DDPM 50) without guidance and with the default guidance.
# Usage: bash scripts/train_i2v.sh [extra `vidiff train` flags, e.g. --minutes 20]
source "$(dirname "$0")/common.sh"

ensure_shapes_data
$VIDIFF train --config configs/shapes-i2v-tiny.yaml "$@"
$VIDIFF export runs/shapes-i2v-tiny models/shapes-i2v-tiny \
    --guide src/vidiff/weights/shapes-tiny/guide --autoguidance 1
$PY scripts/eval_i2v.py --model shapes-i2v-tiny --num 64 --autoguidance 0 1 --out runs/shapes-i2v-tiny/eval_i2v.json
