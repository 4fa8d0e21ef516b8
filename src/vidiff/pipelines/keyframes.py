"""Video LDM's keyframes → latent frame interpolation (Blattmann et al. 2023, §3.2).

A keyframe model samples sparse frames as latents; a temporal super-resolution (TSR) model of the same
autoencoder — `vidiff train --latent VAE --condition tsr`: the keyframe latents at every 2nd frame, zeros
elsewhere, and the frame mask concatenated to its input (`conditioning.tasks.tsr_concat`) — fills the frames
between them, doubling the frame count per pass, still in latent space; the autoencoder decodes once, at the end.
The keyframe latents are never decoded on the way: each pass conditions on them as sampled and puts them back at
their positions exactly, so `latents[:, :, ::time]` equals the keyframes bit for bit. With the identity
autoencoder this is the pixel cascade without uint8 rounding between the stages, bit for bit.

When the two models were trained with different autoencoders (other sha256), the keyframes are decoded with the
keyframe model's and re-encoded with the interpolation model's, with a notice; a pixel keyframe model's frames
are encoded. An interpolation autoencoder that compresses time cannot hold single frames and is refused.

From the command line the two models form a cascade (`pipelines.cascade`; an SSR stage may follow, in pixels).
The keyframe model learns clips at the low frame rate (`--stride 2`: every 2nd frame), the TSR model clips of
twice the frames at the full rate; `time: 4` runs the TSR twice (its first pass sees keyframes twice as far
apart as in training):

    vidiff train --data clips --latent VAE --frames 8 --stride 2 --size 32 --out runs/keyframes
    vidiff train --data clips --latent VAE --frames 16 --size 32 --condition tsr --out runs/interp
    # keyframes.yaml:  base: {model: runs/keyframes, steps: 50}
    #                  tsr: {model: runs/interp, steps: 50}
    vidiff cascade --config keyframes.yaml --num 4 --stages     # 8 keyframes -> 16 frames, decoded once
    vidiff upsample low.mp4 --tsr-model runs/interp --time 2    # a pixel video: encoded once, decoded once

and from Python:

    out = keyframes_then_interpolate(load_pipeline("runs/keyframes"), load_pipeline("runs/interp"), 4, steps=50)
    out.keyframes  # (4, C, 8, h, w) the keyframe latents; out.latents (4, C, 16, h, w); out.video (4, 3, 16, H, W)
    videos = CascadePipeline.from_config("keyframes.yaml")(4)     # uint8 (4, 16, H, W, 3)
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..conditioning.tasks import SR_FACTOR, sr_request_cond
from ..utils import VidiffError, notice
from .base import VideoPipeline
from .extend import as_pipeline
from .latent import LatentVideoPipeline

__all__ = ["KeyframeVideos", "check_interpolator", "interpolate_latents", "interpolate_video",
           "keyframes_then_interpolate", "same_autoencoder", "to_interpolator_latents"]


@dataclass
class KeyframeVideos:
    """What `keyframes_then_interpolate` made: the keyframe model's samples (its latents; pixels for a pixel
    model), the interpolation model's latents (with one autoencoder, the keyframes themselves at every
    `time`-th frame) and those decoded once."""

    keyframes: Tensor  # (B, C, f, h, w)
    latents: Tensor  # (B, C', f·time, h', w')
    video: Tensor  # (B, 3, F·time, H, W) in [−1, 1]


def _clamped(pipe: VideoPipeline, x: Tensor) -> Tensor:
    """Samples as the pipeline keeps them between steps: pixels (and the identity's latents) clamped to
    [−1, 1], other latents as sampled."""
    bounded = not isinstance(pipe, LatentVideoPipeline) or pipe.autoencoder.bounded
    return x.clamp(-1, 1) if bounded else x


def check_interpolator(tsr: VideoPipeline) -> LatentVideoPipeline:
    """`tsr`, or a one-line error unless it is a latent TSR model whose autoencoder keeps every frame."""
    if not isinstance(tsr, LatentVideoPipeline):
        raise VidiffError(f"{tsr.name or 'the interpolation model'} is a pixel model; latent interpolation needs "
                          "one trained with `vidiff train --latent VAE --condition tsr` (pixel TSR models run in "
                          "`vidiff upsample` / `vidiff cascade` as they are)")
    if "tsr" not in tsr.condition:
        took = "+".join(tsr.condition) or "none"
        raise VidiffError(f"{tsr.name or 'the interpolation model'} is not a temporal super-resolution model (it was "
                          f"trained with condition {took!r}); train it with `vidiff train --latent VAE "
                          "--condition tsr`")
    tf = tsr.autoencoder.temporal_factor
    if tf > 1:
        raise VidiffError(f"frame interpolation needs one latent per frame, but {tsr.name or 'the model'}'s "
                          f"autoencoder compresses time {tf}x; use an autoencoder without --temporal-compression")
    return tsr


def same_autoencoder(a: LatentVideoPipeline, b: LatentVideoPipeline) -> bool:
    """Whether two latent pipelines decode with the same autoencoder: one object, or weights of one sha256."""
    ea, eb = a.autoencoder, b.autoencoder
    if ea is eb:
        return True
    return (ea.fingerprint is not None and ea.fingerprint == eb.fingerprint
            and ea.latent_channels == eb.latent_channels and ea.spatial_factor == eb.spatial_factor)


def to_interpolator_latents(source: VideoPipeline | None, tsr: LatentVideoPipeline, z: Tensor) -> Tensor:
    """`source`'s samples z (B, C, f, h, w) — a latent model's scaled latents, a pixel model's (with no source, a
    given video's) frames in [−1, 1] — as `tsr`'s scaled latents: as they are with the same autoencoder and scaling
    (rescaled where only the scaling differs), else decoded and re-encoded with a notice; pixels are encoded."""
    if isinstance(source, LatentVideoPipeline):
        if same_autoencoder(source, tsr):
            if (source.scaling_factor, source.shift_factor) == (tsr.scaling_factor, tsr.shift_factor):
                return z  # the keyframe latents themselves
            return (z / source.scaling_factor + source.shift_factor - tsr.shift_factor) * tsr.scaling_factor
        notice(f"the keyframe model {source.name or ''} and the interpolation model {tsr.name or ''} use different "
               "autoencoders: the keyframes are decoded and re-encoded between them (train both with the same "
               "--latent VAE to stay in latent space)")
        x = source.decode(z)  # (B, 3, F, H, W)
    else:
        x = z.clamp(-1, 1)
    try:
        return tsr.encode(x)  # (B, C', F, h', w')
    except VidiffError as e:
        raise VidiffError(f"the keyframes ({x.shape[2]} frames of {x.shape[3]}x{x.shape[4]}) cannot be encoded for "
                          f"the interpolation model {tsr.name or ''}: {e}") from None


def interpolate_latents(tsr: LatentVideoPipeline, z: Tensor, passes: int = 1, *, steps: int = 25,
                        sampler: str = "ddim", seed: int = 0, batch_size: int = 8, progress: bool = False) -> Tensor:
    """`passes` TSR passes over scaled latents z (B, C, f, h, w), each doubling the frames with the given ones
    at every 2nd position, exactly: (B, C, f·2^passes, h, w), not decoded. Video i's noise is drawn from seed + i."""
    check_interpolator(tsr)
    if not isinstance(passes, int) or isinstance(passes, bool) or passes < 1:
        raise VidiffError(f"the number of interpolation passes must be a positive integer; got {passes!r}")
    view = tsr.latent_view()  # the backbone as a pipeline over latents
    for _ in range(passes):
        B, C, f, h, w = z.shape  # (B, C, f, h, w)
        if C != view.video.channels:
            raise VidiffError(f"the interpolation model {tsr.name or ''} takes {view.video.channels}-channel latents; "
                              f"the keyframes have {C}")
        if f < 2:
            raise VidiffError(f"frame interpolation needs at least 2 keyframes; got {f}: sample more frames with the "
                              "keyframe model")
        try:
            view.model.check_size(f * SR_FACTOR, h, w)
        except VidiffError as e:
            raise VidiffError(f"the interpolation model {tsr.name or ''} cannot turn {f} latent frames of {h}x{w} "
                              f"into {f * SR_FACTOR}: {e}") from None
        cond = sr_request_cond("tsr", z, factor=SR_FACTOR)  # keyframe latents at 0, 2, 4, … + the frame mask
        y = view(B, cond=cond, frames=f * SR_FACTOR, size=h, steps=steps, sampler=sampler, seed=seed,
                 batch_size=batch_size, progress=progress, output_type="latent")  # (B, C, 2f, h, w)
        y = _clamped(tsr, y.to(z))
        y[:, :, ::SR_FACTOR] = z  # the given latents exactly, as the pixel cascade keeps its given frames
        z = y
    return z


def interpolate_video(tsr: LatentVideoPipeline, x: Tensor, passes: int = 1, *, steps: int = 25,
                      sampler: str = "ddim", seed: int = 0, batch_size: int = 8, progress: bool = False) -> Tensor:
    """Pixel videos x (B, 3, F, H, W) in [−1, 1] with 2^passes× the frames by a latent TSR model: encoded once,
    interpolated in latents, decoded once, the given frames put back as given: (B, 3, F·2^passes, H, W)."""
    z = to_interpolator_latents(None, check_interpolator(tsr), x)  # (B, C, F, h, w)
    z = interpolate_latents(tsr, z, passes, steps=steps, sampler=sampler, seed=seed, batch_size=batch_size,
                            progress=progress)  # (B, C, F·2^passes, h, w)
    y = tsr.decode(z)  # (B, 3, F·2^passes, H, W): the one decode
    y[:, :, ::SR_FACTOR ** passes] = x.to(y)  # the given frames exactly
    return y


def keyframes_then_interpolate(base: VideoPipeline | str, tsr: VideoPipeline | str, num: int = 1, *,
                               passes: int = 1, steps: int = 25, tsr_steps: int | None = None, sampler: str = "ddim",
                               tsr_sampler: str | None = None, seed: int = 0, prompt: str | None = None,
                               class_id: int | None = None, image=None, guidance: float = 0.0,
                               batch_size: int = 8, progress: bool = False) -> KeyframeVideos:
    """`num` videos by Video LDM's pipeline: keyframes from `base` (`prompt` / `class_id` / `image` / `guidance`
    go to it; `steps`, `sampler`), as latents, then `passes` TSR passes of `tsr` over those latents (`tsr_steps`,
    `tsr_sampler`; default: the base's), decoded once. Video i depends only on seed + i."""
    base, tsr = as_pipeline(base), check_interpolator(as_pipeline(tsr))
    z = base(num, steps=steps, sampler=sampler, seed=seed, prompt=prompt, class_id=class_id, image=image,
             guidance=guidance, batch_size=batch_size, progress=progress, output_type="latent")  # (N, C, f, h, w)
    keyframes = _clamped(base, z)
    z = to_interpolator_latents(base, tsr, keyframes)
    z = interpolate_latents(tsr, z, passes, steps=tsr_steps or steps, sampler=tsr_sampler or sampler, seed=seed,
                            batch_size=batch_size, progress=progress)  # (N, C', f·2^passes, h', w')
    return KeyframeVideos(keyframes, z, tsr.decode(z))
