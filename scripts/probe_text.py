"""How much of a held-out paraphrase can a model read from MiniLM, given only the training captions?

A text-only probe: for each attribute (colour, shape, direction) a small classifier reads the frozen
MiniLM embeddings the way the UNet does (learned queries cross-attending to the token embeddings,
plus the pooled sentence vector), is trained on the captions of the 2000 training videos, and is
scored on the held-out paraphrases `eval_t2v.py` uses (`paraphrase_prompts`). Two caption sets:
the four canonical templates only, and those plus the 8 rephrasings per video from the synonym bank
(`caption_variants`, what `captions: random` trains on). The probe sees no video, so its score is
what the text features let a conditional model tell apart, not what a given video model does.

    python scripts/probe_text.py [--num-prompts 512] [--steps 400] [--seeds 3] [--out probe.json]
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np
import torch

ATTRS = ("colour", "shape", "direction")


class AttentionProbe(torch.nn.Module):
    """`heads` learned queries attend to the token embeddings; their values and the pooled vector -> logits."""

    def __init__(self, classes: int, dim: int = 384, heads: int = 4, width: int = 64):
        super().__init__()
        self.query = torch.nn.Parameter(torch.randn(heads, dim) * 0.05)
        self.key = torch.nn.Linear(dim, dim)
        self.value = torch.nn.Linear(dim, width)
        self.out = torch.nn.Linear(heads * width + dim, classes)

    def forward(self, tokens, mask, pooled):
        # tokens (B, L, D), mask (B, L), pooled (B, D) -> logits (B, classes)
        att = torch.einsum("hd,bld->bhl", self.query, self.key(tokens)) / tokens.shape[-1] ** 0.5
        att = att.masked_fill(~mask[:, None], float("-inf")).softmax(-1)
        read = torch.einsum("bhl,ble->bhe", att, self.value(tokens)).flatten(1)
        return self.out(torch.cat([read, pooled], 1))


def fit(emb, labels, classes: int, steps: int, seed: int) -> AttentionProbe:
    """AdamW on cross-entropy, batches of 256 drawn with replacement."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    probe = AttentionProbe(classes)
    opt = torch.optim.AdamW(probe.parameters(), lr=3e-3, weight_decay=0.01)
    for _ in range(steps):
        idx = torch.randint(len(labels), (256,), generator=g)
        loss = torch.nn.functional.cross_entropy(probe(emb.tokens[idx], emb.mask[idx], emb.pooled[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return probe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=2000, help="training videos (data/shapes has 2000, seed 0)")
    ap.add_argument("--num-prompts", type=int, default=512, help="held-out paraphrases to score")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seeds", type=int, default=3, help="probes per setting (mean and spread reported)")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args(argv)

    from vidiff.conditioning.text import get_text_encoder
    from vidiff.data import synth
    from vidiff.utils import VidiffError, atomic_write_text

    try:
        enc = get_text_encoder()
    except VidiffError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = synth.ShapesConfig()
    names = {"colour": list(cfg.colours), "shape": list(cfg.shapes), "direction": list(cfg.directions)}
    params = [synth.sample_params(i, 0, cfg) for i in range(args.videos)]
    sets = {"canonical": [[p.caption] for p in params],
            "canonical + variants": [[p.caption, *synth.caption_variants(p, cfg.caption_variants, 0)] for p in params]}
    para = list(synth.paraphrase_prompts(args.num_prompts, seed=0, cfg=cfg))
    test = enc.encode([t for t, _ in para])
    results = {}
    for name, per_video in sets.items():
        texts = [t for caps in per_video for t in caps]
        owner = [p for p, caps in zip(params, per_video) for _ in caps]
        emb = enc.encode(texts)
        row = {"captions": len(texts)}
        correct_by_attr = {}                                                   # attr -> (seeds, prompts) bool
        for attr in ATTRS:
            y = torch.tensor([names[attr].index(getattr(p, attr)) for p in owner])
            target = torch.tensor([names[attr].index(t[attr]) for _, t in para])
            accs, correct = [], []
            for seed in range(args.seeds):
                probe = fit(emb, y, len(names[attr]), args.steps, seed)
                with torch.no_grad():
                    pred = probe(test.tokens, test.mask, test.pooled).argmax(1)
                correct.append(pred == target)
                accs.append(100 * correct[-1].float().mean().item())
            row[attr] = {"mean": float(np.mean(accs)), "min": float(min(accs)), "max": float(max(accs))}
            correct_by_attr[attr] = torch.stack(correct)
        every = correct_by_attr["colour"] & correct_by_attr["shape"] & correct_by_attr["direction"]
        row["all three"] = float(100 * every.float().mean())
        word = collections.defaultdict(list)  # the colour probe's accuracy per held-out colour word
        for (text, _), ok in zip(para, correct_by_attr["colour"].float().mean(0).tolist()):
            word[text.split()[1]].append(ok)
        row["colour by word"] = {w: float(100 * np.mean(v)) for w, v in sorted(word.items())}
        results[name] = row
        print(f"{name:22s} ({len(texts)} captions): " + ", ".join(
            f"{a} {row[a]['mean']:.1f} % [{row[a]['min']:.0f}-{row[a]['max']:.0f}]" for a in ATTRS)
            + f", all three {row['all three']:.1f} %", flush=True)
        print("  colour by held-out word: " + ", ".join(f"{w} {v:.0f} %" for w, v in row["colour by word"].items()))
    if args.out:
        atomic_write_text(args.out, json.dumps({"num_prompts": args.num_prompts, "steps": args.steps,
                                                "seeds": args.seeds, "results": results}, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
