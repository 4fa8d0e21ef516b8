#!/usr/bin/env bash
# Reproduces the bundled text-to-video demo `shapes-t2v-tiny` on a CPU (needs `pip install -e ".[text]"`):
#   1. generates the synthetic moving-shapes dataset with captions if missing (seed 0),
#   2. trains the sessions 6-13 demo model if runs/shapes-tiny-v1 is missing (~88 min) and fine-tunes
#      it with text conditioning (configs/shapes-t2v-tiny.yaml),
#   3. exports EMA weights + config into src/vidiff/weights/shapes-t2v-tiny,
#   4. scores 64 canonical prompts and 64 held-out paraphrases with the shapes checker.
# Usage: bash scripts/train_t2v.sh [extra `vidiff train` flags, e.g. --minutes 60]
source "$(dirname "$0")/common.sh"
export HF_HUB_OFFLINE=1

ensure_shapes_data
ensure_v1_base
$VIDIFF train --config configs/shapes-t2v-tiny.yaml "$@"
$PY scripts/export_model.py runs/shapes-t2v-tiny src/vidiff/weights/shapes-t2v-tiny
$PY scripts/eval_t2v.py --model shapes-t2v-tiny --num 64 --guidance 0 3 --out runs/shapes-t2v-tiny/eval_t2v.json
