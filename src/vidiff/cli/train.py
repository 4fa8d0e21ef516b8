"""`vidiff train`: train a video diffusion model on a folder of videos."""
from __future__ import annotations

from typing import Optional

import typer

from ..utils import VidiffError


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        data: Optional[str] = typer.Option(None, help="folder of videos (mp4/avi/webm/mov/gif/npy or frame folders), "
                                           "a latent cache written by `vidiff vae encode`, or the WebDataset "
                                           "shards of `vidiff data curate` (DATASET or 'DATASET/{000000..000009}.tar'"
                                           ", streamed epoch by epoch)"),
        latent: Optional[str] = typer.Option(None, help="train in this autoencoder's latent space (vidiff VAE folder, "
                                             "bundled name or diffusers folder); videos are encoded per step"),
        out: Optional[str] = typer.Option(None, help="run folder (checkpoint, samples, logs)"),
        model: Optional[str] = typer.Option(None, help="backbone preset, see `vidiff models`"),
        frames: Optional[int] = typer.Option(None), size: Optional[int] = typer.Option(None),
        stride: Optional[int] = typer.Option(None, help="frame stride when sampling clips"),
        steps: Optional[int] = typer.Option(None, min=1, help="optimisation steps (total over resumes)"),
        minutes: Optional[float] = typer.Option(None, help="wall-clock budget (total over resumes)"),
        batch: Optional[int] = typer.Option(None, min=1), lr: Optional[float] = typer.Option(None),
        seed: Optional[int] = typer.Option(None),
        bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16", help="bf16 autocast"),
        gradient_checkpointing: Optional[bool] = typer.Option(None, "--grad-ckpt/--no-grad-ckpt"),
        sample_every: Optional[int] = typer.Option(None, min=0, help="steps between previews (0: at the end)"),
        save_every: Optional[int] = typer.Option(None, min=0, help="steps between checkpoints (0: at the end)"),
        num_workers: Optional[int] = typer.Option(None, "--num-workers", min=0,
                                                  help="DataLoader processes decoding clips (0: in the trainer)"),
        device: Optional[str] = typer.Option(None, help="auto | cpu | cuda (auto: CUDA when present)"),
        snapshot_steps: Optional[str] = typer.Option(None, "--snapshot-steps",
                                                     help="comma-separated steps whose EMA weights are kept "
                                                          "in OUT/snapshots"),
        condition: Optional[str] = typer.Option(None, help="none, or kinds joined by '+': class | text | "
                                                "first_frame | tsr | ssr | trajectory | gen1 | gen1_flow"),
        cond_drop: Optional[float] = typer.Option(None, help="condition dropout rate for classifier-free guidance"),
        schedule: Optional[str] = typer.Option(None, help="noise schedule: cosine | shifted_cosine | linear | edm "
                                               "(EDM's training law: lognormal sigma, loss weight lambda(sigma))"),
        micro: Optional[str] = typer.Option(None, help="micro-conditions, comma-separated: fps, motion (bucket from "
                                            "optical flow), speed (metadata.jsonl) (Stable Video Diffusion)"),
        cond_noise_aug: Optional[float] = typer.Option(None, "--cond-noise-aug",
                                                       help="noise augmentation of the first frame: levels drawn "
                                                            "from [0, this) (first_frame models; e.g. 0.1)"),
        image_embed: Optional[bool] = typer.Option(None, "--image-embed/--no-image-embed",
                                                   help="also embed the first frame with a jointly trained image "
                                                        "encoder, seen by cross-attention (first_frame models; SVD)"),
        captions: Optional[str] = typer.Option(None, help="first: metadata's \"caption\"; random: one of it and its "
                                               "\"captions\" list per step (caption augmentation)"),
        init_from: Optional[str] = typer.Option(None, "--init-from", help="checkpoint whose weights start the run"),
        noise: Optional[str] = typer.Option(None,
                                            help="noise prior: iid | mixed | progressive (PYoCo, "
                                                 "correlated across frames)"),
        noise_alpha: Optional[float] = typer.Option(None, "--noise-alpha", help="correlation strength of --noise"),
        self_cond: Optional[float] = typer.Option(None, "--self-cond",
                                                  help="share of samples trained with self-conditioning "
                                                       "(Chen et al. 2022; "
                                                       "e.g. 0.5)"),
        init_image: Optional[str] = typer.Option(None, "--init-image",
                                                 help="image checkpoint (trained with --frames 1) "
                                                 "under which a video model gets new temporal layers (Video LDM)"),
        trainable: Optional[str] = typer.Option(None, "--train",
                                                help="which parameters train: all | temporal (the image "
                                            "model frozen) | comma-separated name patterns"),
        temporal: Optional[str] = typer.Option(None, "--temporal",
                                               help="UNet3D temporal layer instead of the model's: attention | conv | "
                                                    "full3d | videoldm | none | convgru | biconvgru | "
                                                    "hierarchical | dwconv | motion"),
        temporal_consistency: Optional[float] = typer.Option(None, "--temporal-consistency",
                                                             help="weight of a flicker penalty on x̂₀ against the "
                                                                  "data's frame changes (0: off)"),
        images: Optional[str] = typer.Option(None, "--images", help="folder of images mixed into video training as "
                                             "independent frames (joint image-video training, VDM)"),
        image_ratio: Optional[float] = typer.Option(None, "--image-ratio", help="share of samples drawn from --images"),
        config: Optional[str] = typer.Option(None, "--config", help="recipe YAML/JSON; flags override it"),
        resume: bool = typer.Option(False, help="continue the run in --out exactly where it stopped"),
    ):
        """Train a video diffusion model on a folder of videos."""
        overrides = dict(data=data, latent=latent, out=out, model=model, frames=frames, size=size, stride=stride,
                         steps=steps, minutes=minutes, batch=batch, lr=lr, seed=seed, bf16=bf16,
                         gradient_checkpointing=gradient_checkpointing, sample_every=sample_every,
                         save_every=save_every, num_workers=num_workers, device=device, condition=condition,
                         cond_drop=cond_drop, captions=captions, schedule=schedule, micro=micro,
                         cond_noise_aug=cond_noise_aug, image_embed=image_embed,
                         init_from=init_from, init_image=init_image, trainable=trainable, images=images,
                         image_ratio=image_ratio, temporal=temporal, temporal_consistency=temporal_consistency,
                         noise=noise, noise_alpha=noise_alpha, self_cond=self_cond,
                         snapshot_steps=None if snapshot_steps is None else _int_list(snapshot_steps,
                                 "--snapshot-steps"))
        from ..train import config_from_args, train  # torch: loaded when the command runs

        cfg = config_from_args(config, overrides)
        try:
            train(cfg, resume=resume)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    """'500,1500' -> (500, 1500); anything else is a one-line error naming the flag."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise VidiffError(f"{flag} takes comma-separated step numbers such as 500,1500; got {text!r}") from None
