"""Structure of a video for Gen-1 editing (Esser et al. 2023): per-frame maps that fix where things are and
how they move, but not what they look like.

Three sources, all returned as float maps in [0, 1] (edges, depth) or pixels/`FLOW_SCALE` (flow):
  edges     Canny edges of each frame (OpenCV), 1 channel.
  flow      dense optical flow from each frame to the next (Farnebäck, `metrics.flow`), 2 channels (dx, dy).
  depth:DIR depth maps the user supplies, one numbered image file per frame (0.png, 1.png, … or frame_001.png,
            …); vidiff ships no depth network (nothing is downloaded), so make them with any monocular depth
            model beforehand. An edge-conditioned model sees the Canny edges of the depth maps: the depth
            discontinuities, i.e. the occluding contours.

Structure fidelity (Gen-1 §3.2, t_s): `degrade` downsamples the maps and upsamples them back, coarser at lower
strength, so at strength 1 the output follows every contour of the input and at strength 0 only a blob of
where things are; training draws the strength uniformly so one model serves every setting.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..metrics.flow import optical_flow, to_gray_u8
from ..utils import VidiffError

STRUCTURES = ("edges", "flow", "depth")  # "depth" is given as depth:DIR
CHANNELS = {"edges": 1, "flow": 2}  # structure channels the model sees (depth maps are seen as their edges)
CANNY_LOW, CANNY_HIGH = 50, 120  # hysteresis thresholds on 0..255 grey levels
FLOW_SCALE = 4.0  # pixels per frame mapped to 1.0 (then clipped to [-1, 1])
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def parse_structure(spec: str) -> tuple[str, Path | None]:
    """"edges" | "flow" | "depth:DIR" -> (kind, DIR or None); anything else is a one-line error."""
    spec = (spec or "").strip()
    if spec in ("edges", "flow"):
        return spec, None
    if spec.startswith("depth:") and spec[len("depth:"):].strip():
        return "depth", Path(spec[len("depth:"):].strip())
    if spec == "depth" or spec == "depth:":
        raise VidiffError("--structure depth needs the folder of depth maps: depth:DIR (one numbered image per "
                          "frame; vidiff ships no depth network, so make them with a depth model beforehand)")
    raise VidiffError(f"unknown --structure {spec!r}; use edges, flow or depth:DIR")


def canny_edges(frames: np.ndarray, low: int = CANNY_LOW, high: int = CANNY_HIGH) -> np.ndarray:
    """uint8 frames (F, H, W, 3) or grey (F, H, W) -> Canny edge maps (F, H, W) float32 in {0, 1} (Canny 1986)."""
    import cv2

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4):
        raise VidiffError(f"expected uint8 frames (F, H, W[, 3]); got {frames.dtype} {frames.shape}")
    grey = [to_gray_u8(f) if f.ndim == 3 else np.ascontiguousarray(f) for f in frames]
    return np.stack([cv2.Canny(g, low, high, L2gradient=True) > 0 for g in grey]).astype(np.float32)


def flow_fields(frames: np.ndarray) -> np.ndarray:
    """uint8 frames (F, H, W, 3) -> flow from frame t to t + 1, (F, 2, H, W) float32 in [-1, 1] after dividing
    by FLOW_SCALE; the last frame repeats the flow before it (a single frame: zeros)."""
    frames = np.asarray(frames)
    n, h, w = frames.shape[:3]
    out = np.zeros((n, 2, h, w), np.float32)
    for t in range(n - 1):
        out[t] = optical_flow(frames[t], frames[t + 1]).transpose(2, 0, 1)  # (2, H, W): dx, dy in pixels
    if n > 1:
        out[-1] = out[-2]
    return np.clip(out / FLOW_SCALE, -1.0, 1.0)


def _frame_number(path: Path) -> int | None:
    """The last integer in a file stem ("frame_012" -> 12), or None."""
    found = re.findall(r"\d+", path.stem)
    return int(found[-1]) if found else None


def depth_files(folder: str | Path, frames: int) -> list[Path]:
    """The `frames` depth images of `folder`, in frame order; refused in one line when the folder is missing,
    holds no images, a name has no number, numbers repeat, skip one or do not start at 0 or 1, or the
    count differs from the video's frames."""
    folder = Path(folder)
    hint = "one image per frame numbered 0..N-1 or 1..N (e.g. 000.png, 001.png, ...)"
    if not folder.is_dir():
        raise VidiffError(f"depth folder {folder} not found; give --structure depth:DIR with {hint}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise VidiffError(f"depth folder {folder} holds no image files; it needs {hint}")
    numbers = [_frame_number(p) for p in files]
    unnumbered = [p.name for p, k in zip(files, numbers) if k is None]
    if unnumbered:
        raise VidiffError(f"depth map {folder / unnumbered[0]} has no frame number in its name; name them {hint}")
    order = sorted(zip(numbers, files))
    seen = [k for k, _ in order]
    dup = next((a for a, b in zip(seen, seen[1:]) if a == b), None)
    if dup is not None:
        raise VidiffError(f"depth folder {folder} has two files for frame {dup}; keep {hint}")
    first = seen[0]
    if first not in (0, 1):
        raise VidiffError(f"depth maps in {folder} start at frame {first}; number them {hint}")
    gap = next((first + i for i, k in enumerate(seen) if k != first + i), None)
    if gap is not None:
        raise VidiffError(f"depth map for frame {gap} is missing from {folder}; it needs {hint}")
    if len(order) != frames:
        raise VidiffError(f"depth folder {folder} has {len(order)} maps but the video has {frames} frames; "
                          f"give one depth map per frame")
    return [p for _, p in order]


def read_depth(folder: str | Path, frames: int, size: tuple[int, int]) -> np.ndarray:
    """Depth maps of `folder` (see `depth_files`) as uint8 grey frames (F, H, W) resized to `size` (H, W)."""
    import cv2
    from PIL import Image

    out = []
    for path in depth_files(folder, frames):
        try:
            with Image.open(path) as im:
                grey = np.asarray(im.convert("L"))
        except Exception as e:  # noqa: BLE001 - PIL raises many types
            raise VidiffError(f"cannot read depth map {path} ({type(e).__name__}); give PNG or JPEG images") from None
        out.append(cv2.resize(grey, (size[1], size[0]), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def extract(frames: np.ndarray, kind: str, depth: np.ndarray | None = None) -> Tensor:
    """uint8 video (F, H, W, 3) -> structure (S, F, H, W) in [-1, 1] for a model trained on `kind` ("edges" or
    "flow"); `depth` (F, H, W) uint8 replaces the video as the source of edges."""
    if kind == "edges":
        maps = canny_edges(depth if depth is not None else frames)[None]  # (1, F, H, W) in {0, 1}
        return torch.from_numpy(maps) * 2 - 1
    if kind == "flow":
        if depth is not None:
            raise VidiffError("this model was trained on flow structure; depth maps need an edge-structure model "
                              "(use --structure flow, or a model trained with --condition gen1)")
        return torch.from_numpy(flow_fields(frames)).transpose(0, 1).contiguous()  # (2, F, H, W)
    raise VidiffError(f"unknown structure kind {kind!r}; use one of {', '.join(CHANNELS)}")


def degrade(structure: Tensor, strength: Tensor | float) -> Tensor:
    """Gen-1's structure fidelity t_s: structure (B, S, F, H, W) downsampled (area) to size·2^(−(1−s)·L) and
    upsampled back (bilinear), L = log2(min(H, W) / 2), so s = 1 keeps it and s = 0 leaves a 2-pixel-wide blur;
    each sample's maps are then rescaled to span [-1, 1] as at full strength (B,)-shaped `strength` per sample."""
    b, c, frames, h, w = structure.shape
    s = torch.as_tensor(strength, dtype=torch.float32).flatten()
    s = s.expand(b) if s.numel() == 1 else s
    if s.numel() != b or (s < 0).any() or (s > 1).any() or not torch.isfinite(s).all():
        raise VidiffError(f"--structure-strength must lie in [0, 1]; got {strength}")
    levels = math.log2(max(2.0, min(h, w) / 2))
    out = []
    for i in range(b):
        k = 2.0 ** (-(1.0 - float(s[i])) * levels)
        x = structure[i].transpose(0, 1)  # (F, S, H, W)
        size = (max(2, round(h * k)), max(2, round(w * k)))
        if size != (h, w):
            lo = x.amin(dim=(1, 2, 3), keepdim=True)  # (F, 1, 1, 1): the background level of each frame
            x = F.interpolate(x - lo, size=size, mode="area")  # (F, S, h', w')
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)  # (F, S, H, W)
            peak = x.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
            span = (structure[i].transpose(0, 1) - lo).abs().amax(dim=(1, 2, 3), keepdim=True)
            x = x / peak * span + lo  # the blurred maps keep the range of the sharp ones
        out.append(x.transpose(0, 1))
    return torch.stack(out)  # (B, S, F, H, W)
