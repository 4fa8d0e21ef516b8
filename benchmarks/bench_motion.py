"""Motion models of Generative Image Dynamics on held-out procedural scenes: the full model against
the paper's two ablations, with a zero-motion baseline and the true motion measured in the same run.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_motion.py \
        --model full=runs/motion --model independent=runs/motion/independent --model volume=runs/motion-volume

Per model, for `--scenes` procedural scenes never used in training (another seed than
scripts/train_motion.py): one spectral volume is sampled from the scene's first frame, then
  * amplitude error: mean | |S_pred| - |S_true| | / mean |S_true| over f >= 1 (zero motion = 1.0; phase-free,
    because the phase of each part is random and cannot be predicted from the image);
  * spectrum overlap: sum_f min(E_pred(f), E_true(f)) / sum_f E_true(f), E = total amplitude per
    frequency (1.0: all the motion energy at the right frequencies, in the right amount);
  * motion-map correlation: Pearson correlation over pixels of sum_f |S_f| (predicted vs true):
    does the motion sit on the parts that move, whatever its frequency;
  * PSNR / SSIM of frames rendered (softmax splat) from the predicted motion against the true video,
    every `--every`-th frame of one period. The random phases cap this: the row "true motion, random phase"
    renders the true amplitudes with new random phases, the best a phase-blind predictor can do.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from vidiff.dynamics.motion_model import load_motion_model, sample_motion
from vidiff.dynamics.procedural import make_scene
from vidiff.dynamics.render import SplatRenderer
from vidiff.dynamics.spectral import amplitude_error, motion_texture, rotate_phases, spectral_to_complex
from vidiff.metrics.image import psnr, ssim


def spectrum_scores(pred: torch.Tensor, true: torch.Tensor) -> tuple[float, float, float]:
    """(amplitude error, spectrum overlap, motion-map correlation) of (K, 4, H, W) volumes over f >= 1."""
    e, r = amplitude_error(pred, true)
    err = float(e / r.clamp_min(1e-12))
    a, b = spectral_to_complex(pred)[1:].abs(), spectral_to_complex(true)[1:].abs()  # (K-1, 2, H, W)
    ea, eb = a.sum((1, 2, 3)), b.sum((1, 2, 3))
    ma, mb = a.sum((0, 1)).flatten().double(), b.sum((0, 1)).flatten().double()  # where it moves: (H·W,)
    corr = float(torch.corrcoef(torch.stack([ma, mb]))[0, 1]) if ma.std() > 0 and mb.std() > 0 else 0.0
    return err, float(torch.minimum(ea, eb).sum() / eb.sum().clamp_min(1e-12)), corr


def render_scores(image: np.ndarray, video: np.ndarray, sv: torch.Tensor, period: int, every: int) -> tuple[float,
        float]:
    """Mean PSNR, SSIM of frames rendered from `sv` against the true frames t = every, 2·every, ..."""
    times = np.arange(every, period, every)
    img = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1  # (1, 3, H, W)
    with torch.no_grad():
        flows = motion_texture(sv, torch.as_tensor(times, dtype=torch.float32), period)  # (n, 2, H, W)
        frames = SplatRenderer()(img.expand(len(times), -1, -1, -1), flows).clamp(-1, 1)  # (n, 3, H, W)
    true = torch.from_numpy(video[times]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1  # (1, 3, n, H, W)
    fake = frames.permute(1, 0, 2, 3)[None]  # (1, 3, n, H, W)
    return float(psnr(fake, true).mean()), float(ssim(fake, true).mean())


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", default=[], help="NAME=FOLDER (repeatable)")
    ap.add_argument("--scenes", type=int, default=16)
    ap.add_argument("--seed", type=int, default=12345,
                    help="scene seeds seed*1000+i (training uses ProceduralDataset seeds)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=0.0, help="classifier-free guidance weight w (0: conditional)")
    ap.add_argument("--every", type=int, default=10, help="render every n-th frame of the period")
    ap.add_argument("--out", default=None, help="JSON report")
    args = ap.parse_args(argv)
    if not args.model:
        ap.error("give at least one --model NAME=FOLDER")
    models = {}
    for spec in args.model:
        name, _, folder = spec.partition("=")
        models[name] = load_motion_model(folder)
    cfg0 = next(iter(models.values())).cfg
    size, k, period = cfg0.size, cfg0.k, cfg0.period
    if any((m.cfg.size, m.cfg.k, m.cfg.period) != (size, k, period) for m in models.values()):
        raise SystemExit("all models must share size, k and period")

    scenes = [make_scene(args.seed * 1000 + i, (size, size), period, k) for i in range(args.scenes)]
    rows: dict[str, list] = {"zero motion": [], "true motion, random phase": [], "true motion": []}
    rows.update({n: [] for n in models})
    seconds = {n: 0.0 for n in models}
    for i, sc in enumerate(scenes):
        g = torch.Generator().manual_seed(i)
        true = sc.spectral_volume
        rows["zero motion"].append((1.0, 0.0, 0.0) + render_scores(sc.image, sc.video, torch.zeros_like(true), period,
                args.every))
        rand = rotate_phases(true, 2 * torch.pi * torch.rand(k, generator=g))  # the reference frame kept
        rows["true motion, random phase"].append(spectrum_scores(rand, true)
                                                 + render_scores(sc.image, sc.video, rand, period, args.every))
        rows["true motion"].append(spectrum_scores(true, true) + render_scores(sc.image, sc.video, true, period,
                args.every))
        img = torch.from_numpy(sc.image).permute(2, 0, 1)[None].float() / 127.5 - 1
        for name, m in models.items():
            t0 = time.perf_counter()
            # the same noise for every model on scene i: a row does not depend on which other models are listed
            pred = sample_motion(m, img, args.steps, cfg_scale=args.guidance,
                                 generator=torch.Generator().manual_seed(10_000 + i))[0]
            seconds[name] += time.perf_counter() - t0
            rows[name].append(spectrum_scores(pred, true) + render_scores(sc.image, sc.video, pred, period, args.every))

    print(f"\n{args.scenes} held-out scenes {size}x{size}, K={k}, period {period}; "
          f"{args.steps} DDIM steps, w={args.guidance}")
    print("\n| motion | amplitude error ↓ | spectrum overlap ↑ | motion-map corr ↑ | PSNR dB ↑ | SSIM ↑ | s / sample |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    report = {"scenes": args.scenes, "size": size, "k": k, "period": period, "steps": args.steps,
              "guidance": args.guidance, "rows": {}}
    for name, vals in rows.items():
        err, ov, corr, p, s = np.mean(np.array(vals), axis=0)
        sec = seconds.get(name, 0.0) / args.scenes
        report["rows"][name] = {"amplitude_error": err, "spectrum_overlap": ov, "motion_map_corr": corr, "psnr": p,
                                "ssim": s, "seconds": sec}
        print(f"| {name} | {err:.3f} | {ov:.3f} | {corr:.2f} | {p:.2f} | {s:.3f} | "
              + (f"{sec:.2f} |" if name in models else "|"))
    if args.out:
        from vidiff.utils import atomic_write_text

        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
