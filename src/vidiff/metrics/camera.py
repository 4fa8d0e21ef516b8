"""Camera (global) and object (local) motion of a video: a robust affine per frame fitted to dense optical
flow, and the flow it leaves unexplained.

For consecutive frames t, t+1 with optical flow u_t (`flow.optical_flow`: I_t(p) ≈ I_{t+1}(p + u_t(p))),

    u_t(p) = g_t(p) + l_t(p),    g_t(p) = A_t p̃ − p,    p̃ = (x, y, 1)ᵀ,

where A_t ∈ R^{2×3} is the camera's frame-to-frame affine (a static point at p in frame t is at A_t p̃ in
frame t+1: pan, roll, zoom and, to first order, tilt), g_t the global (camera) flow and l_t the local
(object) flow. Coordinates are pixel indices: x = column, y = row, pixel centres at integers.

A_t minimises Σ_p ρ(‖A p̃ − p − u_t(p)‖) with Tukey's biweight ρ (scale from the residuals' median),
by iteratively reweighted least squares started from the median flow derivatives (the linear part) and
median residual (the translation): each step solves, for all frames at once, the weighted normal equations

    (Σ_p w_p p̃ p̃ᵀ) Aᵀ = Σ_p w_p p̃ (p + u(p))ᵀ,    w_p = (1 − (r_p / (c σ))²)²₊,  c = 4.685,

so the camera is the affine motion most of the frame agrees on; things that move on their own get
weight 0 while they cover less than about half of it. A band at the border (where a pan brings in new
content) is left out of the fit.
"""
from __future__ import annotations

import numpy as np

from ..data.io import to_uint8
from ..utils import VidiffError
from .flow import optical_flow

TUKEY_C = 4.685     # Tukey biweight cut-off in units of the residual scale (95 % efficiency under Gaussian noise)
MIN_SCALE = 0.02    # px: floor of the residual scale, so exact flows do not give weights of 0/0
MAX_POINTS = 8192   # flow vectors per frame used in the fit (a regular grid)


def _frames(video) -> np.ndarray:
    """uint8 (F, H, W, 3) from a uint8 array (F, H, W, 3) or a float tensor (C, F, H, W) in [-1, 1]."""
    if hasattr(video, "detach"):
        if video.ndim != 4 or video.shape[0] != 3:
            raise VidiffError(f"expected one video tensor (3, F, H, W) in [-1, 1], got shape {tuple(video.shape)}")
        video = to_uint8(video)
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise VidiffError(f"expected uint8 frames (F, H, W, 3), got {video.dtype} {video.shape}")
    if video.shape[0] < 2:
        raise VidiffError(f"camera motion needs at least 2 frames, got {video.shape[0]}")
    return video


def video_flows(video) -> np.ndarray:
    """Optical flow between consecutive frames, float32 (F-1, H, W, 2) = (dx, dy), of a uint8 video
    (F, H, W, 3) or a tensor (3, F, H, W) in [-1, 1]."""
    frames = _frames(video)
    return np.stack([optical_flow(a, b) for a, b in zip(frames[:-1], frames[1:])])


def _grid(h: int, w: int, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a regular grid of at most MAX_POINTS pixels, `margin` px from the border."""
    m = min(margin, (min(h, w) - 1) // 4)
    stride = max(1, int(np.ceil(np.sqrt((h - 2 * m) * (w - 2 * m) / MAX_POINTS))))
    return np.arange(m, h - m, stride), np.arange(m, w - m, stride)


def fit_affine(flows: np.ndarray, iters: int = 10, margin: int | None = None) -> np.ndarray:
    """Robust affine motion (N, 2, 3) of flow fields (N, H, W, 2): the A minimising Σ_p ρ(‖A p̃ − p − u(p)‖)
    (module doc; IRLS with Tukey weights from a median start). `margin`: border band left out (default
    1/16 of the short side, at least 1 px)."""
    flows = np.asarray(flows)
    if flows.ndim != 4 or flows.shape[-1] != 2:
        raise VidiffError(f"expected flow fields (N, H, W, 2), got shape {flows.shape}")
    n, h, w = flows.shape[:3]
    rows, cols = _grid(h, w, max(1, min(h, w) // 16) if margin is None else margin)
    u = flows[:, rows][:, :, cols].reshape(n, -1, 2).astype(np.float64)        # (N, P, 2)
    yy, xx = np.meshgrid(rows.astype(np.float64), cols.astype(np.float64), indexing="ij")
    centre, scale = np.array([(w - 1) / 2, (h - 1) / 2]), max(h, w) / 2
    q = (np.stack([xx.ravel(), yy.ravel()], 1) - centre) / scale               # (P, 2) centred, ~[-1, 1]
    X = np.concatenate([q, np.ones((len(q), 1))], 1)                           # (P, 3) homogeneous
    Y = q[None] + u / scale                                                     # (N, P, 2) targets A q̃
    # start: medians of the flow's derivatives (the linear part) and of what is left (the translation)
    inner = flows[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float64)  # (N, h', w', 2)
    B = np.zeros((n, 3, 2))                                                     # Aᵀ in normalised coordinates
    B[:, 0] = np.median(np.diff(inner, axis=2).reshape(n, -1, 2), axis=1)      # ∂u/∂x
    B[:, 1] = np.median(np.diff(inner, axis=1).reshape(n, -1, 2), axis=1)      # ∂u/∂y
    B[:, 2] = np.median(u / scale - q[None] @ B[:, :2], axis=1)
    B[:, :2] += np.eye(2)
    ridge = 1e-9 * np.eye(3)
    for _ in range(iters):
        r = np.linalg.norm(Y - X @ B, axis=-1) * scale                          # (N, P) residuals in px
        sigma = np.maximum(np.median(r, axis=1, keepdims=True) / 0.6745, MIN_SCALE)
        wt = np.clip(1 - (r / (TUKEY_C * sigma)) ** 2, 0, None) ** 2            # (N, P) Tukey weights
        XtW = X.T[None] * wt[:, None, :]                                        # (N, 3, P)
        B = np.linalg.solve(XtW @ X + ridge, XtW @ Y)                           # (N, 3, 2) weighted LS
    # back to pixels: p' = c + s·Aq((p − c)/s)  =>  L = Lq, b = c + s·bq − L c
    L = B[:, :2].transpose(0, 2, 1)                                             # (N, 2, 2)
    b = centre + scale * B[:, 2] - L @ centre
    return np.concatenate([L, b[..., None]], -1).astype(np.float32)


def affine_flow(affines: np.ndarray, height: int, width: int) -> np.ndarray:
    """Global flow fields g(p) = A p̃ − p, float32 (N, H, W, 2), of affines (N, 2, 3)."""
    A = np.asarray(affines, np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    p = np.stack([xx, yy, np.ones_like(xx)], -1)                                # (H, W, 3)
    return np.einsum("nij,hwj->nhwi", A, p) - p[None, ..., :2]


def global_flow(flows: np.ndarray) -> np.ndarray:
    """The camera's part g = A p̃ − p, float32 (N, H, W, 2), of flow fields (N, H, W, 2): the flow of their
    robust affine fit (`fit_affine`)."""
    flows = np.asarray(flows)
    return affine_flow(fit_affine(flows), *flows.shape[1:3])


def estimate_camera_motion(video) -> np.ndarray:
    """Camera affines (F-1, 2, 3) of a uint8 video (F, H, W, 3) or a tensor (3, F, H, W) in [-1, 1]:
    frame t's pixel p (x = column, y = row) is at A_t p̃ in frame t+1 where the scene is static."""
    return fit_affine(video_flows(video))


def decompose_motion(video) -> tuple[np.ndarray, np.ndarray]:
    """(global_flow, local_flow), each float32 (F-1, H, W, 2): the flow u_t = g_t + l_t between consecutive
    frames split into the camera's affine flow g_t = A_t p̃ − p and the residual (object) motion l_t."""
    flows = video_flows(video)
    g = global_flow(flows)
    return g, flows - g


def camera_motion_score(video=None, *, flows: np.ndarray | None = None) -> float:
    """How much the camera moves: the mean over frames and pixels of ‖g_t(p)‖ (px per frame), from a video
    or from precomputed consecutive-frame flows (N, H, W, 2)."""
    flows = video_flows(video) if flows is None else flows
    return float(np.linalg.norm(global_flow(flows), axis=-1).mean())
