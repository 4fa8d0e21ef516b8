"""`vidiff sample` and `vidiff info`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

FORMATS = ("mp4", "gif", "npy")


def parse_formats(spec: str) -> list[str]:
    from ..utils import VidiffError

    fmts = [f.strip().lower() for f in spec.split(",") if f.strip()]
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise VidiffError(f"unknown --format {spec!r}; use one or more of {', '.join(FORMATS)} (comma-separated)")
    return fmts


def write_samples(videos, out: Path, name: str, formats: list[str], fps: float, scale: int) -> list[Path]:
    """Write (N, F, H, W, 3) uint8 videos: per-sample files, a grid video per format, or one .npy."""
    from ..data import io

    arr = videos.numpy() if hasattr(videos, "numpy") else videos
    written = []
    for fmt in formats:
        if fmt == "npy":
            written.append(io.write_npy(out / f"{name}.npy", arr))
            continue
        for i, v in enumerate(arr):
            io.write_video(out / name / f"{i:03d}.{fmt}", v, fps=fps, scale=scale)
        written.append(io.write_video(out / f"{name}.{fmt}", io.tile_videos(arr), fps=fps, scale=scale))
    return written


def autoguidance_text(pipe, w: float | None) -> str:
    """", autoguidance W" for a summary line (with the noisier steps' weight if the default has one);
    empty when guidance is off."""
    ag = pipe.autoguidance_spec(w)
    if ag is None:
        return ""
    return f", autoguidance {ag['w']:g}" + (
        f" ({ag['w_high_noise']:g} where log-SNR < {ag.get('logsnr_split', 0.0):g})" if "w_high_noise" in ag else "")


def corrector_options(sampler: str, snr: float | None, steps: int | None, time_range: str | None) -> dict:
    """The `pc` sampler's keywords from the CLI's --snr / --corrector-steps / --corrector-range
    ("LO,HI"); any of them with another sampler is a one-line error."""
    from ..utils import VidiffError

    given = {k: v for k, v in (("snr", snr), ("corrector_steps", steps), ("corrector_range", time_range))
             if v is not None}
    if given and sampler != "pc":
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        verb = "applies" if len(given) == 1 else "apply"
        raise VidiffError(f"{flags} {verb} only to --sampler pc (the Langevin corrector); got --sampler {sampler}")
    if time_range is not None:
        try:
            lo, hi = (float(v) for v in time_range.split(","))
        except ValueError:
            raise VidiffError(f"--corrector-range takes two times LO,HI such as 0.2,0.8; got {time_range!r}") from None
        given["corrector_range"] = (lo, hi)
    return given


def register(app: typer.Typer) -> None:
    @app.command("sample")
    def sample_cmd(
        model: str = typer.Option("shapes-tiny", help="bundled model name or checkpoint folder"),
        num: int = typer.Option(8, help="number of videos"),
        frames: Optional[int] = typer.Option(None, help="frames per video (default: the model's)"),
        steps: int = typer.Option(25, help="denoising steps"),
        sampler: str = typer.Option("ddim", help="ddim | ddpm | dpmpp_2m | pc (DDPM + Langevin corrector)"),
        snr: Optional[float] = typer.Option(None, help="pc: the corrector's signal-to-noise ratio r (default 0.16)"),
        corrector_steps: Optional[int] = typer.Option(None, help="pc: Langevin steps after each step (default 1)"),
        corrector_range: Optional[str] = typer.Option(None, help="pc: correct only at times t in LO,HI "
                                                      "(default 0,1)"),
        seed: int = typer.Option(0, help="the same seed gives the same videos"),
        out: Path = typer.Option(Path("outputs"), help="output folder"),
        name: str = typer.Option("samples", help="base name of the files written"),
        format: str = typer.Option("mp4,gif", "--format", help="mp4, gif, npy (comma-separated)"),
        scale: int = typer.Option(4, help="nearest-neighbour upscaling of mp4/gif for viewing"),
        prompt: Optional[str] = typer.Option(None, help="text prompt (text-conditioned models)"),
        class_id: Optional[int] = typer.Option(None, "--class", help="class id (class-conditioned models)"),
        image: Optional[Path] = typer.Option(None, help="first frame, PNG/JPEG (first-frame models)"),
        guidance: float = typer.Option(0.0, help="classifier-free guidance weight w (0 = none)"),
        guidance_rescale: float = typer.Option(0.0, help="CFG rescale phi in [0, 1] (Lin et al. 2024)"),
        autoguidance: Optional[float] = typer.Option(None, help="autoguidance weight: guide with the model's "
                                                     "weaker snapshot (Karras et al. 2024); default: the "
                                                     "model's, 0 = off"),
        window: Optional[int] = typer.Option(None, help="temporal window for long videos (default: the "
                                             "model's length when --frames exceeds it; MultiDiffusion)"),
        overlap: Optional[int] = typer.Option(None, help="frames shared by neighbouring windows (default: half)"),
    ):
        """Generate videos with a trained model."""
        import time

        from ..utils import VidiffError
        from . import load_pipeline

        fmts = parse_formats(format)
        extra = corrector_options(sampler, snr, corrector_steps, corrector_range)
        pipe = load_pipeline(model)
        t0 = time.perf_counter()
        if window is not None or (frames is not None and frames > pipe.video.frames):
            import torch

            from ..data.io import to_uint8
            from .long import sample_long

            if image is not None:
                raise VidiffError("--image with a long video (--frames > the model's length) is not supported; "
                                  "generate the first window with --image, then `vidiff extend` it")
            x = sample_long(pipe, num, frames=frames or pipe.video.frames, window=window, overlap=overlap,
                            steps=steps, sampler=sampler, seed=seed, prompt=prompt, class_id=class_id,
                            guidance=guidance, autoguidance=autoguidance, **extra)
            videos = torch.from_numpy(to_uint8(x))
        else:
            videos = pipe(num=num, frames=frames, steps=steps, sampler=sampler, seed=seed, progress=True,
                          prompt=prompt, class_id=class_id, image=image, guidance=guidance,
                          guidance_rescale=guidance_rescale, autoguidance=autoguidance, **extra)
        ag_text = autoguidance_text(pipe, autoguidance)
        dt = time.perf_counter() - t0
        written = write_samples(videos, out, name, fmts, pipe.video.fps, scale)
        typer.echo(f"generated {num} video(s) {tuple(videos.shape[1:])} with {pipe.name} "
                   f"in {dt:.1f}s ({sampler}, {steps} steps, seed {seed}"
                   + "".join(f", {k} {v}" for k, v in extra.items())
                   + (f", guidance {guidance:g}" if guidance else "")
                   + ag_text + ")")
        for p in written:
            typer.echo(f"wrote {p}")

    @app.command("info")
    def info_cmd(path: str = typer.Argument(..., help="checkpoint folder or bundled model name")):
        """A checkpoint's config, parameter count and training summary."""
        import json

        from ..checkpoint import WEIGHTS_NAME, load_state_dict, read_config
        from . import resolve_model

        folder = resolve_model(path)
        cfg = read_config(folder)
        n = sum(t.numel() for t in load_state_dict(folder / WEIGHTS_NAME).values())
        typer.echo(f"checkpoint: {folder}")
        typer.echo(f"parameters: {n:,}")
        for section in ("model", "diffusion", "video", "summary", "autoguidance", "train"):
            if section in cfg:
                typer.echo(f"{section}: {json.dumps(cfg[section], sort_keys=True)}")
