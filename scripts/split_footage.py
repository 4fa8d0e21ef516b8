"""Cut each footage video into training clips (its first 80 %) and held-out video (its last 20 %), as MP4s.

    python scripts/split_footage.py data/footage data/footage-split --size 128 --clip 32 --stride 32
    python scripts/split_footage.py data/footage data/footage64 --size 64 --clip 16 --stride 8 --heldout-clip 16

Frames are resized so the shorter side is `--size`. Training clips of `--clip` frames start every `--stride`
frames of the first 80 % (named STEM-NNN by clip index when they do not overlap, else STEM-FFFF by first
frame); the last 20 % is written whole, or as consecutive `--heldout-clip`-frame clips (STEM-FFFF).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from vidiff.data.dataset import resize_short_side
from vidiff.data.io import read_video, write_mp4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="folder of .avi footage")
    ap.add_argument("out", type=Path, help="writes OUT/train and OUT/heldout")
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--clip", type=int, required=True)
    ap.add_argument("--stride", type=int, required=True)
    ap.add_argument("--heldout-clip", type=int, default=0, help="0: the held-out part as one video")
    ap.add_argument("--fps", type=float, default=25.0)
    args = ap.parse_args()
    for src in sorted(args.src.glob("*.avi")):
        v = resize_short_side(read_video(src), args.size)  # (F, H, W, 3)
        cut = int(len(v) * 0.8)
        for k in range(0, cut - args.clip + 1, args.stride):
            name = f"{src.stem}-{k // args.clip:03d}.mp4" if args.stride == args.clip else f"{src.stem}-{k:04d}.mp4"
            write_mp4(args.out / "train" / name, v[k:k + args.clip], fps=args.fps)
        if not args.heldout_clip:
            write_mp4(args.out / "heldout" / f"{src.stem}.mp4", v[cut:], fps=args.fps)
            continue
        for k in range(cut, len(v) - args.heldout_clip + 1, args.heldout_clip):
            write_mp4(args.out / "heldout" / f"{src.stem}-{k:04d}.mp4", v[k:k + args.heldout_clip], fps=args.fps)


if __name__ == "__main__":
    main()
