"""Video from a text-to-image shapes model: Text2Video-Zero (training-free) and Tune-A-Video (one-shot).

The image model is a text-conditioned pixel model trained on single frames of the shapes data
(scripts/train_t2i.sh: models/shapes-t2i-tiny). Every video is read by the shapes checker
(`vidiff.data.checker`); the object's track is its centroid per frame.

Text2Video-Zero (`pipelines.t2v_zero.TextToVideoZero`), `--num` prompts: colour × shape from the shapes
vocabulary (4 colours × 3 shapes, cycled), each with a motion δ = s·(ux, uy), (ux, uy) one of the 8 compass
steps and s = 1 or 2 px/frame per axis; the prompt is the training caption "a red circle moving left" for
δ's direction (`--plain-prompts`: "a red circle"); prompt i is sampled with seed + i. Scored per video:
  * persists: one object in every frame on a clean background, constant colour, constant size (the checker's
    one_object, constant_colour and constant_size) and constant shape (the checker's shape estimate of every
    frame alone is the same);
  * moves along δ: the checker's initial velocity v (least-squares slope of the soft centroid track up to the
    first reversal) within ‖v − δ‖ ≤ 0.3‖δ‖ + 0.2 px/frame (`MOTION_TOL`); also its compass direction = δ's,
    and ‖v‖ / ‖δ‖;
  * colour / shape: the checker's colour and shape estimates equal the prompt's; "all" = all four.
Baseline, same prompts and seeds: each frame sampled independently from the image model (DDIM, same steps and
guidance). Reference: `--num` held-out real clips (synthetic shapes, seed 1) scored the same way with their
true velocity as δ and their caption's colour and shape, which calibrates the scoring (it should be ~100 %).

Tune-A-Video (`pipelines.tune_a_video.tune_clip` + `TuneAVideo.edit`, the path of `vidiff tune-a-video` and
`vidiff edit`), `--tav-num` held-out clips (seed 1, their first `--tav-frames` frames), each tuned with its
caption for `--tav-steps` steps, then:
  * reconstruction: edit with the source caption; PSNR (dB) against the clip, without guidance (the inversion's
    fidelity) and at the edit's guidance `--edit-guidance` (what `vidiff edit --prompt SOURCE` gives);
  * colour edit: the caption with the colour word changed (cycling through the other three colours); the share
    of clips whose output the checker reads as the new colour while the mean distance between the output's and
    the clip's centroid tracks is ≤ 1.5 px (`TRACK_TOL`), and that mean distance (median over clips).

    python benchmarks/bench_adapt.py --model models/shapes-t2i-tiny --num 32 --tav-num 8 --out bench_adapt.json
    python benchmarks/bench_adapt.py --model MODEL --quick          # a few prompts, 1 clip, few steps
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidiff.data.checker import CheckResult, check_video, direction_name, track_distance
from vidiff.data.synth import DEFAULT_COLOURS, DIRECTIONS, SHAPES, caption

MOTION_TOL = (0.3, 0.2)  # ‖v − δ‖ ≤ rel·‖δ‖ + abs (px/frame)
TRACK_TOL = 1.5          # px, mean centroid distance of an edit to its source clip
SPEEDS = (1, 2)          # px/frame per axis


def t2v_prompts(num: int, plain: bool = False) -> list[tuple[str, dict]]:
    """`num` (prompt, {"colour", "shape", "direction", "delta"}): colour × shape cycled, the 8 compass steps cycled,
    speed 1 px/frame for prompts 0-7, 2 for 8-15, and so on."""
    combos = [(c, s) for s in SHAPES for c in DEFAULT_COLOURS]
    out = []
    for i in range(num):
        colour, shape = combos[i % len(combos)]
        direction = list(DIRECTIONS)[i % len(DIRECTIONS)]
        s = SPEEDS[(i // len(DIRECTIONS)) % len(SPEEDS)]
        ux, uy = DIRECTIONS[direction]
        prompt = f"a {colour} {shape}" if plain else caption(colour, shape, direction)
        out.append((prompt, {"colour": colour, "shape": shape, "direction": direction,
                             "delta": (float(s * ux), float(s * uy))}))
    return out


def persistence(video: np.ndarray, check: CheckResult | None = None) -> dict[str, bool]:
    """The persistence criteria: the checker's one_object (one object in every frame on a clean background),
    constant_colour and constant_size, and constant_shape (the checker's shape estimate of every frame alone is
    the same)."""
    r = check_video(video) if check is None else check
    shapes = {check_video(frame[None]).shape for frame in video}
    return {"one_object": r.one_object, "constant_colour": r.constant_colour, "constant_size": r.constant_size,
            "constant_shape": len(shapes) == 1 and None not in shapes}


def persists(video: np.ndarray, check: CheckResult | None = None) -> bool:
    """All of `persistence`: the object persists with constant colour, size and shape."""
    return all(persistence(video, check).values())


def moves_along(velocity, delta, tol: tuple[float, float] = MOTION_TOL) -> bool:
    """‖velocity − δ‖ ≤ rel·‖δ‖ + abs (px/frame); False without a velocity."""
    if velocity is None:
        return False
    v, d = np.asarray(velocity, float), np.asarray(delta, float)
    return bool(np.linalg.norm(v - d) <= tol[0] * np.linalg.norm(d) + tol[1])


def score_motion(video: np.ndarray, want: dict) -> dict:
    """Per-video verdicts of a video meant to show `want` ({"colour", "shape", "delta"}) moving by δ per frame."""
    r = check_video(video)
    criteria = persistence(video, r)
    keep = all(criteria.values())
    moves = moves_along(r.velocity, want["delta"])
    d = np.asarray(want["delta"], float)
    speed_ratio = float(np.linalg.norm(r.velocity) / np.linalg.norm(d)) if r.velocity is not None else float("nan")
    colour, shape = r.colour == want["colour"], r.shape == want["shape"]
    return {"persists": keep, "moves_along": moves,
            "direction": r.velocity is not None and r.direction == direction_name(*d),
            "speed_ratio": speed_ratio, "colour": colour, "shape": shape,
            "all": bool(keep and moves and colour and shape), "criteria": criteria,
            "got": {"colour": r.colour, "shape": r.shape,
                    "velocity": None if r.velocity is None else [round(x, 2) for x in r.velocity]}}


def summarise(rows: list[dict]) -> dict:
    """Shares of the verdicts and of each persistence criterion over videos, and the median speed ratio."""
    out = {k: float(np.mean([r[k] for r in rows])) for k in ("persists", "moves_along", "direction", "colour",
                                                             "shape", "all")}
    out["criteria"] = {k: float(np.mean([r["criteria"][k] for r in rows])) for k in rows[0]["criteria"]}
    ratios = [r["speed_ratio"] for r in rows if np.isfinite(r["speed_ratio"])]
    out["speed_ratio"] = float(np.median(ratios)) if ratios else float("nan")
    return out


def run_t2v(args, save) -> dict:
    from vidiff.data.synth import render_shapes
    from vidiff.pipelines.t2v_zero import TextToVideoZero

    t2v = TextToVideoZero.from_pretrained(args.model)
    pipe, size = t2v.pipe, t2v.default_size
    prompts = t2v_prompts(args.num, args.plain_prompts)
    variants = {"off": [False], "on": [True], "both": [False, True]}[args.smooth_background]
    if "text" in pipe.condition:  # load MiniLM and encode the prompts before anything is timed
        from vidiff.conditioning.text import get_text_encoder

        get_text_encoder().encode([p for p, _ in prompts])
    rows: dict[str, list] = {}
    seconds = {}
    for smooth in variants:
        name = "Text2Video-Zero" + (" + background smoothing" if smooth else "")
        start, scored = time.perf_counter(), []
        for i, (prompt, want) in enumerate(prompts):
            video = t2v(prompt, 1, frames=args.frames, motion=want["delta"], steps=args.steps, t0=args.t0,
                        t1=args.t1, guidance=args.guidance, seed=args.seed + i, smooth_background=smooth)[0]
            scored.append(score_motion(video, want))
            save(f"t2v_zero{'_smooth' if smooth else ''}_{i:02d}", video)
        rows[name], seconds[name] = scored, time.perf_counter() - start
    start, scored = time.perf_counter(), []
    for i, (prompt, want) in enumerate(prompts):  # baseline: every frame an independent image sample
        video = pipe(1, frames=args.frames, size=size, steps=args.steps, sampler="ddim", seed=args.seed + i,
                     prompt=prompt, guidance=args.guidance)[0].numpy()
        scored.append(score_motion(video, want))
        save(f"independent_{i:02d}", video)
    rows["independent frames"], seconds["independent frames"] = scored, time.perf_counter() - start
    clips, meta = render_shapes(args.num, max(16, args.frames), size, seed=1)
    rows["real clips (reference)"] = [score_motion(v[:args.frames], {"colour": m["colour"], "shape": m["shape"],
                                                                     "delta": (m["vx"], m["vy"])})
                                      for v, m in zip(clips, meta)]
    report = {"prompts": [p for p, _ in prompts], "rows": []}
    for name, scored in rows.items():
        report["rows"].append({"method": name, **summarise(scored),
                               "seconds": round(seconds.get(name, 0.0), 1), "per_video": scored})
    return report


def edited_prompt(source: str, colour: str, index: int) -> tuple[str, str]:
    """(the caption with its colour word replaced, the new colour): the other default colours in turn."""
    others = [c for c in DEFAULT_COLOURS if c != colour]
    new = others[index % len(others)]
    text, n = re.subn(rf"\b{re.escape(colour)}\b", new, source)
    if n == 0:
        raise ValueError(f"the caption {source!r} does not name its colour {colour!r}")
    return text, new


def run_tav(args, save, tmp: Path) -> dict:
    from vidiff.data.io import from_uint8
    from vidiff.data.synth import render_shapes
    from vidiff.metrics.image import psnr
    from vidiff.pipelines import load_pipeline
    from vidiff.pipelines.tune_a_video import TuneAVideo, tune_clip

    size = load_pipeline(args.model).video.size
    clips, meta = render_shapes(args.tav_num, max(16, args.tav_frames), size, seed=1)
    rows, tune_s, edit_s = [], 0.0, 0.0
    for i, (clip, m) in enumerate(zip(clips, meta)):
        source = clip[:args.tav_frames]
        target, new = edited_prompt(m["caption"], m["colour"], i)
        start = time.perf_counter()
        folder, losses = tune_clip(clip, args.model, m["caption"], tmp / f"tav_{i:02d}", steps=args.tav_steps,
                                   lr=args.tav_lr, frames=args.tav_frames, seed=args.seed)
        tune_s += time.perf_counter() - start
        start = time.perf_counter()
        tav = TuneAVideo.from_pretrained(folder)
        kw = dict(steps=args.edit_steps)
        recon0 = tav.edit(clip, m["caption"], guidance=0.0, **kw)
        recon = tav.edit(clip, m["caption"], guidance=args.edit_guidance, **kw)
        edited = tav.edit(clip, target, guidance=args.edit_guidance, **kw)
        edit_s += time.perf_counter() - start
        ref = from_uint8(source[None])
        db0 = float(psnr(from_uint8(recon0[None]), ref).mean())
        db = float(psnr(from_uint8(recon[None]), ref).mean())
        r = check_video(edited)
        dist = track_distance(edited, source)
        rows.append({"caption": m["caption"], "edited": target, "psnr_no_guidance": db0, "psnr": db,
                     "new_colour": r.colour == new, "got_colour": r.colour, "shape_kept": r.shape == m["shape"],
                     "track_distance": dist, "ok": bool(r.colour == new and dist <= TRACK_TOL),
                     "loss_first": losses[0], "loss_last": float(np.mean(losses[-max(1, len(losses) // 10):]))})
        save(f"tav_{i:02d}_source", source)
        save(f"tav_{i:02d}_recon", recon)
        save(f"tav_{i:02d}_edit", edited)
        print(f"  clip {i}: {m['caption']!r} -> {new}: got {r.colour}, track {dist:.2f} px, PSNR {db0:.1f} / "
              f"{db:.1f} dB", file=sys.stderr, flush=True)
    dists = [r["track_distance"] for r in rows]
    return {"num": len(rows), "frames": args.tav_frames, "steps": args.tav_steps, "lr": args.tav_lr,
            "edit_steps": args.edit_steps, "edit_guidance": args.edit_guidance,
            "psnr_no_guidance": float(np.mean([r["psnr_no_guidance"] for r in rows])),
            "psnr": float(np.mean([r["psnr"] for r in rows])),
            "new_colour": float(np.mean([r["new_colour"] for r in rows])),
            "shape_kept": float(np.mean([r["shape_kept"] for r in rows])),
            "track_distance_median": float(np.median(dists)),
            "within_track_tol": float(np.mean([d <= TRACK_TOL for d in dists])),
            "ok": float(np.mean([r["ok"] for r in rows])),
            "tune_seconds": round(tune_s, 1), "edit_seconds": round(edit_s, 1), "per_clip": rows}


def print_tables(report: dict) -> None:
    t2v = report.get("t2v_zero")
    if t2v:
        print(f"\nText2Video-Zero on {report['model']}: {report['num']} prompts, {report['frames']} frames, "
              f"{report['steps']} DDIM steps, guidance {report['guidance']:g}")
        print("| method | persists | moves along δ | direction | speed ratio | colour | shape | all | s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in t2v["rows"]:
            print(f"| {r['method']} | {r['persists']:.0%} | {r['moves_along']:.0%} | {r['direction']:.0%} | "
                  f"{r['speed_ratio']:.2f} | {r['colour']:.0%} | {r['shape']:.0%} | {r['all']:.0%} | "
                  f"{r['seconds']:.0f} |")
        names = list(t2v["rows"][0]["criteria"])
        print(f"\npersistence criteria\n| method | {' | '.join(names)} |\n|---|{'---:|' * len(names)}")
        for r in t2v["rows"]:
            shares = " | ".join(f"{r['criteria'][k]:.0%}" for k in names)
            print(f"| {r['method']} | {shares} |")
    tav = report.get("tune_a_video")
    if tav:
        print(f"\nTune-A-Video: {tav['num']} held-out clips × {tav['frames']} frames, {tav['steps']} tuning steps "
              f"(lr {tav['lr']:g}), {tav['edit_steps']} DDIM steps, edit guidance {tav['edit_guidance']:g}")
        print("| PSNR w=0 (dB) | PSNR (dB) | new colour | track ≤ 1.5 px | both | track dist (median px) | "
              "shape kept | tune s | edit s |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {tav['psnr_no_guidance']:.1f} | {tav['psnr']:.1f} | {tav['new_colour']:.0%} | "
              f"{tav['within_track_tol']:.0%} | {tav['ok']:.0%} | {tav['track_distance_median']:.2f} | "
              f"{tav['shape_kept']:.0%} | {tav['tune_seconds']:.0f} | {tav['edit_seconds']:.0f} |")
    print(f"\ntotal {report['seconds']:.0f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a text-conditioned vidiff image model (temporal none)")
    ap.add_argument("--num", type=int, default=32, help="Text2Video-Zero prompts (0: skip)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50, help="DDIM steps of Text2Video-Zero and of the baseline")
    ap.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance weight w")
    ap.add_argument("--t0", type=int, default=None, help="Text2Video-Zero's t0 (default: 44 of 50 steps, scaled)")
    ap.add_argument("--t1", type=int, default=None, help="Text2Video-Zero's t1 (default: 47 of 50 steps, scaled)")
    ap.add_argument("--smooth-background", choices=["off", "on", "both"], default="both")
    ap.add_argument("--plain-prompts", action="store_true", help='"a red circle" instead of the training caption')
    ap.add_argument("--tav-num", type=int, default=8, help="Tune-A-Video clips (0: skip)")
    ap.add_argument("--tav-frames", type=int, default=8)
    ap.add_argument("--tav-steps", type=int, default=300)
    ap.add_argument("--tav-lr", type=float, default=1e-4)
    ap.add_argument("--edit-steps", type=int, default=50)
    ap.add_argument("--edit-guidance", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true",
                    help="defaults for a smoke run: 4 prompts, 10 steps, 1 clip tuned 5 steps")
    ap.add_argument("--save-videos", default=None, help="folder for the sampled and edited videos (.gif)")
    ap.add_argument("--out", default=None, help="JSON report (default: print only)")
    if ap.parse_known_args(argv)[0].quick:  # smaller defaults; options given explicitly still win
        ap.set_defaults(num=4, steps=10, tav_num=1, tav_steps=5, edit_steps=10, smooth_background="on")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)

    from vidiff.data.io import write_video

    def save(name: str, video: np.ndarray) -> None:
        if args.save_videos:
            write_video(Path(args.save_videos) / f"{name}.gif", np.asarray(video), fps=8.0, scale=4)

    if args.save_videos:
        Path(args.save_videos).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = {"model": args.model, "num": args.num, "frames": args.frames, "steps": args.steps, "t0": args.t0,
              "t1": args.t1,
              "guidance": args.guidance, "seed": args.seed, "motion_tol": list(MOTION_TOL), "track_tol": TRACK_TOL,
              "threads": args.threads}
    if args.num > 0:
        report["t2v_zero"] = run_t2v(args, save)
    if args.tav_num > 0:
        with torch.enable_grad(), tempfile.TemporaryDirectory(prefix="bench_adapt_") as tmp:
            report["tune_a_video"] = run_tav(args, save, Path(tmp))
    report["seconds"] = round(time.perf_counter() - start, 1)
    print_tables(report)
    if args.out:
        from vidiff.utils import atomic_write_text

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.out), json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
