"""`vidiff tune-a-video` (one-shot tuning of an image model on a clip) and `vidiff edit` (re-render a clip under
another prompt with a Tune-A-Video folder, or keep its structure and take the appearance of a reference image with
a Gen-1 model when --content is given)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import Overwrite, Prompt, Seed
from .output import check_video_path, write_video_file

Clip = Annotated[Path, typer.Argument(help="the clip: mp4/gif/npy or a folder of frames")]


def tune_a_video(
    clip: Clip,
    model: Annotated[str, typer.Option(help="image model: a vidiff checkpoint trained with --frames 1 (temporal "
                                            "none; text-conditioned for --prompt) or a diffusers Stable "
                                            "Diffusion folder")],
    prompt: Prompt = None,
    steps: Annotated[int, typer.Option(min=1, help="fine-tuning steps")] = 300,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 3e-5,
    frames: Annotated[Optional[int], typer.Option(min=2, help="first frames of the clip to tune on "
                                                  "(default: all)")] = None,
    size: Annotated[Optional[int], typer.Option(min=1, help="frame size (default: the model's)")] = None,
    seed: Seed = 0,
    out: Annotated[Path, typer.Option(help="folder of the tuned model (what `vidiff edit --model` reads)")] = Path(
        "runs/tav"),
    overwrite: Overwrite = False,
):
    """Tune-A-Video: inflate the image model (sparse-causal + temporal attention) and tune it on one clip."""
    from ..data.io import check_output, read_video
    from ..pipelines.tune_a_video import tune_clip
    from ..utils import VidiffError

    check_output(out, "--out", kind="dir")
    if (out / "model.safetensors").exists() and not overwrite:
        raise VidiffError(f"{out} already holds a model; choose another --out or pass --overwrite")
    video = read_video(clip)
    start = time.perf_counter()

    def report(step: int, loss: float) -> None:
        if (step + 1) % 50 == 0:
            typer.echo(f"step {step + 1}/{steps}: loss {loss:.4f}")

    folder, losses = tune_clip(video, model, prompt, out, steps=steps, lr=lr, frames=frames, size=size, seed=seed,
                               callback=report)
    k = max(1, len(losses) // 10)
    typer.echo(f"tuned {Path(model).name} on {clip.name} for {steps} steps in {time.perf_counter() - start:.1f}s "
               f"(loss {sum(losses[:k]) / k:.4f} -> {sum(losses[-k:]) / k:.4f}, mean of the first/last {k})")
    typer.echo(f"wrote {folder}")


def edit(
    clip: Clip,
    model: Annotated[str, typer.Option(help="an editing model: a folder written by `vidiff tune-a-video`, or with "
                                            "--content a Gen-1 model (`vidiff train --condition gen1`)")],
    prompt: Prompt = None,
    content: Annotated[Optional[Path], typer.Option(help="Gen-1: the reference image whose appearance the edit "
                                                          "takes (PNG/JPEG)")] = None,
    structure: Annotated[str, typer.Option(help="Gen-1: the input's structure kept: edges | flow | depth:DIR "
                                                "(one numbered depth image per frame, made beforehand: vidiff "
                                                "ships no depth network)")] = "edges",
    structure_strength: Annotated[float, typer.Option(help="Gen-1 structure fidelity in [0, 1]: lower blurs "
                                                           "the structure so the content decides more")] = 1.0,
    seed: Seed = 0,
    out: Annotated[Path, typer.Option(callback=check_video_path, help="the edited video (.mp4, .gif or .npy)")] = Path(
        "edited.mp4"),
    source_prompt: Annotated[Optional[str], typer.Option(
        help="the caption the clip is inverted under (default: the one it was tuned with)")] = None,
    steps: Annotated[int, typer.Option(min=1, help="DDIM steps of the inversion and of the sampling")] = 50,
    guidance: Annotated[float, typer.Option(help="classifier-free guidance weight w of the edit")] = 3.0,
    fps: Annotated[float, typer.Option(help="frame rate of the file written")] = 8.0,
):
    """Edit a clip with a prompt: DDIM inversion of the clip, then sampling under the edited prompt (deterministic);
    or, with --content, keep the clip's structure and take the reference image's appearance (Gen-1)."""
    from ..data.io import check_output, read_video
    from ..pipelines.tune_a_video import TuneAVideo, is_tune_a_video
    from ..utils import VidiffError

    if content is not None:  # Gen-1 (pipelines.gen1)
        from ..pipelines.gen1 import Gen1Editor

        if prompt is not None:
            raise VidiffError("Gen-1 editing takes its appearance from --content, not --prompt; drop one of them")
        check_output(out, "--out", kind="file")
        editor = Gen1Editor.from_pretrained(model)
        video = read_video(clip)
        start = time.perf_counter()
        edited = editor.edit(video, content, structure=structure, strength=structure_strength, steps=steps,
                             guidance=guidance, seed=seed)
        path = write_video_file(out, edited, fps)
        typer.echo(f"edited {clip.name} with {Path(model).name} in {time.perf_counter() - start:.1f}s (Gen-1, "
                   f"{structure} structure at strength {structure_strength:g}, content guidance {guidance:g})")
        typer.echo(f"wrote {path}")
        return

    if not is_tune_a_video(model):
        raise VidiffError(f"{model} is not an editing model; `vidiff edit` takes a folder written by "
                          "`vidiff tune-a-video CLIP --model IMAGE_MODEL --prompt ... --out FOLDER`, or a Gen-1 "
                          "model (`vidiff train --condition gen1`) with --content IMAGE")
    check_output(out, "--out", kind="file")
    video = read_video(clip)
    start = time.perf_counter()
    edited = TuneAVideo.from_pretrained(model).edit(video, prompt, source_prompt=source_prompt, steps=steps,
                                                    guidance=guidance)
    path = write_video_file(out, edited, fps)
    typer.echo(f"edited {clip.name} with {Path(model).name} in {time.perf_counter() - start:.1f}s "
               f"(Tune-A-Video, {steps} DDIM steps, guidance {guidance:g})")
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("tune-a-video")(tune_a_video)
    app.command("edit")(edit)
