"""Automatic quality checker for moving-shapes videos: one object, constant colour and size, smooth motion.

Per frame, the object is the set of pixels whose largest channel difference from the background exceeds
`fg_threshold`; components come from `scipy.ndimage.label` (8-connected) and specks below `min_area`
pixels are ignored. Soft coverage (difference / the object's core level) gives sub-pixel centroids and
areas. The thresholds below were calibrated on decoded H.264 shapes videos at 16-64 px (docs/data.md).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..utils import VidiffError
from .synth import DIRECTIONS, PALETTE

CRITERIA = ("one_object", "constant_colour", "constant_size", "moving", "smooth_motion")


@dataclass(frozen=True)
class CheckerConfig:
    """Thresholds; lengths are fractions of the frame size max(H, W) unless stated."""

    background: tuple[int, int, int] | None = None  # None: the per-video median colour
    fg_threshold: float = 60.0       # max-channel |pixel - background| to count as object (0..255)
    min_area: float = 3.0            # components smaller than this (pixels) are specks
    max_area: float = 0.25           # an "object" larger than this fraction of the frame is not one
    background_noise: float = 12.0   # mean |pixel - background| outside the object (0..255)
    colour_drift: float = 45.0       # max |mean core RGB - its median| over frames (0..255)
    colour_spread: float = 75.0      # max per-channel std of the core pixels in a frame (two merged objects: ~100)
    area_rel_std: float = 0.15       # std / mean of the soft area
    min_speed: float = 0.01          # mean |displacement| per frame must exceed this
    max_step: float = 0.15           # no single displacement larger than this (teleport)
    max_accel: float = 0.03          # |second difference of the centroid| off the walls ...
    max_accel_px: float = 0.75       # ... or this many pixels, whichever is larger (codec noise)
    wall_margin: float = 0.04        # "near a wall": bounding box within this (+ 0.6 |v|) of the border


@dataclass
class CheckResult:
    """Per-criterion verdicts, the measured values behind them, and estimated attributes."""

    ok: bool
    one_object: bool
    constant_colour: bool
    constant_size: bool
    moving: bool
    smooth_motion: bool
    num_objects: list[int] = field(default_factory=list)   # per frame, specks excluded
    colour_drift: float = float("nan")
    colour_spread: float = float("nan")                     # within-frame std of the core colour
    background_noise: float = float("nan")                  # mean |pixel - background| off the object
    area_rel_std: float = float("nan")
    mean_speed: float = float("nan")                        # pixels per frame
    max_step: float = float("nan")                          # pixels
    max_accel: float = float("nan")                         # pixels / frame^2 off the walls
    rgb: tuple[float, float, float] | None = None
    colour: str | None = None
    shape: str | None = None
    fill_ratio: float = float("nan")
    skew: float = float("nan")                              # vertical skewness of the mass
    direction: str | None = None
    velocity: tuple[float, float] | None = None             # initial (vx, vy), y down

    def to_dict(self) -> dict:
        """JSON-able dict."""
        return asdict(self)


def foreground_centroid(frame: np.ndarray, cfg: CheckerConfig = CheckerConfig()) -> tuple[float, float] | None:
    """(x, y) centre of the pixels of a uint8 frame (H, W, 3) farther than `cfg.fg_threshold` from its
    median colour (the object, on the shapes data's plain background); None when there are none."""
    bg = np.median(frame.reshape(-1, 3), axis=0)
    ys, xs = np.nonzero(np.abs(frame.astype(np.float32) - bg).max(-1) > cfg.fg_threshold)
    return (float(xs.mean()), float(ys.mean())) if len(xs) else None


def centroid_distance(a: np.ndarray, b: np.ndarray, cfg: CheckerConfig = CheckerConfig()) -> float:
    """Distance in pixels between the `foreground_centroid`s of frames `a` and `b`; inf when either has no object."""
    ca, cb = foreground_centroid(a, cfg), foreground_centroid(b, cfg)
    return float("inf") if ca is None or cb is None else float(np.hypot(ca[0] - cb[0], ca[1] - cb[1]))


def track_distance(a: np.ndarray, b: np.ndarray, cfg: CheckerConfig = CheckerConfig()) -> float:
    """Mean over frames of the `centroid_distance` between uint8 videos `a` and `b` (F, H, W, 3), in pixels; inf
    when either misses the object in some frame."""
    return float(np.mean([centroid_distance(fa, fb, cfg) for fa, fb in zip(a, b)]))


def nearest_colour(rgb, palette: dict[str, tuple[int, int, int]] = PALETTE) -> str:
    """Palette name nearest in chromaticity (angle between RGB vectors), robust to brightness."""
    v = np.asarray(rgb, np.float64)
    v = v / (np.linalg.norm(v) + 1e-8)
    names = list(palette)
    P = np.array([palette[n] for n in names], np.float64)
    P /= np.linalg.norm(P, axis=1, keepdims=True)
    return names[int(np.argmax(P @ v))]


def direction_name(vx: float, vy: float, ways: int = 8) -> str:
    """Compass name of a velocity (y down): 8 ways (right, up-right, ...) or 4 ways."""
    ang = np.degrees(np.arctan2(-vy, vx)) % 360
    names = list(DIRECTIONS)  # counter-clockwise from "right", 45 degrees apart
    if ways == 4:
        return names[2 * (int(np.round(ang / 90)) % 4)]
    return names[int(np.round(ang / 45)) % 8]


def shape_from_features(fill: float, skew: float) -> str:
    """Shape from the fill ratio of the soft bounding box (square 1, circle pi/4, triangle 1/2) and the
    vertical skewness of the mass (0 for the symmetric circle and square, -0.57 for a triangle's
    linearly growing width); the skewness decides first because blur at low resolution lowers the fill."""
    if abs(skew) > 0.2 or fill < 0.6:
        return "triangle"
    return "square" if fill > 0.9 else "circle"


def _label(mask: np.ndarray):
    from scipy import ndimage

    return ndimage.label(mask, structure=np.ones((3, 3), bool))


def check_video(video: np.ndarray, cfg: CheckerConfig = CheckerConfig()) -> CheckResult:
    """Check one uint8 video (F, H, W, 3): exactly one object of constant colour and size moving smoothly."""
    v = np.asarray(video)
    if v.ndim != 4 or v.shape[-1] != 3:
        raise ValueError(f"expected a video (F, H, W, 3), got shape {v.shape}")
    v = v.astype(np.float32)
    F, H, W, _ = v.shape
    S = float(max(H, W))
    bg = (np.median(v.reshape(-1, 3), axis=0) if cfg.background is None
          else np.asarray(cfg.background, np.float32))
    diff = np.abs(v - bg).max(axis=-1)                                  # (F, H, W)

    counts, areas, cents, rgbs, boxes, fills, skews, noise, spreads = [], [], [], [], [], [], [], [], []
    for f in range(F):
        lab, n = _label(diff[f] > cfg.fg_threshold)
        sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        keep = np.flatnonzero(sizes >= cfg.min_area) + 1
        counts.append(len(keep) + int(np.any(sizes[keep - 1] > cfg.max_area * H * W)))  # a blob counts twice
        if len(keep) == 0:
            continue
        # the largest component, grown by one pixel to catch its anti-aliased rim
        from scipy import ndimage

        obj = lab == keep[np.argmax(sizes[keep - 1])]
        core = obj & (diff[f] >= 0.85 * diff[f][obj].max())             # fully covered pixels
        level = diff[f][core].mean()
        region = ndimage.binary_dilation(obj, structure=np.ones((3, 3), bool))
        outside = ~ndimage.binary_dilation(region, structure=np.ones((3, 3), bool))
        noise.append(float(diff[f][outside].mean()) if outside.any() else 255.0)
        spreads.append(float(v[f][core].std(axis=0).max()))
        cov = np.where(region, np.clip(diff[f] / max(level, 1e-3), 0, 1), 0)  # (H, W)
        area = cov.sum()
        ys, xs = np.mgrid[0:H, 0:W]
        cents.append(((cov * xs).sum() / area + 0.5, (cov * ys).sum() / area + 0.5))
        areas.append(area)
        rgbs.append(v[f][core].mean(axis=0))
        x_ext, y_ext = cov.max(axis=0).sum(), cov.max(axis=1).sum()
        fills.append(area / max(x_ext * y_ext, 1e-6))
        prof = cov.sum(axis=1)                                          # (H,) mass per row
        my = (prof * ys[:, 0]).sum() / area
        sd = np.sqrt(max((prof * (ys[:, 0] - my) ** 2).sum() / area, 1e-6))
        skews.append((prof * (ys[:, 0] - my) ** 3).sum() / area / sd**3)
        rows, cols = np.flatnonzero(obj.any(axis=1)), np.flatnonzero(obj.any(axis=0))
        boxes.append((cols[0], rows[0], cols[-1] + 1, rows[-1] + 1))   # x0, y0, x1, y1 (exclusive)

    res = dict(num_objects=counts, background_noise=max(noise, default=float("nan")),
               colour_spread=max(spreads, default=float("nan")))
    one = all(c == 1 for c in counts) and res["background_noise"] <= cfg.background_noise
    res["one_object"] = one
    if len(areas) == 0:
        return CheckResult(ok=False, one_object=False, constant_colour=False, constant_size=False,
                           moving=False, smooth_motion=False, num_objects=counts)
    rgbs = np.array(rgbs)
    drift = float(np.abs(rgbs - np.median(rgbs, axis=0)).max())
    areas = np.array(areas)
    rel = float(areas.std() / max(areas.mean(), 1e-6))
    res.update(colour_drift=drift, area_rel_std=rel,
               constant_colour=drift <= cfg.colour_drift and res["colour_spread"] <= cfg.colour_spread,
               constant_size=rel <= cfg.area_rel_std)
    med = np.median(rgbs, axis=0)
    res.update(rgb=tuple(float(c) for c in med), colour=nearest_colour(med))
    fill, skew = float(np.median(fills)), float(np.median(skews))
    res.update(fill_ratio=fill, skew=skew, shape=shape_from_features(fill, skew))

    smooth = moving = False
    if one and F >= 2:
        c = np.array(cents)                                            # (F, 2) x, y
        d = np.diff(c, axis=0)                                         # (F-1, 2)
        step = np.linalg.norm(d, axis=1)
        res.update(mean_speed=float(step.mean()), max_step=float(step.max()))
        moving = step.mean() >= cfg.min_speed * S
        ok_step = step.max() <= cfg.max_step * S
        b = np.array(boxes, np.float64)
        m = cfg.wall_margin * S + 0.6 * float(np.median(step))       # the frame nearest a bounce is <= |v|/2 away
        near = np.stack([(b[:, 0] <= m) | (b[:, 2] >= W - m),          # near a wall in x
                         (b[:, 1] <= m) | (b[:, 3] >= H - m)], 1)      # in y; (F, 2)
        acc_max = 0.0
        if F >= 3:
            a = np.abs(np.diff(d, axis=0))                             # (F-2, 2)
            wall = near[:-2] | near[1:-1] | near[2:]                   # a bounce may span 3 frames
            # at a wall a component may reverse (|a| up to 2 |v|), elsewhere it must stay put
            # (teleports there are still caught by max_step)
            acc_max = float(np.where(wall, 0.0, a).max())
        res["max_accel"] = acc_max
        smooth = bool(ok_step and acc_max <= max(cfg.max_accel * S, cfg.max_accel_px))
        # initial velocity: average the steps before any component first reverses
        sign = np.sign(d) * (np.abs(d) > 0.3 * np.abs(d[0]).max())
        flip = np.flatnonzero(((sign[1:] * sign[:1]) < 0).any(axis=1))
        k = int(flip[0]) + 1 if len(flip) else len(d)
        n = max(k - 1, 1)  # the step just before the flip may end in a wall: leave it out
        v0 = np.polyfit(np.arange(n + 1), c[:n + 1], 1)[0] if n >= 2 else d[0]  # least-squares slope
        res.update(velocity=(float(v0[0]), float(v0[1])), direction=direction_name(*v0))
    res.update(moving=bool(moving), smooth_motion=bool(smooth))
    ok = all(res[c] for c in CRITERIA)
    return CheckResult(ok=bool(ok), **res)


def check_batch(videos, expected: list[dict] | None = None, cfg: CheckerConfig = CheckerConfig()) -> dict:
    """Check uint8 videos (N, F, H, W, 3); return pass rates per criterion and overall ("ok"), plus
    attribute accuracies (colour, shape, direction) when `expected` metadata dicts are given."""
    results = [check_video(v, cfg) for v in videos]
    n = len(results)
    if not n:
        raise VidiffError("no videos to check; give at least one video (and --limit of at least 1)")
    summary: dict = {"num": n}
    for c in ("ok",) + CRITERIA:
        summary[c] = float(np.mean([getattr(r, c) for r in results])) if n else float("nan")
    if expected is not None:
        if len(expected) != n:
            raise ValueError(f"expected {n} metadata records, got {len(expected)}")
        for attr in ("colour", "shape", "direction"):
            pairs = [(getattr(r, attr), e.get(attr)) for r, e in zip(results, expected) if e.get(attr) is not None]
            summary[f"{attr}_acc"] = float(np.mean([a == b for a, b in pairs])) if pairs else float("nan")
        summary["all_attrs_acc"] = float(np.mean([
            all(getattr(r, a) == e.get(a) for a in ("colour", "shape", "direction")) for r, e in zip(results, expected)
        ])) if n else float("nan")
    summary["results"] = results
    return summary
