"""`vidiff dynamics train`: the frequency-coordinated motion model of Generative Image Dynamics (and,
optionally, the learned renderer) trained on a user's real videos, plus semi-synthetic photo pairs, on
the trainer core (progress bar, previews, checkpoints, exact resume).

    report = train_motion_real(videos, "runs/motion", RealMotionConfig(frames=150, k=16), steps=6000,
                               photos=photo_paths, renderer=True)

Stages (GID sec. 4, as scripts/train_motion.py runs them on procedural scenes): the slice VAE, stage 1
(the 2D denoiser on independent frequency slices), stage 2 (the cross-frequency attention, the rest
frozen), and with `renderer` a fine-tuning of the learned renderer on (I_0, D(t), I_t) of the real clips.
The budget (`steps` and/or `minutes`) is split 20/55/25 % between the three stages (× 0.85 with the
renderer, which takes 15 %). Each stage is one trainer-core run in its own folder, so a run interrupted
in any stage resumes there exactly; finished stages are not run again.

Run folder OUT:
    run.json                       settings (RealMotionConfig), inputs, budget split
    data/clips.safetensors         the extracted clips (reused by --resume)
    vae/ stage1/ stage2/ renderer/ each: train_state/, log.jsonl, loss.png, samples/ (previews), its export
    model.safetensors, config.json the motion model (`vidiff animate --motion-model OUT`)
    train_report.json              data counts (real clips, semi-synthetic photos, rejections), losses
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import dumps_json, load_state_dict
from ..config import config_from_dict, config_to_dict
from ..data import io
from ..training import LoopConfig, OptimizerSpec, StepBatches, Trainer, step_seed
from ..training.loop import check_budget
from ..training.state import committed, read_state
from ..utils import VidiffError, atomic_write_text, notice, read_json
from .animate import BUNDLED_RENDERER, animate
from .motion_model import (MotionModel, MotionModelConfig, _LatentDiffusionTask, _SliceVAETask,
                           coordinated_from_independent, sample_motion, save_motion_model)
from .normalize import FrequencyNormalizer
from .real_data import (ClipSet, MotionPairs, RendererPairs, crop_pair, extract_clips, list_inputs, load_photos,
                        no_clip_error, volumes_at_size)
from .render import ImageRenderer, RendererConfig, SplatRenderer, _RenderTask, load_renderer, save_renderer
from .spectral import resize_spectral, spectral_to_complex

STAGE_SHARES = {"vae": 0.20, "stage1": 0.55, "stage2": 0.25}
STAGES = ("vae", "stage1", "stage2", "renderer")
RENDERER_SHARE = 0.15
RUN_FILE, CLIPS_FILE = "run.json", "data/clips.safetensors"


@dataclass(frozen=True)
class RealMotionConfig:
    """Data and model settings of `vidiff dynamics train` (the budget is given separately)."""

    size: int = 32  # model resolution (square, multiple of 8): crops are resized to it
    k: int = 16  # frequencies kept
    frames: int = 150  # T: distinct frames per clip, the FFT period
    stride: Optional[int] = None  # frames between clip starts (default T/2)
    clips_per_video: int = 16
    work_size: int = 128  # short side of the frames the flow is computed at
    max_frames: int = 300  # frames read per video (from its start)
    fps: Optional[float] = None  # resample videos to this rate (None: keep each one's; the median is recorded)
    camera_threshold: float = 1.0  # px at the working size: max_t mean_p |G_t(p)| (affine fit) above it = camera
    min_motion: float = 0.1  # px: 95th percentile of Σ_{f≥1} |S_f| below it = no motion
    crop: float = 0.6  # smallest crop side, as a share of the short side
    batch: int = 8
    lr: float = 5e-4
    vae_lr: float = 1e-3
    base_channels: int = 32
    vae_channels: int = 32
    norm_groups: int = 8
    schedule_shift: float = 16.0
    phase: Literal["data", "canonical"] = "canonical"
    renderer_lr: float = 2e-4
    renderer_crop: int = 64
    preview_steps: int = 10  # DDIM steps of the previews
    preview_every: int = 0  # previews every N steps of a stage (0: at each stage's end)
    checkpoint_every: int = 200  # steps between saved training states (0: at each stage end)
    seed: int = 0
    device: str = "auto"

    def motion_config(self, mode: str = "independent") -> MotionModelConfig:
        return MotionModelConfig(k=self.k, size=self.size, period=self.frames, mode=mode,
                                 vae_channels=self.vae_channels, base_channels=self.base_channels,
                                 norm_groups=self.norm_groups, freq_embedding="onehot", phase=self.phase,
                                 schedule_shift=self.schedule_shift)


def stage_budgets(steps: int | None, minutes: float | None, renderer: bool) -> dict[str, tuple]:
    """{stage: (steps or None, minutes or None)}: the budget split by STAGE_SHARES (and RENDERER_SHARE)."""
    check_budget(steps, minutes)
    shares = {k: v * (1 - RENDERER_SHARE if renderer else 1) for k, v in STAGE_SHARES.items()}
    if renderer:
        shares["renderer"] = RENDERER_SHARE
    if steps is not None and steps < len(shares):
        raise VidiffError(f"--steps must be at least {len(shares)} (one per stage: {', '.join(shares)}); got {steps}")
    out, cum, done = {}, 0.0, 0
    for name, share in shares.items():
        cum += share
        n = None
        if steps is not None:  # cumulative rounding, at least one step each
            n = max(1, min(round(steps * cum), steps - (len(shares) - len(out) - 1)) - done)
            done += n
        out[name] = (n, minutes * share if minutes is not None else None)
    return out


def _stage_done(run_dir: Path, budget: tuple) -> bool:
    if committed(run_dir) is None:
        return False
    _, st = read_state(run_dir)
    steps, minutes = budget
    return (steps is not None and st["step"] >= steps) or (minutes is not None and st["elapsed"] >= minutes * 60)


def colorize(mag: np.ndarray, vmax: float) -> np.ndarray:
    """A magnitude map (H, W) as uint8 RGB (viridis, 0 .. vmax)."""
    import cv2

    g = np.clip(mag / max(vmax, 1e-6) * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(g, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)


def motion_magnitude(sv: torch.Tensor) -> np.ndarray:
    """Σ_{f≥1} |S_f(p)| of (K, 4, H, W) -> (H, W) float (px): where and how much it moves."""
    return spectral_to_complex(sv)[1:].abs().pow(2).sum(1).sqrt().sum(0).numpy()


class _Preview:
    """The first clip's centre square, its extracted volume, and how to write a preview of sampled motion."""

    def __init__(self, clips: ClipSet, cfg: RealMotionConfig):
        img, sv = clips.images[0], clips.volumes[0]
        h, w = img.shape[:2]
        side = min(h, w)
        self.box = ((h - side) // 2, (w - side) // 2, side)
        self.photo, self.true = crop_pair(img, sv, self.box, side, False)  # (3, s, s), (K, 4, s, s)
        self.cfg, self.period, self.fps = cfg, clips.period, clips.fps

    def write(self, model: MotionModel, folder: Path, step: int) -> None:
        """folder/samples/step_N.gif (one period of the sampled motion, softmax splat) and step_N_motion.png
        (photo | sampled motion magnitude | extracted motion magnitude, one colour scale)."""
        was = model.training
        model.eval()
        small = F.interpolate(self.photo[None], size=(self.cfg.size,) * 2, mode="area")
        sv = sample_motion(model, small, self.cfg.preview_steps,
                           generator=torch.Generator().manual_seed(self.cfg.seed))[0]
        model.train(was)
        sv = resize_spectral(sv, tuple(self.photo.shape[-2:]))
        frames = min(self.period, 60)
        video = animate(self.photo[None], {"spectral_volume": sv, "period": self.period, "fps": self.fps}, frames,
                        loop=True, renderer=SplatRenderer())
        out = folder / "samples"
        out.mkdir(parents=True, exist_ok=True)
        io.write_gif(out / f"step_{step:07d}.gif", video, fps=min(self.fps, 30.0))
        true = motion_magnitude(self.true)
        vmax = float(np.percentile(true, 99)) or 1.0
        photo = ((self.photo.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        io.write_png(out / f"step_{step:07d}_motion.png",
                     np.concatenate([photo, colorize(motion_magnitude(sv), vmax), colorize(true, vmax)], 1))


class _VAEStage(_SliceVAETask):
    """The slice VAE's loss; its export sets the latent scale (1 / std of the latents of a fixed batch)."""

    def __init__(self, model: MotionModel, reference: torch.Tensor, preview: _Preview):
        super().__init__(model)
        self.reference, self.preview_ = reference, preview

    def export(self, trainer: Trainer, folder: Path) -> None:
        vae = self.model.vae
        was = vae.training
        vae.eval()
        with torch.no_grad():
            vae.latent_scale.fill_(1.0)
            z = self.model.encode(self.reference.to(vae.latent_scale.device))
            vae.latent_scale.fill_(1.0 / float(z.std().clamp_min(1e-4)))
        vae.train(was)
        save_motion_model(folder, self.model)

    def preview(self, trainer: Trainer) -> None:
        """samples/step_N_motion.png: photo | VAE reconstruction's motion magnitude | extracted one."""
        m = self.model
        with torch.no_grad():
            sv = self.preview_.true
            small = resize_spectral(sv, (self.preview_.cfg.size,) * 2)
            y = m.normalizer.normalize(small)  # (K, 4, s, s)
            rec = m.normalizer.denormalize(m.vae.decode(m.vae.encode(y.to(m.vae.latent_scale.device))[0])).cpu()
        rec = resize_spectral(rec, tuple(sv.shape[-2:]))
        true = motion_magnitude(sv)
        vmax = float(np.percentile(true, 99)) or 1.0
        photo = ((self.preview_.photo.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        out = trainer.run_dir / "samples"
        out.mkdir(parents=True, exist_ok=True)
        io.write_png(out / f"step_{trainer.state['step']:07d}_motion.png",
                     np.concatenate([photo, colorize(motion_magnitude(rec), vmax), colorize(true, vmax)], 1))


class _DenoiserStage(_LatentDiffusionTask):
    """The latent denoiser's v-loss; exports the motion model, previews sampled motion."""

    def __init__(self, model: MotionModel, preview: _Preview):
        super().__init__(model, model.schedule())
        self.preview_ = preview

    def export(self, trainer: Trainer, folder: Path) -> None:
        save_motion_model(folder, self.model)

    def preview(self, trainer: Trainer) -> None:
        self.preview_.write(self.model, trainer.run_dir, trainer.state["step"])


class _RendererStage(_RenderTask):
    """`render_loss` on real (I_0, D(t), I_t) windows; exports the renderer, previews one frame."""

    def __init__(self, model: ImageRenderer, pairs: RendererPairs):
        super().__init__(None)
        self.model, self.pairs = model, pairs

    def export(self, trainer: Trainer, folder: Path) -> None:
        save_renderer(folder, self.model)

    def preview(self, trainer: Trainer) -> None:
        """samples/step_N.png: I_0 | rendered I_t | true I_t for one window."""
        self.pairs.set_epoch(0)
        b = self.pairs[0]
        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            pred = self.model(b["image"][None].to(trainer.device), b["flow"][None].to(trainer.device))[0].cpu()
        self.model.train(was)
        row = torch.cat([b["image"], pred.clamp(-1, 1), b["target"]], 2)  # (3, s, 3s)
        out = trainer.run_dir / "samples"
        out.mkdir(parents=True, exist_ok=True)
        io.write_png(out / f"step_{trainer.state['step']:07d}.png",
                     ((row.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8))


def _loop(cfg: RealMotionConfig, budget: tuple, stage: str, progress: bool) -> LoopConfig:
    steps, minutes = budget
    return LoopConfig(steps=steps, minutes=minutes, seed=step_seed(cfg.seed, STAGES.index(stage)),
                      save_every=cfg.checkpoint_every, sample_every=cfg.preview_every, device=cfg.device,
                      progress=progress, desc=f"motion {stage}")


def _start(out: Path, videos: list[Path], photos: list[Path], cfg: RealMotionConfig | None, renderer: bool,
           resume: bool) -> tuple[RealMotionConfig, list[Path], bool]:
    """Check OUT and record (or, resuming, read back) the run's settings and photos."""
    run_file = out / RUN_FILE
    if resume:
        if not run_file.is_file():
            raise VidiffError(f"cannot resume: {run_file} not found; start without --resume")
        saved = read_json(run_file)
        given, cfg = cfg, config_from_dict(RealMotionConfig, saved["config"], str(run_file))
        if given is not None and given != cfg:
            changed = [k for k, v in config_to_dict(given).items() if saved["config"].get(k) != v]
            notice(f"resuming {out} with its saved settings; ignored: "
                   + ", ".join("--" + k.replace("_", "-") for k in changed))
        if bool(saved["renderer"]) != renderer:
            raise VidiffError(f"{out} was started {'with' if saved['renderer'] else 'without'} --renderer; resume it "
                              "the same way")
        return cfg, [Path(p) for p in saved["photos"]], renderer
    if run_file.is_file():
        raise VidiffError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    cfg = cfg or RealMotionConfig()
    if cfg.size % 8 or cfg.size < 8:
        raise VidiffError(f"--size must be a multiple of 8; got {cfg.size}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_file, dumps_json({"config": config_to_dict(cfg), "videos": [str(v) for v in videos],
                                            "photos": [str(p) for p in photos], "renderer": renderer}, indent=2))
    return cfg, photos, renderer


def train_motion_real(videos: str | Path | list[Path], out: str | Path, cfg: RealMotionConfig | None = None, *,
                      steps: int | None = None, minutes: float | None = None, resume: bool = False,
                      renderer: bool = False, photos: str | Path | list[Path] | None = None,
                      callback: Callable[[str, int, dict], None] | None = None, progress: bool = True) -> dict:
    """Train the motion model (and with `renderer` the renderer) on the videos under `videos` (a folder or
    a list) plus semi-synthetic pairs of `photos`; see the module doc. Returns the training report."""
    out = Path(out)
    budgets = stage_budgets(steps, minutes, renderer)
    video_list = list_inputs(Path(videos), "videos") if isinstance(videos, (str, Path)) else list(videos)
    photo_list = (list_inputs(Path(photos), "photos", photos=True) if isinstance(photos, (str, Path))
                  else list(photos or []))
    cfg, photo_list, renderer = _start(out, video_list, photo_list, cfg, renderer, resume)

    clips_file = out / CLIPS_FILE
    if resume and clips_file.is_file():
        clips = ClipSet.load(clips_file)
    else:
        clips = extract_clips(video_list, frames=cfg.frames, k=cfg.k, stride=cfg.stride,
                              clips_per_video=cfg.clips_per_video, work_size=cfg.work_size, max_frames=cfg.max_frames,
                              camera_threshold=cfg.camera_threshold, min_motion=cfg.min_motion, fps=cfg.fps,
                              progress=progress)
        if not len(clips):
            if not resume:
                (out / RUN_FILE).unlink()  # nothing was trained: leave no run behind
            raise no_clip_error(str(videos), clips, len(video_list))
        clips_file.parent.mkdir(parents=True, exist_ok=True)
        clips.save(clips_file)
    notice(f"{clips.summary()}; {len(photo_list)} semi-synthetic photo(s)")

    pairs = MotionPairs(clips, cfg.size, crop=cfg.crop, photos=load_photos(photo_list, cfg.work_size), seed=cfg.seed)
    normalizer = FrequencyNormalizer.fit(volumes_at_size(clips, cfg.size))
    preview = _Preview(clips, cfg)
    batches = {s: StepBatches(pairs, cfg.batch, seed=step_seed(cfg.seed, i, stream=3))
               for i, s in enumerate(("vae", "stage1", "stage2"))}
    report = {"real_clips": len(clips), "semi_synthetic_photos": len(photo_list), "rejected": clips.rejected,
              "sources": clips.sources, "period": clips.period, "fps": clips.fps, "stages": {}}

    def run(stage: str, modules: dict, optimizers: dict, task, data, **kw) -> None:
        folder = out / stage
        if _stage_done(folder, budgets[stage]):
            return
        trainer = Trainer(modules, optimizers, task, config=_loop(cfg, budgets[stage], stage, progress), run_dir=folder,
                          callback=None if callback is None else (lambda step, v: callback(stage, step, v)), **kw)
        trainer.fit(data, resume=committed(folder) is not None)

    # slice VAE: the motion model's other parts are created here (seeded) and exported unchanged
    torch.manual_seed(step_seed(cfg.seed, 0, stream=4))
    model = MotionModel(cfg.motion_config("independent"), normalizer)
    pairs.set_epoch(0)
    reference = torch.stack([pairs[i]["spectral_volume"] for i in range(min(len(pairs), 16))])
    run("vae", {"vae": model.vae}, {"vae": OptimizerSpec("vae", lr=cfg.vae_lr, kind="adam")},
        _VAEStage(model, reference, preview), batches["vae"])
    model.load_state_dict(load_state_dict(out / "vae" / "model.safetensors"))

    # stage 1: the 2D denoiser on independent frequency slices
    run("stage1", {"motion": model}, {"denoiser": OptimizerSpec("motion", lr=cfg.lr)}, _DenoiserStage(model, preview),
        batches["stage1"], trainable=lambda name, p: name.startswith(("motion.backbone.", "motion.image_encoder.")))
    model.load_state_dict(load_state_dict(out / "stage1" / "model.safetensors"))

    # stage 2: the cross-frequency attention, everything else frozen
    torch.manual_seed(step_seed(cfg.seed, 2, stream=4))
    model = coordinated_from_independent(model)
    run("stage2", {"motion": model}, {"denoiser": OptimizerSpec("motion", lr=cfg.lr)}, _DenoiserStage(model, preview),
        batches["stage2"], trainable=lambda name, p: p.requires_grad and name.startswith("motion.backbone."))
    model.load_state_dict(load_state_dict(out / "stage2" / "model.safetensors"))
    save_motion_model(out, model.eval())
    config = read_json(out / "config.json")  # + the clips' frame rate, at which `vidiff animate` plays the motion
    atomic_write_text(out / "config.json", dumps_json({**config, "fps": clips.fps}, indent=2, sort_keys=True))

    if renderer:
        net = load_renderer(BUNDLED_RENDERER) if (BUNDLED_RENDERER / "config.json").is_file() \
            else ImageRenderer(RendererConfig())
        rpairs = RendererPairs(clips, cfg.renderer_crop, seed=cfg.seed)
        run("renderer", {"renderer": net}, {"renderer": OptimizerSpec("renderer", lr=cfg.renderer_lr, kind="adam")},
            _RendererStage(net, rpairs), StepBatches(rpairs, cfg.batch, seed=step_seed(cfg.seed, 3, stream=3)))
        report["renderer"] = str(out / "renderer")

    for stage in budgets:
        if committed(out / stage) is not None:
            _, st = read_state(out / stage)
            tail = st.get("losses", [])[-50:]
            report["stages"][stage] = {"steps": st["step"], "minutes": round(st["elapsed"] / 60, 2),
                                       "final_loss": sum(tail) / len(tail) if tail else None}
    atomic_write_text(out / "train_report.json", dumps_json(report, indent=2))
    return report
