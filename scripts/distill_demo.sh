#!/usr/bin/env bash
# Progressive distillation of the bundled shapes-tiny (Salimans & Ho 2022, Algorithm 2) on a CPU:
#   64 DDIM steps -> 32 -> 16 -> 8 -> 4 (4 rounds), each round a checkpoint runs/distill-shapes/steps-N,
# then 64 samples per model are scored with the shapes checker: the teacher at 64, 8 and 4 DDIM steps
# against the 8- and 4-step students (same seeds). shapes-tiny ships an autoguidance guide, so round 1
# distils the *guided* teacher (Meng et al. 2023) and the students sample it with one forward per step;
# the unguided teacher at 64 steps is scored too (pass --autoguidance 0 to distil the plain teacher).
# 500 updates per round (a step budget, so a rerun reproduces the documented figures; distillation 15 min and
# evaluation 3 min on 2 cores).
# Usage: bash scripts/distill_demo.sh [extra `vidiff distill` flags, e.g. --steps-per-round 2000]
source "$(dirname "$0")/common.sh"
OUT=runs/distill-shapes

ensure_shapes_data
$VIDIFF distill shapes-tiny --data data/shapes --out $OUT --rounds 4 --start-steps 64 \
    --steps-per-round 500 --batch 8 --lr 1e-4 "$@"

SAMPLE="$VIDIFF sample --num 64 --sampler ddim --seed 0 --out $OUT/eval --format npy"
for steps in 64 8 4; do
    $SAMPLE --model shapes-tiny --steps $steps --name teacher-$steps
done
$SAMPLE --model shapes-tiny --steps 64 --autoguidance 0 --name teacher-64-unguided
for steps in 8 4; do
    $SAMPLE --model $OUT/steps-$steps --steps $steps --name student-$steps
done
for name in teacher-64 teacher-64-unguided teacher-8 student-8 teacher-4 student-4; do
    echo "== $name"
    $VIDIFF data check $OUT/eval/$name.npy
done
