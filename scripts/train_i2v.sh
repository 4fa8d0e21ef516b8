#!/usr/bin/env bash
# Reproduces the bundled image-to-video demo `shapes-i2v-tiny` on a CPU (from the sessions 6-13 demo model):
#   1. generates the synthetic moving-shapes dataset if missing (seed 0),
#   2. trains that base if runs/shapes-tiny-v1 is missing (configs/shapes-tiny-v1.yaml, ~88 min) and
#      fine-tunes it with first-frame conditioning (configs/shapes-i2v-tiny.yaml, ~20 min),
#   3. exports EMA weights + config into src/vidiff/weights/shapes-i2v-tiny, with the base's own
#      autoguidance guide (its step-1500 snapshot) widened to take the first frame with zero weights,
#      so the guide is a weaker model that ignores the frame (default weight 1),
#   4. scores 64 held-out first frames (DDPM 50) without guidance and with the default guidance.
# Usage: bash scripts/train_i2v.sh [extra `vidiff train` flags, e.g. --minutes 20]
source "$(dirname "$0")/common.sh"

ensure_shapes_data
ensure_v1_base
$VIDIFF train --config configs/shapes-i2v-tiny.yaml "$@"
$PY scripts/export_model.py runs/shapes-i2v-tiny src/vidiff/weights/shapes-i2v-tiny \
    --guide runs/shapes-tiny-v1/snapshots/step_0001500 --autoguidance 1
$PY scripts/eval_i2v.py --model shapes-i2v-tiny --num 64 --autoguidance 0 1 --out runs/shapes-i2v-tiny/eval_i2v.json
