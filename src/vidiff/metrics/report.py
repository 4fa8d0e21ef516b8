"""Visual reports: X-t slices, side-by-side real|generated MP4, metrics-over-time plots (PNG)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor

from ..data.io import to_uint8, write_mp4, write_png
from ..utils import VidiffError, atomic_path


def xt_slice(video, row: int):
    """X-t slice: row `row` of every frame stacked over time (time runs down the image).

    numpy (F, H, W, C) -> (F, W, C); torch tensor (C, F, H, W) (the project layout) -> (C, F, W).
    """
    is_tensor = isinstance(video, Tensor)
    if video.ndim != 4:
        layout = "(C, F, H, W)" if is_tensor else "(F, H, W, C)"
        raise VidiffError(f"expected one video {layout}, got shape {tuple(video.shape)}")
    h = video.shape[2] if is_tensor else video.shape[1]
    if not -h <= row < h:
        raise VidiffError(f"row {row} is outside the frame height {h}; choose 0..{h - 1}")
    return video[:, :, row] if is_tensor else video[:, row]


def save_xt_png(path, video: np.ndarray, row: int | None = None, scale: int = 1) -> Path:
    """Write the X-t slice of a uint8 (F, H, W, 3) video (default: middle row) as PNG, time going down."""
    row = video.shape[1] // 2 if row is None else row
    img = np.asarray(xt_slice(np.asarray(video), row))
    if scale > 1:
        img = img.repeat(scale, 0).repeat(scale, 1)
    return write_png(path, img)


def side_by_side(real: np.ndarray, fake: np.ndarray, pad: int = 2) -> np.ndarray:
    """uint8 (F, H, W, 3) pair -> one video (F, H, 2W + pad, 3), real left, generated right (fake resized)."""
    f = min(len(real), len(fake))
    real, fake = real[:f], fake[:f]
    if fake.shape[1:3] != real.shape[1:3]:
        import cv2

        fake = np.stack([cv2.resize(fr, real.shape[2:0:-1], interpolation=cv2.INTER_LINEAR) for fr in fake])
    gap = np.full((f, real.shape[1], pad, 3), 255, np.uint8)
    return np.concatenate([real, gap, fake], axis=2)


def save_side_by_side_mp4(path, real: np.ndarray, fake: np.ndarray, fps: float = 8.0, scale: int = 1) -> Path:
    """Side-by-side real | generated H.264 MP4 of two uint8 (F, H, W, 3) videos."""
    return write_mp4(path, side_by_side(real, fake), fps=fps, scale=scale)


def plot_over_time(path, series: dict[str, list[tuple[float, float]]], xlabel: str = "frame",
                   ylabel: str = "value", title: str = "") -> Path:
    """Line plot of {label: [(x, y), ...]} as PNG (matplotlib Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for label, pts in series.items():
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if series:
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def as_uint8_videos(videos) -> np.ndarray:
    """(B, C, F, H, W) tensor in [-1, 1] or uint8 array -> uint8 (N, F, H, W, 3)."""
    if isinstance(videos, Tensor):
        return to_uint8(videos)
    return np.asarray(videos)
