#!/usr/bin/env bash
# Trains the bundled video autoencoder vae-tiny on a CPU (KL, 4x spatial, 4 latent channels, conv3d temporal
# decoder fine-tuned with a 3D patch discriminator), in about 35 minutes on 2 cores:
#   1. moving shapes at 128x128 (500 videos of 16 frames, seed 0) and 50 held-out ones (seed 1),
#   2. real footage (scripts/get_footage.sh: OpenCV's tree, vtest, Megamind) at 128 px, each video split into
#      its first 80 % (training: cut into 32-frame clips, each linked 4 times, ~140 of the ~640 training videos)
#      and its last 20 % (held out),
#   3. Video LDM's two stages (Blattmann et al. 2023, §3.1.1): a per-frame autoencoder (no temporal layers, no
#      discriminator) on random 64x64 crops of 4-frame 128x128 clips for MINUTES_FRAME (default 20) minutes
#      (runs/vae-frame; fully convolutional, so it decodes whole frames), with a squared-error term next to L1
#      (--l2-weight 10: with L1 alone the small objects on black kept wrong colours at 17 dB after 46 minutes) and
#      8 GroupNorm groups; then its decoder gains identity-initialised conv3d temporal layers and is fine-tuned on
#      8-frame clips for MINUTES_VIDEO (default 8) minutes with the 3D patch discriminator (the encoder stays frozen,
#      so both stages share one latent space),
#   4. copies the autoencoder to models/vae-tiny (model.safetensors + config.json with its scaling factor),
#   5. scores held-out clips of both (benchmarks/bench_vae.py: PSNR, SSIM, flicker and warp error of the per-frame
#      vs the temporal decoder) and writes side-by-side reconstructions to runs/vae-tiny/recon.
# Usage: [MINUTES_FRAME=20] [MINUTES_VIDEO=8] bash scripts/train_vae.sh [extra `vidiff vae train` flags]
source "$(dirname "$0")/common.sh"
RUN=runs/vae-tiny

[ -s data/shapes128/metadata.jsonl ] ||
    $VIDIFF data synth shapes data/shapes128 --num 500 --frames 16 --size 128 --seed 0
[ -s data/shapes128-heldout/metadata.jsonl ] ||
    $VIDIFF data synth shapes data/shapes128-heldout --num 50 --frames 16 --size 128 --seed 1
bash scripts/get_footage.sh
[ -d data/footage-split ] ||
    $PY scripts/split_footage.py data/footage data/footage-split --size 128 --clip 32 --stride 32
# the training folder: links to the shapes videos and 4 links to each footage clip
mkdir -p data/vae-train/shapes data/vae-train/footage
for f in data/shapes128/*.mp4; do ln -sf "../../shapes128/$(basename "$f")" data/vae-train/shapes/; done
for f in data/footage-split/train/*.mp4; do
    for k in 1 2 3 4; do ln -sf "../../footage-split/train/$(basename "$f")" "data/vae-train/footage/$(basename "$f" .mp4)-$k.mp4"; done
done

COMMON="--data data/vae-train --size 128 --crop 64 --batch 2 --spatial-factor 4 --latent-channels 4 --norm-groups 8
        --l2-weight 10"
[ -s runs/vae-frame/model.safetensors ] ||
    $VIDIFF vae train $COMMON --frames 4 --out runs/vae-frame --minutes "${MINUTES_FRAME:-20}" --lr 6e-4 \
        --temporal none --disc-weight 0 "$@"
$VIDIFF vae train $COMMON --frames 8 --out $RUN --minutes "${MINUTES_VIDEO:-8}" --init runs/vae-frame --train decoder \
    --temporal conv3d --disc-start 200 --disc-weight 0.1 "$@"
mkdir -p models/vae-tiny
cp $RUN/model.safetensors $RUN/config.json models/vae-tiny/

$PY benchmarks/bench_vae.py --vae models/vae-tiny --per-frame runs/vae-frame --clips data/shapes128-heldout \
    --clips data/footage-split/heldout --frames 16 --size 128 --num 8
mkdir -p $RUN/recon
for f in data/shapes128-heldout/shape_0000{0,1,2,3}.mp4 data/footage-split/heldout/*.mp4; do
    echo "== $f"
    $VIDIFF vae recon "$f" --vae models/vae-tiny --frames 16 --size 128 --out "$RUN/recon/$(basename "$f" .mp4).mp4"
done
