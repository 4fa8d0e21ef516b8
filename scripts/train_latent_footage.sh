#!/usr/bin/env bash
# Trains footage-latent-64, a small latent video diffusion model of real footage (OpenCV's sample videos: a tree in
# wind, a pedestrian scene, an animated clip) at 16x64x64, on a CPU:
#   1. cuts the first 80 % of each video (scripts/get_footage.sh) into 16-frame clips every 8 frames (training) and
#      the last 20 % into consecutive 16-frame clips (held out), shorter side 64 px,
#   2. encodes the training clips with the autoencoder (default the bundled vae-tiny) into a latent cache
#      (latents 4x16x16x16, centre-cropped to 64x64),
#   3. trains unet-nano-joint on the cache for MINUTES (default 15),
#   4. samples 32 videos (25 DDIM steps, decoded to pixels; MP4 + GIF) and scores them against the held-out clips:
#      FVD with the labelled fallback extractor (no I3D weights ship), flicker and warp error,
#   5. copies the model to models/footage-latent-64.
# The data is three videos: the model learns their look, not open-domain video. Figures in docs/latent.md.
# Usage: [VAE=runs/vae-tiny] [MINUTES=15] bash scripts/train_latent_footage.sh [extra `vidiff train` flags]
source "$(dirname "$0")/common.sh"
VAE=${VAE:-vae-tiny}
RUN=runs/footage-latent-64
MINUTES=${MINUTES:-15}

bash scripts/get_footage.sh
[ -d data/footage64 ] ||
    $PY scripts/split_footage.py data/footage data/footage64 --size 64 --clip 16 --stride 8 --heldout-clip 16
cached_for data/footage64-latents "$VAE" || rm -rf data/footage64-latents
[ -s data/footage64-latents/index.json ] ||
    $VIDIFF vae encode data/footage64/train --vae "$VAE" --out data/footage64-latents --frames 16 --size 64
$VIDIFF train --data data/footage64-latents --model unet-nano-joint --out $RUN --batch 8 --minutes "$MINUTES" "$@"
$VIDIFF sample --model $RUN --num 32 --steps 25 --out $RUN/eval --name samples --format npy,mp4,gif --overwrite
$VIDIFF eval --real data/footage64/heldout --fake $RUN/eval/samples.npy --metrics fvd,flicker,warp --frames 16 \
    | tee $RUN/eval/eval.txt
echo "== reference: the training clips scored against the held-out ones (what a model that copied its data would get)"
$VIDIFF eval --real data/footage64/heldout --fake data/footage64/train --metrics fvd,flicker,warp --frames 16 \
    | tee $RUN/eval/reference.txt
rm -rf models/footage-latent-64
$VIDIFF export $RUN models/footage-latent-64
