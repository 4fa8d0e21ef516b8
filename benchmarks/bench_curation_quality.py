"""How well curation's scene cuts and motion score do their job, on synthetic videos with known truth.

    OMP_NUM_THREADS=2 python benchmarks/bench_curation_quality.py [--videos 24] [--seed 0]

Each video is 3–6 shots of 10–40 frames (72×96); a shot is a random blurred colour texture panning at a random
speed (0 for a third of the shots, else 0.5–3 px/frame) in a random direction, so every shot boundary is a
cut at a known frame. Measured:
  * cut detection (`curate_scores.detect_cuts`, the detector `vidiff data curate` uses, each method): precision,
    recall and F1, a detection counting when it is within one frame of a true cut (target F1 ≥ 0.95);
  * the motion score (`curate_scores.flow_motion`, SVD's mean DIS flow) per shot: the AUC of separating static
    shots from moving ones, and the mean score against the true speed.
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from vidiff.data.curate_scores import detect_cuts, flow_motion

H, W, MARGIN = 72, 96, 130


def shot(rng: np.random.Generator, frames: int, speed: float) -> np.ndarray:
    """(frames, H, W, 3) uint8: a blurred colour texture panning `speed` px/frame in a random direction."""
    tex = cv2.GaussianBlur((rng.random((H + 2 * MARGIN, W + 2 * MARGIN, 3)) * 255).astype(np.uint8), (0, 0), 2.5)
    tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX)
    angle = rng.uniform(0, 2 * np.pi)
    d = speed * np.array([np.cos(angle), np.sin(angle)])
    out = []
    for f in range(frames):
        m = np.float32([[1, 0, -(MARGIN + d[0] * f)], [0, 1, -(MARGIN + d[1] * f)]])
        out.append(cv2.warpAffine(tex, m, (W, H), flags=cv2.INTER_LINEAR))
    return np.stack(out)


def video(rng: np.random.Generator) -> tuple[np.ndarray, list[int], list[tuple[np.ndarray, float]]]:
    shots, cuts, start = [], [], 0
    for _ in range(rng.integers(3, 7)):
        n = int(rng.integers(10, 41))
        speed = 0.0 if rng.random() < 1 / 3 else float(rng.uniform(0.5, 3.0))
        shots.append((shot(rng, n, speed), speed))
        if start:
            cuts.append(start)
        start += n
    return np.concatenate([s for s, _ in shots]), cuts, shots


def prf(found: list[int], truth: list[int], tol: int = 1) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives), each true cut matched at most once."""
    left, tp = list(truth), 0
    for c in found:
        hit = next((t for t in left if abs(t - c) <= tol), None)
        if hit is not None:
            left.remove(hit)
            tp += 1
    return tp, len(found) - tp, len(left)


def auc(pos: list[float], neg: list[float]) -> float:
    """P(score of a positive > score of a negative), ties counting half (Mann–Whitney)."""
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    videos = [video(rng) for _ in range(args.videos)]
    n_cuts = sum(len(c) for _, c, _ in videos)
    print(f"{args.videos} videos, {n_cuts} cuts, {sum(len(s) for *_, s in videos)} shots")
    print("\n| cut detector | precision | recall | F1 |\n|---|---|---|---|")
    for method in ("adaptive", "content"):
        tp = fp = fn = 0
        for frames, cuts, _ in videos:
            a, b, c = prf(detect_cuts(frames, method=method, min_scene_len=8, fps=8.0), cuts)
            tp, fp, fn = tp + a, fp + b, fn + c
        p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        print(f"| {method} | {p:.3f} | {r:.3f} | {2 * p * r / max(p + r, 1e-9):.3f} |")
    scores = [(flow_motion(s), speed) for *_, shots in videos for s, speed in shots]
    still = [m for m, v in scores if v == 0]
    moving = [m for m, v in scores if v > 0]
    print(f"\nmotion score: AUC static vs moving {auc(moving, still):.3f} ({len(still)} static, {len(moving)} moving "
          f"shots); static mean {np.mean(still):.3f} px/frame, max {np.max(still):.3f}")
    speeds = np.asarray([v for _, v in scores if v > 0])
    measured = np.asarray(moving)
    print(f"moving shots: measured / true speed {np.mean(measured / speeds):.3f} on average "
          f"(correlation {np.corrcoef(measured, speeds)[0, 1]:.3f})")


if __name__ == "__main__":
    main()
