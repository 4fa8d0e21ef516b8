#!/usr/bin/env bash
# Reproduces the bundled demo model `shapes-tiny` from scratch on a CPU:
#   1. generates the synthetic moving-shapes dataset (deterministic, seed 0),
#   2. trains unet-nano-joint with configs/shapes-tiny.yaml (16000 steps, ~76 minutes, capped at 88),
#   3. exports EMA weights + config into src/vidiff/weights/shapes-tiny, with the EMA snapshot of
#      step 4500 as its autoguidance guide (guide/); default weight 3 while t > 0.25 (log-SNR < -1),
#      0.5 after (README),
#   4. scores 64 samples (DDPM 50, as `make demo`) and the real data with the shapes checker.
# Usage: bash scripts/train_demo.sh [extra `vidiff train` flags, e.g. --minutes 75]
source "$(dirname "$0")/common.sh"

ensure_shapes_data
$VIDIFF train --config configs/shapes-tiny.yaml "$@"
$VIDIFF export runs/shapes-tiny src/vidiff/weights/shapes-tiny \
    --guide runs/shapes-tiny/snapshots/step_0004500 --autoguidance 0.5 --autoguidance-high-noise 3 --logsnr-split -1
$VIDIFF sample --model shapes-tiny --num 64 --sampler ddpm --steps 50 --seed 0 --out runs/shapes-tiny/eval --name samples --format npy
$VIDIFF data check runs/shapes-tiny/eval/samples.npy
$VIDIFF data check data/shapes
