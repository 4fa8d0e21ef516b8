#!/usr/bin/env bash
# Reproduces the bundled motion model of `vidiff animate` (src/vidiff/weights/motion) on a CPU
# (about 145 minutes on 2 cores), then scores it against its ablations on held-out scenes:
#   1. a first run trains the slice VAE (1500 steps) and a sinusoidal-frequency-embedding model
#      (runs/motion: 3500 stage-1 + 1500 stage-2 steps; kept for the comparison),
#   2. the same VAE and normaliser with one-hot frequency maps (runs/motion-onehot),
#   3. the "volume" ablation (one 4K-channel latent) on the same VAE for 3500 steps (runs/motion-volume),
#   4. one-hot maps trained on canonical-phase targets (runs/motion-canon, --phase canonical; plain cosine schedule),
#   5. the bundled run: the same on the cosine schedule shifted by 16 (runs/motion-shift16, --schedule-shift 16;
#      26 min), and its "volume" ablation with the same schedule (runs/motion-shift16-volume),
#   6. exports runs/motion-shift16 and prints benchmarks/bench_motion.py's table (16 held-out scenes).
# 512 procedural scenes of 32x32, K = 16, period 150, batch 8, lr 5e-4, seed 0.
source "$(dirname "$0")/common.sh"
COMMON=(--size 32 --scenes 512 --heldout 16 --batch 8 --lr 5e-4)

$PY scripts/train_motion.py --out runs/motion "${COMMON[@]}" --freq-embedding sinusoidal \
    --vae-steps 1500 --stage1-steps 3500 --stage2-steps 1500
$PY scripts/train_motion.py --out runs/motion-onehot "${COMMON[@]}" --vae-from runs/motion --freq-embedding onehot \
    --stage1-steps 3500 --stage2-steps 1500
$PY scripts/train_motion.py --out runs/motion-volume "${COMMON[@]}" --vae-from runs/motion --mode volume \
    --stage1-steps 3500
$PY scripts/train_motion.py --out runs/motion-canon "${COMMON[@]}" --vae-from runs/motion --freq-embedding onehot \
    --phase canonical --stage1-steps 3500 --stage2-steps 1500
$PY scripts/train_motion.py --out runs/motion-shift16 "${COMMON[@]}" --vae-from runs/motion --freq-embedding onehot \
    --phase canonical --schedule-shift 16 --stage1-steps 3500 --stage2-steps 1500
$PY scripts/train_motion.py --out runs/motion-shift16-volume "${COMMON[@]}" --vae-from runs/motion --mode volume \
    --phase canonical --schedule-shift 16 --stage1-steps 3500
mkdir -p src/vidiff/weights/motion
cp runs/motion-shift16/model.safetensors runs/motion-shift16/config.json runs/motion-shift16/train_report.json \
    src/vidiff/weights/motion/
for w in 0 1; do
  $PY benchmarks/bench_motion.py --guidance $w --scenes 16 \
      --model "shift 16 (bundled)=runs/motion-shift16" --model "shift 16, independent=runs/motion-shift16/independent" \
      --model "shift 16, volume=runs/motion-shift16-volume" \
      --model "canonical phase (cosine)=runs/motion-canon" \
      --model "canonical phase, independent=runs/motion-canon/independent" \
      --model "coordinated (one-hot f)=runs/motion-onehot" --model "independent (one-hot f)=runs/motion-onehot/independent" \
      --model "volume=runs/motion-volume" --model "coordinated (sinusoidal f)=runs/motion" \
      --model "independent (sinusoidal f)=runs/motion/independent"
done
