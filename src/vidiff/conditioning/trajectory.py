"""Trajectory control (DragNUWA / MotionCtrl style): where objects go, as channels concatenated to x_t.

A trajectory is an array of points (K, F, 2): K tracks (objects), one (x, y) point per frame, in pixels
of the model's frame with pixel i covering [i, i + 1) (so its centre is i + 0.5; y grows downwards);
NaN where a track has no point. Users give tracks per frame or as sparse keypoints, interpolated by a
Catmull-Rom spline that passes through them (`interpolate_keypoints`), in a JSON file:

    {"frames": 16,                       optional; must equal the clip's frame count when given
     "size": [32, 32],                   optional [width, height] of the coordinates (default: the model's)
     "interpolation": "catmull-rom",     optional; or "linear"
     "tracks": [
        [[0, 6, 8], [8, 20, 14], [15, 26, 26]],   keypoints [frame, x, y] of one object
        [[4, 28], [4, 27.5], ...]                  or [x, y] for every frame (exactly `frames` of them)
     ]}

Encoding (`encode_tracks`), (C, F, H, W) per video: a Gaussian heat-map per frame (std `HEAT_SIGMA` of the
frame size, peak 1 at the point; tracks merged by their maximum, or one channel per track), and sparse
flow channels (dx, dy to the next frame, in units of `FLOW_SCALE` of the frame size, weighted by the
heat-map so they are zero away from the points). A model trained with condition "trajectory" sees
`CHANNELS` = heat-map + flow, merged over tracks, so any number of objects fits the same network.

Training draws trajectories from the data itself: the object's track is the soft centroid of the
foreground in every frame (`object_tracks`), which for the synthetic shapes data is the ground-truth
centre of the object (tested against `data.synth.trajectories`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.checker import CheckerConfig
from ..utils import VidiffError

CHANNELS = 3             # the "trajectory" condition: heat-map + (dx, dy) flow, merged over tracks
HEAT_SIGMA = 0.05        # heat-map std as a fraction of max(H, W): 1.6 px at 32x32
FLOW_SCALE = 0.1         # flow channels carry displacement / (FLOW_SCALE max(H, W)) per frame
FG_THRESHOLD = CheckerConfig().fg_threshold / 127.5  # the checker's foreground level, on the [-1, 1] scale
MASK_FLOOR = 0.1         # coverage below this fraction of the frame's object level counts as background
INTERPOLATIONS = ("catmull-rom", "linear")


# ---------------------------------------------------------------------------------------------------
# Tracks: keypoint splines, JSON files, drags


def interpolate_keypoints(keys, frames: int, method: str = "catmull-rom") -> np.ndarray:
    """Keypoints (N, 3) rows [frame, x, y] -> points (frames, 2). Between keypoints a cubic Hermite
    spline with Catmull-Rom tangents m_i = (p_{i+1} − p_{i−1}) / (t_{i+1} − t_{i−1}) (one-sided at the
    ends; non-uniform in frame time), so it passes through every keypoint with a continuous velocity;
    before the first and after the last keypoint the point holds still. `method="linear"` joins them
    with straight segments."""
    keys = np.asarray(keys, np.float64)
    if keys.ndim != 2 or keys.shape[1] != 3 or len(keys) == 0:
        raise VidiffError(f"keypoints must be rows [frame, x, y]; got an array of shape {keys.shape}")
    if method not in INTERPOLATIONS:
        raise VidiffError(f"unknown interpolation {method!r}; use {' or '.join(INTERPOLATIONS)}")
    t, p = keys[:, 0], keys[:, 1:]
    if np.any(np.diff(t) <= 0):
        raise VidiffError(f"keypoint frames must increase strictly; got {t.astype(int).tolist()}")
    if t[0] < 0 or t[-1] > frames - 1 or np.any(t != np.round(t)):
        raise VidiffError(f"keypoint frames must be whole numbers in 0..{frames - 1} (the clip has {frames} "
                          f"frames); got {t.tolist()}")
    q = np.arange(frames, dtype=np.float64)
    if len(t) == 1:
        return np.repeat(p, frames, axis=0)
    if method == "linear":
        return np.stack([np.interp(q, t, p[:, 0]), np.interp(q, t, p[:, 1])], 1)
    m = np.empty_like(p)  # tangents dp/dt at the keypoints
    m[1:-1] = (p[2:] - p[:-2]) / (t[2:] - t[:-2])[:, None]
    m[0], m[-1] = (p[1] - p[0]) / (t[1] - t[0]), (p[-1] - p[-2]) / (t[-1] - t[-2])
    qc = np.clip(q, t[0], t[-1])
    i = np.clip(np.searchsorted(t, qc, side="right") - 1, 0, len(t) - 2)  # segment of each frame
    h = (t[i + 1] - t[i])[:, None]
    s = ((qc - t[i]) / h[:, 0])[:, None]
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    return h00 * p[i] + h10 * h * m[i] + h01 * p[i + 1] + h11 * h * m[i + 1]


def check_points(points: np.ndarray, width: int, height: int, where: str = "trajectory") -> None:
    """Every finite point must lie in the frame [0, width] x [0, height]; one line naming the first that does not."""
    bad = np.argwhere(np.isfinite(points).all(-1) & ((points[..., 0] < 0) | (points[..., 0] > width)
                                                     | (points[..., 1] < 0) | (points[..., 1] > height)))
    if len(bad):
        k, f = bad[0]
        x, y = points[k, f]
        raise VidiffError(f"{where}: track {k} at frame {f} is at ({x:g}, {y:g}), outside the {width}x{height} "
                          f"frame; give points with 0 <= x <= {width} and 0 <= y <= {height}")


def parse_tracks(spec: dict, frames: int, width: int, height: int, where: str = "trajectory") -> np.ndarray:
    """A trajectory document (the JSON format above, already parsed) -> points (K, frames, 2) in pixels
    of a width x height frame; a wrong frame count, a point outside the frame or a malformed entry is a
    one-line VidiffError."""
    if not isinstance(spec, dict) or not isinstance(spec.get("tracks"), list) or not spec["tracks"]:
        raise VidiffError(f'{where}: expected a JSON object with a non-empty "tracks" list, e.g. '
                          '{"frames": 16, "tracks": [[[0, 4, 4], [15, 28, 28]]]}')
    declared = spec.get("frames")
    if declared is not None and (not isinstance(declared, int) or isinstance(declared, bool) or declared != frames):
        raise VidiffError(f'{where}: "frames" is {declared!r} but the video has {frames} frames; '
                          f'set "frames": {frames} or sample with --frames {declared}')
    size = spec.get("size", [width, height])
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in size)):
        raise VidiffError(f'{where}: "size" must be [width, height] in pixels; got {size!r}')
    method = spec.get("interpolation", "catmull-rom")
    if method not in INTERPOLATIONS:
        raise VidiffError(f'{where}: unknown "interpolation" {method!r}; use {" or ".join(INTERPOLATIONS)}')
    tracks = []
    for k, track in enumerate(spec["tracks"]):
        try:
            arr = np.asarray(track, np.float64)
        except (TypeError, ValueError):
            arr = np.empty((0, 0))
        if arr.ndim != 2 or arr.shape[1] not in (2, 3) or len(arr) == 0 or not np.isfinite(arr).all():
            raise VidiffError(f"{where}: track {k} must be a list of [frame, x, y] keypoints or of [x, y] "
                              "points, one per frame (numbers only)")
        if arr.shape[1] == 2:
            if len(arr) != frames:
                raise VidiffError(f"{where}: track {k} has {len(arr)} [x, y] points but the video has {frames} "
                                  f"frames; give one point per frame or [frame, x, y] keypoints")
            pts = arr
        else:
            pts = interpolate_keypoints(arr, frames, method)
            check_points(arr[None, :, 1:], size[0], size[1], f"{where}: keypoints")
        tracks.append(pts)
    points = np.stack(tracks)  # (K, F, 2) in the document's pixels
    check_points(points, size[0], size[1], where)
    points = points * np.array([width / size[0], height / size[1]])
    return np.clip(points, 0, [width, height])  # a spline may overshoot a keypoint on the border slightly


def load_trajectory(path: str | Path, frames: int, width: int, height: int) -> np.ndarray:
    """Read a trajectory JSON file -> points (K, frames, 2) (see `parse_tracks`)."""
    path = Path(path)
    if not path.is_file():
        raise VidiffError(f"trajectory file {path} not found; give a JSON file such as "
                          '{"frames": 16, "tracks": [[[0, 4, 4], [15, 28, 28]]]}')
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VidiffError(f"{path} is not valid JSON ({str(e).splitlines()[0]}); see docs/control.md "
                          "for the trajectory format") from None
    return parse_tracks(spec, frames, width, height, where=str(path))


def save_trajectory(path: str | Path, points: np.ndarray) -> None:
    """Write points (K, F, 2) as a trajectory file with one [x, y] per frame (atomically)."""
    from ..utils import atomic_write_text

    points = np.asarray(points, np.float64)
    doc = {"frames": int(points.shape[1]), "tracks": [[[round(float(x), 3), round(float(y), 3)] for x, y in track]
                                                       for track in points]}
    atomic_write_text(path, json.dumps(doc) + "\n")


def parse_drag(text: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """"X0,Y0:X1,Y1" -> ((x0, y0), (x1, y1))."""
    try:
        a, b = text.split(":")
        (x0, y0), (x1, y1) = (tuple(float(v) for v in p.split(",")) for p in (a, b))
    except ValueError:
        raise VidiffError(f"--drag takes a start and an end point X0,Y0:X1,Y1 in pixels, such as 8,8:24,20; "
                          f"got {text!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise VidiffError(f"--drag takes finite pixel coordinates; got {text!r}")
    return (x0, y0), (x1, y1)


def drag_trajectory(start, end, frames: int, width: int, height: int, image: Tensor | None = None) -> np.ndarray:
    """A straight track (1, frames, 2) that moves what is under `start` by (end − start) over the clip.

    Without `image` the track runs from `start` to `end`. With a first frame `image` (3, H, W) in [−1, 1]
    (of size width x height), the object under `start` (the foreground component holding that pixel)
    is found, and its centroid — the point a trajectory model places — moves by end − start."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    check_points(np.stack([start, end])[None], width, height, "--drag")
    origin = start
    if image is not None:
        origin = _object_under(image, start)
    s = np.linspace(0.0, 1.0, frames)[:, None] if frames > 1 else np.zeros((1, 1))
    points = origin + s * (end - start)  # (F, 2)
    check_points(points[None], width, height, "--drag (the object's centroid moved by the drag)")
    return points[None]


def _object_under(image: Tensor, point: np.ndarray) -> np.ndarray:
    """The soft centroid (x, y) of the foreground component of `image` (3, H, W) holding `point`."""
    from scipy import ndimage

    mask = foreground_mask(image[None, :, None].float())[0, 0].numpy()  # (H, W)
    lab, _ = ndimage.label(mask > 0.5, structure=np.ones((3, 3), bool))
    h, w = mask.shape
    px, py = min(int(point[0]), w - 1), min(int(point[1]), h - 1)
    near = lab[max(py - 1, 0):py + 2, max(px - 1, 0):px + 2]  # the pixel, or one next to it
    ids = near[near > 0]
    if len(ids) == 0:
        raise VidiffError(f"--drag: no object under the start point ({point[0]:g}, {point[1]:g}) of the --image; "
                          "start the drag on an object")
    comp = ndimage.binary_dilation(lab == np.bincount(ids).argmax(), structure=np.ones((3, 3), bool))
    cov = np.where(comp, mask, 0.0)
    ys, xs = np.mgrid[0:h, 0:w]
    return np.array([(cov * (xs + 0.5)).sum(), (cov * (ys + 0.5)).sum()]) / cov.sum()


# ---------------------------------------------------------------------------------------------------
# Heat-map / flow encoding and decoding


def heat_sigma(height: int, width: int) -> float:
    """The heat-map std in pixels for a height x width frame."""
    return HEAT_SIGMA * max(height, width)


def encode_tracks(points, height: int, width: int, *, flow: bool = True, per_track: bool = False,
                  sigma: float | None = None) -> Tensor:
    """Points (K, F, 2) or (B, K, F, 2) -> channels (C, F, H, W) or (B, C, F, H, W): the Gaussian heat-map
    h(x, y) = exp(−|(x, y) − p|² / 2σ²) sampled at pixel centres (1 channel, the max over tracks, or
    K channels with `per_track`), then with `flow` the sparse flow (dx, dy) to the next frame (the last
    frame repeats the previous step) weighted by each track's heat-map and summed (2 channels).
    NaN points give no heat and no flow."""
    p = torch.as_tensor(np.asarray(points, np.float32) if not torch.is_tensor(points) else points).float()
    single = p.dim() == 3
    if single:
        p = p[None]
    if p.dim() != 4 or p.shape[-1] != 2:
        raise VidiffError(f"trajectory points must have shape (K, F, 2) or (B, K, F, 2); got {tuple(p.shape)}")
    sigma = heat_sigma(height, width) if sigma is None else float(sigma)
    xs = torch.arange(width, dtype=p.dtype, device=p.device) + 0.5
    ys = torch.arange(height, dtype=p.dtype, device=p.device) + 0.5
    valid = torch.isfinite(p).all(-1)  # (B, K, F)
    q = torch.where(valid[..., None], p, torch.zeros_like(p))
    gx = torch.exp(-(xs - q[..., 0, None]) ** 2 / (2 * sigma**2))  # (B, K, F, W)
    gy = torch.exp(-(ys - q[..., 1, None]) ** 2 / (2 * sigma**2))  # (B, K, F, H)
    heat = gy[..., :, None] * gx[..., None, :] * valid[..., None, None]  # (B, K, F, H, W)
    out = [heat if per_track else heat.amax(1, keepdim=True)]  # (B, 1 or K, F, H, W)
    if flow:
        f = p.shape[2]
        if f > 1:
            d = p[:, :, 1:] - p[:, :, :-1]  # (B, K, F-1, 2)
            d = torch.cat([d, d[:, :, -1:]], 2)  # (B, K, F, 2): the last frame repeats the previous step
        else:
            d = torch.zeros_like(p)
        d = torch.nan_to_num(d / (FLOW_SCALE * max(height, width)), nan=0.0)
        out.append(torch.einsum("bkfhw,bkfc->bcfhw", heat, d))  # (B, 2, F, H, W)
    enc = torch.cat(out, 1)  # (B, C, F, H, W)
    return enc[0] if single else enc


def decode_heatmap(heat: Tensor, sigma: float | None = None) -> Tensor:
    """Heat-maps (..., F, H, W) -> points (..., F, 2) at sub-pixel precision: the argmax pixel refined by
    the parabola through the log-heat of it and its two neighbours per axis (exact for a sampled
    Gaussian); on the frame's edge, from the one neighbour and the known `sigma` (default `heat_sigma`).
    NaN where a frame has no heat."""
    h, w = heat.shape[-2:]
    sigma = heat_sigma(h, w) if sigma is None else float(sigma)
    flat = heat.reshape(-1, h, w).double()
    out = torch.full((flat.shape[0], 2), float("nan"), dtype=torch.float64)
    for n, m in enumerate(flat):
        if not m.max() > 0:
            continue
        iy, ix = divmod(int(m.argmax()), w)
        out[n, 0] = _refine(torch.log(m[iy].clamp_min(1e-300)), ix, sigma)
        out[n, 1] = _refine(torch.log(m[:, ix].clamp_min(1e-300)), iy, sigma)
    return out.reshape(*heat.shape[:-2], 2).to(heat.dtype if heat.is_floating_point() else torch.float32)


def _refine(logh: Tensor, i: int, sigma: float) -> float:
    """Sub-pixel peak of a sampled log-Gaussian row `logh` around its argmax i (pixel centres at j + 0.5)."""
    n = len(logh)
    if 0 < i < n - 1:
        lm, l0, lp = (float(v) for v in logh[i - 1:i + 2])
        curv = lm - 2 * l0 + lp
        return i + 0.5 + (0.5 * (lm - lp) / curv if curv < 0 else 0.0)
    if n == 1:
        return 0.5
    # l(j+1) − l(j) = −(j + 1 − μ)/σ²  =>  μ = j + 1 + σ² (l(j+1) − l(j))
    j = 0 if i == 0 else n - 2
    return j + 1 + sigma**2 * float(logh[j + 1] - logh[j])


# ---------------------------------------------------------------------------------------------------
# Object tracks from video (the training signal, and what the benchmark measures)


def foreground_mask(x: Tensor, floor: float = MASK_FLOOR) -> Tensor:
    """Soft object coverage (B, F, H, W) in [0, 1] of videos x (B, C, F, H, W) in [−1, 1]: the largest
    channel difference from the video's median colour (the background, held constant), divided by the
    frame's largest difference (the object's level) and ramped from `floor` to 1. Differentiable in x."""
    bg = x.detach().flatten(2).median(-1).values  # (B, C)
    diff = (x - bg[:, :, None, None, None]).abs().amax(1)  # (B, F, H, W)
    level = diff.detach().amax((-2, -1), keepdim=True).clamp_min(1e-6)  # (B, F, 1, 1)
    return ((diff / level - floor) / (1 - floor)).clamp(0, 1)


def soft_centroids(mask: Tensor) -> Tensor:
    """Mask-weighted mean pixel centre (soft-argmax of the mask) per frame: (B, F, H, W) -> (B, F, 2) as (x, y)."""
    h, w = mask.shape[-2:]
    xs = torch.arange(w, dtype=mask.dtype, device=mask.device) + 0.5
    ys = torch.arange(h, dtype=mask.dtype, device=mask.device) + 0.5
    total = mask.sum((-2, -1)).clamp_min(1e-6)  # (B, F)
    cx = (mask.sum(-2) * xs).sum(-1) / total
    cy = (mask.sum(-1) * ys).sum(-1) / total
    return torch.stack([cx, cy], -1)


def object_tracks(x: Tensor) -> Tensor:
    """The object's track in videos x (B, C, F, H, W) in [−1, 1]: soft centroids (B, F, 2), NaN in frames
    where nothing differs from the background by the checker's foreground threshold."""
    x = x.detach().float()
    bg = x.flatten(2).median(-1).values  # (B, C)
    level = (x - bg[:, :, None, None, None]).abs().amax(1).amax((-2, -1))  # (B, F)
    c = soft_centroids(foreground_mask(x))
    return torch.where((level > FG_THRESHOLD)[..., None], c, torch.full_like(c, float("nan")))


def trajectory_concat(x0: Tensor) -> Tensor:
    """The "trajectory" condition of training clips x0 (B, 3, F, H, W): each clip's object track encoded
    as `CHANNELS` channels (B, CHANNELS, F, H, W)."""
    if x0.dim() != 5 or x0.shape[1] != 3:
        raise VidiffError(f"condition 'trajectory' reads object tracks from RGB video (B, 3, F, H, W); got shape "
                          f"{tuple(x0.shape)} (latent models cannot be trained with it; train in pixel space)")
    h, w = x0.shape[-2:]
    return encode_tracks(object_tracks(x0)[:, None], h, w).to(x0)  # (B, CHANNELS, F, H, W)


def track_error(pred: Tensor, target: Tensor) -> Tensor:
    """Mean distance in pixels over frames between tracks (B, F, 2) (frames where either is NaN are left
    out; inf where no frame is left)."""
    d = torch.linalg.norm(pred.double() - target.double(), dim=-1)  # (B, F)
    ok = torch.isfinite(d)
    n = ok.sum(-1)
    mean = torch.where(ok, d, torch.zeros_like(d)).sum(-1) / n.clamp_min(1)
    return torch.where(n > 0, mean, torch.full_like(mean, float("inf")))
