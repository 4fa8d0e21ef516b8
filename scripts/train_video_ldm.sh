#!/usr/bin/env bash
# The bundled image model `shapes-image-tiny` and its Video LDM `shapes-vldm-tiny`, on a CPU:
#   1. generates the synthetic moving-shapes dataset if missing (seed 0),
#   2. benchmarks/bench_video_ldm.py: unet-nano-joint trained on single frames (temporal none) for
#      IMAGE_MINUTES, then Video LDM (--init-image it, --train temporal: the α-merged temporal layers only) and
#      the same architecture from scratch for MINUTES each, scored by the shapes checker (64 samples),
#   3. exports the image model and the Video LDM model (EMA weights + config) into models/.
# Usage: IMAGE_MINUTES=8 MINUTES=8 bash scripts/train_video_ldm.sh
source "$(dirname "$0")/common.sh"
IMAGE_MINUTES=${IMAGE_MINUTES:-8}
MINUTES=${MINUTES:-8}

ensure_shapes_data
$PY benchmarks/bench_video_ldm.py --data data/shapes --image-minutes "$IMAGE_MINUTES" --minutes "$MINUTES" \
    --out runs/bench-vldm --json runs/bench-vldm.json
$VIDIFF export runs/bench-vldm/image models/shapes-image-tiny
$VIDIFF export runs/bench-vldm/video_ldm models/shapes-vldm-tiny
