"""`vidiff upsample` and `vidiff cascade`: temporal / spatial super-resolution stages (Imagen Video)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


BUNDLED_SSR, BUNDLED_TSR = "shapes-ssr-tiny", "shapes-tsr-tiny"


def default_sr_models(space: int | None, time: int | None) -> tuple[str | None, str | None]:
    """(ssr, tsr) model names when none is given: the bundled shapes SR stages for the factors asked
    for (`--space N` -> shapes-ssr-tiny, `--time N` -> shapes-tsr-tiny), with a notice on stderr."""
    from ..utils import VidiffError
    from . import bundled_models

    want = {"ssr": space is not None and space > 1, "tsr": time is not None and time > 1}
    names = {"ssr": BUNDLED_SSR, "tsr": BUNDLED_TSR}
    if not any(want.values()):
        raise VidiffError("give a super-resolution model: --ssr-model PATH (space) and/or --tsr-model PATH (time), "
                          "or ask for --space 2 / --time 2 to use the bundled shapes stages")
    missing = [names[k] for k, w in want.items() if w and names[k] not in bundled_models()]
    if missing:
        raise VidiffError(f"no bundled {' or '.join(missing)} in this install: give --ssr-model / --tsr-model "
                          "(train them with scripts/train_cascade.sh)")
    chosen = {k: names[k] if w else None for k, w in want.items()}
    typer.echo("using the bundled " + " and ".join(n for n in chosen.values() if n)
               + " (trained on synthetic shapes; --ssr-model / --tsr-model choose others)", err=True)
    return chosen["ssr"], chosen["tsr"]


def register(app: typer.Typer) -> None:
    @app.command("upsample")
    def upsample_cmd(
        video: Path = typer.Argument(..., help="input video: mp4/gif/npy or a folder of frames (square frames)"),
        space: Optional[int] = typer.Option(None, help="height/width factor, a power of 2 (default: 2 with "
                                            "--ssr-model, else 1)"),
        time: Optional[int] = typer.Option(None, help="frame-count factor, a power of 2 (default: 2 with "
                                           "--tsr-model, else 1)"),
        ssr_model: Optional[str] = typer.Option(None, "--ssr-model", help="spatial SR model (trained with "
                                                "--condition ssr): bundled name or checkpoint folder (with neither "
                                                "model given, --space N uses the bundled shapes-ssr-tiny)"),
        tsr_model: Optional[str] = typer.Option(None, "--tsr-model", help="temporal SR model (trained with "
                                                "--condition tsr): bundled name or checkpoint folder (with neither "
                                                "model given, --time N uses the bundled shapes-tsr-tiny)"),
        steps: int = typer.Option(25, help="denoising steps per pass"),
        sampler: str = typer.Option("ddim", help="ddim | ddpm | dpmpp_2m"),
        seed: int = typer.Option(0, help="the same seed gives the same video"),
        noise_aug: Optional[float] = typer.Option(None, "--noise-aug", help="SSR conditioning noise level in "
                                                  "[0, 1) (default 0.1)"),
        out: Path = typer.Option(Path("outputs"), help="output folder"),
        name: Optional[str] = typer.Option(None, help="base name of the files (default: INPUT_upsampled)"),
        format: str = typer.Option("mp4,gif", "--format", help="mp4, gif, npy (comma-separated)"),
        scale: int = typer.Option(4, help="nearest-neighbour upscaling of mp4/gif for viewing"),
    ):
        """Upsample a video in time and/or space with super-resolution diffusion models (Imagen Video)."""
        import time as clock

        from ..conditioning.tasks import NOISE_AUG_SAMPLE, SR_FACTOR
        from ..data import io
        from ..utils import VidiffError
        from . import load_pipeline
        from .cascade import upsample
        from .cli import parse_formats
        from .ops_cli import write_one_video

        fmts = parse_formats(format)
        if ssr_model is None and tsr_model is None:
            ssr_model, tsr_model = default_sr_models(space, time)
        space = space if space is not None else (SR_FACTOR if ssr_model else 1)
        time = time if time is not None else (SR_FACTOR if tsr_model else 1)
        given = io.read_video(video)  # uint8 (F, H, W, 3)
        tsr = load_pipeline(tsr_model) if tsr_model else None
        ssr = load_pipeline(ssr_model) if ssr_model else None
        t0 = clock.perf_counter()
        y = upsample(tsr, ssr, given, space=space, time=time, steps=steps, sampler=sampler, seed=seed,
                     noise_aug=NOISE_AUG_SAMPLE if noise_aug is None else noise_aug, progress=True)  # (C, F, H, W)
        dt = clock.perf_counter() - t0
        fps = io.video_fps(video, (tsr or ssr).video.fps / time) * time  # same duration
        written = write_one_video(y, out, name or f"{video.stem}_upsampled", fmts, fps, scale)
        f0, h0, w0 = given.shape[:3]
        typer.echo(f"upsampled {video.name} from {f0}x{h0}x{w0} to {y.shape[1]}x{y.shape[2]}x{y.shape[3]} "
                   f"(frames x height x width) in {dt:.1f}s ({sampler}, {steps} steps, seed {seed})")
        for p in written:
            typer.echo(f"wrote {p}")

    @app.command("cascade")
    def cascade_cmd(
        config: Path = typer.Option(..., "--config", help="cascade YAML/JSON, or a bundled cascade's name: base, tsr, ssr stages "
                                    "({model, steps, sampler} each), optional time, space, sampler, noise_aug"),
        num: int = typer.Option(4, help="number of videos"),
        seed: int = typer.Option(0, help="the same seed gives the same videos"),
        prompt: Optional[str] = typer.Option(None, help="text prompt (text-conditioned base)"),
        class_id: Optional[int] = typer.Option(None, "--class", help="class id (class-conditioned base)"),
        guidance: float = typer.Option(0.0, help="classifier-free guidance weight of the base stage"),
        out: Path = typer.Option(Path("outputs"), help="output folder"),
        name: str = typer.Option("cascade", help="base name of the files written"),
        format: str = typer.Option("mp4,gif", "--format", help="mp4, gif, npy (comma-separated)"),
        scale: int = typer.Option(2, help="nearest-neighbour upscaling of mp4/gif for viewing"),
        stages: bool = typer.Option(False, "--stages/--no-stages", help="also write each stage's videos "
                                    "(NAME_base, NAME_tsr, ...)"),
    ):
        """Sample with a cascade base -> TSR -> SSR (Imagen Video) described by one config file."""
        import time as clock

        from .cascade import CascadePipeline
        from .cli import parse_formats, write_samples

        fmts = parse_formats(format)
        pipe = CascadePipeline.from_config(config)
        t0 = clock.perf_counter()
        videos = pipe(num, seed=seed, prompt=prompt, class_id=class_id, guidance=guidance, progress=True,
                      return_stages=True)
        dt = clock.perf_counter() - t0
        final = list(videos.values())[-1]
        written = write_samples(final, out, name, fmts, pipe.fps, scale)
        if stages:
            for kind, v in list(videos.items())[:-1]:
                fps = pipe.base.video.fps * (v.shape[1] // videos["base"].shape[1])
                written += write_samples(v, out, f"{name}_{kind}", fmts, fps, scale)
        shapes = " -> ".join(f"{k} {tuple(v.shape[1:4])}" for k, v in videos.items())
        typer.echo(f"generated {num} video(s) in {dt:.1f}s: {shapes} (frames, height, width), seed {seed}")
        for p in written:
            typer.echo(f"wrote {p}")
