"""Train the Generative Image Dynamics motion model on procedural scenes (vidiff.dynamics.procedural).

Stages (GID sec. 4): fit the frequency-adaptive normaliser -> train the slice VAE -> stage 1: the
2D denoiser on independent frequency slices -> stage 2: freeze it and train the cross-frequency
attention (mode "coordinated"). Modes "independent" and "volume" are the paper's ablations.
Finally reports the error of sampled vs true spectral volumes on held-out scenes.

    .venv/bin/python scripts/train_motion.py --out runs/motion --size 64 --k 16 --scenes 512 \
        --vae-steps 2000 --stage1-steps 20000 --stage2-steps 10000 --batch 16 --device cuda

The result folder (model.safetensors + config.json) is what `vidiff animate --motion-model DIR` loads;
copy it to src/vidiff/weights/motion/ to make it the bundled model.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from vidiff.dynamics.motion_model import (MotionModel, MotionModelConfig, coordinated_from_independent,
                                          load_motion_model, sample_motion, save_motion_model, train_diffusion,
                                          train_vae)
from vidiff.dynamics.normalize import FrequencyNormalizer
from vidiff.dynamics.procedural import ProceduralDataset
from vidiff.dynamics.spectral import amplitude_error
from vidiff.training import StepBatches, TensorItems, step_seed
from vidiff.utils import seed_everything


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--mode", choices=["coordinated", "independent", "volume"], default="coordinated")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--frames", type=int, default=150, help="period T of the procedural motion")
    ap.add_argument("--scenes", type=int, default=256, help="training scenes (generated once, cached in memory)")
    ap.add_argument("--heldout", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--vae-steps", type=int, default=1000)
    ap.add_argument("--vae-from", type=Path, default=None,
                    help="reuse the slice VAE and normaliser of this motion model (skips VAE training; for ablations)")
    ap.add_argument("--stage1-steps", type=int, default=5000)
    ap.add_argument("--stage2-steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--base-channels", type=int, default=32)
    ap.add_argument("--freq-embedding", choices=["sinusoidal", "onehot"], default="onehot")
    ap.add_argument("--image-encoder", choices=["area", "conv"], default="area",
                    help="conv: add features of a small full-resolution conv encoder of the photo to the condition")
    ap.add_argument("--phase", choices=["data", "canonical"], default="data",
                    help="canonical: train on volumes with each frequency's phase rotated to a real mean "
                         "(spectral.canonical_phase); sampling draws random phases")
    ap.add_argument("--schedule-shift", type=float, default=1.0,
                    help="train and sample on the cosine schedule shifted to lower SNR by this factor (1: cosine)")
    ap.add_argument("--sample-steps", type=int, default=25)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    seed_everything(args.seed)
    dev = torch.device(args.device)
    t0 = time.time()
    ds = ProceduralDataset(args.scenes + args.heldout, (args.size, args.size), args.frames, args.k, seed=args.seed)
    items = [ds[i] for i in tqdm(range(len(ds)), desc="scenes")]
    train, held = items[:args.scenes], items[args.scenes:]
    images = torch.stack([it["image"] for it in train])
    vols = torch.stack([it["spectral_volume"] for it in train])
    # each stage's batches: a pure function of (seed, stage, step) — the trainer core's StepBatches
    batches = {stage: StepBatches(TensorItems(image=images, spectral_volume=vols), args.batch,
                                  seed=step_seed(args.seed, stage))
               for stage in range(3)}

    cfg = MotionModelConfig(k=args.k, size=args.size, period=args.frames,
                            mode="independent" if args.mode == "coordinated" else args.mode,
                            base_channels=args.base_channels, freq_embedding=args.freq_embedding,
                            image_encoder=args.image_encoder, phase=args.phase,
                            schedule_shift=args.schedule_shift)
    if args.vae_from is not None:
        donor = load_motion_model(args.vae_from)
        if (donor.cfg.size, donor.cfg.k, donor.cfg.period) != (cfg.size, cfg.k, cfg.period):
            raise SystemExit(f"--vae-from {args.vae_from}: size/k/period {donor.cfg.size}/{donor.cfg.k}/"
                             f"{donor.cfg.period} differ from {cfg.size}/{cfg.k}/{cfg.period}")
        model = MotionModel(cfg, donor.normalizer).to(dev)
        model.vae.load_state_dict(donor.vae.state_dict())
        args.vae_steps = 0
    else:
        model = MotionModel(cfg, FrequencyNormalizer.fit(vols)).to(dev)
    bar = tqdm(total=args.vae_steps + args.stage1_steps + args.stage2_steps, desc="training")
    cb = lambda step, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.4f}"))  # noqa: E731
    vae_losses = train_vae(model, batches[0], args.vae_steps, seed=step_seed(args.seed, 0), callback=cb)
    s1 = train_diffusion(model, batches[1], args.stage1_steps, lr=args.lr, seed=step_seed(args.seed, 1), callback=cb)
    report = {"mode": args.mode, "vae_loss": vae_losses[-1] if vae_losses else None,
              "stage1_loss": sum(s1[-50:]) / max(1, len(s1[-50:]))}

    def heldout_error(m) -> float:
        """Mean | |S_pred| - |S_true| | / mean |S_true| over f >= 1 on the held-out scenes (zero motion: 1.0)."""
        m.eval()
        eg = torch.Generator().manual_seed(args.seed + 1)
        err, ref = 0.0, 0.0
        for it in held:
            pred = sample_motion(m, it["image"][None].to(dev), args.sample_steps, generator=eg).cpu()
            e, r = amplitude_error(pred[0], it["spectral_volume"])
            err, ref = err + float(e), ref + float(r)
        return err / max(ref, 1e-12)

    if args.mode == "coordinated":
        # stage 1 alone is the paper's "independent" ablation: keep it and score it too
        save_motion_model(Path(args.out) / "independent", model)
        report["heldout_amplitude_error_rel_independent"] = heldout_error(model)
        model = coordinated_from_independent(model).to(dev)
        s2 = train_diffusion(model, batches[2], args.stage2_steps, lr=args.lr, seed=step_seed(args.seed, 2),
                             callback=cb)
        report["stage2_loss"] = sum(s2[-50:]) / max(1, len(s2[-50:]))
    bar.close()
    model.eval()
    save_motion_model(args.out, model)
    report["heldout_amplitude_error_rel"] = heldout_error(model)
    report["seconds"] = time.time() - t0
    (Path(args.out) / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
