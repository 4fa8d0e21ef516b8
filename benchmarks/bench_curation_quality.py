"""How well curation's scene cuts and motion score do their job, on synthetic videos with known truth.

    OMP_NUM_THREADS=2 python benchmarks/bench_curation_quality.py [--videos 24] [--real-videos 24] [--seed 0]

Each video is 3–6 shots of 10–40 frames (72×96); a shot is a random blurred colour texture panning at a random
speed (0 for a third of the shots, else 0.5–3 px/frame) in a random direction, so every shot boundary is a
cut at a known frame. Measured:
  * cut detection (`curate_scores.detect_cuts`, the detector `vidiff data curate` uses, each method): precision,
    recall and F1, a detection counting when it is within one frame of a true cut (target F1 ≥ 0.95);
  * the motion score (`curate_scores.flow_motion`, SVD's mean DIS flow) per shot: the AUC of separating static
    shots from moving ones, and the mean score against the true speed.

Then the same cut detectors on real footage spliced at known frames (`--real-videos`, 24 by default; skipped
with a notice when data/footage/ is missing: `bash scripts/get_footage.sh` fetches it). The sources are
OpenCV's sample videos from Debian's opencv-doc package, decoded by ffmpeg (`vidiff.data.io.read_video`;
frame numbers below are ffmpeg's): Megamind.avi (271 frames of an animated film trailer), tree.avi (449
frames, a hand-held view of a tree; a hand enters from frame ~350) and vtest.avi (795 frames, a fixed
camera over a square with pedestrians). How the truth was made:
  * the sources' own cuts were checked by eye, on contact sheets of every 3rd (Megamind), 6th (tree) and
    10th (vtest) frame and of the frames around every large frame difference: Megamind cuts hard at frames
    99, 155 and 201 and opens on two black frames (picture from frame 2); tree and vtest are one continuous
    shot each. `SHOTS` lists these [start, stop) ranges, and every run re-checks them: at 256×192, the mean
    absolute grey difference between consecutive frames must exceed `CUT_DIFF` (25 grey levels) at every
    listed shot start (measured 32–42) and nowhere else (the largest inside a shot is 18.5, during tree's
    hand), or the script stops;
  * each spliced video is 3–5 segments of 16–40 consecutive frames, each segment inside one shot (a source
    drawn uniformly, then one of its shots), every frame resized to 256×192 (the curation's analysis size),
    so the only cuts are the splice points, known by construction. A splice joins two different videos, two
    different shots of Megamind, or two parts of one shot at least `MIN_JUMP` (30) frames apart: a jump in
    time. Looked at by eye, a jump within tree or vtest is barely visible (the tree shifts a little,
    pedestrians move; unless tree's hand appears or vanishes), and the median grey difference across it
    is 7–10 levels against 40–90 for a change of scene.
Reported: precision / recall / F1 over all splices (a detection counts when it is within one frame of a true
cut, as for the synthetic videos); recall per kind of splice and the source of each false detection; the
table again for scene changes only (a jump within a shot neither required nor, when found, counted false);
and the detectors on the untouched sources, with their verified cuts (Megamind's) as truth.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from vidiff.data import io
from vidiff.data.curate_scores import detect_cuts, flow_motion

H, W, MARGIN = 72, 96, 130
FOOTAGE = Path(__file__).resolve().parent.parent / "data" / "footage"
# Each source's shots, [start, stop) frames, verified by eye and re-checked by frame differences (`check_shots`)
SHOTS = {"Megamind": [(2, 99), (99, 155), (155, 201), (201, 271)], "tree": [(0, 449)], "vtest": [(0, 795)]}
REAL_H, REAL_W = 192, 256   # every real frame is resized to this (the curation's analysis size)
CUT_DIFF = 25.0             # mean |grey difference| of consecutive frames above which there is a cut
MIN_JUMP = 30               # frames between two parts of one shot joined by a splice, at least
METHODS = ("adaptive", "content")


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


def load_footage(name: str) -> np.ndarray:
    """(F, REAL_H, REAL_W, 3) uint8 RGB: data/footage/NAME.avi decoded by ffmpeg (`vidiff.data.io.read_video`),
    every frame resized with an area filter."""
    return np.stack([cv2.resize(f, (REAL_W, REAL_H), interpolation=cv2.INTER_AREA)
                     for f in io.read_video(FOOTAGE / f"{name}.avi")])


def check_shots(name: str, frames: np.ndarray) -> None:
    """Exit unless consecutive frames differ by more than CUT_DIFF exactly at the starts of SHOTS[name] (> 0)
    and the shots cover the frames: the labels still describe this copy of the footage."""
    shots = SHOTS[name]
    grey = frames.astype(np.float32).mean(-1)
    diff = np.abs(np.diff(grey, axis=0)).mean((1, 2))  # diff[t - 1]: frame t against frame t - 1
    big = {t + 1 for t in np.flatnonzero(diff > CUT_DIFF)} - {shots[0][0]}
    starts = {a for a, _ in shots[1:]}
    if big != starts or shots[-1][1] != len(frames):
        raise SystemExit(f"{name}.avi: frame differences > {CUT_DIFF} at {sorted(big)}, labelled cuts at "
                         f"{sorted(starts)}, {len(frames)} frames (labels end at {shots[-1][1]}): "
                         f"not the footage the labels describe; re-run scripts/get_footage.sh")


def real_video(rng: np.random.Generator, footage: dict[str, np.ndarray]
               ) -> tuple[np.ndarray, list[int], list[str], list[str]]:
    """3-5 segments of 16-40 frames, each inside one verified shot; returns (frames, cut frames, kind of each
    cut, source of each segment). A cut's kind is "videos" (two sources), "shots" (two shots of one source) or
    "jump:NAME" (one shot of NAME, the parts >= MIN_JUMP frames apart)."""
    names = list(SHOTS)
    segs: list[tuple[str, int, int, int]] = []  # (source, shot index, start, stop)
    for _ in range(rng.integers(3, 6)):
        while True:  # a source uniformly, then one of its shots
            name = names[int(rng.integers(len(names)))]
            k = int(rng.integers(len(SHOTS[name])))
            a, b = SHOTS[name][k]
            n = int(rng.integers(16, min(40, b - a) + 1))
            start = int(rng.integers(a, b - n + 1))
            if not segs or segs[-1][:2] != (name, k) or \
                    max(start - segs[-1][3], segs[-1][2] - (start + n)) >= MIN_JUMP:  # frames between them
                break
        segs.append((name, k, start, start + n))
    cuts, kinds, t = [], [], 0
    for prev, (name, k, start, stop) in zip([None] + segs[:-1], segs):
        if prev is not None:
            cuts.append(t)
            kinds.append("videos" if prev[0] != name else "shots" if prev[1] != k else f"jump:{name}")
        t += stop - start
    frames = np.concatenate([footage[name][start:stop] for name, _, start, stop in segs])
    return frames, cuts, kinds, [name for name, *_ in segs]


def matched(found: list[int], truth: list[int], tol: int = 1) -> tuple[list[bool], list[int]]:
    """(for each true cut, whether a detection within `tol` frames was matched to it; the detections matched to
    none), each detection matching at most one true cut, in order."""
    left, hit, false = list(range(len(truth))), [False] * len(truth), []
    for c in found:
        i = next((i for i in left if abs(truth[i] - c) <= tol), None)
        if i is None:
            false.append(c)
        else:
            left.remove(i)
            hit[i] = True
    return hit, false


def prf(found: list[int], truth: list[int], tol: int = 1) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives), each true cut matched at most once."""
    tp = sum(matched(found, truth, tol)[0])
    return tp, len(found) - tp, len(truth) - tp


def detector_table(videos: list[tuple[np.ndarray, list[int]]], fps: float,
                   found: dict[str, list[list[int]]] | None = None) -> dict[str, list[list[int]]]:
    """Print precision / recall / F1 of each method over `videos` (frames, true cuts); returns the cuts found
    (detected here unless `found` gives them)."""
    print("\n| cut detector | precision | recall | F1 |\n|---|---|---|---|")
    found = dict(found or {})
    for method in METHODS:
        if method not in found:
            found[method] = [detect_cuts(frames, method=method, min_scene_len=8, fps=fps) for frames, _ in videos]
        tp = fp = fn = 0
        for f, (_, cuts) in zip(found[method], videos):
            a, b, c = prf(f, cuts)
            tp, fp, fn = tp + a, fp + b, fn + c
        p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        print(f"| {method} | {p:.3f} | {r:.3f} | {2 * p * r / max(p + r, 1e-9):.3f} | "
              f"({tp} found, {fp} false, {fn} missed)")
    return found


def real_footage(n_videos: int, seed: int) -> None:
    """The cut-detector table on real footage spliced at known frames (module docstring)."""
    if not all((FOOTAGE / f"{name}.avi").is_file() for name in SHOTS):
        print(f"\nreal footage: {FOOTAGE} lacks {', '.join(SHOTS)}.avi; skipped (bash scripts/get_footage.sh)")
        return
    footage = {name: load_footage(name) for name in SHOTS}
    for name, frames in footage.items():
        check_shots(name, frames)
    rng = np.random.default_rng(seed)
    spliced = [real_video(rng, footage) for _ in range(n_videos)]
    kinds = [k for _, _, ks, _ in spliced for k in ks]
    columns = {"videos": "between videos", "shots": "between Megamind's shots",
               **{f"jump:{name}": f"jump within {name}" for name in SHOTS}}
    print(f"\nreal footage: {n_videos} videos spliced from {', '.join(SHOTS)} "
          f"({sum(len(f) for f, *_ in spliced)} frames), {len(kinds)} cuts: "
          + ", ".join(f"{kinds.count(k)} {c}" for k, c in columns.items()))
    found = detector_table([(frames, cuts) for frames, cuts, _, _ in spliced], fps=25.0)
    print(f"\nrecall by kind of splice:\n| | {' | '.join(columns.values())} |\n|---|{'---|' * len(columns)}")
    jumps = [float(np.abs(f[c].astype(np.float32).mean(-1) - f[c - 1].astype(np.float32).mean(-1)).mean())
             for f, cuts, _, _ in spliced for c in cuts]
    print("| mean grey difference across the splice (median) | "
          + " | ".join(f"{np.median([d for d, k in zip(jumps, kinds) if k == kind]):.1f}" if kind in kinds else "-"
                       for kind in columns) + " |")
    false: dict[str, list[str]] = {}  # per method, the source of the segment each false detection falls in
    for method in METHODS:
        hits, false[method] = [], []
        for f, (_, cuts, _, names) in zip(found[method], spliced):
            hit, wrong = matched(f, cuts)
            hits += hit
            false[method] += [names[int(np.searchsorted(cuts, c, side="right"))] for c in wrong]
        cells = []
        for kind in columns:
            sel = [h for h, k in zip(hits, kinds) if k == kind]
            cells.append(f"{np.mean(sel):.3f} ({sum(sel)}/{len(sel)})" if sel else "-")
        print(f"| {method} recall | {' | '.join(cells)} |")
    for method, names in false.items():
        print(f"{method}: " + (f"{len(names)} false cuts, inside segments of "
                               + ", ".join(f"{n} ({names.count(n)})" for n in sorted(set(names))) if names
                               else "no false cut"))
    # scene changes only: a jump within one shot is neither required nor, when found (within one frame), false
    print("\nscene changes only (between videos or shots; jumps within a shot neither required nor penalised):")
    scene = [(frames, [c for c, k in zip(cuts, ks) if not k.startswith("jump")]) for frames, cuts, ks, _ in spliced]
    jump_cuts = [[c for c, k in zip(cuts, ks) if k.startswith("jump")] for _, cuts, ks, _ in spliced]
    kept = {m: [[c for c in f if not any(abs(c - j) <= 1 for j in jumps)] for f, jumps in zip(found[m], jump_cuts)]
            for m in METHODS}  # segments are >= 16 frames, so no detection is near both a jump and another cut
    detector_table(scene, fps=25.0, found=kept)
    print("\nthe untouched sources (verified cuts as truth, frames counted from the first picture):")
    for name, frames in footage.items():
        start = SHOTS[name][0][0]
        truth = [a - start for a, _ in SHOTS[name][1:]]
        got = {m: detect_cuts(frames[start:], method=m, min_scene_len=8, fps=25.0) for m in METHODS}
        print(f"  {name}: true cuts {truth}; " + "; ".join(f"{m} found {got[m]}" for m in METHODS))


def auc(pos: list[float], neg: list[float]) -> float:
    """P(score of a positive > score of a negative), ties counting half (Mann–Whitney)."""
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--real-videos", type=int, default=24, help="videos spliced from data/footage (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    videos = [video(rng) for _ in range(args.videos)]
    n_cuts = sum(len(c) for _, c, _ in videos)
    print(f"{args.videos} videos, {n_cuts} cuts, {sum(len(s) for *_, s in videos)} shots")
    detector_table([(frames, cuts) for frames, cuts, _ in videos], fps=8.0)
    scores = [(flow_motion(s), speed) for *_, shots in videos for s, speed in shots]
    still = [m for m, v in scores if v == 0]
    moving = [m for m, v in scores if v > 0]
    print(f"\nmotion score: AUC static vs moving {auc(moving, still):.3f} ({len(still)} static, {len(moving)} moving "
          f"shots); static mean {np.mean(still):.3f} px/frame, max {np.max(still):.3f}")
    speeds = np.asarray([v for _, v in scores if v > 0])
    measured = np.asarray(moving)
    print(f"moving shots: measured / true speed {np.mean(measured / speeds):.3f} on average "
          f"(correlation {np.corrcoef(measured, speeds)[0, 1]:.3f})")
    if args.real_videos:
        real_footage(args.real_videos, args.seed)


if __name__ == "__main__":
    main()
