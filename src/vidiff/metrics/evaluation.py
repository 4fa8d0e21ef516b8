"""`evaluate`: every metric of a real and a generated video set, each score stored with its protocol."""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

import torch

from ..config import config_to_dict
from ..limits import check_positive
from ..utils import VidiffError
from . import image, temporal
from .clip import check_clip_options, read_prompts, score_clip
from .extractors import FeatureExtractor, fallback_extractor, load_i3d, load_inception
from .frechet import frechet_distance_features
from .inception_score import check_is_options, score_inception
from .kid import kernel_distance
from .protocol import EvalProtocol, as_uint8_videos, as_video_tensor, resize_video, sample_clip

DISTRIBUTION = ("fvd", "fid", "kid")
PAIRED = ("psnr", "ssim", "lpips")
PER_VIDEO = ("flicker", "warp", "motion")
GENERATED = ("is", "clip")  # scores of the generated set alone, from local weights only
METRICS = DISTRIBUTION + PAIRED + PER_VIDEO + GENERATED


def parse_metrics(spec: str | list[str]) -> list[str]:
    """'fvd,fid' -> ['fvd', 'fid'], refusing unknown names."""
    names = [m.strip().lower() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise VidiffError(f"unknown metric(s) {bad or spec!r}; choose from {','.join(METRICS)}")
    return list(dict.fromkeys(names))


def check_eval_options(*, device: str = "cpu", batch_size: int = 8, frames: int = 16, stride: int = 1,
                       start: int = 0, window: int | None = None, kid_subsets: int = 100,
                       kid_subset_size: int = 1000) -> None:
    """Refuse bad `evaluate` options in one line naming the option, before any video is read or scored."""
    for value, option, least in ((batch_size, "--batch-size", 1), (frames, "--frames", 1), (stride, "--stride", 1),
                                 (start, "--start", 0), (window, "--window", 1), (kid_subsets, "--kid-subsets", 1),
                                 (kid_subset_size, "--kid-subset-size", 1)):
        check_positive(value, option, least)
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(device)):
        raise VidiffError(f"unknown --device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise VidiffError(f"--device {device}: no CUDA GPU is available here; use --device cpu")


def check_generated_options(names: list[str], *, inception: str | None = None, is_splits: int = 10,
                            clip_model: str | None = None, clip_weights: str | None = None,
                            has_real: bool = True) -> None:
    """Refuse `is` / `clip` without their local weights, and other metrics without real videos, in one line
    naming the flag, before any video is read."""
    if not has_real and any(m not in GENERATED for m in names):
        raise VidiffError(f"{','.join(m for m in names if m not in GENERATED)} compare with real videos: pass "
                          "--real (only is and clip score the generated set alone)")
    if "is" in names:
        check_is_options(inception, is_splits)
    if "clip" in names:
        check_clip_options(clip_model, clip_weights)


def evaluate(real, fake, metrics="fvd,fid,kid,psnr,ssim,flicker,warp", *, i3d: str | None = None,
             inception: str | None = None, i3d_features: str = "logits", frames: int = 16, start: int = 0,
             stride: int = 1, window: int | None = None, kid_subsets: int = 100, kid_subset_size: int = 1000,
             lpips_vgg: str | None = None, lpips_lin: str | None = None, device: str = "cpu",
             batch_size: int = 8, progress: bool = False, warn: Callable[[str], None] = print,
             is_splits: int = 10, clip_model: str | dict | None = None, clip_weights: str | None = None,
             clip_tokenizer: str | None = None, prompt: str | None = None,
             prompts: str | list[str] | None = None) -> dict:
    """Score `fake` against `real` ((N, F, H, W, 3) uint8 or (B, C, F, H, W) in [-1, 1]).

    `is` (Inception Score, from the --inception weights) and `clip` (CLIP score against `prompt` or one of
    `prompts` per generated video, from local OpenCLIP weights) score the generated set alone.

    `real` may be None when only `is` / `clip` are asked for.
    Sets are kept as uint8 and converted batch by batch, so memory stays bounded for thousands of videos.
    Returns {"scores": {metric: {"value", ..., "protocol"}}, "over_time": {metric: [(frame, value)]}}.
    """
    names = parse_metrics(metrics)
    check_eval_options(device=device, batch_size=batch_size, frames=frames, stride=stride, start=start,
                       window=window, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)
    check_generated_options(names, inception=inception, is_splits=is_splits, clip_model=clip_model,
                            clip_weights=clip_weights, has_real=real is not None)
    # sets stay uint8 (N, frames, H, W, 3); metrics convert chunk by chunk to bound memory
    r = None if real is None else sample_clip(as_uint8_videos(real), frames, start, stride)
    f = sample_clip(as_uint8_videos(fake), frames, start, stride)
    base = dict(num_real=0 if r is None else r.shape[0], num_fake=f.shape[0], frames=frames, clip_start=start,
                clip_stride=stride)
    scores: dict[str, dict] = {}
    over_time: dict[str, list] = {}

    def proto(ex: FeatureExtractor | None, **kw) -> dict:
        p = EvalProtocol(**base, **kw) if ex is None else EvalProtocol(
            **base, resize_size=ex.input_size, extractor=ex.name, extractor_kind=ex.kind,
            extractor_weights_sha256=ex.weights_sha256,
            comparable_to_published=ex.comparable, **kw)
        return config_to_dict(p)

    if any(m in names for m in DISTRIBUTION) and min(r.shape[0], f.shape[0]) < 2:
        raise VidiffError(
            f"fvd/fid/kid need at least 2 videos per set (got {r.shape[0]} real, {f.shape[0]} generated): "
            "a covariance needs more; add videos or drop these metrics"
        )

    if "fvd" in names:
        ex = load_i3d(i3d, i3d_features, device) if i3d else fallback_extractor("video", device=device)
        if not ex.comparable:
            warn(f"FVD uses the offline fallback extractor '{ex.name}' (no --i3d file): NOT comparable to "
                 "published FVD")
        fr, ff = ex(r, batch_size, progress), ex(f, batch_size, progress)
        scores["fvd"] = {"value": frechet_distance_features(fr, ff), "features": fr.shape[1], "protocol": proto(ex)}
        if window:
            over_time["fvd"] = temporal.over_windows(
                lambda a, b: frechet_distance_features(ex(a, batch_size), ex(b, batch_size)), r, f, window=window)

    if "fid" in names or "kid" in names:
        ex = load_inception(inception, device) if inception else fallback_extractor("image", device=device)
        if not ex.comparable:
            warn(f"FID/KID use the offline fallback extractor '{ex.name}' (no --inception file): NOT comparable "
                 "to published FID/KID")
        fr, ff = ex(r, batch_size, progress), ex(f, batch_size, progress)  # (N*frames, D): every frame an image
        p = proto(ex)
        if "fid" in names:
            scores["fid"] = {"value": frechet_distance_features(fr, ff), "images_real": len(fr),
                             "images_fake": len(ff), "protocol": p}
            if window:
                nr, nf = r.shape[0], f.shape[0]
                fr3, ff3 = fr.reshape(nr, frames, -1), ff.reshape(nf, frames, -1)
                over_time["fid"] = [
                    (s, frechet_distance_features(fr3[:, s:e].reshape(-1, fr.shape[1]), ff3[:, s:e].reshape(-1,
                            ff.shape[1])))
                    for s, e in temporal.sliding_windows(frames, window)]
        if "kid" in names:
            mean, std = kernel_distance(fr, ff, kid_subsets, kid_subset_size)
            scores["kid"] = {"value": mean, "std": std, "subsets": kid_subsets,
                             "subset_size": min(kid_subset_size, len(fr), len(ff)), "protocol": p}

    paired = [m for m in names if m in PAIRED]
    if paired:
        if r.shape[0] != f.shape[0]:
            raise VidiffError(f"{','.join(paired)} compare videos pairwise and need equal counts "
                              f"(got {r.shape[0]} real, {f.shape[0]} generated)")
        size = tuple(r.shape[2:4])
        if f.shape[2:4] != size:
            warn(f"generated frames {tuple(f.shape[2:4])} differ from real {size}: resizing "
                 f"generated to {size} (bilinear) for {','.join(paired)}")
        resize = "none" if f.shape[2:4] == size else "bilinear-to-real"
        fns: dict[str, Callable] = {}
        if "psnr" in names:
            fns["psnr"] = image.psnr
        if "ssim" in names:
            fns["ssim"] = image.ssim
        if "lpips" in names:
            if not (lpips_vgg and lpips_lin):
                raise VidiffError("lpips needs local weights: --lpips-vgg VGG16_FEATURES.pth and --lpips-lin LIN.pth")
            from .lpips import load_lpips

            fns["lpips"] = load_lpips(lpips_vgg, lpips_lin, device)
        chunks: dict[str, list] = {m: [] for m in fns}
        for s in range(0, r.shape[0], batch_size):
            rc = as_video_tensor(r[s:s + batch_size])  # (b, 3, frames, H, W)
            fc = resize_video(as_video_tensor(f[s:s + batch_size]), size)
            for m, fn in fns.items():
                chunks[m].append(fn(rc, fc).cpu())  # (b, frames)
        per_frame = {m: torch.cat(c) for m, c in chunks.items()}
        for m, v in per_frame.items():
            curve = v.mean(0).tolist()
            scores[m] = {"value": float(v.mean()), "per_frame": curve,
                         "protocol": proto(None, resize_method=resize, resize_size=int(r.shape[3]))}
            over_time[m] = list(enumerate(curve))

    per_video = {"flicker": temporal.flicker, "warp": temporal.warp_error, "motion": temporal.motion_consistency}
    for m in (m for m in names if m in PER_VIDEO):
        vr, vf = per_video[m](r), per_video[m](f)
        entry = {"value": float(np.nanmean(vf)), "real": float(np.nanmean(vr))}
        if m == "motion":
            entry["magnitude"], entry["magnitude_real"] = (float(temporal.motion_magnitude(f).mean()),
                                                          float(temporal.motion_magnitude(r).mean()))
        entry["protocol"] = proto(None, resize_method="none", resize_size=int(f.shape[3]))
        scores[m] = entry
        if m == "flicker":
            over_time["flicker"] = [
                (t, float(np.mean([np.abs(v[t + 1].astype(np.float32) - v[t]).mean() for v in f]) / 255))
                for t in range(frames - 1)]

    if "is" in names:
        scores["is"] = score_inception(f, inception, is_splits, base=base, device=device, batch_size=batch_size,
                                       progress=progress)
    if "clip" in names:
        texts, source, sha = read_prompts(f.shape[0], prompt, prompts)
        scores["clip"] = score_clip(f, texts, clip_weights, clip_model, clip_tokenizer, base=base,
                                    source=(source, sha), device=device, batch_size=batch_size)
    return {"scores": scores, "over_time": over_time}


def protocol_dict(**kw) -> dict:
    """An EvalProtocol as a JSON-able dict (for callers building their own reports)."""
    return config_to_dict(EvalProtocol(**kw))


__all__ = ["METRICS", "evaluate", "parse_metrics", "protocol_dict"]
