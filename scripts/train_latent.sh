#!/usr/bin/env bash
# Trains shapes-latent-128, a latent video diffusion model of 16x128x128 moving shapes, on a CPU:
#   1. encodes the 128 px shapes videos once with the autoencoder (default the bundled vae-tiny, from
#      scripts/train_vae.sh) into a latent cache (latents 16x32x32x4, scaling factor 1/std recorded),
#   2. trains the unet-nano-joint backbone on the cache for 90 minutes (the checkpoint records its autoencoder),
#   3. samples 64 videos (decoded to pixels) and scores them with the shapes checker,
#   4. with BASELINE=1, trains the same backbone in pixel space on the same 128x128 videos for the same wall
#      clock and scores it the same way (what latent diffusion buys).
# Usage: VAE=runs/vae-tiny BASELINE=1 bash scripts/train_latent.sh [extra `vidiff train` flags]
source "$(dirname "$0")/common.sh"
VAE=${VAE:-vae-tiny}
RUN=runs/shapes-latent-128
MINUTES=${MINUTES:-90}

[ -s data/shapes128/metadata.jsonl ] ||
    $VIDIFF data synth shapes data/shapes128 --num 500 --frames 16 --size 128 --seed 0
[ -s data/shapes128-latents/index.json ] ||
    $VIDIFF vae encode data/shapes128 --vae "$VAE" --out data/shapes128-latents --frames 16 --size 128
$VIDIFF train --data data/shapes128-latents --model unet-nano-joint --out $RUN --minutes "$MINUTES" \
    --batch 8 "$@"
$VIDIFF sample --model $RUN --num 64 --steps 50 --out $RUN/eval --name samples --format npy,mp4 --overwrite
$VIDIFF data check $RUN/eval/samples.npy

if [ "${BASELINE:-0}" = 1 ]; then
    BASE=runs/shapes-pixel-128
    $VIDIFF train --data data/shapes128 --frames 16 --size 128 --model unet-nano-joint --out $BASE \
        --minutes "$MINUTES" --batch 8 "$@"
    $VIDIFF sample --model $BASE --num 64 --steps 50 --out $BASE/eval --name samples --format npy,mp4 --overwrite
    $VIDIFF data check $BASE/eval/samples.npy
fi
