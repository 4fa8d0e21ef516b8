"""Animate a photo and poke it (Generative Image Dynamics): the library behind `vidiff animate`,
`vidiff dynamics simulate` and the web UI's "Animate a photo" tab.

A photo is a float tensor (1, 3, H, W) in [-1, 1]; motion is a dict {"spectral_volume": (K, 4, H, W),
"period": frames, "fps": source rate} as `predict_motion` or `spectral.load_spectral_volume` return it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..checkpoint import read_config
from ..utils import VidiffError
from .loop import playback_times
from .modal import ModalSimulator
from .motion_model import load_motion_model, sample_motion
from .render import SplatRenderer, load_renderer
from .spectral import motion_texture, resize_spectral

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
BUNDLED_MOTION = WEIGHTS / "motion"
# the learned renderer trained by scripts/train_renderer.py (+6.2 dB over SplatRenderer on held-out scenes)
BUNDLED_RENDERER = WEIGHTS / "renderer"
NO_MODEL = ("a motion model is not bundled with vidiff yet, so motion cannot be predicted from the photo alone; "
            "pass --spectral-volume FILE (make one with `vidiff dynamics extract VIDEO --out sv.npz`) "
            "or --motion-model DIR (a motion model checkpoint folder)")


def photo_tensor(arr: np.ndarray) -> Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(arr)).permute(2, 0, 1)[None].float() / 127.5 - 1


def predict_motion(photo: Tensor, motion_model: str | Path | None = None, steps: int = 25, cfg_scale: float = 1.0,
                   seed: int = 0, loop_weight: float = 0.0, loop_end: float | None = None) -> dict:
    """Spectral volume sampled for `photo` (1, 3, H, W) by a motion model (`motion_model` or the bundled
    one), resized to the photo: {"spectral_volume": (K, 4, H, W), "period", "fps"}."""
    folder = motion_model if motion_model is not None else (
        BUNDLED_MOTION if (BUNDLED_MOTION / "config.json").exists() else None)
    if folder is None:
        raise VidiffError(NO_MODEL)
    model = load_motion_model(folder)
    s = model.cfg.size
    small = F.interpolate(photo, size=(s, s), mode="area")  # the model sees the photo at its training size
    sv = sample_motion(model, small, steps, cfg_scale=cfg_scale, loop_weight=loop_weight, loop_end_time=loop_end,
                       generator=torch.Generator().manual_seed(seed))[0]
    fps = float(read_config(folder).get("fps", 30.0))  # the source rate `vidiff dynamics train` records
    return {"spectral_volume": resize_spectral(sv, tuple(photo.shape[-2:])), "period": model.cfg.period, "fps": fps}


def get_renderer(choice: str | Path | None = None):
    """A checkpoint folder, "splat" (`SplatRenderer`), or by default the bundled learned renderer
    (`SplatRenderer` when none is bundled)."""
    if choice == "splat" or (choice is None and not (BUNDLED_RENDERER / "config.json").is_file()):
        return SplatRenderer()
    folder = Path(choice) if choice is not None else BUNDLED_RENDERER
    if not (folder / "config.json").is_file():
        raise VidiffError(f"--renderer {choice}: no renderer checkpoint there (config.json missing); "
                          "give a renderer checkpoint folder (config.json + weights), or 'splat'")
    return load_renderer(folder)


def render_video(photo: Tensor, flows_fn: Callable[[int, int], Tensor], n: int, renderer, batch: int = 8,
                 desc: str = "rendering") -> np.ndarray:
    """Render n frames of `photo` (1, 3, H, W) warped by ``flows_fn(i0, i1) -> (b, 2, H, W)``, in batches;
    uint8 (n, H, W, 3). Progress is a tqdm bar (shown on stderr, tracked by the web UI)."""
    from tqdm.auto import tqdm

    out = []
    with torch.no_grad():
        for i0 in tqdm(range(0, n, batch), desc=desc, leave=False):
            fl = flows_fn(i0, min(n, i0 + batch))
            frames = renderer(photo.expand(fl.shape[0], -1, -1, -1), fl)  # (b, 3, H, W)
            out.append(frames.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def animate(photo: Tensor, motion: dict, frames: int, *, slowmo: float = 1.0, magnify: float = 1.0,
            loop: bool = False, renderer=None) -> np.ndarray:
    """The photo animated by its motion's oscillation (GID sec. 4): uint8 (frames, H, W, 3)."""
    if slowmo <= 0:
        raise VidiffError(f"--slowmo must be positive, got {slowmo}")
    sv = resize_spectral(motion["spectral_volume"], tuple(photo.shape[-2:]))
    times = playback_times(frames, motion["period"], slowmo=slowmo, loop=loop)
    flows = lambda a, b: motion_texture(sv, times[a:b], motion["period"], magnify=magnify)  # noqa: E731
    return render_video(photo, flows, frames, renderer if renderer is not None else get_renderer(), desc="animating")


def simulate(photo: Tensor, motion: dict, pokes: list[tuple[float, float, float, float]], frames: int, *,
             fps: float = 30.0, damping: float = 0.05, gain: float = 1.0, renderer=None) -> np.ndarray:
    """The scene's response to pokes (x, y, dx, dy in pixels) by the image-space modal basis (GID sec. 5):
    uint8 (frames, H, W, 3)."""
    if frames < 1:
        raise VidiffError(f"--frames must be >= 1, got {frames}")
    sv = resize_spectral(motion["spectral_volume"], tuple(photo.shape[-2:]))
    sim = ModalSimulator(sv, fps=fps, damping=damping, period=motion["period"], source_fps=motion["fps"], gain=gain)
    for x, y, dx, dy in pokes:
        sim.poke(x, y, dx, dy)
    disp = torch.stack([sim.step() for _ in range(frames)])  # (F, 2, H, W)
    return render_video(photo, lambda a, b: disp[a:b], frames, renderer if renderer is not None else get_renderer(),
                        desc="simulating")


def xt_slice(video: np.ndarray, row: int | None = None) -> np.ndarray:
    """X-t slice: row y of every frame of uint8 (F, H, W, 3), stacked top to bottom over time -> (F, W, 3)."""
    h = video.shape[1]
    y = h // 2 if row is None else int(row)
    if not 0 <= y < h:
        raise VidiffError(f"--row {y} is outside the video's {h} rows (0..{h - 1})")
    return video[:, y]
