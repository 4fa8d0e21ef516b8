"""The evaluation protocol stored with every score, and the preprocessing it describes.

Clip sampling takes `frames` frames starting at `start` every `stride` frames; resizing is a direct
bilinear resize of each frame to `size`×`size` (no crop, no antialias) with values in [-1, 1] — the
convention of the original FVD code and StyleGAN-V.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..utils import VidiffError

MIN_RELIABLE_VIDEOS = 2048
MIN_RELIABLE_FRAMES = 10


@dataclasses.dataclass
class EvalProtocol:
    """How a score was computed; saved next to the score so it can be reproduced or compared."""

    num_real: int
    num_fake: int
    frames: int
    clip_start: int = 0
    clip_stride: int = 1
    resize_method: str = "bilinear"
    resize_size: int = 224
    value_range: tuple[float, float] = (-1.0, 1.0)
    extractor: str = ""
    extractor_kind: str = ""  # "video" (one feature per clip) or "image" (one per frame)
    extractor_weights_sha256: str | None = None
    comparable_to_published: bool = False
    warnings: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.warnings = list(self.warnings) + [w for w in protocol_warnings(self) if w not in self.warnings]


def protocol_warnings(p: EvalProtocol) -> list[str]:
    """Reasons a score computed under protocol `p` is unreliable or not comparable."""
    out = []
    if not p.extractor:  # paired / per-video metrics: no distribution estimate involved
        return out
    n = min(p.num_real, p.num_fake)
    if n < MIN_RELIABLE_VIDEOS:
        out.append(f"only {n} videos per set (< {MIN_RELIABLE_VIDEOS}): Fréchet/kernel scores are biased "
                   "upwards and noisy; compare only runs with equal counts")
    if p.extractor_kind == "video" and p.frames < MIN_RELIABLE_FRAMES:
        out.append(f"only {p.frames} frames per clip (< {MIN_RELIABLE_FRAMES}): FVD is unreliable for short clips")
    if p.extractor and not p.comparable_to_published:
        out.append(f"extractor '{p.extractor}' is an offline fallback (random weights): scores are NOT "
                   "comparable to published numbers; pass --i3d/--inception weight files for those")
    return out


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def as_video_tensor(x) -> Tensor:
    """uint8 (N, F, H, W, 3) / (F, H, W, 3) arrays or float (B, C, F, H, W) in [-1, 1] -> float32 (B, C, F, H, W)."""
    if isinstance(x, Tensor) and x.is_floating_point():
        if x.ndim == 4:
            x = x[None]
        if x.ndim != 5:
            raise VidiffError(f"expected a video tensor (B, C, F, H, W), got shape {tuple(x.shape)}")
        return x.float()
    a = np.asarray(x.cpu() if isinstance(x, Tensor) else x)
    if a.ndim == 4:
        a = a[None]
    if a.ndim != 5 or a.shape[-1] != 3:
        raise VidiffError(f"expected uint8 videos (N, F, H, W, 3), got shape {a.shape}")
    if a.dtype != np.uint8:
        raise VidiffError(f"expected uint8 videos, got {a.dtype}; scale to 0..255 uint8 first")
    if not a.flags.writeable:  # e.g. a memory-mapped .npy
        a = a.copy()
    return torch.from_numpy(a).float().div(127.5).sub(1).permute(0, 4, 1, 2, 3).contiguous()


def as_uint8_videos(x) -> np.ndarray:
    """uint8 (N, F, H, W, 3) arrays pass through (F, H, W, 3 gets N=1); float (B, C, F, H, W) tensors in [-1, 1]
    are quantized like saved videos."""
    if isinstance(x, Tensor) and x.is_floating_point():
        from ..data.io import to_uint8

        return to_uint8(as_video_tensor(x))
    a = np.asarray(x.cpu() if isinstance(x, Tensor) else x)
    a = a[None] if a.ndim == 4 else a
    if a.ndim != 5 or a.shape[-1] != 3 or a.dtype != np.uint8:
        raise VidiffError(f"expected uint8 videos (N, F, H, W, 3), got {a.dtype} {a.shape}")
    return a


def sample_clip(video, frames: int, start: int = 0, stride: int = 1):
    """Frames start, start+stride, …, start+(frames-1)·stride of a (B, C, F, H, W) tensor or a uint8
    (N, F, H, W, 3) array; refuse videos that are too short."""
    need = start + (frames - 1) * stride + 1
    if frames < 1 or stride < 1 or start < 0:
        raise VidiffError(f"bad clip sampling frames={frames} start={start} stride={stride}: all must be positive")
    axis = 2 if isinstance(video, Tensor) else 1
    if video.shape[axis] < need:
        raise VidiffError(
            f"videos have {video.shape[axis]} frames but the clip needs {need} "
            f"(frames={frames}, start={start}, stride={stride}); lower --frames or --stride"
        )
    return video[:, :, start:need:stride] if axis == 2 else video[:, start:need:stride]


def resize_video(video: Tensor, size: int | tuple[int, int], method: str = "bilinear") -> Tensor:
    """Direct per-frame resize of (B, C, F, H, W) to (B, C, F, h, w) (no crop, align_corners=False)."""
    h, w = (size, size) if isinstance(size, int) else size
    b, c, f = video.shape[:3]
    if video.shape[-2:] == (h, w):
        return video
    if method not in ("bilinear", "bicubic", "nearest", "area"):
        raise VidiffError(f"unknown resize method {method!r}; use bilinear, bicubic, nearest or area")
    x = video.permute(0, 2, 1, 3, 4).reshape(b * f, c, *video.shape[-2:])  # (B*F, C, H, W)
    kw = {"align_corners": False} if method in ("bilinear", "bicubic") else {}
    x = F.interpolate(x, size=(h, w), mode=method, **kw)  # (B*F, C, h, w)
    return x.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4).contiguous()
