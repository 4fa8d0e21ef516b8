#!/usr/bin/env bash
# Recipe of a tiny text-to-image shapes model, the image model `vidiff t2v-zero` and `vidiff tune-a-video`
# adapt to video (needs `pip install -e ".[text]"`; not bundled):
#   1. generates the synthetic moving-shapes dataset with captions if missing (seed 0),
#   2. trains unet-nano-image (temporal none, per-frame attention, 0.72 M parameters) on single frames
#      of those clips with their captions (--frames 1: every clip gives one random frame per step),
#      MiniLM text conditioning with 10 % caption dropout for classifier-free guidance,
#   3. exports the EMA weights + config into models/shapes-t2i-tiny,
#   4. makes one Text2Video-Zero video and one Tune-A-Video edit of a training clip from it,
#   5. measures both methods (benchmarks/bench_adapt.py: 32 Text2Video-Zero prompts against sampling every
#      frame alone, 8 held-out clips tuned 300 steps and edited) into runs/shapes-t2i-tiny/bench_adapt.json.
# Usage: bash scripts/train_t2i.sh [extra `vidiff train` flags, e.g. --minutes 60 --steps 20000]
source "$(dirname "$0")/common.sh"
export HF_HUB_OFFLINE=1

ensure_shapes_data
$VIDIFF train --data data/shapes --out runs/shapes-t2i-tiny --model unet-nano-image --frames 1 --size 32 \
    --condition text --cond-drop 0.1 --captions random --batch 32 --lr 2e-4 --steps 20000 --seed 0 "$@"
$VIDIFF export runs/shapes-t2i-tiny models/shapes-t2i-tiny
$VIDIFF t2v-zero --model models/shapes-t2i-tiny --prompt "a red circle" --frames 8 --motion 2,0 \
    --guidance 3 --smooth-background --out outputs/t2v_zero --overwrite
CLIP=data/shapes/shape_00000.mp4
CAPTION=$($PY -c "import json; print(next(r['caption'] for r in map(json.loads, open('data/shapes/metadata.jsonl'))
                   if r['file'] == 'shape_00000.mp4'))")
$VIDIFF tune-a-video "$CLIP" --model models/shapes-t2i-tiny --frames 8 --prompt "$CAPTION" \
    --steps 300 --lr 1e-4 --out runs/shapes-t2i-tiny-tav --overwrite
$VIDIFF edit "$CLIP" --model runs/shapes-t2i-tiny-tav --prompt "a blue square" --out outputs/tav_edit.mp4
$PY benchmarks/bench_adapt.py --model models/shapes-t2i-tiny --num 32 --tav-num 8 --tav-steps 300 \
    --out runs/shapes-t2i-tiny/bench_adapt.json
