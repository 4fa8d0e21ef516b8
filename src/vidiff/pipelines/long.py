"""Videos longer than the training length by MultiDiffusion along time (Bar-Tal et al. 2023).

At every denoising step the (long) z_t is cut into overlapping windows of the model's length, the
denoiser runs on each window, and the per-frame predictions are averaged (MultiDiffusion eq. 5, the
closed-form solution of its eq. 3 for the squared-error fusion loss):

    x̂(z_t)[f] = Σ_i W_i[f] x̂_i[f] / Σ_j W_j[f]      (the same for ε̂ and v̂)

over the windows i that contain frame f. Because x̂₀, ε̂ and v̂ are affine in z_t with the same
(α_t, σ_t) for every window, the fused triple is again consistent, so any sampler runs unchanged.
Lumiere (Bar-Tal et al. 2024, sec. 3.2) uses the same fusion for its spatial super-resolution.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any, Callable

import torch
from torch import Tensor

from ..conditioning import Cond
from ..conditioning.image_embed import drop_unheld_frames, frame_embedding_cond
from ..diffusion.guidance import ClassifierFreeGuidance
from ..diffusion.param import Prediction
from ..limits import check_memory, check_positive, estimate_sampling_bytes, eta_notice, sampling_seconds
from ..utils import VidiffError

__all__ = ["WEIGHTINGS", "TemporalWindows", "window_starts", "window_weights", "fusion_weights", "sample_long"]

WEIGHTINGS = ("triangular", "uniform")


def window_starts(frames: int, window: int, overlap: int) -> list[int]:
    """First frame of each window: 0, s, 2s, … with stride s = window − overlap; the last window is
    aligned to the end (start = frames − window), so every frame is covered and no window is short."""
    if window < 1 or not 0 <= overlap < window:
        raise VidiffError(f"need window >= 1 and 0 <= overlap < window; got window={window}, overlap={overlap}")
    if frames <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, frames - window, stride))
    return starts + [frames - window]


def window_weights(window: int, weighting: str = "triangular") -> Tensor:
    """Per-frame weight W[j] of a window before normalisation: "uniform" is 1 (MultiDiffusion's
    plain average); "triangular" is min(j + 1, window − j), a tent that fades each window in and out
    so a frame's prediction moves continuously from one window to the next."""
    if weighting == "uniform":
        return torch.ones(window, dtype=torch.float64)
    if weighting == "triangular":
        j = torch.arange(window, dtype=torch.float64)
        return torch.minimum(j + 1, window - j)
    raise VidiffError(f"unknown window weighting {weighting!r}; choose one of {list(WEIGHTINGS)}")


def fusion_weights(frames: int, window: int, overlap: int, weighting: str = "triangular") -> Tensor:
    """(num_windows, frames) normalised weights: row i is W_i / Σ_j W_j on window i's frames, 0 elsewhere;
    every column sums to 1 (MultiDiffusion eq. 5)."""
    starts = window_starts(frames, window, overlap)
    w = min(window, frames)
    raw = torch.zeros(len(starts), frames, dtype=torch.float64)
    for i, s in enumerate(starts):
        raw[i, s:s + w] = window_weights(w, weighting)
    return raw / raw.sum(0, keepdim=True)


def _slice_cond(cond: Any, pairs: list[tuple[int, int]], window: int) -> Any:
    """The Cond of each (sample, start) pair: `concat` and `self_cond` sliced along F, other fields per sample."""
    if cond is None:
        return None
    if not isinstance(cond, Cond):
        raise VidiffError(f"TemporalWindows needs cond=None or a Cond; got {type(cond).__name__}")
    idx = torch.tensor([b for b, _ in pairs])
    out = cond.map(lambda v: v[idx.to(v.device)])
    for name in ("concat", "self_cond"):  # per-frame fields: (n, C', w, H, W)
        v = getattr(cond, name)
        if v is not None:
            out = replace(out, **{name: torch.stack([v[b, :, s:s + window] for b, s in pairs])})
    return drop_unheld_frames(out, [s for _, s in pairs])  # an embedded first frame: only where the window holds it


class TemporalWindows:
    """MultiDiffusion along time (Bar-Tal et al. 2023, eq. 5): run `denoiser` on overlapping windows of
    `window` frames and fuse the per-frame x̂₀ / ε̂ / v̂ with normalised `weighting` weights.

    Same call as a denoiser, (z, t, schedule, cond) -> Prediction, so it composes with every sampler
    and guidance wrapper (`guidance=partial(TemporalWindows, window=16, overlap=8)`). At most
    `batch_size` (sample, window) pairs go through the wrapped denoiser at once, so peak activation
    memory does not grow with the length. `cond.concat` and `cond.self_cond` are sliced along F per window; other Cond
    fields are per sample, but an embedded first frame (`Cond.content`) is dropped to the null in the windows
    that do not hold frame 0 (conditioning.image_embed). With one window (frames <= window) it is the wrapped
    denoiser itself.
    """

    def __init__(self, denoiser: Callable, window: int, overlap: int | None = None,
                 weighting: str = "triangular", batch_size: int = 8):
        overlap = window // 2 if overlap is None else overlap
        window_starts(window, window, overlap)  # validates window and overlap
        window_weights(1, weighting)  # validates the weighting
        if batch_size < 1:
            raise VidiffError(f"batch_size must be >= 1; got {batch_size}")
        self.denoiser, self.window, self.overlap = denoiser, int(window), int(overlap)
        self.weighting, self.batch_size = weighting, int(batch_size)

    def __call__(self, z: Tensor, t, schedule, cond: Any = None) -> Prediction:
        if z.dim() != 5:
            raise VidiffError(f"TemporalWindows needs videos (B, C, F, H, W); got shape {tuple(z.shape)}")
        B, _, F = z.shape[:3]
        starts = window_starts(F, self.window, self.overlap)
        if len(starts) == 1:
            return self.denoiser(z, t, schedule, cond)
        w = self.window
        fw = fusion_weights(F, w, self.overlap, self.weighting).to(z.dtype)  # (n_windows, F)
        t_vec = torch.is_tensor(t) and t.dim() == 1
        pairs = [(b, i) for b in range(B) for i in range(len(starts))]  # sample-major
        out = {k: torch.zeros_like(z) for k in ("x0", "eps", "v")}  # (B, C, F, H, W) accumulators
        for c0 in range(0, len(pairs), self.batch_size):
            chunk = [(b, starts[i]) for b, i in pairs[c0:c0 + self.batch_size]]
            zw = torch.stack([z[b, :, s:s + w] for b, s in chunk])  # (n, C, w, H, W)
            tw = t[torch.tensor([b for b, _ in chunk], device=t.device)] if t_vec else t
            pred = self.denoiser(zw, tw, schedule, _slice_cond(cond, chunk, w))
            for k, (b, i) in enumerate(pairs[c0:c0 + self.batch_size]):
                s = starts[i]
                wk = fw[i, s:s + w].reshape(1, w, 1, 1)  # (1, w, 1, 1) over (C, w, H, W)
                for name in out:
                    out[name][b, :, s:s + w] += wk * getattr(pred, name)[k]
        return Prediction(out["x0"], out["eps"], out["v"])

    def __repr__(self) -> str:
        return (f"TemporalWindows({self.denoiser!r}, window={self.window}, overlap={self.overlap}, "
                f"weighting={self.weighting!r}, batch_size={self.batch_size})")


def sample_long(pipeline, num: int = 1, *, frames: int, window: int | None = None, overlap: int | None = None,
                steps: int = 25, sampler: str = "ddim", seed: int = 0, cond: Cond | None = None,
                prompt: str | None = None, class_id: int | None = None, guidance: float = 0.0,
                guidance_rescale: float = 0.0,
                autoguidance: float | None = None, weighting: str = "triangular", batch_size: int = 8,
                size: int | None = None,
                callback: Callable | None = None, **sampler_kwargs) -> Tensor:
    """Sample `num` videos of `frames` frames with a model trained on shorter clips, by MultiDiffusion
    over time (Bar-Tal et al. 2023): returns (num, C, frames, H, W) float in [-1, 1].

    `pipeline` is a `VideoPipeline` or a model name / checkpoint folder; `window` defaults to the
    model's frame count and `overlap` to half of it. `prompt` / `class_id` condition a model trained
    with them, `guidance` is the CFG weight w (applied outside the windows, with its `guidance_rescale` φ);
    `autoguidance` guides each window with the checkpoint's guide model (None: its default, 0: off).
    Sample i depends only on `seed + i`.
    """
    from ..conditioning import null_like
    from . import load_pipeline
    from .base import VideoPipeline, sample_videos

    pipe = load_pipeline(pipeline) if isinstance(pipeline, str) else pipeline
    if not isinstance(pipe, VideoPipeline):
        raise VidiffError(f"sample_long needs a VideoPipeline or a model name; got {type(pipeline).__name__}")
    window = window or pipe.video.frames
    overlap = window // 2 if overlap is None else overlap
    size = size or pipe.video.size
    for value, option in ((num, "--num"), (frames, "--frames"), (steps, "--steps"), (size, "--size"),
                          (window, "--window"), (batch_size, "--batch-size")):
        check_positive(value, option)
    if hasattr(pipe.model, "check_size"):
        pipe.model.check_size(min(window, frames), size, size)
    _check_long_request(pipe, num, frames, window, overlap, size, steps, batch_size)
    given = cond is not None or prompt is not None or class_id is not None
    if cond is None and (given or pipe.condition):
        cond = pipe.make_cond(num, frames, size, prompt=prompt, class_id=class_id)
    cond = frame_embedding_cond(cond, pipe.condition, getattr(pipe.model, "config", None), num)  # i2v: its embedding
    ag = pipe.autoguidance_spec(autoguidance)  # no guide -> one-line error before any work

    def windows(den: Callable) -> TemporalWindows:
        return TemporalWindows(pipe.with_autoguidance(den, ag), window=window, overlap=overlap,
                               weighting=weighting, batch_size=batch_size)

    wrap = windows
    if guidance and given:  # CFG outside: its batched [cond, null] call is cut into windows like any cond
        wrap = partial(_cfg_outside, windows=windows, w=guidance, null=null_like(cond), rescale=guidance_rescale)

    shape = (num, pipe.video.channels, frames, size, size)
    return sample_videos(pipe.model, pipe.diffusion, shape, steps=steps, sampler=sampler, seed=seed, cond=cond,
                         denoiser_wrapper=wrap, callback=callback, **sampler_kwargs)


def _check_long_request(pipe, num: int, frames: int, window: int, overlap: int, size: int, steps: int,
                        batch_size: int) -> None:
    """Refuse a long video that cannot fit in memory (the full-length latents and the fused predictions
    are held at once), and give an ETA notice when it will run long — before any work."""
    cfg = getattr(pipe.model, "config", None)
    n_windows = num * len(window_starts(frames, window, overlap))
    window, c = min(window, frames), pipe.video.channels
    latents = 12 * num * c * frames * size * size * 4  # z_t, the fused x̂₀/ε̂/v̂ sums, the sampler's state
    need = estimate_sampling_bytes(cfg, min(batch_size, n_windows), window, size, size, c) + latents
    check_memory(need + num * frames * size * size * 3, f"sampling {num} video(s) of {frames}x{size}x{size}",
                 "ask for fewer frames or videos")
    eta_notice(sampling_seconds(cfg, n_windows, steps, window, size, size),
               f"sampling {num} video(s) of {frames} frames ({n_windows} windows, {steps} steps)")


def _cfg_outside(den: Callable, windows: Callable, w: float, null: Cond,
                 rescale: float = 0.0) -> ClassifierFreeGuidance:
    return ClassifierFreeGuidance(windows(den), w=w, null_cond=null, rescale=rescale)
