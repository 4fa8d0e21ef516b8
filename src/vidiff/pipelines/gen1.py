"""Gen-1 editing (Esser et al. 2023, "Structure and Content-Guided Video Synthesis with Diffusion Models"): keep
an input video's structure, take the appearance from a reference image.

    editor = Gen1Editor.from_pretrained("runs/gen1")           # a model trained with --condition gen1
    out = editor.edit(video, "ref.png", structure="edges", strength=0.8)   # uint8 (F, S, S, 3)

The structure of the input (Canny edges, optical flow, or the user's depth maps as their edges;
`conditioning.structure`) is degraded to the requested fidelity (Gen-1's t_s) and concatenated to x_t; the
reference image goes to the model's jointly trained content encoder (`conditioning.content`), whose tokens
the backbone attends to. Classifier-free guidance on the content keeps the structure in both branches.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..conditioning import Cond, null_like
from ..conditioning.content import structure_kind
from ..conditioning.structure import degrade, extract, parse_structure, read_depth
from ..data.io import from_uint8, to_uint8
from ..diffusion import ClassifierFreeGuidance
from ..limits import check_sampling
from ..utils import VidiffError
from . import load_pipeline
from .base import VideoPipeline, load_image, sample_videos


def fit_video(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 video (F, H, W, 3) centre-cropped to a square and resized to `size`² (area-averaged when shrinking):
    the model's frame size."""
    v = np.asarray(frames)
    if v.ndim != 4 or v.shape[-1] != 3 or v.dtype != np.uint8:
        raise VidiffError(f"expected a uint8 video (F, H, W, 3); got {v.dtype} {v.shape}")
    h, w = v.shape[1:3]
    side = min(h, w)
    v = v[:, (h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    if side == size:
        return np.ascontiguousarray(v)
    x = from_uint8(v).transpose(0, 1)  # (F, 3, side, side) in [-1, 1]
    y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=side > size, align_corners=False)
    return to_uint8(y.transpose(0, 1))  # (F, size, size, 3)


class Gen1Editor:
    """A Gen-1 model (trained with `--condition gen1` or `gen1_flow`) and its editing loop."""

    def __init__(self, pipe: VideoPipeline):
        self.pipe = pipe
        self.kind = structure_kind(pipe.condition)
        if self.kind is None:
            trained = "+".join(pipe.condition) or "none"
            raise VidiffError(f"model {pipe.name!r} was not trained for Gen-1 editing (condition {trained}); train "
                              "one with `vidiff train --condition gen1` (scripts/train_gen1.sh), or edit with "
                              "--prompt and a `vidiff tune-a-video` folder")

    @classmethod
    def from_pretrained(cls, model: str) -> "Gen1Editor":
        pipe = load_pipeline(model)
        if not isinstance(pipe, VideoPipeline) or type(pipe) is not VideoPipeline:
            raise VidiffError(f"model {model!r} is not a pixel-space vidiff checkpoint; Gen-1 editing needs a model "
                              "trained with `vidiff train --condition gen1`")
        return cls(pipe)

    @property
    def size(self) -> int:
        return self.pipe.video.size

    def structure(self, frames: np.ndarray, spec: str = "edges") -> torch.Tensor:
        """Structure (S, F, H, W) in [-1, 1] of a uint8 video at the model's size, from `spec` (edges | flow |
        depth:DIR); a spec the model was not trained on is a one-line error."""
        kind, folder = parse_structure(spec)
        if kind != "depth" and kind != self.kind:
            other = "edges or depth:DIR" if self.kind == "edges" else "flow"
            raise VidiffError(f"this model was trained on {self.kind} structure; use --structure {other}")
        depth = read_depth(folder, len(frames), frames.shape[1:3]) if kind == "depth" else None
        return extract(frames, self.kind, depth=depth)

    def content(self, image) -> torch.Tensor:
        """The reference image as (3, S, S) in [-1, 1] from a path, a uint8 (H, W, 3) array or a tensor."""
        if isinstance(image, (str, Path)) and not Path(image).is_file():
            raise VidiffError(f"content image {image} not found; give a PNG or JPEG file for --content")
        return load_image(image, self.size)

    @torch.no_grad()
    def edit(self, video: np.ndarray, content, *, structure: str = "edges", strength: float = 1.0,
             steps: int = 50, guidance: float = 3.0, sampler: str = "ddim", seed: int = 0) -> np.ndarray:
        """The edited video, uint8 (F, S, S, 3) at the model's frame size S: `video`'s structure at fidelity
        `strength` in [0, 1] and `content`'s appearance, with content guidance weight `guidance` (0: none).
        `content=None` draws from the structure alone (the model's null content; no guidance)."""
        if not 0.0 <= float(strength) <= 1.0:
            raise VidiffError(f"--structure-strength must lie in [0, 1]; got {strength}")
        frames = fit_video(video, self.size)  # (F, S, S, 3)
        model, s = self.pipe.model, self.size
        model.check_size(len(frames), s, s)
        check_sampling(model.config, num=1, batch=1, frames=len(frames), height=s, width=s, steps=steps)
        concat = degrade(self.structure(frames, structure)[None], float(strength))  # (1, S_ch, F, S, S)
        if content is None:
            cond, guidance = null_like(Cond(concat=concat, content=concat.new_zeros(1, 3, s, s)), keep_concat=True), 0
        else:
            cond = Cond(concat=concat, content=self.content(content)[None])  # content (1, 3, S, S)

        def guided(denoiser):  # CFG on the content only: the null branch keeps the structure
            return ClassifierFreeGuidance(denoiser, w=guidance, null_cond=null_like(cond, keep_concat=True))

        x = sample_videos(model, self.pipe.diffusion, (1, 3, len(frames), s, s), steps=steps, sampler=sampler,
                          seed=seed, cond=cond, denoiser_wrapper=guided if guidance else None)
        return to_uint8(x)[0]  # (F, S, S, 3)
