"""A user's diffusers folders as vidiff components: Stable Diffusion 1.x/2.x and Stable Video Diffusion.

The layout is read from `model_index.json` and each component's config (`_class_name`); every
component loads from the folder itself (`local_files_only`, safetensors only): nothing downloads.
diffusers and transformers are imported here only, when a folder is loaded.

The UNets become vidiff backbones `(x (B, C, F, H, W), t (B,), cond) -> prediction` that know nothing
about noise schedules except the declared time convention mapping vidiff's t ∈ [0, 1] to the
timestep the network was trained on:
- Stable Diffusion: the DDPM β table as a `LinearSchedule`, whose t = (k + 1)/N is diffusers
  timestep k (`DDPMTimesteps`); ε or v prediction as the scheduler config says. Frames are folded
  into the batch, so a video is a batch of independent images.
- Stable Video Diffusion: an `EDMSchedule` (σ_min, σ_max of the scheduler config, ρ = 7) and
  c_noise = ¼ ln σ (`EDMTimesteps`); its v-prediction in VP form is EDM's preconditioning
  (see `diffusion.edm`). The conditioning frame's latent is concatenated to every frame
  (`Cond.concat`), its CLIP image embedding is attended to (`Cond.text`, (B, 1, D)), and fps − 1 and
  the motion bucket (`Cond.micro`) with the noise-augmentation strength (`Cond.noise_aug`) are the
  added time ids.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange
from torch import Tensor, nn

from ..conditioning import Cond
from ..diffusion.edm import sigma_of_t
from ..diffusion.schedule import EDMSchedule, LinearSchedule
from ..utils import VidiffError

__all__ = [
    "STABLE_DIFFUSION", "STABLE_VIDEO_DIFFUSION", "DiffusersLayout", "is_diffusers_folder", "read_layout",
    "DDPMTimesteps", "EDMTimesteps", "SDUNet", "SVDUNet", "sd_schedule", "svd_schedule",
    "load_unet", "load_vae", "load_text_encoder", "load_image_encoder", "image_normalization",
]

STABLE_DIFFUSION, STABLE_VIDEO_DIFFUSION = "stable_diffusion", "stable_video_diffusion"

# component -> the classes vidiff drives there; `required` components must be present
_SD_SCHEDULERS = ("DDIMScheduler", "PNDMScheduler", "DDPMScheduler", "EulerDiscreteScheduler",
                  "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler", "LMSDiscreteScheduler",
                  "UniPCMultistepScheduler", "HeunDiscreteScheduler")
LAYOUTS = {
    STABLE_DIFFUSION: {
        "unet": ("UNet2DConditionModel",), "vae": ("AutoencoderKL",), "scheduler": _SD_SCHEDULERS,
        "text_encoder": ("CLIPTextModel",), "tokenizer": ("CLIPTokenizer", "CLIPTokenizerFast"),
    },
    STABLE_VIDEO_DIFFUSION: {
        "unet": ("UNetSpatioTemporalConditionModel",), "vae": ("AutoencoderKLTemporalDecoder",),
        "scheduler": ("EulerDiscreteScheduler",), "image_encoder": ("CLIPVisionModelWithProjection",),
        "feature_extractor": ("CLIPImageProcessor", "CLIPImageProcessorPil", "CLIPImageProcessorFast",
                              "CLIPFeatureExtractor"),
    },
}
REQUIRED = {STABLE_DIFFUSION: ("unet", "vae", "scheduler"),
            STABLE_VIDEO_DIFFUSION: ("unet", "vae", "scheduler", "image_encoder", "feature_extractor")}
_KIND_OF_UNET = {"UNet2DConditionModel": STABLE_DIFFUSION, "UNetSpatioTemporalConditionModel": STABLE_VIDEO_DIFFUSION}
_CONFIG_FILES = ("config.json", "scheduler_config.json", "preprocessor_config.json", "tokenizer_config.json")


# --- the layout --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DiffusersLayout:
    """What a diffusers folder holds: its kind and, per component, the class it declares."""

    folder: Path
    kind: str
    components: dict


def is_diffusers_folder(path: str | Path) -> bool:
    """True for a folder with `model_index.json` or a `unet/config.json` (a diffusers pipeline folder)."""
    p = Path(path)
    return p.is_dir() and ((p / "model_index.json").is_file() or (p / "unet" / "config.json").is_file())


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VidiffError(f"cannot read {path} ({type(e).__name__}); is it a diffusers folder?") from None
    if not isinstance(data, dict):
        raise VidiffError(f"{path} must hold a JSON object")
    return data


def _declared_class(folder: Path, name: str) -> str | None:
    """The class a component folder's own config declares (diffusers `_class_name`, transformers
    `architectures` / `tokenizer_class` / `image_processor_type`), or None when it has no config."""
    for fname in _CONFIG_FILES:
        path = folder / name / fname
        if path.is_file():
            cfg = _read_json(path)
            for key in ("_class_name", "tokenizer_class", "image_processor_type", "feature_extractor_type"):
                if isinstance(cfg.get(key), str):
                    return cfg[key]
            if isinstance(cfg.get("architectures"), list) and cfg["architectures"]:
                return str(cfg["architectures"][0])
    return None


def read_layout(folder: str | Path) -> DiffusersLayout:
    """The layout of a diffusers folder; a missing component or an unsupported class is a one-line
    VidiffError naming both."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VidiffError(f"{folder} is not a folder; give a diffusers Stable Diffusion or Stable Video Diffusion "
                          "folder")
    index = _read_json(folder / "model_index.json") if (folder / "model_index.json").is_file() else {}
    declared = {k: v[1] for k, v in index.items()
                if not k.startswith("_") and isinstance(v, list) and len(v) == 2 and v[1] is not None}
    unet = declared.get("unet") or _declared_class(folder, "unet")
    if unet is None:
        raise VidiffError(f"missing component 'unet' (UNet2DConditionModel or UNetSpatioTemporalConditionModel) "
                          f"in {folder}; give a diffusers pipeline folder")
    if unet not in _KIND_OF_UNET:
        raise VidiffError(f"unsupported class {unet!r} for component 'unet' in {folder}; vidiff drives "
                          f"{' (Stable Diffusion) and '.join(_KIND_OF_UNET)} (Stable Video Diffusion)")
    kind = _KIND_OF_UNET[unet]
    components = {}
    for name, classes in LAYOUTS[kind].items():
        on_disk = _declared_class(folder, name) if (folder / name).is_dir() else None
        cls = on_disk or declared.get(name)
        if not (folder / name).is_dir():
            if name in REQUIRED[kind]:
                raise VidiffError(f"missing component {name!r} ({' or '.join(classes[:2])}) in {folder}: "
                                  f"there is no {name}/ folder")
            continue
        if cls is None:
            raise VidiffError(f"component {name!r} in {folder} has no config naming its class; expected "
                              f"{' or '.join(classes[:2])}")
        if cls not in classes:
            raise VidiffError(f"unsupported class {cls!r} for component {name!r} in {folder}; vidiff drives "
                              f"{', '.join(classes)} there")
        components[name] = cls
    if kind == STABLE_DIFFUSION and ("text_encoder" in components) != ("tokenizer" in components):
        have, lack = ("text_encoder", "tokenizer") if "text_encoder" in components else ("tokenizer", "text_encoder")
        raise VidiffError(f"missing component {lack!r} in {folder}: {have}/ needs it to encode prompts")
    return DiffusersLayout(folder, kind, components)


# --- time conventions --------------------------------------------------------------------------------

@dataclass(frozen=True)
class DDPMTimesteps:
    """Stable Diffusion's discrete time: vidiff t = (k + 1)/N is diffusers timestep k (`LinearSchedule`);
    k within float32 round-off of an integer is that integer (the network was trained on integers)."""

    num_train_steps: int = 1000

    def __call__(self, t: Tensor) -> Tensor:
        k = t.double() * self.num_train_steps - 1
        near = torch.round(k)
        return torch.where((k - near).abs() < 1e-3, near, k).float()


@dataclass(frozen=True)
class EDMTimesteps:
    """Stable Video Diffusion's continuous time: c_noise = ¼ ln σ(t), σ = σ_t/α_t of the EDM schedule."""

    schedule: EDMSchedule

    def __call__(self, t: Tensor) -> Tensor:
        return (0.25 * torch.log(sigma_of_t(self.schedule, t.double().cpu()))).float().to(t.device)


def _config(folder: Path, name: str, fname: str) -> dict:
    return _read_json(folder / name / fname)


def sd_schedule(folder: str | Path) -> tuple[LinearSchedule, str, dict]:
    """(schedule, parameterization, scheduler config) of a Stable Diffusion folder's scheduler."""
    folder = Path(folder)
    cfg = _config(folder, "scheduler", "scheduler_config.json")
    where = f"{folder}/scheduler"
    for key in ("trained_betas", "rescale_betas_zero_snr", "thresholding"):
        if cfg.get(key):
            raise VidiffError(f"{where}: '{key}' is not supported by vidiff's Stable Diffusion path")
    beta_schedule = cfg.get("beta_schedule", "linear")
    if beta_schedule not in ("linear", "scaled_linear"):
        raise VidiffError(f"{where}: beta_schedule {beta_schedule!r} is not supported; vidiff reads 'linear' "
                          "and 'scaled_linear' tables")
    prediction = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}.get(cfg.get("prediction_type", "epsilon"))
    if prediction is None:
        raise VidiffError(f"{where}: unsupported prediction_type {cfg.get('prediction_type')!r}")
    schedule = LinearSchedule(cfg.get("beta_start", 0.0001), cfg.get("beta_end", 0.02),
                              cfg.get("num_train_timesteps", 1000), beta_schedule=beta_schedule)
    return schedule, prediction, cfg


def svd_schedule(folder: str | Path) -> tuple[EDMSchedule, dict]:
    """(EDM schedule, scheduler config) of a Stable Video Diffusion folder: v-prediction with continuous
    c_noise timesteps on EDM's σ grid, as SVD's EulerDiscreteScheduler is configured."""
    folder = Path(folder)
    cfg = _config(folder, "scheduler", "scheduler_config.json")
    want = {"prediction_type": "v_prediction", "timestep_type": "continuous", "use_karras_sigmas": True}
    for key, value in want.items():
        if cfg.get(key) != value:
            raise VidiffError(f"{folder}/scheduler: {key} is {cfg.get(key)!r}; vidiff's Stable Video Diffusion path "
                              f"needs {value!r} (SVD's EDM configuration)")
    return EDMSchedule(cfg.get("sigma_min", 0.002), cfg.get("sigma_max", 700.0), 7.0), cfg


# --- backbones ---------------------------------------------------------------------------------------

class SDUNet(nn.Module):
    """A diffusers `UNet2DConditionModel` as a vidiff backbone: x (B, C, F, H, W) with frames folded into
    the batch, t (B,) through `timesteps`, `cond.text` (B, L, D) the text encoder's hidden states
    (samples flagged in `cond.drop` get `null_text`, the empty prompt's)."""

    def __init__(self, unet: nn.Module, timesteps: DDPMTimesteps, null_text: Tensor | None = None):
        super().__init__()
        self.unet, self.timesteps = unet, timesteps
        self.null_text = null_text

    def forward(self, x: Tensor, t: Tensor, cond: Cond | None = None) -> Tensor:
        if x.dim() != 5:
            raise VidiffError(f"expected video of shape (B, C, F, H, W), got {tuple(x.shape)}")
        b, frames = x.shape[0], x.shape[2]
        text = _text(cond, self.null_text, "a prompt's text embeddings (cond.text)")
        h = rearrange(x, "b c f h w -> (b f) c h w")  # (B·F, C, H, W)
        k = self.timesteps(t).repeat_interleave(frames)  # (B·F,)
        ctx = text.to(x.dtype).repeat_interleave(frames, dim=0)  # (B·F, L, D)
        out = self.unet(h, k, encoder_hidden_states=ctx).sample  # (B·F, C, H, W)
        return rearrange(out, "(b f) c h w -> b c f h w", b=b)


class SVDUNet(nn.Module):
    """A diffusers `UNetSpatioTemporalConditionModel` as a vidiff backbone: x (B, C, F, h, w) is z_t,
    `cond.concat` (B, C', F, h, w) the conditioning frame's latent on every frame, `cond.text` (B, 1, D) its
    image embedding (zeros where `cond.drop`), `cond.micro` (B, 2) = (fps − 1, motion bucket) and
    `cond.noise_aug` (B,) the added time ids; t (B,) through `timesteps` (c_noise)."""

    def __init__(self, unet: nn.Module, timesteps: EDMTimesteps):
        super().__init__()
        self.unet, self.timesteps = unet, timesteps

    def forward(self, x: Tensor, t: Tensor, cond: Cond | None = None) -> Tensor:
        if x.dim() != 5:
            raise VidiffError(f"expected video of shape (B, C, F, H, W), got {tuple(x.shape)}")
        b = x.shape[0]
        if cond is None or cond.concat is None or cond.micro is None or cond.noise_aug is None:
            raise VidiffError("Stable Video Diffusion needs cond.concat (the image latent), cond.micro (fps − 1, "
                              "motion bucket) and cond.noise_aug; build them with the image-to-video pipeline")
        emb = _text(cond, None, "the conditioning image's embedding (cond.text)")  # (B, 1, D)
        h = torch.cat([x, cond.concat.to(x.dtype)], dim=1)  # (B, C + C', F, h, w)
        h = rearrange(h, "b c f h w -> b f c h w")  # diffusers' video layout
        added = torch.cat([cond.micro, cond.noise_aug[:, None]], dim=1).to(x.dtype)  # (B, 3)
        out = self.unet(h, self.timesteps(t), encoder_hidden_states=emb.to(x.dtype), added_time_ids=added).sample
        return rearrange(out, "b f c h w -> b c f h w", b=b)  # (B, C, F, h, w)


def _text(cond: Cond | None, null: Tensor | None, what: str) -> Tensor:
    """cond.text with the samples flagged in cond.drop replaced by `null` (zeros when None)."""
    if cond is None or cond.text is None:
        raise VidiffError(f"this diffusers UNet needs {what}")
    text = cond.text
    if cond.drop is not None and bool(cond.drop.any()):
        keep = (~cond.drop.bool()).to(text.device)[:, None, None]  # (B, 1, 1)
        fill = torch.zeros_like(text) if null is None else null.to(text).expand_as(text)
        text = torch.where(keep, text, fill)
    return text


# --- loading -----------------------------------------------------------------------------------------

def _load(loader, folder: Path, name: str, **kw):
    """`loader.from_pretrained(folder/name)` from local safetensors files only, errors as one line."""
    try:
        return loader.from_pretrained(str(folder / name), local_files_only=True, use_safetensors=True, **kw)
    except Exception as e:  # noqa: BLE001 - diffusers/transformers raise many types for bad folders
        msg = (str(e).strip() or type(e).__name__).splitlines()[0][:200]
        raise VidiffError(f"cannot load {folder / name} as a {loader.__name__}: {msg}") from None


def load_unet(layout: DiffusersLayout) -> nn.Module:
    """The folder's UNet as a vidiff backbone (`SDUNet` or `SVDUNet`), float32, eval mode."""
    import diffusers  # heavy optional dependency: only when a diffusers folder is loaded

    unet = _load(getattr(diffusers, layout.components["unet"]), layout.folder, "unet", torch_dtype=torch.float32)
    if layout.kind == STABLE_DIFFUSION:
        schedule, _, _ = sd_schedule(layout.folder)
        return SDUNet(unet, DDPMTimesteps(schedule.num_train_steps)).eval()
    schedule, _ = svd_schedule(layout.folder)
    return SVDUNet(unet, EDMTimesteps(schedule)).eval()


def load_vae(layout: DiffusersLayout):
    """The folder's autoencoder behind vidiff's `Autoencoder` interface (`models.autoencoders`)."""
    from .autoencoders import load_autoencoder

    return load_autoencoder(layout.folder / "vae")


def load_text_encoder(layout: DiffusersLayout) -> tuple[nn.Module, object] | tuple[None, None]:
    """(CLIP text encoder, tokenizer), or (None, None) when the folder has neither."""
    if "text_encoder" not in layout.components:
        return None, None
    import transformers  # heavy optional dependency

    encoder = _load(transformers.CLIPTextModel, layout.folder, "text_encoder", dtype=torch.float32).eval()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(layout.folder / "tokenizer"), local_files_only=True)
    except Exception as e:  # noqa: BLE001
        msg = (str(e).strip() or type(e).__name__).splitlines()[0][:200]
        raise VidiffError(f"cannot load the tokenizer in {layout.folder / 'tokenizer'}: {msg}") from None
    return encoder, tokenizer


def load_image_encoder(layout: DiffusersLayout) -> nn.Module:
    """The CLIP vision encoder with projection (SVD's image embedding), float32, eval mode."""
    import transformers  # heavy optional dependency

    return _load(transformers.CLIPVisionModelWithProjection, layout.folder, "image_encoder", dtype=torch.float32).eval()


def image_normalization(layout: DiffusersLayout) -> tuple[Tensor, Tensor]:
    """The feature extractor's per-channel (mean, std), each (3,), for images in [0, 1]."""
    cfg = _config(layout.folder, "feature_extractor", "preprocessor_config.json")
    mean, std = cfg.get("image_mean"), cfg.get("image_std")
    if not (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in mean + std) and min(std) > 0):
        raise VidiffError(f"{layout.folder}/feature_extractor/preprocessor_config.json needs image_mean and "
                          "image_std, three numbers each (std > 0)")
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
