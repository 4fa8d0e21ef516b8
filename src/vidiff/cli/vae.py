"""`vidiff vae ...`: train a video autoencoder, reconstruct a video, encode a folder into a latent cache, decode
latents. `--vae` takes a `vidiff vae train` folder, a bundled name (the model search path) or a diffusers
AutoencoderKL / AutoencoderKLTemporalDecoder folder."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..utils import VidiffError
from .options import DecodeChunk, Format, Overwrite, Scale, Tile
from .output import check_outputs, check_video_path, echo_written, write_video_file, write_videos

app = typer.Typer(no_args_is_help=True, help="Video autoencoders: train, reconstruct, encode latents, decode them.")

Vae = Annotated[str, typer.Option("--vae", help="autoencoder: vidiff VAE folder, bundled name or diffusers folder")]
VaeDevice = Annotated[str, typer.Option(help="cpu | cuda | cuda:N | auto")]


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _load(vae: str, device: str):
    from ..bundled import find_autoencoder
    from ..models.autoencoders import load_autoencoder

    return load_autoencoder(find_autoencoder(vae).resolve(), _device(device))


def _chunk_tile(chunk: int | None, tile: int | None) -> tuple[int | None, int | None]:
    """--decode-chunk / --tile with the latent pipelines' defaults; 0 means off (None)."""
    from ..pipelines.latent import DEFAULT_DECODE_CHUNK, DEFAULT_TILE  # torch: only when a command runs

    chunk = DEFAULT_DECODE_CHUNK if chunk is None else chunk
    tile = DEFAULT_TILE if tile is None else tile
    return chunk or None, tile or None


@app.command("train")
def train_cmd(
    data: Annotated[Optional[str], typer.Option(help="folder of videos")] = None,
    out: Annotated[Optional[str],
                   typer.Option(help="run folder: the autoencoder, previews, logs, train_state/")] = None,
    frames: Annotated[Optional[int], typer.Option(min=1)] = None,
    size: Annotated[Optional[int], typer.Option(min=1,
                                                help="clips are resized and centre-cropped to size×size")] = None,
    crop: Annotated[Optional[int], typer.Option(min=1, help="train on random crop×crop windows of the clips")] = None,
    steps: Annotated[Optional[int], typer.Option(min=1)] = None,
    minutes: Annotated[Optional[float], typer.Option(help="wall-clock budget (total over resumes)")] = None,
    batch: Annotated[Optional[int], typer.Option(min=1)] = None,
    lr: Annotated[Optional[float], typer.Option()] = None,
    spatial_factor: Annotated[Optional[int], typer.Option(help="4 or 8")] = None,
    latent_channels: Annotated[Optional[int], typer.Option(min=1)] = None,
    base_channels: Annotated[Optional[int], typer.Option(min=1)] = None,
    norm_groups: Annotated[Optional[int], typer.Option(min=1, help="GroupNorm groups (at most)")] = None,
    temporal: Annotated[Optional[str],
                        typer.Option(help="decoder's temporal layers: conv3d | attention | both | none")] = None,
    causal: Annotated[Optional[bool], typer.Option("--causal/--no-causal", help="causal 3D variant")] = None,
    temporal_compression: Annotated[Optional[int], typer.Option(help="1, or 4 with --causal (1 + 4k frames)")] = None,
    init: Annotated[Optional[str], typer.Option(help="start from this autoencoder's weights (a per-frame one: "
                                                     "its temporal layers start as identity)")] = None,
    train: Annotated[Optional[str], typer.Option("--train", help="all | decoder | temporal (what trains)")] = None,
    kl_weight: Annotated[Optional[float], typer.Option()] = None,
    l2_weight: Annotated[Optional[float], typer.Option(min=0, help="squared-error weight next to L1 (sparse content: "
                                                                   "small objects on plain backgrounds)")] = None,
    disc_start: Annotated[Optional[int], typer.Option(min=0, help="steps before the discriminator starts")] = None,
    disc_weight: Annotated[Optional[float], typer.Option(min=0, help="GAN weight (0: no discriminator)")] = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    sample_every: Annotated[Optional[int], typer.Option(min=0)] = None,
    save_every: Annotated[Optional[int], typer.Option(min=0)] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda")] = None,
    config: Annotated[Optional[str], typer.Option("--config", help="recipe YAML/JSON; flags override it")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in --out exactly where it stopped")] = False,
):
    """Train a KL video autoencoder (per-frame encoder, temporal decoder, optional 3D discriminator)."""
    from ..training.vae_task import train_vae, vae_config_from_args

    overrides = dict(data=data, out=out, frames=frames, size=size, crop=crop, steps=steps, minutes=minutes,
                     batch=batch, lr=lr, spatial_factor=spatial_factor, latent_channels=latent_channels,
                     base_channels=base_channels, norm_groups=norm_groups, temporal=temporal, causal=causal,
                     temporal_compression=temporal_compression, init=init, trainable=train, kl_weight=kl_weight,
                     l2_weight=l2_weight,
                     disc_start=disc_start,
                     disc_weight=disc_weight, seed=seed, sample_every=sample_every, save_every=save_every,
                     device=device)
    cfg = vae_config_from_args(config, overrides)
    try:
        train_vae(cfg, resume=resume)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command("recon")
def recon_cmd(
    video: Annotated[Path, typer.Argument(help="input video (mp4/avi/webm/gif/npy or a folder of frames)")],
    vae: Vae,
    out: Annotated[Path, typer.Option(callback=check_video_path, help="side-by-side video: input | reconstruction")],
    frames: Annotated[int, typer.Option(min=1, help="at most this many frames from the start")] = 32,
    size: Annotated[Optional[int], typer.Option(min=1, help="resize the shorter side first")] = None,
    decode_chunk: DecodeChunk = None,
    tile: Tile = None,
    device: VaeDevice = "cpu",
):
    """Encode and decode a video; write input | reconstruction side by side and print PSNR / SSIM."""
    import numpy as np
    import torch

    from ..data.dataset import resize_short_side
    from ..data.io import from_uint8, read_video, to_uint8, video_fps
    from ..metrics.image import psnr, ssim
    from ..pipelines.latent import effective_chunk

    ae = _load(vae, device)
    chunk, tile = _chunk_tile(decode_chunk, tile)
    clip = read_video(video, max_frames=frames)  # (F, H, W, 3)
    if size is not None:
        clip = resize_short_side(clip, size)
    f, h, w = clip.shape[:3]
    sf, tf = ae.spatial_factor, ae.temporal_factor
    f2 = f if tf == 1 else 1 + (f - 1) // tf * tf
    h2, w2 = h // sf * sf, w // sf * sf
    if min(h2, w2) < sf:
        raise VidiffError(f"{video} is {w}x{h}, smaller than the autoencoder's spatial factor {sf}")
    if (f2, h2, w2) != (f, h, w):
        print(f"note: cropping {f}x{h}x{w} to {f2}x{h2}x{w2} (frames x height x width) to fit the autoencoder",
              file=sys.stderr)
        top, left = (h - h2) // 2, (w - w2) // 2
        clip = clip[:f2, top:top + h2, left:left + w2]
    x = from_uint8(clip)[None].to(next(ae.parameters(), torch.empty(0)).device)  # (1, 3, F, H, W)
    with torch.no_grad():
        z = ae.encode(x, chunk=chunk, tile=tile).mode()
        rec = ae.decode(z, chunk=effective_chunk(ae, z.shape[2], chunk), tile=tile).clamp(-1, 1)
    rec_u8 = to_uint8(rec.cpu())[0]
    p = psnr(clip, rec_u8).mean().item()
    s = ssim(clip, rec_u8).mean().item()
    written = write_video_file(out, np.concatenate([clip, rec_u8], axis=2), fps=video_fps(video))
    typer.echo(f"reconstructed {f2}x{h2}x{w2} with {ae.source}: PSNR {p:.2f} dB, SSIM {s:.4f}")
    echo_written([written])


@app.command("encode")
def encode_cmd(
    data: Annotated[Path, typer.Argument(help="folder of videos")],
    vae: Vae,
    out: Annotated[Path, typer.Option(help="cache folder (index.json + safetensors shards)")],
    frames: Annotated[int, typer.Option(min=1)] = 16,
    size: Annotated[int, typer.Option(min=1)] = 128,
    stride: Annotated[int, typer.Option(min=1, help="frame stride of the clips")] = 1,
    batch_size: Annotated[int, typer.Option(min=1)] = 4,
    shard_size: Annotated[int, typer.Option(min=1, help="clips per shard")] = 64,
    std: Annotated[bool, typer.Option("--std/--no-std",
                                      help="store the posterior std too (z ~ q(z|x) per step)")] = True,
    decode_chunk: DecodeChunk = None,
    tile: Tile = None,
    seed: Annotated[int, typer.Option()] = 0,
    device: VaeDevice = "cpu",
):
    """Encode every clip of a folder once into a latent cache (what `vidiff train --data CACHE` reads)."""
    from ..data.dataset import VideoDataset
    from ..data.latents import encode_latent_cache

    ae = _load(vae, device)
    ae.check_video_shape(frames, size, size)  # sizes that do not fit are refused before any video is read
    chunk, tile = _chunk_tile(decode_chunk, tile)
    dataset = VideoDataset(data, frames=frames, size=size, stride=stride, cache=False, seed=seed)
    index = encode_latent_cache(dataset, ae, out, shard_size=shard_size, batch_size=batch_size, chunk=chunk,
                                tile=tile, store_std=std, device=_device(device))
    typer.echo(f"encoded {len(index['clips'])} clip(s) of {frames}x{size}x{size} to {out}: latents "
               f"{tuple(index['latent_shape'])}, scaling factor {index['scaling_factor']:.4g} (1/std)")


@app.command("decode")
def decode_cmd(
    latents: Annotated[Path, typer.Argument(help="latents .npy (N, C, f, h, w) or a `vae encode` cache folder")],
    vae: Vae,
    out: Annotated[Path, typer.Option(help="output folder")],
    name: Annotated[str, typer.Option(help="base name of the files written")] = "decoded",
    num: Annotated[int, typer.Option(min=1, help="clips of a cache to decode")] = 8,
    scaled: Annotated[bool, typer.Option("--scaled/--unscaled", help=".npy latents are in the diffusion space "
                                         "(z − shift)·scale (default: as the autoencoder gives them)")] = False,
    format: Format = "mp4",
    scale: Scale = 1,
    fps: Annotated[float, typer.Option(min=0.1)] = 8.0,
    decode_chunk: DecodeChunk = None,
    tile: Tile = None,
    device: VaeDevice = "cpu",
    overwrite: Overwrite = False,
):
    """Decode latents (an .npy file or a latent cache) to videos."""
    import torch

    from ..data.io import load_npy, to_uint8
    from ..data.latents import INDEX_NAME, LatentDataset
    from ..pipelines.latent import effective_chunk

    ae = _load(vae, device)
    check_outputs(out, name, format, overwrite)
    chunk, tile = _chunk_tile(decode_chunk, tile)
    if (latents / INDEX_NAME).is_file():
        ds = LatentDataset(latents, scaling_factor=1.0)  # "video" = mean − shift
        ds.check_autoencoder(ae.fingerprint)
        z = torch.stack([ds[i]["video"] for i in range(min(num, len(ds)))]) + ds.shift_factor
    elif latents.suffix.lower() == ".npy":
        z = torch.from_numpy(load_npy(latents).astype("float32"))
        z = z[None] if z.dim() == 4 else z
        if scaled:
            z = z / ae.scaling_factor + ae.shift_factor
        if not torch.isfinite(z).all():
            raise VidiffError(f"{latents} holds NaN or infinite latents")
    else:
        raise VidiffError(f"{latents} is neither a latent cache folder ({INDEX_NAME}) nor an .npy file of latents")
    device_of = next(ae.parameters(), torch.empty(0)).device
    with torch.no_grad():
        chunk = effective_chunk(ae, z.shape[2], chunk)
        x = torch.cat([ae.decode(z[i:i + 1].to(device_of), chunk=chunk, tile=tile).clamp(-1, 1).cpu()
                       for i in range(len(z))])
    written = write_videos(to_uint8(x), out, name, format, fps, scale, overwrite)
    typer.echo(f"decoded {len(z)} latent clip(s) {tuple(z.shape[1:])} to videos {tuple(x.shape[2:])}")
    echo_written(written)


def register(parent: typer.Typer) -> None:
    """Add the `vae` command group."""
    parent.add_typer(app, name="vae")
