"""Inception Score (Salimans et al. 2016, §4): IS = exp(E_x KL(p(y|x) ‖ p(y))) over the class posteriors of an
Inception-v3, every frame of every generated video taken as an image.

Convention (the original TF code's and torch-fidelity's): p(y|x) is the softmax over all 1008 outputs of the
2015-12-05 Inception graph (`FIDInceptionV3.fc`, the pytorch-fid weights FID uses; index 0 is "background" and
1001–1007 are unused classes, kept in the softmax), and the images are split into `splits` (10) consecutive
parts in the order given — videos stay whole when a split boundary falls between them — each part scored with
its own marginal p(y); the score is the mean ± std over parts. Frames are resized bilinearly to 299×299 in
[-1, 1] like FID's. The published protocol uses 50,000 images; fewer give a lower, noisier score.
It is the image IS of the frames, comparable with image-model IS, not with the "IS" of video papers on UCF-101
(Saito et al. 2017), which classifies whole clips with a C3D trained on UCF-101.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..config import config_to_dict
from ..utils import VidiffError
from .extractors import load_inception
from .protocol import EvalProtocol

REFERENCE_IMAGES = 50_000
INCEPTION_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"


def inception_score(logits, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over `splits` consecutive parts of exp(mean_x KL(softmax(logits_x) ‖ mean_x softmax(logits_x)))."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)  # (N, classes)
    if z.ndim != 2 or z.shape[0] == 0:
        raise VidiffError(f"inception score needs logits (N, classes), got shape {tuple(z.shape)}")
    if splits < 1 or splits > z.shape[0]:
        raise VidiffError(f"--is-splits {splits} must be between 1 and the number of images ({z.shape[0]}); "
                          "lower --is-splits or score more frames")
    logp = torch.log_softmax(z, dim=1)  # log p(y|x)
    scores = []
    for k in range(splits):
        part = logp[k * len(z) // splits:(k + 1) * len(z) // splits]
        log_marginal = torch.logsumexp(part, dim=0) - np.log(len(part))  # log p(y) of this part
        kl = (part.exp() * (part - log_marginal)).sum(dim=1)  # KL(p(y|x) ‖ p(y)) per image
        scores.append(float(kl.mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))


@dataclasses.dataclass
class ScoreProtocol(EvalProtocol):
    """EvalProtocol of a score of the generated set alone (IS, CLIP score): images scored, IS splits, prompts."""

    images: int = 0
    splits: int | None = None
    prompts: str | None = None
    prompts_sha256: str | None = None
    metric: str = ""

    def __post_init__(self) -> None:  # the Fréchet/kernel warnings of EvalProtocol do not apply
        if self.metric == "is" and self.images < REFERENCE_IMAGES:
            self.warnings = list(self.warnings) + [
                f"only {self.images} images (< {REFERENCE_IMAGES:,} of the published protocol): the Inception "
                "Score is lower and noisier; compare only runs with equal image counts and splits"]
        if self.metric == "is":
            self.warnings.append("a per-frame image Inception Score: not the video IS of UCF-101 papers, which "
                                 "classifies clips with a C3D trained on UCF-101")


def check_is_options(inception: str | None, splits: int) -> None:
    """Refuse `is` without Inception weights or with a bad split count, before any video is read."""
    if not inception:
        raise VidiffError(f"is needs the Inception weights FID uses: pass --inception {INCEPTION_WEIGHTS} "
                          "(pytorch-fid's file; nothing is downloaded)")
    if splits < 1:
        raise VidiffError(f"--is-splits must be at least 1; got {splits}")


def score_inception(fake, inception: str, splits: int = 10, *, base: dict, device: str = "cpu",
                    batch_size: int = 8, progress: bool = False) -> dict:
    """IS of every frame of `fake` (uint8 (N, F, H, W, 3)) from the local Inception weights `inception`;
    `base` holds the EvalProtocol's clip fields. Returns the score entry with its protocol."""
    check_is_options(inception, splits)
    ex = load_inception(inception, device, output="logits")
    logits = ex(fake, batch_size, progress)  # (N*F, 1008), video-major
    mean, std = inception_score(logits, splits)
    p = ScoreProtocol(**base, resize_size=ex.input_size, extractor=ex.name, extractor_kind=ex.kind,
                      extractor_weights_sha256=ex.weights_sha256, comparable_to_published=True,
                      images=len(logits), splits=splits, metric="is")
    return {"value": mean, "std": std, "splits": splits, "images": len(logits), "classes": logits.shape[1],
            "protocol": config_to_dict(p)}
