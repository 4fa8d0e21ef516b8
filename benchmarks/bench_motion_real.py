"""Motion models of Generative Image Dynamics on real photos: does the motion sit on what moves, and does it
match a real video? A model trained on real footage against the bundled procedural-only one, in one run.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_motion_real.py \
        --model "real footage=runs/motion-real" --model "procedural (bundled)=src/vidiff/weights/motion"
    .venv/bin/python benchmarks/bench_motion_real.py --prepare data/motion_real   # scripts/train_motion_real.sh's data

Needs `bash scripts/get_footage.sh` (data/footage/tree.avi, data/photos/).

Test photos, never trained on, each with a hand-made mask in tests/dynamics/data/motion_masks/ (white =
moving, black = rigid, grey = not scored; rectangles picked by eye on the photo and checked as overlays):
building.jpg (facade and entrance canopy rigid; the tree at the lower left moving), home.jpg (the building
rigid; nothing in it moves), tree_038 (distinct frame 38 of tree.avi: the window frame rigid, the foliage
moving). Per model and photo, motion is sampled `--seeds` times from the photo (short side 128) and scored
  * displacement: mean over one period (16 instants) and over the region of |F_t(p)| (px);
  * grey-level change: mean |I_t − I_0| (0..255) of frames rendered by softmax splatting at those instants;
  * targets (issue 35): rigid displacement ≤ 25 % of the moving one, rigid grey-level change ≤ 0.5.
Held-out part of tree.avi (distinct frames 38..53; the recipe trains on 0..37): the spectral volume extracted
from those 16 frames (the training settings) against the one each model samples from frame 38:
  * amplitude error over f ≥ 1 and spectrum overlap (bench_motion.py's; only for a model with the same K),
    amplitude-map error mean |A_pred − A_true| / mean A_true with A = Σ_{f≥1} |S_f| (any K; no motion = 1),
    motion-map correlation;
  * PSNR / SSIM of frames rendered from frame 38 against the real frames 39..53, each model's time axis mapped
    through its frame rate (config.json's "fps"; 30 for the bundled model); phases are random, so
    "extracted motion" bounds what a phase-blind model can reach, and "zero motion" is the floor.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_motion import spectrum_scores  # noqa: E402

from vidiff.data import io  # noqa: E402
from vidiff.dynamics.animate import photo_tensor  # noqa: E402
from vidiff.dynamics.flow import flow_to_frames  # noqa: E402
from vidiff.dynamics.motion_model import load_motion_model, sample_motion  # noqa: E402
from vidiff.dynamics.real_data import drop_repeated_frames, motion_amount, resize_short_side  # noqa: E402
from vidiff.dynamics.render import SplatRenderer  # noqa: E402
from vidiff.dynamics.spectral import motion_texture, resize_spectral, spectral_to_complex  # noqa: E402
from vidiff.dynamics.spectral import trajectories_to_spectral  # noqa: E402
from vidiff.metrics.image import psnr, ssim  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MASKS = ROOT / "tests" / "dynamics" / "data" / "motion_masks"
TREE = ROOT / "data" / "footage" / "tree.avi"
PHOTOS = ROOT / "data" / "photos"
TEST_PHOTOS = ("building.jpg", "home.jpg")
TREE_TRAIN_END, TREE_HELDOUT = 38, (38, 54)  # distinct frames of tree.avi; the hand enters at 54
WORK = 128  # short side the photos are scored at (the training's working size)
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")


def tree_frames() -> tuple[np.ndarray, float]:
    """tree.avi's distinct frames (uint8 (N, H, W, 3)) and their rate (the file repeats each 5-7 times)."""
    if not TREE.is_file():
        raise SystemExit(f"{TREE} not found: run bash scripts/get_footage.sh")
    raw = io.read_video(TREE)
    frames = drop_repeated_frames(raw)
    return frames, io.video_fps(TREE, 15.0) * len(frames) / len(raw)


def prepare(folder: Path) -> None:
    """The recipe's training data: videos/ (tree.avi's first distinct frames, vtest, Megamind), photos/."""
    frames, fps = tree_frames()
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    (folder / "photos").mkdir(parents=True, exist_ok=True)
    io.write_mp4(folder / "videos" / "tree_train.mp4", frames[:TREE_TRAIN_END], fps=fps)
    for name in ("vtest.avi", "Megamind.avi"):
        shutil.copyfile(TREE.parent / name, folder / "videos" / name)
    photos = [p for p in sorted(PHOTOS.glob("*")) if p.name not in TEST_PHOTOS]
    try:
        import skimage

        photos += [Path(skimage.__file__).parent / "data" / n for n in SKIMAGE_PHOTOS]
    except ImportError:
        pass
    for p in photos:
        if p.is_file():
            shutil.copyfile(p, folder / "photos" / p.name)
    print(f"wrote {folder}/videos (tree_train.mp4: {TREE_TRAIN_END} frames at {fps:.3g} fps, vtest, Megamind) and "
          f"{len(list((folder / 'photos').iterdir()))} photos")


def test_photos() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (photo uint8 (H, W, 3) at short side WORK, mask uint8 (H, W): 255 moving, 0 rigid, else unscored)."""
    import cv2

    frames, _ = tree_frames()
    images = {"building": io.read_image(PHOTOS / "building.jpg"), "home": io.read_image(PHOTOS / "home.jpg"),
              "tree_038": frames[TREE_HELDOUT[0]]}
    out = {}
    for name, img in images.items():
        mask = io.read_image(MASKS / f"{name}.png")[..., 0]
        small = resize_short_side(img[None], WORK)[0]
        out[name] = (small, cv2.resize(mask, small.shape[1::-1], interpolation=cv2.INTER_NEAREST))
    return out


def region_scores(photo: np.ndarray, mask: np.ndarray, sv: torch.Tensor, period: float) -> dict:
    """Displacement (px) and grey-level change of softmax-splat renders, on the rigid and the moving region."""
    img = photo_tensor(photo)  # (1, 3, H, W)
    times = torch.linspace(0, period, 17)[1:]
    with torch.no_grad():
        flows = motion_texture(sv, times, period)  # (16, 2, H, W)
        frames = SplatRenderer()(img.expand(len(times), -1, -1, -1), flows).clamp(-1, 1)  # (16, 3, H, W)
    disp = flows.norm(dim=1).mean(0).numpy()  # (H, W)
    grey = ((frames - img).abs().mean((0, 1)) * 127.5).numpy()  # (H, W) grey levels
    out = {}
    for region, value in (("rigid", 0), ("moving", 255)):
        sel = mask == value
        out[region] = (float(disp[sel].mean()), float(grey[sel].mean())) if sel.any() else (float("nan"),) * 2
    return out


def amplitude_map_error(pred: torch.Tensor, true: torch.Tensor) -> float:
    """mean |A_pred − A_true| / mean A_true, A = Σ_{f≥1} |S_f| per pixel (x and y combined; any K)."""
    a = spectral_to_complex(pred)[1:].abs().pow(2).sum(1).sqrt().sum(0)
    b = spectral_to_complex(true)[1:].abs().pow(2).sum(1).sqrt().sum(0)
    return float((a - b).abs().mean() / b.mean().clamp_min(1e-12))


def map_corr(pred: torch.Tensor, true: torch.Tensor) -> float:
    """Pearson correlation over pixels of Σ_{f≥1}|S_f| (bench_motion.py's motion-map correlation, any K)."""
    a = spectral_to_complex(pred)[1:].abs().sum((0, 1)).flatten().double()
    b = spectral_to_complex(true)[1:].abs().sum((0, 1)).flatten().double()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0


def video_scores(first: np.ndarray, real: np.ndarray, sv: torch.Tensor, period: float, rate: float,
                 video_fps: float) -> tuple[float, float]:
    """PSNR / SSIM of frame 0 rendered with `sv` at the times of the real frames 1.. (model frames = s · rate)."""
    times = torch.arange(1, len(real) + 1, dtype=torch.float32) / video_fps * rate
    img = photo_tensor(first)
    with torch.no_grad():
        fake = SplatRenderer()(img.expand(len(times), -1, -1, -1), motion_texture(sv, times, period)).clamp(-1, 1)
    true = torch.from_numpy(real).permute(3, 0, 1, 2)[None].float() / 127.5 - 1  # (1, 3, n, H, W)
    fake = fake.permute(1, 0, 2, 3)[None]
    return float(psnr(fake, true).mean()), float(ssim(fake, true).mean())


def model_rate(folder: Path) -> float:
    """The frame rate of a model's motion: config.json's "fps" (`vidiff dynamics train`), else 30."""
    return float(json.loads((folder / "config.json").read_text()).get("fps", 30.0))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", default=[], help="NAME=FOLDER (repeatable)")
    ap.add_argument("--prepare", type=Path, default=None, help="write the recipe's training data to this folder")
    ap.add_argument("--seeds", type=int, default=4, help="motion samples per photo and model")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--k", type=int, default=8, help="frequencies of the extracted held-out volume")
    ap.add_argument("--out", default=None, help="JSON report")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", "Mean of empty slice")  # a photo without a moving region: nan, printed as such
    if args.prepare is not None:
        prepare(args.prepare)
        return {}
    if not args.model:
        ap.error("give at least one --model NAME=FOLDER (or --prepare DIR)")
    models = {}
    for spec in args.model:
        name, _, folder = spec.partition("=")
        models[name] = (load_motion_model(folder), model_rate(Path(folder)))

    photos = test_photos()
    frames, fps = tree_frames()
    held = resize_short_side(frames[TREE_HELDOUT[0]:TREE_HELDOUT[1]], WORK)  # (16, H, W, 3)
    true = trajectories_to_spectral(torch.from_numpy(flow_to_frames(held)), k=args.k)  # (K, 4, H, W)
    period = len(held)
    report = {"photos": {}, "heldout": {}, "tree_fps": fps, "extracted_motion_amount": motion_amount(true)}

    rows = {"zero motion": [], "extracted motion": []}
    rows["zero motion"].append((1.0, 0.0, 1.0, 0.0) + video_scores(held[0], held[1:], torch.zeros_like(true), period,
                                                                    fps, fps))
    rows["extracted motion"].append((0.0, 1.0, 0.0, 1.0) + video_scores(held[0], held[1:], true, period, fps, fps))
    report["photos"]["extracted motion"] = {"tree_038": region_scores(*photos["tree_038"], true, period)}
    seconds = {}
    for name, (m, rate) in models.items():
        t0 = time.perf_counter()
        per_photo = {p: [] for p in photos}
        rows[name] = []
        for seed in range(args.seeds):
            g = torch.Generator().manual_seed(seed)
            for pname, (photo, mask) in photos.items():
                small = torch.nn.functional.interpolate(photo_tensor(photo), size=(m.cfg.size,) * 2, mode="area")
                sv = resize_spectral(sample_motion(m, small, args.steps, generator=g)[0], photo.shape[:2])
                per_photo[pname].append(region_scores(photo, mask, sv, m.cfg.period))
                if pname == "tree_038":
                    same_k = sv.shape[0] == true.shape[0]
                    err, overlap = spectrum_scores(sv, true)[:2] if same_k else (float("nan"),) * 2
                    rows[name].append((err, overlap, amplitude_map_error(sv, true), map_corr(sv, true))
                                      + video_scores(held[0], held[1:], sv, m.cfg.period, rate, fps))
        seconds[name] = (time.perf_counter() - t0) / args.seeds
        report["photos"][name] = {p: {r: np.nanmean([s[r] for s in v], axis=0).tolist() for r in ("rigid", "moving")}
                                  for p, v in per_photo.items()}

    print(f"\nMotion on rigid vs moving regions (short side {WORK}; {args.seeds} samples, {args.steps} DDIM steps): "
          "mean displacement px / grey-level change")
    print("\n| motion | photo | rigid px | moving px | rigid/moving | rigid grey | moving grey |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, per in report["photos"].items():
        for pname, r in per.items():
            ratio = r["rigid"][0] / r["moving"][0] if r["moving"][0] and np.isfinite(r["moving"][0]) else float("nan")
            print(f"| {name} | {pname} | {r['rigid'][0]:.3f} | {r['moving'][0]:.3f} | {ratio:.2f} | "
                  f"{r['rigid'][1]:.2f} | {r['moving'][1]:.2f} |")
    print(f"\nHeld-out tree.avi (distinct frames {TREE_HELDOUT[0]}..{TREE_HELDOUT[1] - 1}, {fps:.3g} fps, K={args.k}; "
          f"extracted motion amount {report['extracted_motion_amount']:.2f} px)")
    print("\n| motion | amplitude error ↓ | spectrum overlap ↑ | amplitude-map error ↓ | motion-map corr ↑ | "
          "PSNR dB ↑ | SSIM ↑ | s / seed (3 photos) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, vals in rows.items():
        err, ov, amap, corr, p, s = np.nanmean(np.array(vals, dtype=float), axis=0)
        report["heldout"][name] = {"amplitude_error": err, "spectrum_overlap": ov, "amplitude_map_error": amap,
                                   "motion_map_corr": corr, "psnr": p, "ssim": s}
        sec = f"{seconds[name]:.1f}" if name in seconds else ""
        print(f"| {name} | {err:.3f} | {ov:.3f} | {amap:.3f} | {corr:.2f} | {p:.2f} | {s:.3f} | {sec} |")
    if args.out:
        from vidiff.utils import atomic_write_text

        atomic_write_text(args.out, json.dumps(report, indent=2, allow_nan=True) + "\n")
    return report


if __name__ == "__main__":
    main()
