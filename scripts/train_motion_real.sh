#!/usr/bin/env bash
# A motion model for `vidiff animate` that has seen real footage, on a CPU, then scored against the bundled
# procedural-only model on held-out real frames (benchmarks/bench_motion_real.py):
#   1. scripts/get_footage.sh: OpenCV's sample videos (data/footage) and photos (data/photos);
#   2. bench_motion_real.py --prepare: data/motion_real/videos = the first 38 distinct frames of tree.avi
#      (its frames 38..53 are held out for the benchmark), vtest.avi and Megamind.avi (the camera-motion
#      filter decides what is usable); data/motion_real/photos = the sample photos minus the benchmark's
#      test photos (building.jpg, home.jpg), plus scikit-image's sample photos when it is installed —
#      semi-synthetic pairs: their vegetation moves with spectra extracted from the real clips;
#   3. `vidiff dynamics train`: 16-frame clips at 2.27 frames/s, the rate of tree.avi's 68 distinct frames (each
#      shown 5-7 times; the other videos are resampled to it, so a frequency index means the same Hz everywhere),
#      K = 8 frequencies, 32x32 model, clip starts every 2 frames, the renderer fine-tuned too;
#      MINUTES (default 60) of training on 2 CPU cores after about 2 minutes of optical flow;
#   4. the benchmark: motion on rigid vs moving regions of the test photos and of the held-out tree frame,
#      and the predicted vs extracted spectral volume of the held-out part of tree.avi.
# Usage: MINUTES=60 bash scripts/train_motion_real.sh
source "$(dirname "$0")/common.sh"
MINUTES=${MINUTES:-60}
OUT=${OUT:-runs/motion-real}

bash scripts/get_footage.sh
$PY benchmarks/bench_motion_real.py --prepare data/motion_real
$VIDIFF dynamics train --videos data/motion_real/videos --photos data/motion_real/photos --out "$OUT" \
    --frames 16 --k 8 --size 32 --stride 2 --fps 2.27 --minutes "$MINUTES" --renderer
$PY benchmarks/bench_motion_real.py --model "real footage=$OUT" --model "procedural (bundled)=src/vidiff/weights/motion" \
    --out "$OUT/bench.json"
