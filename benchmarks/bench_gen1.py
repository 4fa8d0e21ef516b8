"""Gen-1 editing on held-out shapes clips: is the input's structure kept and the reference's content taken?
Plus stylisation per frame against the temporal variant on the same clips.

    python benchmarks/bench_gen1.py --model runs/shapes-gen1-tiny [--num 64] [--strengths 1.0 0.5 0.25]
                                    [--steps 25] [--guidance 3] [--seed 0] [--threads 2] [--out F.json]

Clip pairs come from the synthetic shapes generator (`vidiff.data.synth.render_shapes`, seed 1: not the
training videos), 16 frames of 32x32: clip A is the input video, the reference image is frame 0 of a clip B
whose colour and shape both differ from A's. For each structure strength, sample i is scored by the shapes
checker (`vidiff.data.checker`):

* structure kept: the output's object centroid (`foreground_centroid`) is within 1.5 px of A's, averaged over
  the frames (a frame without an object counts as infinitely far);
* colour taken / shape taken: the checker's colour / shape of the output is B's;
* success: structure kept and colour taken (the issue's target: >= 85 %); "+ shape" also needs B's shape.

The baseline, measured in the same run, is the same model with the content dropped (its learned null
content, no guidance): the rates at which it lands on B's colour and shape by chance.

Stylisation: each clip A plus per-frame noise (sigma 6/255, a camera's) in the style of B's frame, per frame
(AdaIN on each frame's statistics) and temporal (smoothed statistics + flow blending): mean flicker and warp
error (`vidiff.metrics.temporal`) of both.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def pairs(num: int, frames: int, size: int, seed: int = 1):
    """(A videos (N, F, H, W, 3), A metadata, reference frames (N, H, W, 3), B metadata): B differs from A in
    colour and in shape."""
    from vidiff.data.synth import render_shapes

    pool, meta = render_shapes(num * 4, frames=frames, size=size, seed=seed)  # A: 0..num-1; B: from the rest
    refs, ref_meta = [], []
    for i in range(num):
        extra = [num + (3 * i + k) % (3 * num) for k in range(3 * num)]  # a different B for each A
        j = next(j for j in extra if meta[j]["colour"] != meta[i]["colour"] and meta[j]["shape"] != meta[i]["shape"])
        refs.append(pool[j][0])
        ref_meta.append(meta[j])
    return pool[:num], meta[:num], np.stack(refs), ref_meta


def score(outs: list[np.ndarray], inputs: np.ndarray, ref_meta: list[dict]) -> dict:
    from vidiff.data.checker import check_video, track_distance

    errs = np.array([track_distance(o, a) for o, a in zip(outs, inputs)])
    checks = [check_video(o) for o in outs]
    kept = errs <= 1.5
    colour = np.array([c.colour == m["colour"] for c, m in zip(checks, ref_meta)])
    shape = np.array([c.shape == m["shape"] for c, m in zip(checks, ref_meta)])
    finite = errs[np.isfinite(errs)]
    return {"structure_kept": float(kept.mean()), "colour_taken": float(colour.mean()),
            "shape_taken": float(shape.mean()), "success": float((kept & colour).mean()),
            "success_with_shape": float((kept & colour & shape).mean()),
            "median_track_error_px": float(np.median(finite)) if len(finite) else float("inf"),
            "frames_without_object": int(np.sum(~np.isfinite(errs)))}


def stylize_rows(inputs: np.ndarray, refs: np.ndarray, seed: int = 0) -> dict:
    from vidiff.metrics.temporal import flicker, warp_error
    from vidiff.pipelines.stylize import per_frame, stylize

    rng = np.random.default_rng(seed)
    noisy = np.clip(inputs.astype(np.float64) + rng.normal(0, 6, inputs.shape), 0, 255).round().astype(np.uint8)
    out = {}
    for name, fn in (("per_frame", per_frame), ("temporal", stylize)):
        vids = np.stack([fn(v, r) for v, r in zip(noisy, refs)])
        out[name] = {"flicker": float(flicker(vids).mean()), "warp_error": float(warp_error(vids).mean())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a model trained with --condition gen1")
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--strengths", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from vidiff.pipelines.gen1 import Gen1Editor

    editor = Gen1Editor.from_pretrained(args.model)
    frames, size = editor.pipe.video.frames, editor.size
    inputs, _, refs, ref_meta = pairs(args.num, frames, size)
    results = {"model": args.model, "num": args.num, "steps": args.steps, "guidance": args.guidance, "rows": []}
    settings = [("null content (baseline)", 1.0, False)] + [(f"strength {s:g}", s, True) for s in args.strengths]
    for name, strength, with_content in settings:
        start = time.perf_counter()
        outs = [editor.edit(a, r if with_content else None, structure="edges", strength=strength, steps=args.steps,
                            guidance=args.guidance, seed=args.seed + i)
                for i, (a, r) in enumerate(zip(inputs, refs))]
        row = {"setting": name, "strength": strength, **score(outs, inputs, ref_meta),
               "seconds": time.perf_counter() - start}
        results["rows"].append(row)
        print(json.dumps(row), flush=True)
    results["stylize"] = stylize_rows(inputs, refs, args.seed)

    print(f"\n{args.num} held-out pairs, {args.steps} DDIM steps, content guidance {args.guidance:g}\n")
    print("| setting | structure kept | colour taken | shape taken | success | + shape | median track err (px) |")
    print("|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        print(f"| {r['setting']} | {r['structure_kept']:.0%} | {r['colour_taken']:.0%} | {r['shape_taken']:.0%} | "
              f"{r['success']:.0%} | {r['success_with_shape']:.0%} | {r['median_track_error_px']:.2f} |")
    print("\n| stylisation | flicker | warp error |\n|---|---|---|")
    for name, r in results["stylize"].items():
        print(f"| {name.replace('_', ' ')} | {r['flicker']:.4f} | {r['warp_error']:.4f} |")
    if args.out:
        from vidiff.utils import atomic_path

        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
