"""Training data for the motion model from real footage (`vidiff dynamics train`): spectral volumes of
static-camera clips, and semi-synthetic pairs made from photos.

    clips = extract_clips(videos, frames=150, k=16)            # ClipSet: first frames + spectral volumes
    pairs = MotionPairs(clips, size=32, photos=load_photos(paths))   # {"image", "spectral_volume"} per item

Clips. Each video has its repeated frames dropped (`drop_repeated_frames`: converted low-rate videos
hold each frame several times, which would turn an oscillation into a staircase), is resized to a
working size, and is cut into windows of T frames (the FFT period); each window's flow from its
first frame (`flow.flow_to_frames`) gives its spectral volume. A window is rejected, and counted, when

  * "camera motion": max over t of the mean over pixels of |G_t(p)| > `camera_threshold` px, G_t the
    affine motion most of D(t, ·) agrees on (`metrics.camera.fit_affine`) — a pan, tilt, zoom, roll or
    shake moves the whole frame by one affine map, while swaying things move a part of the frame, each
    part its own way (robust while the moving parts cover less than half the frame);
  * "scene cut": max over t of the mean |grey_t − grey_0| > 25 grey levels (another shot, a fade);
  * "no motion": the 95th percentile over pixels of Σ_{f ≥ 1} |S_f(p)| < `min_motion` px;
  * "too short" (a video with fewer than T distinct frames) and "unreadable" count whole videos.

Semi-synthetic pairs (honestly labelled as such in the training report). A photo, a soft
*vegetation mask* (`vegetation_mask`: green chromaticity and fine texture), and a spectral volume
drawn from the real clips (a random crop, resized to the photo's crop), multiplied by the mask: only
plausibly-moving regions move, with spectra real footage showed; everything else — buildings, sky,
ground, furniture — is exactly still.

Pairs. `MotionPairs` draws, per (step, item), a random square crop (side between `crop` and 1 of the
short side) and a horizontal flip (x displacements negated), resized to the model size with the
displacements scaled (`spectral.resize_spectral`); draws are a pure function of (seed, step, item),
so training resumes exactly.
"""
from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import Tensor

from ..checkpoint import load_state_dict, save_state_dict
from ..data import io
from ..metrics.camera import global_flow
from ..training import step_generator
from ..utils import VidiffError, notice
from .flow import flow_to_frames
from .spectral import resize_spectral, spectral_to_complex, trajectories_to_spectral

REASONS = ("camera motion", "scene cut", "no motion", "too short", "unreadable")
CUT_LEVELS = 25.0  # mean |grey_t - grey_0| above it: another shot, a fade or a light switched on
RENDER_TIMES = 4  # frames per clip kept (with their flow) for fine-tuning the renderer


@dataclass
class ClipSet:
    """Accepted clips: first frames uint8 (H, W, 3) at the working size, spectral volumes (K, 4, H, W)
    relative to them, renderer samples (frames (n, H, W, 3) uint8 at times t and flows D(t) (n, 2, H, W));
    `rejected` counts the rejection reasons, `sources` names each clip's video and first frame."""

    images: list[np.ndarray] = field(default_factory=list)
    volumes: list[Tensor] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    flows: list[Tensor] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    rejected: dict = field(default_factory=lambda: {r: 0 for r in REASONS})
    period: int = 150
    fps: float = 30.0

    def __len__(self) -> int:
        return len(self.images)

    def save(self, path: str | Path) -> None:
        """One safetensors file (atomic) with the counts and sources in its metadata."""
        state = {}
        for i in range(len(self)):
            state[f"{i}.image"] = torch.from_numpy(self.images[i])
            state[f"{i}.volume"] = self.volumes[i]
            state[f"{i}.frames"] = torch.from_numpy(self.frames[i])
            state[f"{i}.flows"] = self.flows[i]
        meta = {"sources": self.sources, "rejected": self.rejected, "period": self.period, "fps": self.fps}
        save_state_dict(path, state, {"clipset": json.dumps(meta)})

    @classmethod
    def load(cls, path: str | Path) -> "ClipSet":
        state = load_state_dict(path)
        with safe_open(str(path), "pt") as fh:
            meta = json.loads(fh.metadata()["clipset"])
        n = len(meta["sources"])
        return cls([state[f"{i}.image"].numpy() for i in range(n)], [state[f"{i}.volume"] for i in range(n)],
                   [state[f"{i}.frames"].numpy() for i in range(n)], [state[f"{i}.flows"] for i in range(n)],
                   meta["sources"], meta["rejected"], meta["period"], meta["fps"])

    def summary(self) -> str:
        """'N clips kept; rejected: a camera motion, b no motion, ...' (one line)."""
        return f"{len(self)} clips kept; rejected: " + ", ".join(f"{v} {k}" for k, v in self.rejected.items())


def drop_repeated_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3) without the frames that equal the frame before them exactly."""
    keep = [0] + [i for i in range(1, len(frames)) if not np.array_equal(frames[i], frames[i - 1])]
    return frames[keep] if len(keep) < len(frames) else frames


def resize_short_side(frames: np.ndarray, short: int) -> np.ndarray:
    """uint8 (T, H, W, 3) with its short side resized to `short` (area filter; even sizes), if larger."""
    import cv2

    h, w = frames.shape[1:3]
    if min(h, w) <= short:
        return frames
    s = short / min(h, w)
    size = (max(8, 2 * round(w * s / 2)), max(8, 2 * round(h * s / 2)))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def camera_shift(traj: Tensor | np.ndarray) -> float:
    """Global motion of trajectories (T, 2, H, W): max over t of the mean over pixels of |G_t(p)| (px), G_t the
    robust affine fit of D(t, ·) (a pan's shift, a zoom's or roll's mean displacement)."""
    d = torch.as_tensor(traj).permute(0, 2, 3, 1).numpy()  # (T, H, W, 2)
    return float(np.linalg.norm(global_flow(d), axis=-1).mean((1, 2)).max())


def scene_change(clip: np.ndarray) -> float:
    """max over t of the mean |grey_t − grey_0| of uint8 (T, H, W, 3), in grey levels: a cut or fade shows as
    tens of levels, a swaying tree as a few."""
    grey = clip.astype(np.float32).mean(-1)
    return float(np.abs(grey - grey[:1]).mean((1, 2)).max())


def motion_amount(sv: Tensor) -> float:
    """How much a volume (K, 4, H, W) moves: the 95th percentile over pixels of Σ_{f≥1} |S_f(p)| (px)."""
    amp = spectral_to_complex(sv)[1:].abs().pow(2).sum(1).sqrt().sum(0).flatten()  # (H·W,)
    return float(torch.quantile(amp.double(), 0.95)) if amp.numel() else 0.0


def extract_clips(videos: list[Path], *, frames: int = 150, k: int = 16, stride: int | None = None,
                  clips_per_video: int = 16, work_size: int = 128, max_frames: int = 300,
                  camera_threshold: float = 1.0, min_motion: float = 0.1, fps: float | None = None,
                  progress: bool = False) -> ClipSet:
    """Spectral volumes of the static-camera, moving windows of T = `frames` distinct frames of `videos`
    (module doc); a notice per video that gives no clip. Raises nothing for bad clips: see `ClipSet.rejected`.

    `fps`: resample every video to this rate (nearest distinct frame; a faster video loses frames, a slower
    one keeps its own) so a frequency index means the same Hz in every clip; None keeps each video's rate
    and records the median over the kept clips."""
    if frames < 2 * k - 1:
        raise VidiffError(f"--k {k} needs clips of at least {2 * k - 1} frames; got --frames {frames}")
    from tqdm.auto import tqdm

    stride = stride or max(1, frames // 2)
    out = ClipSet(period=frames)
    bar = tqdm(total=0, desc="optical flow", unit="clip", disable=not progress, dynamic_ncols=True)
    fps_seen = []
    for path in videos:
        try:
            arr = io.read_video(path, max_frames=max_frames)
        except VidiffError as e:
            out.rejected["unreadable"] += 1
            notice(f"skipped {path.name}: {e}")
            continue
        n_all = len(arr)
        arr = drop_repeated_frames(resize_short_side(arr, work_size))  # equal frames stay equal when resized
        rate = io.video_fps(path, default=30.0) * len(arr) / max(1, n_all)
        if fps is not None and rate > fps * 1.01:
            arr = arr[np.unique(np.round(np.arange(0, len(arr), rate / fps)).astype(int).clip(0, len(arr) - 1))]
            rate = fps
        if len(arr) < frames:
            out.rejected["too short"] += 1
            notice(f"skipped {path.name}: {len(arr)} distinct frames, fewer than --frames {frames}")
            continue
        starts = list(range(0, len(arr) - frames + 1, stride))
        if len(starts) > clips_per_video:  # evenly spaced over the video
            starts = [starts[round(i * (len(starts) - 1) / (clips_per_video - 1))] for i in range(clips_per_video)] \
                if clips_per_video > 1 else starts[:1]
        counts = collections.Counter()
        bar.total += len(starts)
        bar.refresh()
        for s in starts:
            bar.update(1)
            clip = arr[s:s + frames]
            traj = flow_to_frames(clip)  # (T, 2, H, W)
            if camera_shift(traj) > camera_threshold:
                counts["camera motion"] += 1
                continue
            if scene_change(clip) > CUT_LEVELS:
                counts["scene cut"] += 1
                continue
            sv = trajectories_to_spectral(torch.from_numpy(traj), k=k)  # (K, 4, H, W)
            if motion_amount(sv) < min_motion:
                counts["no motion"] += 1
                continue
            times = np.linspace(1, frames - 1, RENDER_TIMES).round().astype(int)
            out.images.append(clip[0].copy())
            out.volumes.append(sv.float())
            out.frames.append(clip[times].copy())
            out.flows.append(torch.from_numpy(traj[times].copy()))
            out.sources.append(f"{path.name}@{s}")
            fps_seen.append(rate)
            counts["kept"] += 1
        for r in REASONS:
            out.rejected[r] += counts[r]
        if not counts["kept"]:
            why = ", ".join(f"{counts[r]} {r}" for r in REASONS if counts[r])
            notice(f"skipped {path.name}: no usable clip ({why})"
                   + ("; the camera moves: give static-camera videos" if counts["camera motion"] else ""))
    bar.close()
    out.fps = float(fps if fps is not None else np.median(fps_seen) if fps_seen else 30.0)
    return out


def no_clip_error(where: str, clips: ClipSet, videos: int) -> VidiffError:
    """The one-line error of a folder without a usable clip, counting each rejection reason."""
    return VidiffError(f"no usable clip in {where} ({videos} video(s)): " + ", ".join(
        f"{v} {k}" for k, v in clips.rejected.items()) + "; give videos of swaying things (trees, flowers, "
        "water, cloth) filmed with a static camera, at least --frames distinct frames long")


# --- semi-synthetic pairs ----------------------------------------------------------------------------

def vegetation_mask(image: np.ndarray, exg: float = 0.04, texture: float = 4.0) -> np.ndarray:
    """Soft mask (H, W) in [0, 1] of plausibly-moving vegetation in uint8 (H, W, 3): pixels whose
    excess-green chromaticity 2g − r − b (r, g, b = channel / sum) exceeds `exg`, with g above r and b by
    `exg`/2 (yellow and cyan fail), and whose grey level varies (std over 7×7) by more than `texture`
    levels — foliage and grass; flat green (paint, signs) and grey, yellow or blue rigid things (walls,
    roads, sky) fail one test. Cleaned by a 5×5 opening and closing,
    feathered by a Gaussian of σ = 2 px."""
    import cv2

    rgb = image.astype(np.float32)
    chrom = rgb / (rgb.sum(-1, keepdims=True) + 1e-6)
    r, g, b = chrom[..., 0], chrom[..., 1], chrom[..., 2]
    green = ((2 * g - r - b) > exg) & (g > r + exg / 2) & (g > b + exg / 2)  # green the dominant hue
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.blur(grey, (7, 7))
    std = np.sqrt(np.maximum(cv2.blur(grey * grey, (7, 7)) - mean * mean, 0))
    m = (green & (std > texture) & (grey > 15)).astype(np.uint8)
    kernel = np.ones((5, 5), np.uint8)
    m = cv2.morphologyEx(cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel)
    return cv2.GaussianBlur(m.astype(np.float32), (0, 0), 2.0).clip(0, 1)


def load_photos(paths: list[Path], work_size: int = 128) -> list[np.ndarray]:
    """Photos as uint8 (H, W, 3) with their short side at most `work_size`."""
    return [resize_short_side(io.read_image(p)[None], work_size)[0] for p in paths]


# --- training pairs ------------------------------------------------------------------------------------

def _uniform(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def random_square(h: int, w: int, crop: float, g: torch.Generator) -> tuple[int, int, int]:
    """(top, left, side) of a square with side in [crop, 1] · min(h, w), placed uniformly."""
    side = max(1, round(_uniform(g, crop, 1.0) * min(h, w)))
    return int(torch.randint(h - side + 1, (), generator=g)), int(torch.randint(w - side + 1, (), generator=g)), side


def flip_volume(sv: Tensor) -> Tensor:
    """Horizontal mirror of (..., K, 4, H, W): the image axis reversed and x displacements negated."""
    sign = torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=sv.dtype, device=sv.device).view(4, 1, 1)
    return sv.flip(-1) * sign


def crop_pair(image: np.ndarray, sv: Tensor, box: tuple[int, int, int], size: int, flip: bool) -> tuple[Tensor, Tensor]:
    """A square `box` of uint8 (H, W, 3) and of (K, 4, H, W), resized to `size` (area filter; displacements
    scaled), optionally mirrored -> image (3, size, size) in [-1, 1], volume (K, 4, size, size)."""
    top, left, side = box
    im = torch.from_numpy(np.ascontiguousarray(image[top:top + side, left:left + side])).permute(2, 0, 1).float()
    im = F.interpolate(im[None], size=(size, size), mode="area")[0] / 127.5 - 1  # (3, s, s)
    vol = resize_spectral(sv[..., top:top + side, left:left + side], (size, size))  # (K, 4, s, s)
    if flip:
        im, vol = im.flip(-1), flip_volume(vol)
    return im, vol


class MotionPairs(torch.utils.data.Dataset):
    """Items {"image" (3, s, s), "spectral_volume" (K, 4, s, s), "real" (bool)}: one per clip, then one per
    photo (semi-synthetic: the photo's vegetation mask times a real clip's volume). Crops, flips and the
    photos' volume draws depend on (seed, epoch, item) only (`set_epoch`: the trainer's step)."""

    def __init__(self, clips: ClipSet, size: int, *, crop: float = 0.6, photos: list[np.ndarray] | None = None,
                 seed: int = 0):
        if not 0 < crop <= 1:
            raise VidiffError(f"--crop must be in (0, 1]; got {crop}")
        self.clips, self.size, self.crop, self.seed, self.epoch = clips, size, crop, seed, 0
        self.photos = list(photos or [])
        self.masks = [torch.from_numpy(vegetation_mask(p)) for p in self.photos]

    def __len__(self) -> int:
        return len(self.clips) + len(self.photos)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _generator(self, i: int) -> torch.Generator:
        return step_generator(self.seed, self.epoch, i, stream=7)

    def __getitem__(self, i: int) -> dict:
        g = self._generator(i)
        flip = bool(torch.rand((), generator=g) < 0.5)
        if i < len(self.clips):
            img, sv = self.clips.images[i], self.clips.volumes[i]
            box = random_square(*img.shape[:2], self.crop, g)
            im, vol = crop_pair(img, sv, box, self.size, flip)
            return {"image": im, "spectral_volume": vol, "real": True}
        photo, mask = self.photos[i - len(self.clips)], self.masks[i - len(self.clips)]
        box = random_square(*photo.shape[:2], self.crop, g)
        src = int(torch.randint(len(self.clips), (), generator=g))
        sv = self.clips.volumes[src]
        sbox = random_square(*sv.shape[-2:], self.crop, g)
        motion = crop_pair(self.clips.images[src], sv, sbox, box[2], bool(torch.rand((), generator=g) < 0.5))[1]
        top, left, side = box
        motion = motion * mask[top:top + side, left:left + side]  # (K, 4, side, side): vegetation only
        full = torch.zeros(sv.shape[0], 4, *photo.shape[:2])
        full[..., top:top + side, left:left + side] = motion
        im, vol = crop_pair(photo, full, box, self.size, flip)
        return {"image": im, "spectral_volume": vol, "real": False}


class RendererPairs(torch.utils.data.Dataset):
    """Items {"image" I_0, "flow" D(t), "target" I_t} of `crop`×`crop` windows of the real clips (no
    resizing; random place and mirror per (seed, epoch, item)) for fine-tuning the renderer."""

    def __init__(self, clips: ClipSet, crop: int = 64, seed: int = 0):
        self.clips, self.crop, self.seed, self.epoch = clips, crop, seed, 0
        self.index = [(c, t) for c in range(len(clips)) for t in range(len(clips.frames[c]))]

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        g = step_generator(self.seed, self.epoch, i, stream=8)
        c, t = self.index[i]
        img = self.clips.images[c]
        h, w = img.shape[:2]
        s = min(self.crop, h, w)
        top, left = int(torch.randint(h - s + 1, (), generator=g)), int(torch.randint(w - s + 1, (), generator=g))
        win = (slice(top, top + s), slice(left, left + s))
        im = torch.from_numpy(np.ascontiguousarray(img[win])).permute(2, 0, 1).float() / 127.5 - 1
        tgt = torch.from_numpy(np.ascontiguousarray(self.clips.frames[c][t][win])).permute(2, 0, 1).float() / 127.5 - 1
        flow = self.clips.flows[c][t][:, win[0], win[1]].clone()  # (2, s, s)
        if bool(torch.rand((), generator=g) < 0.5):
            im, tgt, flow = im.flip(-1), tgt.flip(-1), flow.flip(-1) * torch.tensor([-1.0, 1.0]).view(2, 1, 1)
        return {"image": im, "flow": flow, "target": tgt}


def volumes_at_size(clips: ClipSet, size: int) -> Tensor:
    """Every clip's volume, its centre square resized to `size`: (N, K, 4, size, size) (to fit the normaliser)."""
    out = []
    for img, sv in zip(clips.images, clips.volumes):
        h, w = img.shape[:2]
        side = min(h, w)
        out.append(crop_pair(img, sv, ((h - side) // 2, (w - side) // 2, side), size, False)[1])
    return torch.stack(out)


def list_inputs(folder: Path, what: str, photos: bool = False) -> list[Path]:
    """The videos (or photos) under `folder`, sorted; a one-line error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VidiffError(f"--{what} {folder}: not a folder; give a folder of "
                          + ("photos (.png/.jpg)" if photos else "videos (.mp4/.avi/.gif/.npy or frame folders)"))
    if photos:
        found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in io.IMAGE_EXTS)
    else:
        found = io.list_videos(folder)
    if not found:
        raise VidiffError(f"--{what} {folder}: no " + ("photos (.png/.jpg)" if photos else
                                                       "videos (.mp4/.avi/.mov/.gif/.npy or frame folders)")
                          + " found there")
    return found

