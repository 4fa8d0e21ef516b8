"""Video IO: read mp4/avi/webm/mov/mkv/gif/npy or a folder of frames; write H.264 MP4, GIF, NPY, PNG.

Arrays are uint8 `(F, H, W, 3)` (frames, height, width, RGB). Writes are atomic.
"""
from __future__ import annotations

import errno
import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from ..utils import VidiffError, atomic_path, os_error_message

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
    if max_frames is not None and max_frames < 1:
        raise VidiffError(f"--frames must be at least 1; got {max_frames}")
    try:
        if path.is_dir():
            files = _frames_dir(path)[:max_frames]
            if not files:
                raise VidiffError(f"no image frames in folder {path}")
            frames = np.stack([read_image(f) for f in files])
        elif path.suffix.lower() == ".npy":
            frames = load_npy(path)
            if frames.ndim == 5 and frames.shape[0] == 1:
                frames = frames[0]
            if frames.ndim != 4 or frames.shape[-1] != 3:
                raise VidiffError(f"{path}: expected an array (F, H, W, 3), got {frames.shape}")
            frames = _as_uint8(frames)
        elif path.suffix.lower() == ".gif":
            from PIL import Image, ImageSequence

            with Image.open(path) as im:
                frames = np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])
        else:
            out = list(itertools.islice(iter_video(path), max_frames))
            if not out:
                raise VidiffError(f"{path}: no frames could be decoded")
            frames = np.stack(out)
    except VidiffError:
        raise
    except Exception as e:  # noqa: BLE001 - decoders raise many types
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VidiffError(f"cannot read video {path}: {msg[:200]}") from None
    return frames[:max_frames] if max_frames is not None else frames


def iter_video(path: str | Path) -> Iterator[np.ndarray]:
    """Stream a video file's frames, uint8 (H, W, 3) each, as `read_video` reads them (FFmpeg, at the
    stream's constant frame rate: a variable-rate file's held frames are repeated), holding one frame at a
    time; a decoding failure is a VidiffError naming the file."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        w, h = next(gen)["size"]
        for buf in gen:
            yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    except Exception as e:  # noqa: BLE001 - decoders raise many types
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VidiffError(f"cannot read video {path}: {msg[:200]}") from None
    finally:
        gen.close()


def load_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    """A numeric .npy array (never pickled objects): random bytes, object or structured arrays are a
    one-line VidiffError naming the file."""
    path = Path(path)
    is_npy = False
    try:
        with open(path, "rb") as fh:
            is_npy = fh.read(6) == b"\x93NUMPY"
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError on bad files
        objects = is_npy and ("allow_pickle" in str(e) or "object" in str(e).lower())
        what = "it holds Python objects" if objects else "not a valid .npy file"
        raise VidiffError(f"cannot read {path}: {what}; give a uint8 array (N, F, H, W, 3) saved with numpy.save"
                          ) from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "uifb":
        raise VidiffError(f"cannot read {path}: expected a numeric array, got dtype {getattr(arr, 'dtype', type(arr))}")
    return arr


def read_video_set(path: str | Path, max_frames: int | None = None) -> tuple[list[np.ndarray], list[str]]:
    """Every video under `path` as uint8 (F, H, W, 3) arrays with a name each: video files, folders of
    frames, and .npy files of one video (F, H, W, 3) or many (N, F, H, W, 3), as `vidiff sample
    --format npy` writes them (video i of `x.npy` is named `x.npy[i]`)."""
    if max_frames is not None and max_frames < 1:
        raise VidiffError(f"--frames must be at least 1; got {max_frames}")
    videos, names = [], []
    for f in list_videos(path):
        if f.is_file() and f.suffix.lower() == ".npy":
            arr = load_npy(f, mmap=True)
            if arr.ndim == 5:
                if arr.shape[-1] != 3:
                    raise VidiffError(f"{f}: expected videos (N, F, H, W, 3), got {arr.shape}")
                for i in range(arr.shape[0]):
                    videos.append(_as_uint8(np.array(arr[i, :max_frames])))
                    names.append(f"{f.name}[{i}]")
                continue
        videos.append(read_video(f, max_frames=max_frames))
        names.append(f.name)
    return videos, names


def _as_uint8(frames: np.ndarray) -> np.ndarray:
    return frames if frames.dtype == np.uint8 else np.clip(frames, 0, 255).astype(np.uint8)


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


# --- outputs: checked before work starts, written as one unit ---------------------------------------

def check_output(path: str | Path, option: str = "--out", kind: str = "file") -> Path:
    """Refuse, before any work, an output path that cannot be written: a folder where a file goes
    (`kind="file"`), a file where a folder goes (`kind="dir"`), a file among its parents, or a place
    this process may not write (read-only, immutable, no permission). Creates nothing."""
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise VidiffError(f"{option} {path} is a folder; give a file name")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise VidiffError(f"{option} {path} is a file; give a folder (it is created if missing)")
    probe = path if kind == "dir" and path.is_dir() else path.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise VidiffError(f"{option} {path}: {probe} is a file, not a folder; choose another path")
    try:  # os.access ignores immutable files and read-only mounts for root: try a real file
        fd, tmp = tempfile.mkstemp(prefix=".vidiff-probe.", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise VidiffError(f"{option} {path}: " + os_error_message(probe, e).split(": ", 1)[1]) from None
    if kind == "file" and path.exists() and not os.access(path, os.W_OK):
        raise VidiffError(f"{option} {path} is read-only; choose another path")
    return path


def check_scale(scale: int, frames_shape: tuple[int, ...], option: str = "--scale") -> None:
    """Refuse a viewing upscale below 1 or one whose largest frame would not fit in memory, up front.
    `frames_shape` is the (F, H, W) of one video to be upscaled. A video too large even before the
    upscale is left to the step that makes it, which refuses it naming its own option."""
    from ..limits import check_memory, free_memory_bytes

    if scale < 1:
        raise VidiffError(f"{option} must be at least 1; got {scale}")
    f, h, w = frames_shape[-3:]
    if max(h, w) > 16384 or 3 * f * h * w * 3 > free_memory_bytes():
        return
    side = max(h, w) * scale
    if side > 16384:
        raise VidiffError(f"{option} {scale} on {w}x{h} frames makes {side}-pixel frames; H.264 and GIF stop at "
                          f"16384: lower {option}, or write --format npy")
    check_memory(int(f * h * w * 3 * scale * scale * 3), f"writing {f} frames of {w}x{h} upscaled by {option} {scale}",
                 f"lower {option}, or write --format npy")


RUN_FORMATS = ("mp4", "gif", "npy")


def run_paths(out: str | Path, name: str, formats: list[str]) -> list[Path]:
    """What a run named `name` occupies in `out`: OUT/NAME/ (one file per video) and OUT/NAME.FMT."""
    out = Path(out)
    return [out / name] + [out / f"{name}.{fmt}" for fmt in formats]


def check_run(out: str | Path, name: str, formats: list[str], overwrite: bool = False) -> None:
    """Before any work: `out` must be a writable folder and the run's paths free (or `overwrite`)."""
    if not name or "/" in name or name in (".", ".."):
        raise VidiffError(f"--name {name!r} must be a plain file name")
    check_output(out, "--out", kind="dir")
    if not overwrite:
        taken = [p for p in run_paths(out, name, list(RUN_FORMATS)) if p.exists()]
        if taken:
            raise VidiffError(f"{taken[0]} already exists from an earlier run; choose another --name or pass "
                              "--overwrite to replace that run's files")


def write_run(out: str | Path, name: str, videos: np.ndarray, formats: list[str], *, fps: float = 8.0,
              scale: int = 1, overwrite: bool = False) -> list[Path]:
    """Write one run as a unit. A batch, uint8 (N, F, H, W, 3): OUT/NAME/000.FMT ... (one per video) plus
    the grid OUT/NAME.FMT for mp4/gif, and all of them as OUT/NAME.npy; one video, (F, H, W, 3):
    OUT/NAME.FMT for each format. `scale` upscales mp4/gif (nearest neighbour) for viewing.

    Everything is written into a fresh temporary folder inside OUT first and then moved into place, so
    a failure leaves nothing behind and two runs never mix files. A name already taken is refused
    unless `overwrite`, which replaces the earlier run's files whole (stale per-video files included).
    Returns the files written at the top of OUT (OUT/NAME.FMT)."""
    videos = np.asarray(videos.numpy() if hasattr(videos, "numpy") else videos)
    if videos.ndim not in (4, 5) or videos.shape[-1] != 3 or videos.dtype != np.uint8:
        raise VidiffError(f"write_run takes uint8 videos (N, F, H, W, 3) or (F, H, W, 3); "
                          f"got {videos.dtype} {videos.shape}")
    check_run(out, name, formats, overwrite)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out))
    except OSError as e:
        raise VidiffError(os_error_message(out, e)) from None
    try:
        for fmt in formats:
            path = stage / f"{name}.{fmt}"
            if fmt == "npy":
                write_npy(path, videos)
            elif videos.ndim == 4:
                write_video(path, videos, fps=fps, scale=scale)
            else:
                for i, v in enumerate(videos):
                    write_video(stage / name / f"{i:03d}.{fmt}", v, fps=fps, scale=scale)
                write_video(path, tile_videos(videos), fps=fps, scale=scale)
        moved = _move_run(stage, out, name, overwrite)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return [out / f"{name}.{fmt}" for fmt in formats if (out / f"{name}.{fmt}") in moved]


def _move_run(stage: Path, out: Path, name: str, overwrite: bool) -> list[Path]:
    """Move every entry of `stage` into `out`: files by hard link (fails if the name is taken, so a
    concurrent run cannot be overwritten), the per-video folder by rename; all or nothing. With
    `overwrite` the earlier run's paths (every format) are set aside first and deleted at the end."""
    moved: list[Path] = []
    old: list[tuple[Path, Path]] = []  # (replaced path, where it waits until the new run is in place)
    try:
        if overwrite:
            for dst in run_paths(out, name, list(RUN_FORMATS)):
                if dst.exists() or dst.is_symlink():
                    parked = stage / f".old.{dst.name}"
                    os.rename(dst, parked)
                    old.append((dst, parked))
        for src in sorted((p for p in stage.iterdir() if not p.name.startswith(".old.")), key=lambda p: p.is_dir()):
            dst = out / src.name
            if src.is_dir():
                if dst.exists():
                    raise FileExistsError(errno.EEXIST, "taken", str(dst))
                os.rename(src, dst)
            else:
                os.link(src, dst)
            moved.append(dst)
    except OSError as e:
        for p in moved:  # undo: the earlier run's files come back, none of this run's stay
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        for dst, parked in old:
            os.rename(parked, dst)
        if isinstance(e, FileExistsError):
            raise VidiffError(f"{e.filename} was written by another run meanwhile; choose another --name "
                              "or pass --overwrite") from None
        raise VidiffError(os_error_message(out, e)) from None
    return moved
