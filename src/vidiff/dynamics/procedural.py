"""A procedural dataset of oscillating scenes whose motion is predictable from appearance.

A scene is a static background plus parts drawn analytically (soft-edged shapes evaluated at real
coordinates, so every frame is exact — no resampling):
  * plants: a stem rising from the ground with leaves; the whole plant sways in x with
    displacement A · s(y)², s = height above the base / stem length (clipped to [0, 1]) — zero at
    the root, growing smoothly up the stem. Frequency index from the *hue* of the plant (a palette
    of hues, each its own frequency); amplitude A proportional to the stem length.
  * hanging objects: a string from the top edge with a ball; displacement A · s(y), s = depth below
    the anchor / string length (a pendulum); frequency from the string length (longer -> lower,
    f ∝ 1/√L as for a pendulum), amplitude from the ball size.
The phase of each part is random (the part of the motion appearance cannot predict).

Each part's displacement depends on y only and moves pixels along x, so frame t is exact:
frame_t(x, y) = part(x − d(t, y), y). The true spectral volume is expressed, like the extracted one,
relative to frame 0 (the reference): for f ≥ 1 S_f = A s² e^{iφ} on the part, and S_0 = −d(0, y).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..utils import VidiffError

# hue palette (RGB base colours) of plants; index i -> frequency slot i
PLANT_COLOURS = np.array([[60, 170, 60], [200, 60, 60], [230, 200, 40], [150, 80, 200], [40, 160, 200],
                          [240, 130, 30]], float)
BALL_COLOURS = np.array([[220, 220, 230], [250, 120, 160], [90, 90, 240], [200, 160, 110]], float)


def _soft(dist: np.ndarray, width: float = 0.75) -> np.ndarray:
    """Alpha from a signed distance (negative inside): a smooth 1-2 px edge."""
    return np.clip(0.5 - dist / (2 * width), 0.0, 1.0)


@dataclass
class _Part:
    colour: np.ndarray  # (3,) RGB 0..255
    kind: str  # "plant" or "hanging"
    x0: float  # base / anchor x
    y0: float  # base / anchor y
    length: float
    f: int  # frequency index
    amp: float  # pixels
    phase: float
    leaves: list  # (cx_offset, cy, a, b, angle) for plants; ball radius for hanging
    curve: float = 0.0

    def profile(self, y: np.ndarray) -> np.ndarray:
        """Mode shape s(y)^p along the part (smooth in y, 0 at the root/anchor)."""
        if self.kind == "plant":
            return np.clip((self.y0 - y) / self.length, 0.0, 1.0) ** 2
        return np.clip((y - self.y0) / self.length, 0.0, 1.0)

    def coefficient(self, y: np.ndarray) -> np.ndarray:
        """Complex x-displacement coefficient A s(y) e^{iφ} at frequency ``f``."""
        return self.amp * self.profile(y) * np.exp(1j * self.phase)

    def rgba(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Colour (H, W, 3) and alpha (H, W) of the part in its rest pose at real coordinates."""
        if self.kind == "plant":
            s = (self.y0 - y) / self.length
            xc = self.x0 + self.curve * self.length * np.clip(s, 0, 1) ** 2
            d = np.abs(x - xc) - 1.0
            d = np.where((s >= 0) & (s <= 1), d, np.inf)
            alpha = _soft(d)
            col = np.broadcast_to(self.colour * 0.7, x.shape + (3,)).copy()
            for cx, cy, a, b, ang in self.leaves:
                lx, ly = x - (xc + cx), y - cy
                ca, sa = math.cos(ang), math.sin(ang)
                u, v = ca * lx + sa * ly, -sa * lx + ca * ly
                r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
                la = _soft((r - 1.0) * min(a, b))
                shade = 0.8 + 0.2 * np.cos(u * 1.7)  # veins: texture that moves with the leaf
                col = col * (1 - la[..., None]) + (self.colour * shade[..., None]) * la[..., None]
                alpha = np.maximum(alpha, la)
            return col, alpha
        radius = self.leaves[0]
        by = self.y0 + self.length
        string = np.where((y >= self.y0) & (y <= by), np.abs(x - self.x0) - 0.5, np.inf)
        rr = np.sqrt((x - self.x0) ** 2 + (y - by) ** 2)
        ball = _soft(rr - radius)
        alpha = np.maximum(_soft(string, 0.5) * 0.8, ball)
        shade = 0.75 + 0.25 * np.cos(2.0 * (x - self.x0)) * np.cos(2.0 * (y - by))
        col = np.broadcast_to(np.array([90, 80, 70.0]), x.shape + (3,)).copy()
        col = col * (1 - ball[..., None]) + (self.colour * shade[..., None]) * ball[..., None]
        return col, alpha


@dataclass
class ProceduralScene:
    """image (H, W, 3) uint8 = frame 0; video (T, H, W, 3) uint8 or None; spectral_volume (K, 4, H, W)."""

    image: np.ndarray
    video: np.ndarray | None
    spectral_volume: Tensor
    period: int
    mask: np.ndarray  # (H, W) bool, pixels covered by a moving part (alpha > 0.1) in frame 0


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(float)
    sky = np.array([120, 170, 230.0]) * rng.uniform(0.8, 1.1)
    ground = np.array([110, 90, 60.0]) * rng.uniform(0.8, 1.2)
    horizon = h * rng.uniform(0.7, 0.85)
    t = np.clip((y - horizon) / 3 + 0.5, 0, 1)[..., None]
    tex = 1 + 0.06 * np.sin(x / rng.uniform(2, 4) + y / rng.uniform(3, 6))[..., None]  # static texture
    return (sky * (1 - t) + ground * t) * tex


def _parts(h: int, w: int, k: int, rng: np.random.Generator, n_plants: int, n_hanging: int) -> list[_Part]:
    parts = []
    slots = max(1, k - 2)
    for i in range(n_plants):
        c = int(rng.integers(len(PLANT_COLOURS)))
        f = 1 + (c * slots) // len(PLANT_COLOURS)  # hue -> frequency
        length = h * rng.uniform(0.35, 0.7)
        x0, y0 = w * (i + 0.5 + rng.uniform(-0.2, 0.2)) / n_plants, h * rng.uniform(0.9, 0.98)
        leaves = []
        for j in range(int(rng.integers(2, 5))):
            s = rng.uniform(0.35, 1.0)
            a, b = h * rng.uniform(0.05, 0.09), h * rng.uniform(0.025, 0.04)
            side = 1 if j % 2 else -1
            leaves.append((side * a * 0.8, y0 - s * length, a, b, side * rng.uniform(0.2, 0.6)))
        parts.append(_Part(PLANT_COLOURS[c], "plant", x0, y0, length, f, amp=0.08 * length,
                           phase=float(rng.uniform(0, 2 * math.pi)), leaves=leaves,
                           curve=float(rng.uniform(-0.2, 0.2))))
    for _ in range(n_hanging):
        c = int(rng.integers(len(BALL_COLOURS)))
        length = h * rng.uniform(0.25, 0.55)
        f = int(np.clip(round(1.2 * slots * math.sqrt(0.25 * h / length)), 1, k - 1))  # longer string -> lower f
        radius = h * rng.uniform(0.05, 0.09)
        parts.append(_Part(BALL_COLOURS[c], "hanging", w * rng.uniform(0.15, 0.85), 0.0, length, f,
                           amp=0.5 * radius, phase=float(rng.uniform(0, 2 * math.pi)), leaves=[radius]))
    return parts


def make_scene(seed: int = 0, size: tuple[int, int] = (64, 64), frames: int = 150, k: int = 16,
               n_plants: int = 3, n_hanging: int = 1, render_video: bool = True) -> ProceduralScene:
    """One procedural scene: reference image, its video over ``frames`` (one period) and the true spectral volume."""
    h, w = size
    if k < 3 or frames < 2 * k - 1:
        raise VidiffError(f"need k >= 3 and frames >= 2k-1, got k={k}, frames={frames}")
    rng = np.random.default_rng(seed)
    bg = _background(h, w, rng)
    parts = _parts(h, w, k, rng, n_plants, n_hanging)
    y, x = np.mgrid[0:h, 0:w].astype(float)

    def frame(t: float) -> tuple[np.ndarray, np.ndarray]:
        img = bg.copy()
        owner = np.full((h, w), -1)
        for i, p in enumerate(parts):  # back to front
            d = (p.coefficient(y) * np.exp(2j * math.pi * p.f * t / frames)).real
            col, alpha = p.rgba(x - d, y)
            img = img * (1 - alpha[..., None]) + col * alpha[..., None]
            owner = np.where(alpha > 0.1, i, owner)  # edge pixels move with the part over them
        return np.clip(np.round(img), 0, 255).astype(np.uint8), owner

    image, owner = frame(0.0)
    sv = np.zeros((k, 4, h, w), np.float64)
    for i, p in enumerate(parts):
        m = owner == i
        c = p.coefficient(y)
        sv[p.f, 0][m], sv[p.f, 1][m] = c.real[m], c.imag[m]
        sv[0, 0][m] = -c.real[m]  # D(t) = d(t) − d(0): the mean is −d(0) = −Re(c)
    video = np.stack([image] + [frame(float(t))[0] for t in range(1, frames)]) if render_video else None
    return ProceduralScene(image, video, torch.from_numpy(sv).float(), frames, owner >= 0)


class ProceduralDataset(torch.utils.data.Dataset):
    """Scenes on the fly: item i -> {"image": (3, H, W) in [-1, 1], "spectral_volume": (K, 4, H, W)}."""

    def __init__(self, n: int, size: tuple[int, int] = (64, 64), frames: int = 150, k: int = 16, seed: int = 0):
        self.n, self.size, self.frames, self.k, self.seed = n, size, frames, k, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        sc = make_scene(self.seed * 1_000_003 + i, self.size, self.frames, self.k, render_video=False)
        img = torch.from_numpy(sc.image).permute(2, 0, 1).float() / 127.5 - 1
        return {"image": img, "spectral_volume": sc.spectral_volume}
