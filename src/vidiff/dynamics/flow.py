"""Dense optical flow from a reference frame to every later frame -> per-pixel trajectories (GID sec. 3).

OpenCV DIS (coarse-to-fine patch inverse search + variational refinement, refined down to full
resolution) or Farneback (coarse-to-fine polynomial expansion) on grey frames; the
flow ``D(t, p)`` maps pixel ``p`` of the reference frame to ``p + D(t, p)`` in frame ``t``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..utils import VidiffError
from .spectral import trajectories_to_spectral


def _grey(frame: np.ndarray) -> np.ndarray:
    import cv2

    if frame.ndim == 3:
        frame = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(frame)


def _dis(preset: str):
    import cv2

    presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    if preset not in presets:
        raise VidiffError(f"unknown flow preset {preset!r}; choose one of {sorted(presets)}")
    dis = cv2.DISOpticalFlow_create(presets[preset])
    dis.setUseSpatialPropagation(True)
    if preset == "medium":  # refine down to full resolution with denser patches: small, thin parts move right
        dis.setFinestScale(0)
        dis.setPatchSize(6)
        dis.setPatchStride(2)
    return dis


def flow_to_frames(frames: np.ndarray, ref: int = 0, method: str = "dis", preset: str = "medium",
                   progress: bool = False) -> np.ndarray:
    """uint8 video ``(T, H, W, 3)`` -> trajectories ``(T, 2, H, W)`` float32: flow from frame ``ref`` to each frame.

    ``method`` is "dis" (default) or "farneback"; both are coarse to fine (image pyramids).
    """
    import cv2

    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or frames.dtype != np.uint8:
        raise VidiffError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    t = frames.shape[0]
    if not 0 <= ref < t:
        raise VidiffError(f"reference frame {ref} is outside the video's {t} frames")
    g0 = _grey(frames[ref])
    h, w = g0.shape
    out = np.zeros((t, 2, h, w), np.float32)
    if method == "dis":
        dis = _dis(preset)
        calc = lambda a, b: dis.calc(a, b, None)  # noqa: E731
    elif method == "farneback":
        levels = max(1, int(np.log2(min(h, w) / 8)))
        calc = lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, levels, 9, 5, 5, 1.1, 0)  # noqa: E731
    else:
        raise VidiffError(f"unknown flow method {method!r}; choose 'dis' or 'farneback'")
    steps = range(t)
    if progress:
        from rich.progress import track

        steps = track(steps, description="optical flow", transient=True)
    for i in steps:
        if i == ref:
            continue
        out[i] = calc(g0, _grey(frames[i])).transpose(2, 0, 1)
    return out


def extract_spectral_volume(frames: np.ndarray, num_frames: int = 150, k: int = 16,
                            method: str = "dis") -> Tensor:
    """Video -> spectral volume ``(K, 4, H, W)`` from the first ``num_frames`` frames (reference = frame 0)."""
    if num_frames < 1:
        raise VidiffError(f"--frames must be at least 1; got {num_frames}")
    if k < 1:
        raise VidiffError(f"--k must be at least 1 (the number of frequencies kept); got {k}")
    frames = np.asarray(frames)[:num_frames]
    if frames.shape[0] < 2 * k - 1:
        raise VidiffError(f"the video has {frames.shape[0]} frames; {2 * k - 1} are needed for k={k}: "
                          "use a longer video or a smaller --k")
    traj = flow_to_frames(frames, ref=0, method=method)
    return trajectories_to_spectral(torch.from_numpy(traj), k=k)
