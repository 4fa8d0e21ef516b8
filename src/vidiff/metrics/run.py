"""`run_eval`, the body of `vidiff eval`: load a real and a generated video set, score them, print a table,
write the JSON report (with each score's protocol) and optional visual report files."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from .. import __version__
from ..data.io import check_output, load_npy, read_video_set, write_mp4
from ..utils import VidiffError, atomic_write_text, os_error_message
from .evaluation import check_eval_options, check_generated_options, evaluate, parse_metrics
from .report import plot_over_time, save_xt_png, side_by_side


def _load_set(path: str, need: int, label: str, warn) -> np.ndarray:
    """A video set as uint8 (N, need, H, W, 3): an .npy of (N, F, H, W, 3), one video file, or a folder."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".npy":
        a = load_npy(p, mmap=True)
        if a.ndim == 4:
            a = a[None]
        if a.ndim != 5 or a.shape[-1] != 3 or a.dtype != np.uint8:
            raise VidiffError(f"{label} set {p}: expected a uint8 array (N, F, H, W, 3), got {a.dtype} {a.shape}")
        if a.shape[1] < need:
            raise VidiffError(f"{label} set {p} has {a.shape[1]} frames per video but the clip needs {need}; "
                              "lower --frames or --stride")
        return np.array(a[:, :need])  # copy out of the memory map
    vids, files = read_video_set(p, max_frames=need)  # a folder's (N, F, H, W, 3) .npy gives N videos
    if not vids:
        raise VidiffError(f"no videos found in {p}: expected .mp4/.gif/.npy files or folders of frames")
    short = [(f, len(v)) for f, v in zip(files, vids) if len(v) < need]
    if short:
        shown = ", ".join(f"{n} ({k} frames)" for n, k in short[:3])
        raise VidiffError(f"{len(short)} {label} video(s) are shorter than the {need} frames the clip needs: "
                          f"{shown}; lower --frames or --stride")
    sizes = sorted({v.shape[1:3] for v in vids})
    if len(sizes) > 1:

        h, w = vids[0].shape[1:3]
        warn(f"{label} videos have different sizes {sizes[:4]}: resizing all to {h}x{w} (bilinear) to stack them")
        vids = [v if v.shape[1:3] == (h, w) else
                np.stack([cv2.resize(fr, (w, h), interpolation=cv2.INTER_LINEAR) for fr in v]) for v in vids]
    return np.stack(vids)


def _clean(x):
    """JSON-safe: NaN/Inf -> None, tuples -> lists, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def run_eval(real: str | None, fake: str, metrics: str = "fvd,fid,kid,psnr,ssim,flicker,warp", i3d: str | None = None,
             inception: str | None = None, i3d_features: str = "logits", frames: int = 16, start: int = 0,
             stride: int = 1, window: int | None = None, out: str | None = None, report_dir: str | None = None,
             kid_subsets: int = 100, kid_subset_size: int = 1000, lpips_vgg: str | None = None,
             lpips_lin: str | None = None, device: str = "auto", batch_size: int = 8, row: int | None = None,
             quiet: bool = False, is_splits: int = 10, clip_model: str | None = None, clip_weights: str | None = None,
             clip_tokenizer: str | None = None, prompt: str | None = None, prompts: str | None = None) -> dict:
    """The body of `vidiff eval`, callable from Python; returns the JSON report as a dict."""
    console = Console(stderr=True, quiet=quiet)
    warnings: list[str] = []

    def warn(msg: str) -> None:
        if msg not in warnings:
            warnings.append(msg)
            console.print(f"[yellow]warning:[/yellow] {msg}", highlight=False)

    names = parse_metrics(metrics)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    check_eval_options(device=device, batch_size=batch_size, frames=frames, stride=stride, start=start,
                       window=window, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)
    check_generated_options(names, inception=inception, is_splits=is_splits, clip_model=clip_model,
                            clip_weights=clip_weights, has_real=real is not None)
    if report_dir and real is None:
        raise VidiffError("--report-dir shows real and generated videos side by side: pass --real too")
    if out:  # outputs are checked before any work, so a bad --report-dir never leaves a lone --out
        check_output(out, "--out")
    if report_dir:
        check_output(report_dir, "--report-dir", kind="dir")
    need = start + (frames - 1) * stride + 1
    real_v = None if real is None else _load_set(real, need, "real", warn)
    fake_v = _load_set(fake, need, "generated", warn)
    if real_v is not None and real_v.shape[2:4] != fake_v.shape[2:4]:
        warn(f"real frames are {real_v.shape[2]}x{real_v.shape[3]}, generated {fake_v.shape[2]}x{fake_v.shape[3]}: "
             "feature metrics resize both to the extractor size; paired metrics resize generated to real")
    res = evaluate(real_v, fake_v, names, i3d=i3d, inception=inception, i3d_features=i3d_features, frames=frames,
                   start=start, stride=stride, window=window, kid_subsets=kid_subsets,
                   kid_subset_size=kid_subset_size, lpips_vgg=lpips_vgg, lpips_lin=lpips_lin, device=device,
                   batch_size=batch_size, progress=not quiet, warn=warn, is_splits=is_splits, clip_model=clip_model,
                   clip_weights=clip_weights, clip_tokenizer=clip_tokenizer, prompt=prompt, prompts=prompts)
    by_msg: dict[str, list[str]] = {}
    for m, s in res["scores"].items():
        for w in s["protocol"]["warnings"]:
            by_msg.setdefault(w, []).append(m)
    for w, ms in by_msg.items():
        warn(f"{','.join(ms)}: {w}")
    report = _clean({"vidiff_version": __version__, "real": None if real is None else str(real), "fake": str(fake),
                     **res, "warnings": warnings})

    against = "" if real_v is None else f" vs {len(real_v)} real"
    table = Table(title=f"vidiff eval: {len(fake_v)} generated{against}, {frames} frames")
    for col in ("metric", "value", "real (ref.)", "extractor", "comparable"):
        table.add_column(col)
    for m, s in report["scores"].items():
        value = _fmt(s["value"]) + (f" ± {s['std']:.2g}" if "std" in s else "")
        p = s["protocol"]
        table.add_row(m, value, _fmt(s.get("real")), p["extractor"] or "-",
                      "-" if not p["extractor"] else ("yes" if p["comparable_to_published"] else "[red]NO[/red]"))
    Console(quiet=quiet).print(table)

    if report_dir:
        d = Path(report_dir)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise VidiffError(os_error_message(d, e)) from None
        y = real_v.shape[2] // 2 if row is None else row
        pair = side_by_side(real_v[0], fake_v[0])
        save_xt_png(d / "xt_real_vs_generated.png", pair, min(y, pair.shape[1] - 1), scale=4)
        n = min(4, len(real_v), len(fake_v))
        write_mp4(d / "real_vs_generated.mp4",  # up to 4 pairs stacked vertically, real left
                  np.concatenate([side_by_side(real_v[i], fake_v[i]) for i in range(n)], axis=1))
        for m, pts in res["over_time"].items():
            plot_over_time(d / f"{m}_over_time.png", {m: pts},
                           "frame (window start)" if m in ("fvd", "fid") else "frame",
                           m, title=f"{m} over time")
        console.print(f"wrote report files to {d}")
    if out:
        atomic_write_text(out, json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {out}")
    return report
