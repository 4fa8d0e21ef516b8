"""Video IO: read mp4/avi/webm/mov/mkv/gif/npy or a folder of frames; write H.264 MP4, GIF, NPY, PNG.

Arrays are uint8 `(F, H, W, 3)` (frames, height, width, RGB). Writes are atomic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..utils import VidiffError, atomic_path

VIDEO_EXTS = (".mp4", ".avi", ".webm", ".mov", ".mkv", ".m4v")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
READABLE = VIDEO_EXTS + (".gif", ".npy")


def _frames_dir(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def is_video_source(path: Path) -> bool:
    """True for a readable video file or a folder holding image frames."""
    if path.is_dir():
        return len(_frames_dir(path)) > 0
    return path.suffix.lower() in READABLE


def list_videos(root: str | Path) -> list[Path]:
    """All video sources under `root` (files by extension; folders of frames), sorted."""
    root = Path(root)
    if not root.exists():
        raise VidiffError(f"data path not found: {root}")
    if root.is_file():
        return [root]
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in READABLE:
            out.append(p)
        elif p.is_dir() and _frames_dir(p) and not any(c.is_dir() for c in p.iterdir()):
            out.append(p)
    return out


def read_image(path: str | Path) -> np.ndarray:
    """One RGB image as uint8 (H, W, 3)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise VidiffError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:  # noqa: BLE001 - PIL raises many types
        raise VidiffError(f"cannot read image {path}: {type(e).__name__}; give a PNG or JPEG") from None


def read_video(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """Read a video source as uint8 (F, H, W, 3); raise VidiffError if it cannot be decoded."""
    path = Path(path)
    if not path.exists():
        raise VidiffError(f"video not found: {path}")
    try:
        if path.is_dir():
            files = _frames_dir(path)[:max_frames]
            if not files:
                raise VidiffError(f"no image frames in folder {path}")
            frames = np.stack([read_image(f) for f in files])
        elif path.suffix.lower() == ".npy":
            frames = np.load(path, allow_pickle=False)
            if frames.ndim == 5 and frames.shape[0] == 1:
                frames = frames[0]
            if frames.ndim != 4 or frames.shape[-1] != 3:
                raise VidiffError(f"{path}: expected an array (F, H, W, 3), got {frames.shape}")
            if frames.dtype != np.uint8:
                frames = np.clip(frames, 0, 255).astype(np.uint8)
        elif path.suffix.lower() == ".gif":
            from PIL import Image, ImageSequence

            with Image.open(path) as im:
                frames = np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])
        else:
            import imageio_ffmpeg

            gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
            meta = next(gen)
            w, h = meta["size"]
            out = []
            for buf in gen:
                out.append(np.frombuffer(buf, np.uint8).reshape(h, w, 3))
                if max_frames is not None and len(out) >= max_frames:
                    break
            gen.close()
            if not out:
                raise VidiffError(f"{path}: no frames could be decoded")
            frames = np.stack(out)
    except VidiffError:
        raise
    except Exception as e:  # noqa: BLE001 - decoders raise many types
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VidiffError(f"cannot read video {path}: {msg[:200]}") from None
    return frames[:max_frames] if max_frames is not None else frames


def video_fps(path: str | Path, default: float = 8.0) -> float:
    """Frames per second of a video file (the default for frame folders, GIF and NPY)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in VIDEO_EXTS:
        try:
            import imageio_ffmpeg

            gen = imageio_ffmpeg.read_frames(str(path))
            meta = next(gen)
            gen.close()
            return float(meta.get("fps") or default)
        except Exception:  # noqa: BLE001
            return default
    return default


def _upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    if scale <= 1:
        return frames
    return frames.repeat(scale, axis=-3).repeat(scale, axis=-2)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VidiffError(f"expected frames of shape (F, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise VidiffError(f"expected uint8 frames, got {frames.dtype}; use to_uint8() first")
    return frames


def write_mp4(path: str | Path, frames: np.ndarray, fps: float = 8.0, scale: int = 1) -> Path:
    """Write H.264 (yuv420p, faststart) MP4 that plays in browsers; odd sizes are padded to even."""
    import imageio_ffmpeg

    frames = _upscale(_check_frames(frames), scale)
    f, h, w, _ = frames.shape
    ph, pw = h % 2, w % 2
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (w + pw, h + ph), fps=fps, codec="libx264", pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p", macro_block_size=1, quality=None,
            output_params=["-crf", "18", "-movflags", "+faststart"], ffmpeg_log_level="error",
        )
        writer.send(None)
        for fr in frames:
            writer.send(np.ascontiguousarray(fr))
        writer.close()
    return path


def write_gif(path: str | Path, frames: np.ndarray, fps: float = 8.0, scale: int = 1) -> Path:
    """Write a looping GIF."""
    from PIL import Image

    frames = _upscale(_check_frames(frames), scale)
    imgs = [Image.fromarray(fr) for fr in frames]
    path = Path(path)
    with atomic_path(path) as tmp:
        imgs[0].save(tmp, format="GIF", save_all=True, append_images=imgs[1:],
                     duration=max(1, int(round(1000 / fps))), loop=0)
    return path


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write one uint8 (H, W, 3) image as PNG."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG")
    return path


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    """Write an array as .npy atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
    return path


def write_video(path: str | Path, frames: np.ndarray, fps: float = 8.0, scale: int = 1) -> Path:
    """Write by extension: .mp4 (H.264), .gif, .npy."""
    suffix = Path(path).suffix.lower()
    if suffix == ".mp4":
        return write_mp4(path, frames, fps, scale)
    if suffix == ".gif":
        return write_gif(path, frames, fps, scale)
    if suffix == ".npy":
        return write_npy(path, _check_frames(frames))
    raise VidiffError(f"cannot write {path}: unknown extension; use .mp4, .gif or .npy")


def to_uint8(x: Tensor) -> np.ndarray:
    """Video tensor in [-1, 1], (B, C, F, H, W) or (C, F, H, W) -> uint8 (B, F, H, W, C) / (F, H, W, C)."""
    x = x.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    perm = (0, 2, 3, 4, 1) if x.ndim == 5 else (1, 2, 3, 0)
    return x.permute(*perm).contiguous().cpu().numpy()


def from_uint8(frames: np.ndarray | Tensor) -> Tensor:
    """uint8 (F, H, W, C) or (B, F, H, W, C) -> float tensor in [-1, 1], (C, F, H, W) / (B, C, F, H, W)."""
    t = torch.as_tensor(np.asarray(frames)).float().div(127.5).sub(1)
    perm = (0, 4, 1, 2, 3) if t.ndim == 5 else (3, 0, 1, 2)
    return t.permute(*perm).contiguous()


def tile_videos(videos: np.ndarray, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """(N, F, H, W, 3) -> one grid video (F, H', W', 3), for previews."""
    n, f, h, w, c = videos.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    grid = np.full((f, ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, y:y + h, x:x + w] = videos[i]
    return grid
