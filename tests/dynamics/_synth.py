"""Analytic test videos: a textured image warped by a known sum-of-sinusoids displacement field."""
from __future__ import annotations

import math

import numpy as np


def texture(x, y, seed=0):
    """An analytic band-limited texture in [20, 235], evaluated at real coordinates."""
    rng = np.random.default_rng(seed)
    v = np.zeros_like(x, dtype=np.float64)
    for _ in range(12):
        wl = rng.uniform(5.0, 16.0)
        th = rng.uniform(0, math.pi)
        ph = rng.uniform(0, 2 * math.pi)
        v += np.cos(2 * math.pi * (x * math.cos(th) + y * math.sin(th)) / wl + ph)
    return 127.5 + 107.5 * v / np.abs(v).max()


def known_field(h, w, period, comps):
    """comps: list of (axis, f, amp, phase) with amp/phase callables of (x, y) -> (A, phi).

    Returns the true spectral coefficient maps {(axis, f): complex (H, W)} and d(t, x, y) -> (dx, dy).
    """
    def d(t, x, y):
        out = [np.zeros_like(x), np.zeros_like(x)]
        for axis, f, amp, phase in comps:
            out[axis] = out[axis] + amp(x, y) * np.cos(2 * math.pi * f * t / period + phase(x, y))
        return out

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    truth = {(axis, f): amp(xx, yy) * np.exp(1j * phase(xx, yy)) for axis, f, amp, phase in comps}
    return truth, d


def warped_video(h, w, period, d, frames=None, seed=0):
    """Frame t at q shows the texture point p with p + d(t, p) = q (inverted by fixed-point iteration)."""
    frames = period if frames is None else frames
    qy, qx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((frames, h, w, 3), np.uint8)
    for t in range(frames):
        px, py = qx.copy(), qy.copy()
        for _ in range(30):
            dx, dy = d(t, px, py)
            px, py = qx - dx, qy - dy
        v = texture(px, py, seed)
        out[t] = np.clip(np.round(v), 0, 255).astype(np.uint8)[..., None]
    return out
