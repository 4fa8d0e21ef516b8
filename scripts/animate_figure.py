"""docs/animate.gif: a held-out procedural scene's true motion (left) next to `vidiff animate` of its
first frame with the bundled motion model (right; seed 0, --loop), every 3rd frame of one period.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/animate_figure.py [--out docs/animate.gif]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from vidiff.data import io
from vidiff.dynamics.animate import BUNDLED_MOTION as BUNDLED
from vidiff.dynamics.procedural import make_scene


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/animate.gif"))
    ap.add_argument("--scene", type=int, default=12345 * 1000, help="scene seed (bench_motion's first held-out scene)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--every", type=int, default=3)
    args = ap.parse_args(argv)
    cfg = json.loads((BUNDLED / "config.json").read_text())["motion_model"]  # the scene the model was trained on
    period, k = cfg["period"], cfg["k"]
    sc = make_scene(args.scene, (args.size, args.size), period, k)
    with tempfile.TemporaryDirectory() as tmp:
        photo, video = Path(tmp) / "photo.png", Path(tmp) / "anim.npy"
        Image.fromarray(sc.image).save(photo)
        subprocess.run([str(Path(sys.executable).parent / "vidiff"), "animate", str(photo), "--out", str(video),
                        "--frames", str(period), "--loop", "--seed", "0"], check=True)
        pred = np.load(video)
    true = sc.video[::args.every]
    pred = pred[::args.every][:len(true)]
    gap = np.full((len(true), args.size, 4, 3), 255, np.uint8)
    return io.write_gif(args.out, np.concatenate([true, gap, pred], axis=2), fps=10)


if __name__ == "__main__":
    print(main())
