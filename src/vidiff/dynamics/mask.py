"""A painted motion mask for `vidiff animate --mask MASK.png`: white moves, black stays still, grey in
between (the spectral volume is multiplied by it, so masked-out pixels keep their place in every frame)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data import io
from ..utils import VidiffError, notice
from .spectral import resize_spectral


def read_motion_mask(path: str | Path, size: tuple[int, int]) -> Tensor:
    """The mask image at `path` as float (H, W) in [0, 1] (grey level / 255) at `size` = (H, W) of the
    photo; a mask of another size is resized (bilinear) with a notice."""
    import cv2

    path = Path(path)
    arr = io.read_image(path)  # (h, w, 3) uint8; a one-line error when missing or unreadable
    grey = arr.astype(np.float32).mean(-1) / 255.0
    h, w = grey.shape
    if (h, w) != tuple(size):
        notice(f"--mask {path.name} is {w}x{h}, the photo {size[1]}x{size[0]}: resized to the photo")
        grey = cv2.resize(grey, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    if grey.max() <= 0:
        raise VidiffError(f"--mask {path} is black everywhere, so nothing would move; paint the moving parts white")
    return torch.from_numpy(np.clip(grey, 0, 1))


def mask_motion(motion: dict, mask: Tensor) -> dict:
    """`motion` ({"spectral_volume": (K, 4, H', W'), ...}) at the mask's size (H, W), times the mask."""
    sv = resize_spectral(motion["spectral_volume"], tuple(mask.shape))
    return {**motion, "spectral_volume": sv * mask.to(sv)}
