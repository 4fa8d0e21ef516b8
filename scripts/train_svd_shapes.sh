#!/usr/bin/env bash
# Trains an SVD-style image-to-video model on 32x32 moving shapes on a CPU:
#   1. generates the synthetic moving-shapes dataset if missing (seed 0),
#   2. fine-tunes the bundled src/vidiff/weights/shapes-tiny with first-frame conditioning, noise
#      augmentation of that frame, its image embedding seen by cross-attention (--image-embed: a small
#      image encoder trained jointly, conditioning/image_embed.py), micro-conditions and EDM's training law:
#        motion (default): configs/shapes-svd-tiny.yaml, --micro fps,motion (the motion bucket measured
#                          from each training video's optical flow; ~1 min for 2000 videos, cached in the run)
#        speed:            configs/shapes-speed-tiny.yaml, --micro speed (metadata.jsonl's speed)
#      3000 steps each, about 12 min on 2 idle cores (28 min cap),
#   3. scores it with benchmarks/bench_svd_shapes.py (64 samples: Spearman of requested vs measured
#      motion bucket, or the share of samples within 10% of the requested speed; a few minutes).
# Then: vidiff sample --model runs/shapes-svd-tiny --image first.png --motion-bucket 127 --fps 8
# Usage: bash scripts/train_svd_shapes.sh [motion|speed] [extra `vidiff train` flags, e.g. --minutes 20]
source "$(dirname "$0")/common.sh"

variant=motion
if [[ $# -gt 0 && ( $1 == motion || $1 == speed ) ]]; then variant=$1; shift; fi
if [[ $variant == motion ]]; then name=shapes-svd-tiny; else name=shapes-speed-tiny; fi

ensure_shapes_data
$VIDIFF train --config configs/$name.yaml --image-embed "$@"
$PY benchmarks/bench_svd_shapes.py --model runs/$name --num 64 --control "$variant" --out runs/$name/bench_svd.json
