"""The "Animate a photo" tab as plain functions: a looping video of a photo, and the scene's response
to a poke picked on the photo (Generative Image Dynamics), each with its X-t slice."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import io
from ..dynamics import animate as gid
from ..utils import VidiffError

MAX_FRAMES = 300
PHOTO_SIDE = 256  # photos are worked on at most this size (2 CPU cores)


@dataclass(frozen=True)
class Clip:
    mp4: Path
    xt: Path
    frames: np.ndarray  # uint8 (F, H, W, 3) at the photo's working size
    summary: str


def photo_motion(photo: np.ndarray, *, seed: int = 0, steps: int = 25) -> dict:
    """The bundled motion model's spectral volume for uint8 (H, W, 3) `photo`, at the photo's size."""
    if not 1 <= int(steps) <= 200:
        raise VidiffError(f"motion steps must be between 1 and 200; got {steps}")
    return gid.predict_motion(gid.photo_tensor(photo), steps=int(steps), seed=int(seed))


def _write_clip(frames: np.ndarray, fps: float, out_dir: Path, row: int | None, summary: str) -> Clip:
    scale = 2 if max(frames.shape[1:3]) <= PHOTO_SIDE // 2 else 1  # small photos shown twice as large
    mp4 = io.write_mp4(out_dir / "video.mp4", frames, fps=fps, scale=scale)
    xt = gid.xt_slice(frames, row)  # (F, W, 3)
    xt_path = io.write_png(out_dir / "xt.png", np.repeat(np.repeat(xt, 2, axis=0), 2, axis=1))
    return Clip(mp4, xt_path, frames, summary)


def animate_photo(photo: np.ndarray, motion: dict, out_dir: str | Path, *, frames: int = 90, loop: bool = True,
                  slowmo: float = 1.0, magnify: float = 1.0) -> Clip:
    """The photo animated by its motion: out_dir/video.mp4 and the X-t slice of the middle row, xt.png."""
    _check_frames(frames)
    if not 0 < magnify <= 20:
        raise VidiffError(f"magnification must be in (0, 20]; got {magnify}")
    video = gid.animate(gid.photo_tensor(photo), motion, int(frames), slowmo=float(slowmo), magnify=float(magnify),
                        loop=bool(loop))
    text = (f"{int(frames)} frames at {motion['fps']:g} fps" + (", looping" if loop else "")
            + f", slow motion x{slowmo:g}, magnification x{magnify:g}")
    return _write_clip(video, motion["fps"], Path(out_dir), None, text)


def poke_photo(photo: np.ndarray, motion: dict, out_dir: str | Path, *, x: float, y: float, dx: float, dy: float,
               frames: int = 90, damping: float = 0.05) -> Clip:
    """The modal response to a poke at pixel (x, y) of `photo` with drag (dx, dy) pixels: out_dir/video.mp4
    and the X-t slice through the poked row, xt.png."""
    _check_frames(frames)
    if dx == 0 and dy == 0:
        raise VidiffError("the drag is zero; click a second point on the photo (or set dx / dy) to give a direction")
    video = gid.simulate(gid.photo_tensor(photo), motion, [(x, y, dx, dy)], int(frames), fps=motion["fps"],
                         damping=float(damping))
    text = f"poke at ({x:.0f}, {y:.0f}) by ({dx:+.0f}, {dy:+.0f}) px: {int(frames)} frames, damping {damping:g}"
    return _write_clip(video, motion["fps"], Path(out_dir), int(round(y)), text)


def _check_frames(frames: int) -> None:
    if not 1 <= int(frames) <= MAX_FRAMES:
        raise VidiffError(f"frames must be between 1 and {MAX_FRAMES}; got {frames}")


def display_scale(photo: np.ndarray) -> int:
    """Integer upscaling of the photo on the poke canvas (pixels stay square; clicks map back exactly)."""
    return max(1, PHOTO_SIDE // max(photo.shape[:2]))


def draw_poke(photo: np.ndarray, start: tuple[float, float] | None, end: tuple[float, float] | None) -> np.ndarray:
    """The poke canvas: the photo upscaled by `display_scale`, with the picked point (a ring) and the drag
    (an arrow from it) drawn on it; `start` / `end` are in photo pixels."""
    import cv2

    s = display_scale(photo)
    img = np.ascontiguousarray(photo.repeat(s, axis=0).repeat(s, axis=1))
    r = max(3, max(img.shape[:2]) // 64)
    if start is not None:
        p0 = (int(round((start[0] + 0.5) * s)), int(round((start[1] + 0.5) * s)))
        cv2.circle(img, p0, r + 1, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.circle(img, p0, r, (230, 40, 40), -1, cv2.LINE_AA)
        if end is not None:
            p1 = (int(round((end[0] + 0.5) * s)), int(round((end[1] + 0.5) * s)))
            cv2.arrowedLine(img, p0, p1, (255, 220, 0), max(1, r // 2), cv2.LINE_AA, tipLength=0.25)
    return img


def click(state: dict, x: float, y: float) -> dict:
    """The poke after a click at (x, y): the first click picks the point, the second sets the drag's end,
    a third starts over. `state` is {"start": (x, y) | None, "end": (x, y) | None}."""
    if state.get("start") is None or state.get("end") is not None:
        return {"start": (float(x), float(y)), "end": None}
    return {"start": state["start"], "end": (float(x), float(y))}
