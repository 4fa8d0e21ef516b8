"""`vidiff eval`: score generated videos against real ones; prints a table, writes JSON with the protocol."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from .options import Device


def evaluate(
    fake: Annotated[str, typer.Option("--fake", help="generated videos, same forms as --real")],
    real: Annotated[Optional[str], typer.Option(
        "--real", help="real videos: folder, video file, or .npy (N,F,H,W,3) uint8 (not needed by is, clip)")] = None,
    metrics: Annotated[str, typer.Option(
        help="comma list of: fvd,fid,kid,psnr,ssim,lpips,flicker,warp,motion,is,clip")
    ] = "fvd,fid,kid,psnr,ssim,flicker,warp",
    i3d: Annotated[Optional[str], typer.Option(
        help="local I3D weights: i3d_torchscript.pt (StyleGAN-V) or i3d_pretrained_400.pt (VideoGPT/TATS); "
             "without: labelled fallback")] = None,
    i3d_features: Annotated[str, typer.Option(
        help="state-dict I3D output: logits (400, as VideoGPT/TATS) or pool (1024)")] = "logits",
    inception: Annotated[Optional[str], typer.Option(
        help="local pytorch-fid pt_inception-2015-12-05 weights (FID/KID; required by is)")] = None,
    is_splits: Annotated[int, typer.Option(min=1, help="Inception Score: splits (mean ± std over them)")] = 10,
    clip_model: Annotated[Optional[str], typer.Option(
        help="CLIP score: OpenCLIP architecture (ViT-B-32, ViT-L-14, …; -quickgelu for OpenAI weights) or "
             "open_clip_config.json")] = None,
    clip_weights: Annotated[Optional[str], typer.Option(
        help="CLIP score: local OpenCLIP weights (open_clip_model.safetensors)")] = None,
    clip_tokenizer: Annotated[Optional[str], typer.Option(
        help="CLIP score: bpe_simple_vocab_16e6.txt.gz or merges.txt (default: next to --clip-weights)")] = None,
    prompt: Annotated[Optional[str], typer.Option(help="CLIP score: the prompt of every generated video")] = None,
    prompts: Annotated[Optional[str], typer.Option(
        help="CLIP score: .txt (one line per generated video, in the order read) or .json list")] = None,
    frames: Annotated[int, typer.Option(min=1, help="frames per clip")] = 16,
    start: Annotated[int, typer.Option(min=0, help="first frame of each clip")] = 0,
    stride: Annotated[int, typer.Option(min=1, help="frame step within a clip")] = 1,
    window: Annotated[Optional[int], typer.Option(
        min=1, help="also score fvd/fid over windows of this many frames")] = None,
    out: Annotated[Optional[str], typer.Option(help="write the JSON report (with protocol) here")] = None,
    report_dir: Annotated[Optional[str], typer.Option(help="write X-t slice, side-by-side MP4, plots here")] = None,
    kid_subsets: Annotated[int, typer.Option(min=1, help="KID: number of random subsets")] = 100,
    kid_subset_size: Annotated[int, typer.Option(min=1, help="KID: subset size (capped at the set size)")] = 1000,
    lpips_vgg: Annotated[Optional[str], typer.Option(help="LPIPS: local VGG16 features state dict")] = None,
    lpips_lin: Annotated[Optional[str], typer.Option(help="LPIPS: local linear-layer weights (vgg.pth)")] = None,
    device: Device = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="videos per extractor batch")] = 8,
    row: Annotated[Optional[int], typer.Option(min=0, help="row of the X-t slice (default: middle)")] = None,
) -> None:
    """Score generated videos against real ones (FVD/FID/KID, PSNR/SSIM, temporal metrics, IS, CLIP score)."""
    from ..metrics.run import run_eval

    run_eval(real, fake, metrics, i3d, inception, i3d_features, frames, start, stride, window, out, report_dir,
             kid_subsets, kid_subset_size, lpips_vgg, lpips_lin, device, batch_size, row, is_splits=is_splits,
             clip_model=clip_model, clip_weights=clip_weights, clip_tokenizer=clip_tokenizer, prompt=prompt,
             prompts=prompts)


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
