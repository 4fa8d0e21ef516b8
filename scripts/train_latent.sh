#!/usr/bin/env bash
# Trains shapes-latent-128, a latent video diffusion model of 16x128x128 moving shapes, on a CPU:
#   1. encodes the 128 px shapes videos once with the autoencoder (default the bundled vae-tiny, from
#      scripts/train_vae.sh) into a latent cache (latents 4x16x32x32, scaling factor 1/std recorded),
#   2. trains the unet-nano-joint backbone on the cache for EQUAL minutes (default 10), samples 64 videos (25 DDIM
#      steps, decoded to pixels) and scores them with the shapes checker at 128 px, then resumes the same run to
#      MINUTES in all when that is more (default: no second stage) and scores it again (the checkpoint records its autoencoder),
#   3. with BASELINE=1, trains the same backbone in pixel space on the same 128x128 videos for EQUAL minutes and
#      scores it the same way: what latent diffusion buys at equal wall clock,
#   4. copies the latent model to models/shapes-latent-128.
# Usage: [VAE=runs/vae-tiny] [BASELINE=1] [EQUAL=10] [MINUTES=10] bash scripts/train_latent.sh [`vidiff train` flags]
source "$(dirname "$0")/common.sh"
VAE=${VAE:-vae-tiny}
RUN=runs/shapes-latent-128
EQUAL=${EQUAL:-10}
MINUTES=${MINUTES:-$EQUAL}

score() {  # score RUN NAME: 64 samples, 25 DDIM steps, the shapes checker
    $VIDIFF sample --model "$1" --num 64 --steps 25 --out "$1/eval" --name "$2" --format npy,mp4 --overwrite
    $VIDIFF data check "$1/eval/$2.npy" | tee "$1/eval/$2.check.txt"
}

[ -s data/shapes128/metadata.jsonl ] ||
    $VIDIFF data synth shapes data/shapes128 --num 500 --frames 16 --size 128 --seed 0
cached_for data/shapes128-latents "$VAE" || rm -rf data/shapes128-latents
[ -s data/shapes128-latents/index.json ] ||
    $VIDIFF vae encode data/shapes128 --vae "$VAE" --out data/shapes128-latents --frames 16 --size 128
LATENT="--data data/shapes128-latents --model unet-nano-joint --out $RUN --batch 8 --save-every 500"
$VIDIFF train $LATENT --minutes "$EQUAL" "$@"
score $RUN "samples-${EQUAL}min"
if [ "$MINUTES" != "$EQUAL" ]; then
    $VIDIFF train $LATENT --minutes "$MINUTES" --resume "$@"
    score $RUN "samples-${MINUTES}min"
fi
rm -rf models/shapes-latent-128
$VIDIFF export $RUN models/shapes-latent-128

if [ "${BASELINE:-0}" = 1 ]; then
    BASE=runs/shapes-pixel-128
    $VIDIFF train --data data/shapes128 --frames 16 --size 128 --model unet-nano-joint --out $BASE \
        --minutes "$EQUAL" --batch 8 "$@"
    score $BASE "samples-${EQUAL}min"
fi
