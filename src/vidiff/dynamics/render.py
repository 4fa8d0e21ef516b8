"""Image-based rendering of a frame from the input image and a motion texture (GID sec. 5).

Two renderers share one call signature ``renderer(image (B, 3, H, W) in [-1, 1], flow (B, 2, H, W))``:
  * ``SplatRenderer`` (no weights): softmax-splat the image with the GID motion-magnitude metric,
    then fill holes by push–pull normalised blur (``fill_holes``). This is what the CLI uses.
  * ``ImageRenderer`` (learned): a small conv encoder builds a feature pyramid of the image; each
    level is softmax-splatted with the downscaled motion; a synthesis decoder turns the splatted
    features (+ coverage) into a residual added to the hole-filled splatted image. The last conv
    starts at zero, so an untrained model equals ``SplatRenderer``. Trained with ``train_renderer``
    on frame pairs (I_0, I_t) with L1 + multi-scale gradient loss (+ VGG16 perceptual loss from a
    local weight file, if the user has one: ``load_vgg16_features``).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..training import LoopConfig, OptimizerSpec, StepBatches, Task, Trainer
from ..utils import VidiffError
from .spectral import motion_texture
from .splat import motion_metric, splat


def fill_holes(x: Tensor, cover: Tensor, threshold: float = 1e-3) -> Tensor:
    """Push–pull normalised blur: keep ``x`` where ``cover > threshold``, fill the rest from coarser levels.

    ``x (B, C, H, W)``, ``cover (B, 1, H, W)`` (splat coverage). Push: average (x·m, m) down a
    pyramid; pull: upsample the coarse estimate and blend ``c + (1 − m)·up`` with c = avg(x·m).
    """
    m = (cover > threshold).to(x.dtype)
    cs, ms = [x * m], [m]
    while min(cs[-1].shape[-2:]) > 1 and float(ms[-1].min()) == 0.0:
        cs.append(F.avg_pool2d(cs[-1], 2, ceil_mode=True))
        ms.append(F.avg_pool2d(ms[-1], 2, ceil_mode=True))
    est = cs[-1] / ms[-1].clamp_min(1e-8)
    for c, mm in zip(reversed(cs[:-1]), reversed(ms[:-1])):
        up = F.interpolate(est, size=c.shape[-2:], mode="bilinear", align_corners=False)
        est = torch.where(mm > 0, c / mm.clamp_min(1e-8), up) * mm.clamp(max=1) + up * (1 - mm.clamp(max=1))
    return est


class SplatRenderer(nn.Module):
    """Non-learned renderer: softmax splat (metric = scale·|F|) + push–pull hole filling."""

    def __init__(self, metric_scale: float = 1.0):
        super().__init__()
        self.metric_scale = metric_scale

    def forward(self, image: Tensor, flow: Tensor) -> Tensor:
        out, cover = splat(image, flow, "softmax", motion_metric(flow, self.metric_scale), return_weight=True)
        return fill_holes(out, cover)  # (B, C, H, W)


@dataclass(frozen=True)
class RendererConfig:
    """Sizes of the learned renderer: channels per pyramid level (level l is 1/2^l resolution)."""

    channels: tuple[int, ...] = (16, 32, 64)
    metric_scale: float = 1.0


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2))


class ImageRenderer(nn.Module):
    """Learned renderer: feature pyramid -> per-level softmax splat -> synthesis decoder (module doc)."""

    def __init__(self, cfg: RendererConfig = RendererConfig()):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        self.enc = nn.ModuleList([_conv(3, ch[0])] + [_conv(ch[i - 1], ch[i], 2) for i in range(1, len(ch))])
        self.dec = nn.ModuleList()
        for i in reversed(range(len(ch))):
            cin = ch[i] + 1 + (ch[i + 1] if i + 1 < len(ch) else 0) + (3 if i == 0 else 0)
            self.dec.append(_conv(cin, ch[i]))
        self.out = nn.Conv2d(ch[0], 3, 3, 1, 1)
        nn.init.normal_(self.out.weight, std=1e-3)  # near zero: starts as SplatRenderer, yet every layer gets gradient
        nn.init.zeros_(self.out.bias)

    def forward(self, image: Tensor, flow: Tensor) -> Tensor:
        b, _, h, w = image.shape
        feats, x = [], image
        for enc in self.enc:
            x = enc(x)
            feats.append(x)  # level l: (B, C_l, H/2^l, W/2^l)
        warped = []
        for lvl, f in enumerate(feats):
            fl = flow if lvl == 0 else F.adaptive_avg_pool2d(flow, f.shape[-2:]) * (f.shape[-1] / w)
            s, cov = splat(f, fl, "softmax", motion_metric(fl, self.cfg.metric_scale), return_weight=True)
            warped.append(torch.cat([s, cov.clamp(max=1.0)], 1))  # (B, C_l + 1, h_l, w_l)
        base_out, base_cov = splat(image, flow, "softmax", motion_metric(flow, self.cfg.metric_scale),
                                   return_weight=True)
        base = fill_holes(base_out, base_cov)  # (B, 3, H, W)
        y = None
        for i, dec in zip(reversed(range(len(feats))), self.dec):
            parts = [warped[i]]
            if y is not None:
                parts.append(F.interpolate(y, size=warped[i].shape[-2:], mode="bilinear", align_corners=False))
            if i == 0:
                parts.append(base)
            y = dec(torch.cat(parts, 1))  # (B, C_i, h_i, w_i)
        return base + self.out(y)  # (B, 3, H, W)


def gradient_loss(pred: Tensor, target: Tensor, scales: int = 3) -> Tensor:
    """Multi-scale gradient loss: Σ_s mean |∇pred_s − ∇target_s| over 2× average-pooled scales."""
    loss = pred.new_zeros(())
    for s in range(scales):
        if s:
            pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
        d = pred - target
        loss = loss + (d[..., :, 1:] - d[..., :, :-1]).abs().mean() + (d[..., 1:, :] - d[..., :-1, :]).abs().mean()
        if min(pred.shape[-2:]) < 4:
            break
    return loss


def vgg16_features(upto: int = 16) -> nn.Sequential:
    """The first ``upto`` layers of torchvision's VGG16 ``features`` (layout shared with vidiff.metrics.lpips)."""
    from ..metrics.lpips import vgg16_features as vgg16_full

    return nn.Sequential(*list(vgg16_full())[:upto])


def load_vgg16_features(path: str | Path, upto: int = 16) -> nn.Sequential:
    """Load a local torchvision-format VGG16 state dict (full model ``features.N.*`` or features-only ``N.*``).

    Reads .safetensors, or .pth/.pt with ``torch.load(weights_only=True)``; never downloads.
    """
    path = Path(path)
    if not path.is_file():
        raise VidiffError(f"VGG16 weights not found: {path}; pass a local torchvision vgg16 state dict file")
    if path.suffix == ".safetensors":
        from ..checkpoint import load_state_dict
        state = load_state_dict(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise VidiffError(f"cannot read {path} as a weights-only torch file ({type(e).__name__})") from None
    if not isinstance(state, dict):
        raise VidiffError(f"{path} does not hold a state dict")
    if any(k.startswith("features.") for k in state):
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    net = vgg16_features(upto)
    want = net.state_dict()
    missing = [k for k in want if k not in state]
    if missing:
        raise VidiffError(f"{path} is not a torchvision VGG16 state dict: missing {missing[:3]}")
    try:
        net.load_state_dict({k: state[k] for k in want})
    except RuntimeError as e:
        raise VidiffError(f"{path}: VGG16 weights have the wrong shapes ({str(e).splitlines()[0][:120]})") from None
    return net.eval().requires_grad_(False)


class PerceptualLoss(nn.Module):
    """L1 between VGG16 activations (relu1_2, relu2_2, relu3_3) of ImageNet-normalised images in [-1, 1]."""

    taps = (3, 8, 15)

    def __init__(self, vgg: nn.Sequential):
        super().__init__()
        self.vgg = vgg
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        x = torch.cat([pred, target]).add(1).div(2).sub(self.mean).div(self.std)  # (2B, 3, H, W)
        loss = x.new_zeros(())
        for i, layer in enumerate(self.vgg):
            x = layer(x)
            if i in self.taps:
                a, b = x.chunk(2)
                loss = loss + (a - b).abs().mean()
        return loss


def render_loss(pred: Tensor, target: Tensor, perceptual: PerceptualLoss | None = None,
                grad_weight: float = 1.0, perceptual_weight: float = 0.1) -> Tensor:
    """L1 + multi-scale gradient loss (+ perceptual)."""
    loss = (pred - target).abs().mean() + grad_weight * gradient_loss(pred, target)
    if perceptual is not None:
        loss = loss + perceptual_weight * perceptual(pred, target)
    return loss


class ScenePairs(torch.utils.data.Dataset):
    """Every training pair {"image", "flow", "target"} = (I_0, D(t), I_t) of procedural scenes, t = 1..T−1:
    item i is pair number i in scene order (uniform draws of i are uniform over scenes and times)."""

    def __init__(self, scenes: list):
        self.scenes = scenes
        self.offsets = [0]
        for sc in scenes:
            self.offsets.append(self.offsets[-1] + sc.period - 1)

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, i: int) -> dict:
        s = bisect.bisect_right(self.offsets, i) - 1
        sc, t = self.scenes[s], i - self.offsets[s] + 1
        return {"image": torch.from_numpy(sc.image).permute(2, 0, 1).float() / 127.5 - 1,  # (3, H, W)
                "flow": motion_texture(sc.spectral_volume, float(t), sc.period),  # (2, H, W)
                "target": torch.from_numpy(sc.video[t]).permute(2, 0, 1).float() / 127.5 - 1}


class _RenderTask(Task):
    """`render_loss` of the renderer's frame against the true frame."""

    def __init__(self, perceptual: PerceptualLoss | None):
        self.perceptual = perceptual

    def setup(self, trainer: Trainer) -> None:
        if self.perceptual is not None:
            self.perceptual.to(trainer.device)

    def losses(self, trainer: Trainer, batch: dict, step: int, generator: torch.Generator) -> dict:
        b = {k: v.to(trainer.device) for k, v in batch.items()}
        return {"renderer": render_loss(trainer.modules["renderer"](b["image"], b["flow"]), b["target"],
                                        self.perceptual)}


def train_renderer(model: nn.Module, batches: Iterable[dict] | StepBatches, steps: int, lr: float = 1e-3,
                   perceptual: PerceptualLoss | None = None, device: str | torch.device = "cpu",
                   callback: Callable[[int, float], None] | None = None, seed: int = 0,
                   progress: bool = False) -> list[float]:
    """Adam on ``render_loss`` over ``steps`` batches {"image", "flow", "target"} (the trainer core);
    returns the losses. The model is left in eval mode."""
    if steps == 0:
        return []
    trainer = Trainer({"renderer": model}, {"renderer": OptimizerSpec("renderer", lr=lr, kind="adam")},
                      _RenderTask(perceptual),
                      config=LoopConfig(steps=steps, seed=seed, device=torch.device(device).type, progress=progress,
                                        desc="training renderer"),
                      callback=None if callback is None else (lambda step, values: callback(step, values["renderer"])))
    losses = trainer.fit(batches)["losses"]
    model.eval()
    return losses


def save_renderer(folder: str | Path, model: ImageRenderer) -> Path:
    """``folder/model.safetensors`` + ``config.json`` ({"renderer": RendererConfig})."""
    from ..checkpoint import save_pretrained
    from ..config import config_to_dict
    return save_pretrained(folder, model, {"renderer": config_to_dict(model.cfg)})


def load_renderer(folder: str | Path) -> ImageRenderer:
    """Inverse of ``save_renderer`` (safetensors only)."""
    from ..checkpoint import WEIGHTS_NAME, load_state_dict, read_config
    from ..config import config_from_dict
    cfg = read_config(folder)
    if "renderer" not in cfg:
        raise VidiffError(f"{folder} is not a renderer checkpoint: config.json has no 'renderer' section")
    model = ImageRenderer(config_from_dict(RendererConfig, cfg["renderer"]))
    model.load_state_dict(load_state_dict(Path(folder) / WEIGHTS_NAME))
    return model.eval()
