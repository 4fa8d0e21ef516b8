"""`vidiff animate` and `vidiff dynamics extract | simulate | xt` (Generative Image Dynamics)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..utils import VidiffError
from .options import Seed, Steps, positive
from .output import check_video_path, write_video_file

RENDERER_HELP = ("learned renderer folder, or 'splat' for the non-learned softmax splat "
                 "(default: the bundled learned one)")

OutVideo = Annotated[Path, typer.Option("--out", callback=check_video_path, help="output video (.mp4/.gif/.npy)")]
Photo = Annotated[Path, typer.Argument(help="input photo (or a video, whose first frame is used)")]
SpectralVolume = Annotated[Optional[Path],
                           typer.Option(help="motion from `vidiff dynamics extract` instead of a model")]
MotionModel = Annotated[Optional[Path], typer.Option(help="motion model folder (default: the bundled one)")]
Renderer = Annotated[Optional[str], typer.Option(help=RENDERER_HELP)]


def parse_pokes(values: list[str]) -> list[tuple[float, float, float, float]]:
    """Callback of `--poke`: each 'x,y,dx,dy' (pixels) -> four floats; anything else is a usage error."""
    pokes = []
    for text in values:
        try:
            vals = tuple(float(v) for v in text.split(","))
        except ValueError:
            vals = ()
        if len(vals) != 4:
            raise typer.BadParameter(f"{text!r}: give x,y,dx,dy (four numbers, pixels)")
        pokes.append(vals)
    return pokes


def _read_photo(path: Path):
    """A photo (or the first frame of a video) as float (1, 3, H, W) in [-1, 1]."""
    from ..data import io
    from ..dynamics.animate import photo_tensor

    arr = io.read_image(path) if path.suffix.lower() in io.IMAGE_EXTS else io.read_video(path, max_frames=1)[0]
    return photo_tensor(arr)


def _motion(photo, spectral_volume: Optional[Path], motion_model: Optional[Path], **sample_kw) -> dict:
    """The motion of `--spectral-volume`, or one sampled for the photo by the motion model."""
    from ..dynamics.animate import predict_motion
    from ..dynamics.spectral import load_spectral_volume

    if spectral_volume is not None:
        return load_spectral_volume(spectral_volume)
    return predict_motion(photo, motion_model, **sample_kw)


def _plot_amplitudes(path: Path, amp, period: int, fps: float) -> None:
    """A bar chart of a spectral volume's mean amplitude per frequency, as PNG."""
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


app = typer.Typer(no_args_is_help=True,
                  help="Generative Image Dynamics: spectral volumes, modal simulation, X-t slices.")


@app.command("extract")
def extract(
    video: Annotated[Path, typer.Argument(help="input video (mp4/gif/npy/folder of frames)")],
    out: Annotated[Path, typer.Option("--out", help="output .npz spectral volume")],
    frames: Annotated[int, typer.Option(min=2, help="frames T used (the FFT period)")] = 150,
    k: Annotated[int, typer.Option(min=1, help="number of lowest frequencies kept")] = 16,
    method: Annotated[str, typer.Option(help="optical flow: dis or farneback")] = "dis",
    plot: Annotated[bool, typer.Option(help="also write OUT.png: amplitude per frequency")] = True,
    remove_camera: Annotated[bool, typer.Option(
        help="remove the camera's motion first (per-frame affine of the optical flow): a hand-held clip "
             "gives the scene's own oscillation")] = False,
):
    """Spectral volume (K, 4, H, W) of a video's motion, plus a PNG of amplitude per frequency."""
    import torch

    from ..data import io
    from ..dynamics.flow import flow_to_frames
    from ..dynamics.spectral import amplitude_per_frequency, save_spectral_volume, trajectories_to_spectral

    if out.suffix != ".npz":
        raise VidiffError(f"--out must end in .npz, got {out}")
    io.check_output(out, "--out")
    if plot:
        io.check_output(out.with_suffix(".png"), "--out")
    arr = io.read_video(video, max_frames=frames)
    if arr.shape[0] < 2 * k - 1:
        raise VidiffError(f"{video} has {arr.shape[0]} frames; --k {k} needs at least {2 * k - 1}: "
                          "lower --k or give a longer video")
    fps = io.video_fps(video, default=30.0)
    traj = flow_to_frames(arr, ref=0, method=method, progress=True)
    if remove_camera:
        from ..dynamics.camera_motion import remove_camera as scene_motion
        traj = scene_motion(arr, traj)[0]
    sv = trajectories_to_spectral(torch.from_numpy(traj), k=k)
    save_spectral_volume(out, sv, period=arr.shape[0], fps=fps, reference=arr[0])
    msg = f"wrote {out} (K={k}, {arr.shape[2]}x{arr.shape[1]}, period {arr.shape[0]} frames at {fps:g} fps)"
    if plot:
        png = out.with_suffix(".png")
        _plot_amplitudes(png, amplitude_per_frequency(sv).tolist(), arr.shape[0], fps)
        msg += f" and {png}"
    typer.echo(msg)


@app.command("simulate")
def simulate(
    photo: Photo,
    poke: Annotated[list[str], typer.Option(callback=parse_pokes, help="x,y,dx,dy in pixels (repeatable)")],
    out: OutVideo,
    spectral_volume: SpectralVolume = None,
    motion_model: MotionModel = None,
    seed: Annotated[int, typer.Option(help="seed of the motion model's sampler")] = 0,
    frames: Annotated[int, typer.Option(min=1, help="frames to simulate")] = 90,
    fps: Annotated[float, typer.Option(callback=positive, help="simulation and output frame rate")] = 30.0,
    damping: Annotated[float, typer.Option(min=0.0, help="modal damping ratio ξ")] = 0.05,
    gain: Annotated[float, typer.Option(help="response scale of a poke")] = 1.0,
    renderer: Renderer = None,
):
    """The scene's response to a poke, by the image-space modal basis."""
    from ..data.io import check_output
    from ..dynamics import animate as gid
    from ..limits import check_frames_memory

    check_output(out, "--out")
    image = _read_photo(photo)
    check_frames_memory(frames, *image.shape[-2:], "simulating", bytes_per_pixel=3 + 8 + 8)  # video, displacements
    motion = _motion(image, spectral_volume, motion_model, seed=seed)
    video = gid.simulate(image, motion, poke, frames, fps=fps, damping=damping, gain=gain,
                         renderer=gid.get_renderer(renderer))
    write_video_file(out, video, fps)
    typer.echo(f"wrote {out} ({frames} frames)")


@app.command("xt")
def xt(
    video: Annotated[Path, typer.Argument(help="input video")],
    out: Annotated[Path, typer.Option("--out", help="output PNG")],
    row: Annotated[Optional[int], typer.Option(help="image row y (default: the middle)")] = None,
):
    """X-t slice: row y of every frame, stacked top to bottom over time."""
    from ..data import io
    from ..dynamics.animate import xt_slice

    io.check_output(out, "--out")
    arr = io.read_video(video)
    io.write_png(out, xt_slice(arr, row))
    typer.echo(f"wrote {out} ({arr.shape[0]}x{arr.shape[2]})")


def animate(
    photo: Photo,
    out: OutVideo,
    frames: Annotated[int, typer.Option(min=1, help="frames to render")] = 150,
    loop: Annotated[bool, typer.Option(help="make the clip span whole motion periods (seamless loop)")] = False,
    slowmo: Annotated[float, typer.Option(callback=positive,
                                          help="slow-motion factor (fractional-time motion textures)")] = 1.0,
    magnify: Annotated[float, typer.Option(help="motion magnification factor")] = 1.0,
    seed: Seed = 0,
    spectral_volume: SpectralVolume = None,
    motion_model: MotionModel = None,
    steps: Steps = 25,
    cfg_scale: Annotated[float, typer.Option(help="classifier-free guidance on the image")] = 1.0,
    loop_guidance: Annotated[float, typer.Option(
        help="GID eq. 5 self-guidance weight for clips that do not span whole periods")] = 0.0,
    fps: Annotated[Optional[float], typer.Option(
        callback=positive, help="output frame rate (default: that of the motion source)")] = None,
    renderer: Renderer = None,
    mask: Annotated[Optional[Path], typer.Option(
        help="painted mask: white parts move, black parts stay still (resized to the photo)")] = None,
    camera: Annotated[Optional[str], typer.Option(
        help="camera motion per frame composed with the scene's: pan:DX,DY (px), zoom:S, rotate:DEG, "
             "comma-separated, e.g. 'pan:1,0,zoom:1.01'")] = None,
):
    """Animate a photo with oscillating motion, predicted by a motion model or taken from --spectral-volume."""
    from ..data.io import check_output
    from ..dynamics import animate as gid
    from ..dynamics.mask import mask_motion, read_motion_mask
    from ..limits import check_frames_memory
    from ..utils import seed_everything

    check_output(out, "--out")
    cam = None
    if camera is not None:
        from ..dynamics.camera_motion import parse_camera
        cam = parse_camera(camera)
    seed_everything(seed)
    image = _read_photo(photo)
    check_frames_memory(frames, *image.shape[-2:], "animating", bytes_per_pixel=3 * 2)  # the frames and their copy
    region = read_motion_mask(mask, tuple(image.shape[-2:])) if mask is not None else None
    motion = _motion(image, spectral_volume, motion_model, steps=steps, cfg_scale=cfg_scale, seed=seed,
                     loop_weight=loop_guidance, loop_end=frames / slowmo)
    if region is not None:
        motion = mask_motion(motion, region)
    if cam is None:
        video = gid.animate(image, motion, frames, slowmo=slowmo, magnify=magnify, loop=loop,
                            renderer=gid.get_renderer(renderer))
    else:
        from ..dynamics.camera_motion import animate_with_camera
        video = animate_with_camera(image, motion, frames, cam, slowmo=slowmo, magnify=magnify, loop=loop,
                                    renderer=gid.get_renderer(renderer))
    write_video_file(out, video, fps or motion["fps"])
    typer.echo(f"wrote {out} ({frames} frames)")


@app.command("train")
def train(
    videos: Annotated[Path, typer.Option(help="folder of real videos of swaying things, static camera")],
    out: Annotated[Path, typer.Option("--out", help="run folder (motion model + checkpoints)")],
    steps: Annotated[Optional[int], typer.Option(min=1, help="optimisation steps, all stages together")] = None,
    minutes: Annotated[Optional[float], typer.Option(help="wall-clock budget, all stages (total over resumes)")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in --out exactly where it stopped")] = False,
    renderer: Annotated[bool, typer.Option("--renderer", help="also fine-tune the learned renderer")] = False,
    photos: Annotated[Optional[Path], typer.Option(
        help="folder of photos made into semi-synthetic pairs (vegetation moves with real spectra)")] = None,
    frames: Annotated[int, typer.Option(min=3, help="distinct frames per clip (the FFT period T)")] = 150,
    k: Annotated[int, typer.Option(min=2, help="frequencies kept")] = 16,
    size: Annotated[int, typer.Option(min=8, help="model resolution (multiple of 8)")] = 32,
    stride: Annotated[Optional[int], typer.Option(min=1, help="frames between clip starts (default T/2)")] = None,
    camera_threshold: Annotated[float, typer.Option(
        help="px of global motion (the flow's robust affine fit) above which a clip counts as camera motion")] = 1.0,
    fps: Annotated[Optional[float], typer.Option(
        callback=positive, help="resample faster videos to this frame rate (default: keep each one's)")] = None,
    batch: Annotated[int, typer.Option(min=1, help="batch size")] = 8,
    seed: Annotated[int, typer.Option(help="seed of all draws")] = 0,
):
    """Train the motion model of `vidiff animate` on your own videos (camera-moving and still clips are skipped)."""
    from ..dynamics.train_real import RealMotionConfig, train_motion_real

    cfg = RealMotionConfig(size=size, k=k, frames=frames, stride=stride, camera_threshold=camera_threshold,
                           fps=fps, batch=batch, seed=seed)
    try:
        report = train_motion_real(videos, out, cfg, steps=steps, minutes=minutes, resume=resume, renderer=renderer,
                                   photos=photos)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    typer.echo(f"wrote {out} (motion model of {report['real_clips']} real clips and "
               f"{report['semi_synthetic_photos']} semi-synthetic photos; `vidiff animate PHOTO --motion-model {out}`)")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="dynamics")
    parent.command("animate")(animate)
