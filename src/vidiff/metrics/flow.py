"""Dense optical flow (OpenCV Farnebäck) and backward warping with cv2.remap, on uint8 frames."""
from __future__ import annotations

import numpy as np


def to_gray_u8(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> gray uint8 (H, W)."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def optical_flow(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Flow (H, W, 2) = (dx, dy) with src(p) ≈ dst(p + flow(p)) (Farnebäck 2003), frames RGB uint8."""
    import cv2

    h, w = src.shape[:2]
    win = int(max(5, min(15, min(h, w) // 4)) | 1)
    levels = int(max(0, min(3, np.log2(max(min(h, w), 8) / 8))))
    return cv2.calcOpticalFlowFarneback(to_gray_u8(src), to_gray_u8(dst), None, pyr_scale=0.5,
                                        levels=levels, winsize=win, iterations=5, poly_n=5,
                                        poly_sigma=1.1, flags=cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


def sample_coords(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Absolute sampling grid p + flow(p) as float32 maps (x, y) and the mask of points inside the frame."""
    h, w = flow.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    valid = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return mx.astype(np.float32), my.astype(np.float32), valid


def warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward warp: out(p) = image(p + flow(p)) (bilinear); returns (out, valid mask (H, W))."""
    import cv2

    mx, my = sample_coords(flow)[:2]
    valid = sample_coords(flow)[2]
    out = cv2.remap(np.ascontiguousarray(image), mx, my, interpolation=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out, valid
