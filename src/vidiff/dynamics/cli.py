"""`vidiff animate` and `vidiff dynamics extract | simulate | xt` (Generative Image Dynamics)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..utils import VidiffError

NO_MODEL = ("a motion model is not bundled with vidiff yet, so motion cannot be predicted from the photo alone; "
            "pass --spectral-volume FILE (make one with `vidiff dynamics extract VIDEO --out sv.npz`) "
            "or --motion-model DIR (trained by scripts/train_motion.py)")
WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
BUNDLED = WEIGHTS / "motion"
# the learned renderer trained by scripts/train_renderer.py (+6.2 dB over SplatRenderer on held-out scenes)
BUNDLED_RENDERER = WEIGHTS / "renderer"
RENDERER_HELP = "learned renderer folder, or 'splat' for the non-learned softmax splat (default: the bundled learned one)"


def _predicted_motion(photo, motion_model: Optional[Path], steps: int, cfg_scale: float, seed: int,
                      loop_weight: float = 0.0, loop_end: float | None = None) -> dict:
    """Spectral volume sampled by a motion model (``--motion-model`` or the bundled one) for the photo."""
    import torch
    import torch.nn.functional as F

    from ..utils import VidiffError
    from .motion_model import load_motion_model, sample_motion

    folder = motion_model if motion_model is not None else (BUNDLED if (BUNDLED / "config.json").exists() else None)
    if folder is None:
        raise VidiffError(NO_MODEL)
    model = load_motion_model(folder)
    s = model.cfg.size
    small = F.interpolate(photo, size=(s, s), mode="area")  # the model sees the photo at its training size
    sv = sample_motion(model, small, steps, cfg_scale=cfg_scale, loop_weight=loop_weight, loop_end_time=loop_end,
                       generator=torch.Generator().manual_seed(seed))[0]
    return {"spectral_volume": sv, "period": model.cfg.period, "fps": 30.0}


def _photo(path: Path):
    """A photo (or the first frame of a video) as float (1, 3, H, W) in [-1, 1] plus its uint8 array."""
    import numpy as np
    import torch

    from ..data import io

    if path.suffix.lower() in io.IMAGE_EXTS:
        arr = io.read_image(path)
    else:
        arr = io.read_video(path, max_frames=1)[0]
    return torch.from_numpy(np.array(arr)).permute(2, 0, 1)[None].float() / 127.5 - 1, arr


def _renderer(choice: Optional[str]):
    """The renderer of `--renderer`: a checkpoint folder, "splat" (`SplatRenderer`), or by default the
    bundled learned renderer (`SplatRenderer` when none is bundled)."""
    from .render import SplatRenderer, load_renderer

    if choice == "splat" or (choice is None and not (BUNDLED_RENDERER / "config.json").is_file()):
        return SplatRenderer()
    folder = Path(choice) if choice is not None else BUNDLED_RENDERER
    if not (folder / "config.json").is_file():
        raise VidiffError(f"--renderer {choice}: no renderer checkpoint there (config.json missing); "
                          "give a folder written by scripts/train_renderer.py, or 'splat'")
    return load_renderer(folder)


def _render_video(image, flows_fn, n: int, renderer, batch: int = 8, desc: str = "rendering"):
    """Render n frames, ``flows_fn(i0, i1) -> (b, 2, H, W)``, in batches; uint8 (n, H, W, 3)."""
    import numpy as np
    import torch
    from rich.progress import track

    out = []
    with torch.no_grad():
        for i0 in track(range(0, n, batch), description=desc, transient=True):
            fl = flows_fn(i0, min(n, i0 + batch))
            frames = renderer(image.expand(fl.shape[0], -1, -1, -1), fl)  # (b, 3, H, W)
            out.append(frames.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def _parse_poke(text: str) -> tuple[float, float, float, float]:
    from ..utils import VidiffError

    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4:
        raise VidiffError(f"--poke must be x,y,dx,dy (four numbers, pixels), got {text!r}")
    return vals  # type: ignore[return-value]


def _plot_amplitudes(path: Path, amp, period: int, fps: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..utils import atomic_path

    hz = [f * fps / period for f in range(len(amp))]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.bar(range(len(amp)), amp, color="tab:blue")
    ax.set_xticks(range(len(amp)), [f"{h:.2g}" for h in hz], rotation=60, fontsize=7)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("mean amplitude (px)")
    ax.set_title("spectral volume: amplitude per frequency")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def register(app: typer.Typer) -> None:
    dyn = typer.Typer(no_args_is_help=True, help="Generative Image Dynamics: spectral volumes, modal simulation, X-t slices.")
    app.add_typer(dyn, name="dynamics")

    @dyn.command("extract")
    def extract(video: Path = typer.Argument(..., help="input video (mp4/gif/npy/folder of frames)"),
                out: Path = typer.Option(..., "--out", help="output .npz spectral volume"),
                frames: int = typer.Option(150, help="frames T used (the FFT period)"),
                k: int = typer.Option(16, help="number of lowest frequencies kept"),
                method: str = typer.Option("dis", help="optical flow: dis or farneback"),
                plot: bool = typer.Option(True, help="also write OUT.png: amplitude per frequency")):
        """Spectral volume (K, 4, H, W) of a video's motion, plus a PNG of amplitude per frequency."""
        import torch

        from ..data import io
        from ..utils import VidiffError
        from .flow import flow_to_frames
        from .spectral import amplitude_per_frequency, save_spectral_volume, trajectories_to_spectral

        if out.suffix != ".npz":
            raise VidiffError(f"--out must end in .npz, got {out}")
        arr = io.read_video(video, max_frames=frames)
        if arr.shape[0] < 2 * k - 1:
            raise VidiffError(f"{video} has {arr.shape[0]} frames; k={k} needs at least {2 * k - 1}: lower --k")
        fps = io.video_fps(video, default=30.0)
        traj = flow_to_frames(arr, ref=0, method=method, progress=True)
        sv = trajectories_to_spectral(torch.from_numpy(traj), k=k)
        save_spectral_volume(out, sv, period=arr.shape[0], fps=fps, reference=arr[0])
        msg = f"wrote {out} (K={k}, {arr.shape[2]}x{arr.shape[1]}, period {arr.shape[0]} frames at {fps:g} fps)"
        if plot:
            png = out.with_suffix(".png")
            _plot_amplitudes(png, amplitude_per_frequency(sv).tolist(), arr.shape[0], fps)
            msg += f" and {png}"
        print(msg)

    @dyn.command("simulate")
    def simulate(photo: Path = typer.Argument(..., help="input photo"),
                 poke: list[str] = typer.Option(..., help="x,y,dx,dy in pixels (repeatable)"),
                 out: Path = typer.Option(..., "--out", help="output video (.mp4/.gif/.npy)"),
                 spectral_volume: Optional[Path] = typer.Option(None, help="modal basis from `dynamics extract`"),
                 motion_model: Optional[Path] = typer.Option(None, help="motion model folder (scripts/train_motion.py)"),
                 seed: int = typer.Option(0, help="seed of the motion model's sampler"),
                 frames: int = typer.Option(90, help="frames to simulate"),
                 fps: float = typer.Option(30.0, help="simulation and output frame rate"),
                 damping: float = typer.Option(0.05, help="modal damping ratio ξ"),
                 gain: float = typer.Option(1.0, help="response scale of a poke"),
                 renderer: Optional[str] = typer.Option(None, help=RENDERER_HELP)):
        """The scene's response to a poke, by the image-space modal basis."""
        import torch

        from ..data import io
        from ..utils import VidiffError
        from .modal import ModalSimulator
        from .spectral import load_spectral_volume, resize_spectral

        pokes = [_parse_poke(p) for p in poke]
        if frames < 1:
            raise VidiffError(f"--frames must be >= 1, got {frames}")
        image, arr = _photo(photo)
        if spectral_volume is not None:
            data = load_spectral_volume(spectral_volume)
        else:
            data = _predicted_motion(image, motion_model, 25, 1.0, seed)
        sv = resize_spectral(data["spectral_volume"], arr.shape[:2])
        sim = ModalSimulator(sv, fps=fps, damping=damping, period=data["period"], source_fps=data["fps"], gain=gain)
        for x, y, dx, dy in pokes:
            sim.poke(x, y, dx, dy)
        disp = torch.stack([sim.step() for _ in range(frames)])  # (F, 2, H, W)
        video = _render_video(image, lambda a, b: disp[a:b], frames, _renderer(renderer), desc="simulating")
        io.write_video(out, video, fps=fps)
        print(f"wrote {out} ({frames} frames)")

    @dyn.command("xt")
    def xt(video: Path = typer.Argument(..., help="input video"),
           row: Optional[int] = typer.Option(None, help="image row y (default: the middle)"),
           out: Path = typer.Option(..., "--out", help="output PNG")):
        """X-t slice: row y of every frame, stacked top to bottom over time."""
        from ..data import io
        from ..utils import VidiffError

        arr = io.read_video(video)
        h = arr.shape[1]
        y = h // 2 if row is None else row
        if not 0 <= y < h:
            raise VidiffError(f"--row {y} is outside the video's {h} rows (0..{h - 1})")
        io.write_png(out, arr[:, y])
        print(f"wrote {out} ({arr.shape[0]}x{arr.shape[2]})")

    @app.command("animate")
    def animate(photo: Path = typer.Argument(..., help="input photo"),
                out: Path = typer.Option(..., "--out", help="output video (.mp4/.gif/.npy)"),
                frames: int = typer.Option(150, help="frames to render"),
                loop: bool = typer.Option(False, help="make the clip span whole motion periods (seamless loop)"),
                slowmo: float = typer.Option(1.0, help="slow-motion factor (fractional-time motion textures)"),
                magnify: float = typer.Option(1.0, help="motion magnification factor"),
                seed: int = typer.Option(0, help="seed of the motion model's sampler"),
                spectral_volume: Optional[Path] = typer.Option(None, help="motion from `dynamics extract` instead of a model"),
                motion_model: Optional[Path] = typer.Option(None, help="motion model folder (scripts/train_motion.py)"),
                steps: int = typer.Option(25, help="diffusion sampling steps of the motion model"),
                cfg_scale: float = typer.Option(1.0, help="classifier-free guidance on the image"),
                loop_guidance: float = typer.Option(0.0, help="GID eq. 5 self-guidance weight for clips that do not span whole periods"),
                fps: Optional[float] = typer.Option(None, help="output frame rate (default: that of the motion source)"),
                renderer: Optional[str] = typer.Option(None, help=RENDERER_HELP)):
        """Animate a photo with oscillating motion, predicted by a motion model or taken from --spectral-volume."""
        from ..data import io
        from ..utils import VidiffError, seed_everything
        from .loop import playback_times
        from .spectral import load_spectral_volume, motion_texture, resize_spectral

        seed_everything(seed)
        if slowmo <= 0:
            raise VidiffError(f"--slowmo must be positive, got {slowmo}")
        image, arr = _photo(photo)
        if spectral_volume is not None:
            data = load_spectral_volume(spectral_volume)
        else:
            data = _predicted_motion(image, motion_model, steps, cfg_scale, seed, loop_guidance, frames / slowmo)
        sv = resize_spectral(data["spectral_volume"], arr.shape[:2])
        times = playback_times(frames, data["period"], slowmo=slowmo, loop=loop)
        flows = lambda a, b: motion_texture(sv, times[a:b], data["period"], magnify=magnify)  # noqa: E731
        video = _render_video(image, flows, frames, _renderer(renderer), desc="animating")
        io.write_video(out, video, fps=fps or data["fps"])
        print(f"wrote {out} ({frames} frames)")
