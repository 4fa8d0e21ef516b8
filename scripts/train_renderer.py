"""Train the learned renderer of Generative Image Dynamics on procedural frame pairs and score it.

    python scripts/train_renderer.py --out runs/renderer [--scenes 256 --steps 4000 --batch 8 --channels 12,24,48]
        [--vgg vgg16.pth]

Training pairs are (I_0, F_t, I_t) from `make_scene` seeds 0..scenes-1 (64x64, one 60-frame period,
K = 16), scene and t drawn at random by the trainer core's `StepBatches`; the loss is L1 + multi-scale
gradient (+ VGG16 perceptual loss when a local torchvision VGG16 file is given). The score uses the protocol of
benchmarks/bench_dynamics.py
on its held-out seeds 1000..1005: PSNR against the true frame t = 5, 11, ..., 59 when rendering the
true motion, for the learned renderer, the non-learned `SplatRenderer` and the frozen input frame,
all in the same run. Writes OUT (model.safetensors + config.json; `vidiff animate --renderer OUT`)
and OUT/score.json.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from vidiff.dynamics.procedural import make_scene
from vidiff.dynamics.render import (
    ImageRenderer,
    PerceptualLoss,
    RendererConfig,
    ScenePairs,
    SplatRenderer,
    load_vgg16_features,
    save_renderer,
    train_renderer,
)
from vidiff.dynamics.spectral import motion_texture
from vidiff.metrics.image import psnr
from vidiff.training import StepBatches
from vidiff.utils import atomic_write_text

SIZE, PERIOD, K = (64, 64), 60, 16
HELD_OUT = range(1000, 1006)  # bench_dynamics.py's quality scenes


def _psnr(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """PSNR of a frame written as uint8 (as the bench does), (1, 3, H, W) in [-1, 1]."""
    q = pred.clamp(-1, 1).add(1).mul(127.5).round() / 127.5 - 1
    return float(psnr(q[:, :, None], truth[:, :, None]))  # frames axis of one


def score(renderers: dict, seeds=HELD_OUT) -> dict:
    """Mean PSNR (dB) of each renderer's frames against the true frames, rendering the true motion."""
    out = {name: [] for name in [*renderers, "frozen input frame"]}
    for seed in seeds:
        sc = make_scene(seed, SIZE, frames=PERIOD, k=K)
        img = torch.from_numpy(sc.image).permute(2, 0, 1)[None].float() / 127.5 - 1  # (1, 3, H, W)
        for t in range(5, PERIOD, 6):
            truth = torch.from_numpy(sc.video[t]).permute(2, 0, 1)[None].float() / 127.5 - 1
            flow = motion_texture(sc.spectral_volume, float(t), PERIOD)[None]  # (1, 2, H, W)
            with torch.no_grad():
                for name, r in renderers.items():
                    out[name].append(_psnr(r(img, flow), truth))
            out["frozen input frame"].append(_psnr(img, truth))
    return {name: float(np.mean(v)) for name, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenes", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels", default="12,24,48", help="channels per pyramid level, comma-separated")
    ap.add_argument("--vgg", default=None, help="local torchvision VGG16 state dict for the perceptual loss")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    scenes = [make_scene(s, SIZE, frames=PERIOD, k=K) for s in tqdm(range(args.scenes), desc="scenes")]
    model = ImageRenderer(RendererConfig(channels=tuple(int(c) for c in args.channels.split(","))))
    perceptual = PerceptualLoss(load_vgg16_features(args.vgg)) if args.vgg else None
    bar = tqdm(total=args.steps, desc="training renderer", unit="step")

    def show(step: int, loss: float) -> None:
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss:.4f}")

    t0 = time.perf_counter()
    losses = train_renderer(model, StepBatches(ScenePairs(scenes), args.batch, seed=args.seed), args.steps,
                            lr=args.lr, perceptual=perceptual, callback=show, seed=args.seed)
    bar.close()
    minutes = (time.perf_counter() - t0) / 60
    out = Path(args.out)
    save_renderer(out, model)
    result = {"psnr_db": score({"learned renderer": model, "SplatRenderer": SplatRenderer()}),
              "train": {**vars(args), "minutes": round(minutes, 2), "first_loss": losses[0],
                        "last_loss": float(np.mean(losses[-50:]))}}
    atomic_write_text(out / "score.json", json.dumps(result, indent=2) + "\n")
    print(f"trained {args.steps} steps in {minutes:.1f} min -> {out}")
    for name, v in result["psnr_db"].items():
        print(f"  {name}: {v:.2f} dB")


if __name__ == "__main__":
    main()
