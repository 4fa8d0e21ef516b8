#!/usr/bin/env bash
# Reproduces the bundled text-to-video demo `shapes-t2v-tiny` on a CPU (needs `pip install -e ".[text]"`):
#   1. generates the synthetic moving-shapes dataset with captions if missing (seed 0),
#   2. fine-tunes src/vidiff/weights/shapes-tiny (scripts/train_demo.sh makes it) with text
#      conditioning on the four caption templates (configs/shapes-t2v-tiny.yaml, 6000 steps, ~32 min),
#   3. fine-tunes that run on caption variants, one of 9 captions per video and step
#      (configs/shapes-t2v-tiny-variants.yaml, 2000 steps, ~10 min),
#   4. exports the EMA weights + config into models/shapes-t2v-tiny, with shapes-tiny's guide
#      as its autoguidance guide (zero text layers added, so it ignores the prompt) and shapes-tiny's
#      default weights (3 while t > 0.25, 0.5 after),
#   5. scores 64 canonical prompts and 64 held-out paraphrases with the shapes checker (DDPM 50,
#      classifier-free guidance w = 0 and 3, the default autoguidance).
# Usage: bash scripts/train_t2v.sh [extra `vidiff train` flags, e.g. --minutes 60]
source "$(dirname "$0")/common.sh"
export HF_HUB_OFFLINE=1

ensure_shapes_data
$VIDIFF train --config configs/shapes-t2v-tiny.yaml "$@"
$VIDIFF train --config configs/shapes-t2v-tiny-variants.yaml "$@"
$VIDIFF export runs/shapes-t2v-tiny-variants models/shapes-t2v-tiny \
    --guide src/vidiff/weights/shapes-tiny/guide --autoguidance 0.5 --autoguidance-high-noise 3 --logsnr-split -1
$PY scripts/eval_t2v.py --model shapes-t2v-tiny --num 64 --guidance 0 3 --sampler ddpm --steps 50 \
    --out runs/shapes-t2v-tiny-variants/eval_t2v.json
