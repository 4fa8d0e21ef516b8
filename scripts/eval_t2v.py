"""Score a text-to-video shapes model: does the video show the prompt's colour, shape and direction?

For `--num` training-style prompts ("a red circle moving left") and as many held-out paraphrases
("a crimson disc drifting to the west"), one video each (seed + i) is sampled with classifier-free
guidance and read by the shapes checker (vidiff.data.checker), which estimates the object's colour,
shape and initial direction (8 compass ways). Prints a table and writes a JSON report.

    python scripts/eval_t2v.py --model shapes-t2v-tiny --num 64 --guidance 3
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes-t2v-tiny")
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--snr", type=float, default=None, help="--sampler pc: the corrector's r")
    ap.add_argument("--corrector-range", default=None, help="--sampler pc: LO,HI")
    ap.add_argument("--guidance", type=float, nargs="+", default=[3.0])
    ap.add_argument("--autoguidance", type=float, nargs="+", default=[None],
                    help="autoguidance weights (default: the checkpoint's; models without a guide: off)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON report (default: print only)")
    args = ap.parse_args(argv)

    from vidiff import load_pipeline
    from vidiff.conditioning import Cond
    from vidiff.conditioning.text import get_text_encoder
    from vidiff.data.checker import check_batch
    from vidiff.data.synth import canonical_prompts, paraphrase_prompts

    from vidiff.cli.sample import corrector_options

    extra = corrector_options(args.sampler, args.snr, None, args.corrector_range)
    pipe = load_pipeline(args.model)
    enc = get_text_encoder()
    report = {"model": args.model, "num": args.num, "steps": args.steps, "sampler": args.sampler,
              **{k: list(v) if isinstance(v, tuple) else v for k, v in extra.items()}, "rows": []}
    print(f"{'prompts':<12}{'w':>5}{'AG':>5}{'colour':>9}{'shape':>9}{'direction':>11}"
          f"{'all three':>11}{'checker ok':>12}")
    sets = []  # (name, prompts, expected attributes, Cond): encoded once for every weight
    for name, gen in (("canonical", canonical_prompts), ("paraphrase", paraphrase_prompts)):
        prompts, expected = zip(*gen(args.num, seed=args.seed))
        emb = enc.encode(list(prompts))
        sets.append((name, prompts, expected, Cond(text=emb.tokens, text_mask=emb.mask, pooled=emb.pooled)))
    for ag, w in itertools.product(args.autoguidance, args.guidance):
        ag_w = pipe.autoguidance if ag is None else ag
        for name, prompts, expected, cond in sets:
            t0 = time.perf_counter()
            videos = pipe(args.num, steps=args.steps, sampler=args.sampler, seed=args.seed, cond=cond,
                          guidance=w, autoguidance=ag, progress=True, **extra)
            s = check_batch(videos.numpy(), list(expected))
            row = {"prompts": name, "guidance": w, "autoguidance": ag_w,
                   "autoguidance_spec": pipe.autoguidance_spec(ag),  # with the noisier steps' weight, if any
                   "seconds": round(time.perf_counter() - t0, 1),
                   **{k: s[k] for k in ("colour_acc", "shape_acc", "direction_acc", "all_attrs_acc", "ok")},
                   "examples": [{"prompt": p, "got": {a: getattr(r, a) for a in ("colour", "shape", "direction")}}
                                for p, r in list(zip(prompts, s["results"]))[:8]]}
            report["rows"].append(row)
            print(f"{name:<12}{w:>5g}{ag_w:>5g}{row['colour_acc']:>9.0%}{row['shape_acc']:>9.0%}"
                  f"{row['direction_acc']:>11.0%}{row['all_attrs_acc']:>11.0%}{row['ok']:>12.0%}", flush=True)
    if args.out:
        from vidiff.utils import atomic_write_text

        atomic_write_text(Path(args.out), json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
