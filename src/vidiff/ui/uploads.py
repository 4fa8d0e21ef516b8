"""Uploads to the web UI: bounded in size and length, their type told by decoding the content (never by
the file name), and copied nowhere under a name the user chose.

Every reader returns uint8 arrays, `(H, W, 3)` for a photo and `(F, H, W, 3)` for a video, or raises a
one-line `VidiffError` naming the problem and the fix.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..data import io
from ..utils import VidiffError

MAX_UPLOAD_MB = 20  # also the server's limit (`launch(max_file_size=...)`)
MAX_PHOTO_PIXELS = 4096 * 4096  # decoded size; larger files are refused before decoding
MAX_VIDEO_FRAMES = 64
MAX_VIDEO_SECONDS = 20.0
MAX_VIDEO_SIDE = 1024


def _check_file(path: str | os.PathLike | None, what: str) -> Path:
    if path is None:
        raise VidiffError(f"no {what} uploaded; drop a file on the {what} box first")
    path = Path(path)
    if not path.is_file():
        raise VidiffError(f"the uploaded {what} is gone from the server; upload it again")
    mb = path.stat().st_size / 2**20
    if mb > MAX_UPLOAD_MB:
        raise VidiffError(f"the {what} is {mb:.1f} MB, over the {MAX_UPLOAD_MB} MB limit; upload a smaller file")
    return path


def fit_side(arr: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale uint8 (H, W, 3) so its longer side is at most `max_side` (area filter); smaller ones pass."""
    import cv2

    h, w = arr.shape[:2]
    if max(h, w) <= max_side:
        return arr
    s = max_side / max(h, w)
    return cv2.resize(arr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def read_photo(path: str | os.PathLike | None, max_side: int = 256) -> np.ndarray:
    """An uploaded photo (PNG, JPEG, WebP, BMP, or a GIF's first frame) as uint8 (H, W, 3), its longer
    side at most `max_side`."""
    from PIL import Image, UnidentifiedImageError

    path = _check_file(path, "photo")
    try:
        with Image.open(path) as im:  # PIL identifies the format from the file's bytes
            if im.width * im.height > MAX_PHOTO_PIXELS:
                raise VidiffError(f"the photo is {im.width}x{im.height}, over {MAX_PHOTO_PIXELS // 10**6} megapixels; "
                                  "upload a smaller one")
            arr = np.asarray(im.convert("RGB"))
    except VidiffError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise VidiffError("the uploaded file is not an image vidiff can decode; upload a PNG or JPEG photo") from None
    if min(arr.shape[:2]) < 8:
        raise VidiffError(f"the photo is only {arr.shape[1]}x{arr.shape[0]} pixels; upload one at least 8x8")
    return fit_side(arr, max_side)


def read_video(path: str | os.PathLike | None) -> tuple[np.ndarray, float]:
    """An uploaded video (anything FFmpeg decodes, or an animated GIF / WebP / PNG) as uint8 (F, H, W, 3)
    and its frame rate; at most MAX_VIDEO_FRAMES frames, MAX_VIDEO_SECONDS seconds, MAX_VIDEO_SIDE pixels."""
    path = _check_file(path, "video")
    frames, fps = _decode_animation(path)
    if frames is None:
        frames, fps = _decode_ffmpeg(path)
    f, h, w = frames.shape[:3]
    if f > MAX_VIDEO_FRAMES or f / fps > MAX_VIDEO_SECONDS:
        raise VidiffError(f"the video is over the UI's limit of {MAX_VIDEO_FRAMES} frames / {MAX_VIDEO_SECONDS:g} s; "
                          "trim it, or use the `vidiff` command line for long videos")
    if max(h, w) > MAX_VIDEO_SIDE:
        raise VidiffError(f"the video is {w}x{h}, over {MAX_VIDEO_SIDE} pixels a side; downscale it first")
    if f < 2:
        raise VidiffError("the upload decodes to a single frame; upload a video with at least 2 frames")
    return frames, fps


def _decode_animation(path: Path) -> tuple[np.ndarray | None, float]:
    """Frames of an animated image that PIL recognises from its bytes; (None, 0) for anything else."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_VIDEO_SIDE**2:
                raise VidiffError(f"the video is {im.width}x{im.height}, over {MAX_VIDEO_SIDE} pixels a side; "
                                  "downscale it first")
            n = getattr(im, "n_frames", 1)
            if n > MAX_VIDEO_FRAMES:
                raise VidiffError(f"the video has {n} frames, over the UI's limit of {MAX_VIDEO_FRAMES}; trim it")
            duration = im.info.get("duration") or 125  # milliseconds per frame
            frames = np.stack([np.asarray(fr.convert("RGB")) for fr in ImageSequence.Iterator(im)])
    except VidiffError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None, 0.0
    return frames, 1000.0 / duration


def _decode_ffmpeg(path: Path) -> tuple[np.ndarray, float]:
    """Decode with FFmpeg, which probes the container from the bytes: the upload is linked under a name
    of our own so neither its extension nor its name reaches the decoder."""
    with tempfile.TemporaryDirectory(prefix="vidiff-upload-") as tmp:
        link = Path(tmp) / "upload.mp4"
        os.symlink(path.resolve(), link)
        try:
            frames = io.read_video(link, max_frames=MAX_VIDEO_FRAMES + 1)
        except VidiffError:
            raise VidiffError("the uploaded file is not a video vidiff can decode; "
                              "upload an MP4, WebM or GIF") from None
        fps = io.video_fps(link, default=8.0)
    return frames, fps
