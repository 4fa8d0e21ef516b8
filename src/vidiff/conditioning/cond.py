"""`Cond`: the conditioning a backbone may receive alongside (x_t, t)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor


@dataclass
class Cond:
    """Conditioning inputs for a backbone; every field is optional and batch-first.

    Fields (B = batch, F = frames, L = text tokens, D = embedding width):
      class_ids: (B,) long. The null class (for classifier-free guidance) is `num_classes`.
      text:      (B, L, D) token embeddings for cross-attention.
      text_mask: (B, L) bool, True where a token is real (not padding).
      pooled:    (B, D) pooled text/image embedding (adaLN / added to the time embedding).
      concat:    (B, C_extra, F, H, W) channels concatenated to x_t (low-res video, first frame,
                 known frames and their mask) — VDM / Imagen Video / SVD style conditioning.
      is_image:  (B,) bool, True for samples that are independent images stacked along F:
                 backbones then disable temporal mixing for them (VDM joint image-video training).
      noise_aug: (B,) float, the noise level applied to `concat` (Imagen Video noise conditioning
                 augmentation); backbones embed it like the timestep.
      drop:      (B,) bool, True where class, text and pooled embedding are replaced by the model's
                 learned null condition (classifier-free guidance: condition dropout in training,
                 the unconditional branch at sampling). `concat` is not touched: zero it yourself.
      self_cond: (B, C, F, H, W) the model's own previous estimate of x₀ (self-conditioning, Chen et
                 al. 2022): sampler state rather than a condition, so `null_like` keeps it; backbones
                 built with `self_cond=True` read zeros when it is None.
      micro:     (B, K) float micro-conditions embedded like the timestep (Stable Video Diffusion: fps − 1
                 and motion bucket); kept by `null_like`, as SVD's unconditional branch keeps them.
      content:   (B, C, H, W) a reference image in [-1, 1] (Gen-1 content) or an image-to-video model's first
                 frame (conditioning.image_embed): backbones built with `content_channels` turn it into `text`
                 tokens and `pooled` (conditioning.content).
    """

    class_ids: Tensor | None = None
    text: Tensor | None = None
    text_mask: Tensor | None = None
    pooled: Tensor | None = None
    concat: Tensor | None = None
    is_image: Tensor | None = None
    noise_aug: Tensor | None = None
    drop: Tensor | None = None
    self_cond: Tensor | None = None
    micro: Tensor | None = None
    content: Tensor | None = None

    def map(self, fn: Callable[[Tensor], Tensor]) -> "Cond":
        """Apply `fn` to every tensor field (e.g. `.to(device)`, indexing)."""
        return Cond(**{k: (fn(v) if v is not None else None) for k, v in self.items()})

    def items(self):
        return ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))

    def to(self, *args, **kwargs) -> "Cond":
        return self.map(lambda v: v.to(*args, **kwargs))

    def repeat_batch(self, n: int) -> "Cond":
        """Repeat every field n times along the batch (sample-major: a a b b)."""
        return self.map(lambda v: v.repeat_interleave(n, dim=0))

    @staticmethod
    def cat(conds: list["Cond"]) -> "Cond":
        """Concatenate along the batch; a field must be set in all or none of them."""
        out = {}
        for f in dataclasses.fields(Cond):
            vals = [getattr(c, f.name) for c in conds]
            if all(v is None for v in vals):
                out[f.name] = None
            elif f.name == "drop":  # an unset drop means "keep the condition"
                out[f.name] = torch.cat([v.bool() if v is not None else torch.zeros(_batch_of(c), dtype=torch.bool)
                                         for v, c in zip(vals, conds)])
            elif any(v is None for v in vals):
                raise ValueError(f"Cond.cat: field {f.name!r} is set in some conds but not others")
            else:
                out[f.name] = torch.cat(vals, dim=0)
        return Cond(**out)


def _batch_of(cond: Cond) -> int:
    for _, v in cond.items():
        if v is not None:
            return v.shape[0]
    raise ValueError("Cond.cat: cannot mix an empty Cond with a Cond that sets `drop`")


def null_like(cond: Cond, keep_concat: bool = False) -> Cond:
    """The null (unconditional) counterpart of `cond` for classifier-free guidance: same fields,
    `drop` all True, `concat` zeroed unless `keep_concat` (super-resolution keeps its low-res input)."""
    b = _batch_of(cond)
    ref = next(v for _, v in cond.items() if v is not None)
    return dataclasses.replace(cond, drop=torch.ones(b, dtype=torch.bool, device=ref.device),
                               concat=cond.concat if keep_concat or cond.concat is None
                               else torch.zeros_like(cond.concat))


def cond_or_empty(cond: Cond | None) -> Cond:
    """`cond`, or an empty Cond."""
    return cond if cond is not None else Cond()


def with_self_cond(cond: Cond | None, prev: Tensor | None) -> Cond:
    """`cond` (or an empty Cond) carrying `prev`, a previous x̂₀ estimate clamped to the data range
    [-1, 1], as `self_cond` (self-conditioning, Chen et al. 2022: the same in training and sampling)."""
    from ..utils import VidiffError

    if cond is not None and not isinstance(cond, Cond):
        raise VidiffError(f"self-conditioning needs cond=None or a Cond; got {type(cond).__name__}")
    return dataclasses.replace(cond_or_empty(cond), self_cond=None if prev is None else prev.clamp(-1, 1))
