"""One autoencoder interface for latent diffusion, whatever is on disk.

`load_autoencoder(path)` accepts
- a vidiff VAE folder (`model.safetensors` + `config.json` with a "vae" section, `save_vae`);
- a diffusers `AutoencoderKL` folder (Stable Diffusion layout; frames are encoded and decoded one by one);
- a diffusers `AutoencoderKLTemporalDecoder` folder (Stable Video Diffusion layout; its decoder sees the frames
  of a clip together, `num_frames`);
- a diffusers pipeline folder holding one of those under `vae/`.
Diffusers folders run through diffusers' own classes (imported when such a folder is loaded), so the outputs
are diffusers' outputs. Every autoencoder is a `vidiff.models.vae.Autoencoder`: `encode(x) -> DiagonalGaussian`,
`decode(z, chunk=, tile=)`, `scaling_factor`, `shift_factor`, `spatial_factor`, `temporal_factor`,
`latent_channels`, and `fingerprint`, the sha256 of its weights file, which a latent model records so that it
is only ever decoded by the autoencoder it was trained with.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from einops import rearrange
from torch import Tensor, nn

from ..checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_state_dict
from ..config import config_from_dict
from ..utils import VidiffError, read_json
from .vae import Autoencoder, DiagonalGaussian, VAEConfig, VideoAutoencoder

DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
SUPPORTED_DIFFUSERS = ("AutoencoderKL", "AutoencoderKLTemporalDecoder")


class IdentityAutoencoder(Autoencoder):
    """z = x: spatial and temporal factor 1, scaling 1, a point-mass posterior. A latent pipeline with it is the
    pixel pipeline (the oracle for the latent path)."""

    bounded = True

    def __init__(self, channels: int = 3):
        super().__init__()
        self.latent_channels = self.in_channels = channels
        self.fingerprint = "identity"

    def encode_moments(self, x: Tensor) -> Tensor:
        return torch.cat([x, torch.zeros_like(x)], dim=1)  # (B, 2C, F, H, W): mean x, logvar 0 (unused)

    def posterior(self, moments: Tensor) -> DiagonalGaussian:
        mean, logvar = moments.chunk(2, dim=1)
        return DiagonalGaussian(mean, logvar, deterministic=True)

    def decode_latents(self, z: Tensor) -> Tensor:
        return z


class DiffusersAutoencoder(Autoencoder):
    """A diffusers `AutoencoderKL` (per frame) or `AutoencoderKLTemporalDecoder` (clip-aware decoder) behind
    vidiff's interface; frames are folded into the batch as diffusers expects, '(b f) c h w'."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        cfg = model.config
        self.temporal_decoder = type(model).__name__ == "AutoencoderKLTemporalDecoder"
        self.latent_channels, self.in_channels = int(cfg.latent_channels), int(cfg.in_channels)
        self.spatial_factor = 2 ** (len(cfg.block_out_channels) - 1)
        self.scaling_factor = float(cfg.scaling_factor)
        self.shift_factor = float(cfg.get("shift_factor", None) or 0.0)
        # SVD's temporal blocks normalise over all frames (GroupNorm on (B, C, F, H, W)): an unbounded reach, so
        # decoding in chunks is approximate, as with SVD's own `decode_chunk_size`
        self.decoder_halo = None if self.temporal_decoder else 0

    def encode_moments(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        dist = self.model.encode(rearrange(x, "b c f h w -> (b f) c h w")).latent_dist  # (B·F, C, h, w) moments
        moments = torch.cat([dist.mean, dist.logvar], dim=1)
        return rearrange(moments, "(b f) c h w -> b c f h w", b=b)

    def decode_latents(self, z: Tensor) -> Tensor:
        b, frames = z.shape[0], z.shape[2]
        flat = rearrange(z, "b c f h w -> (b f) c h w")
        if self.temporal_decoder:
            x = self.model.decode(flat, num_frames=frames).sample  # (B·F, 3, H, W)
        else:
            x = self.model.decode(flat).sample
        return rearrange(x, "(b f) c h w -> b c f h w", b=b)


def _resolve(path: str | Path) -> Path:
    """The folder holding the autoencoder's config.json (a pipeline folder's `vae/`)."""
    path = Path(path)
    if not path.exists():
        raise VidiffError(f"autoencoder not found: {path}; give a vidiff VAE folder or a diffusers autoencoder folder")
    if path.is_file():
        path = path.parent
    if not (path / CONFIG_NAME).is_file() and (path / "vae" / CONFIG_NAME).is_file():
        path = path / "vae"
    if not (path / CONFIG_NAME).is_file():
        raise VidiffError(f"{path} holds no {CONFIG_NAME}; give a vidiff VAE folder (vidiff vae train) or a "
                          f"diffusers autoencoder folder ({' / '.join(SUPPORTED_DIFFUSERS)})")
    return path


def _read_json(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise VidiffError(f"{path} must hold a JSON object")
    return data


def weights_file(path: str | Path) -> Path:
    """The weights file of an autoencoder folder (vidiff: model.safetensors; diffusers: its .safetensors)."""
    folder = _resolve(path)
    for name in (WEIGHTS_NAME, DIFFUSERS_WEIGHTS):
        if (folder / name).is_file():
            return folder / name
    raise VidiffError(f"{folder} has no {WEIGHTS_NAME} or {DIFFUSERS_WEIGHTS}; vidiff loads safetensors weights "
                      "only (convert a .bin file with diffusers' save_pretrained(safe_serialization=True))")


def vae_fingerprint(path: str | Path) -> str:
    """sha256 of the autoencoder's weights file (hex), which a latent model records to find its autoencoder."""
    h = hashlib.sha256()
    with open(weights_file(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_autoencoder(path: str | Path, device: str | torch.device = "cpu") -> Autoencoder:
    """The autoencoder in `path` (see the module doc) in eval mode, with `fingerprint` and `source` set."""
    folder = _resolve(path)
    config = _read_json(folder / CONFIG_NAME)
    name = config.get("_class_name")
    if "vae" not in config and name is None:
        raise VidiffError(f"{folder / CONFIG_NAME} is neither a vidiff VAE config (no 'vae' section) nor a diffusers "
                          f"one (no '_class_name'); vidiff loads its own VAEs and {' / '.join(SUPPORTED_DIFFUSERS)}")
    if "vae" not in config and name not in SUPPORTED_DIFFUSERS:
        raise VidiffError(f"{folder}: diffusers class {name!r} is not a supported autoencoder; vidiff loads "
                          f"{' and '.join(SUPPORTED_DIFFUSERS)} folders")
    weights = weights_file(folder)
    if "vae" in config:
        model: Autoencoder = VideoAutoencoder(config_from_dict(VAEConfig, config["vae"], where="vae"))
        missing, unexpected = model.load_state_dict(load_state_dict(weights), strict=False)
        if missing or unexpected:
            raise VidiffError(f"weights in {folder} do not match its config: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}")
    else:
        import diffusers  # a heavy optional dependency, needed only for diffusers folders

        try:
            module = getattr(diffusers, name).from_pretrained(str(folder), torch_dtype=torch.float32)
        except Exception as e:  # noqa: BLE001 - diffusers raises many types for bad folders
            raise VidiffError(f"cannot load {folder} as a diffusers {name}: "
                              f"{(str(e).strip() or type(e).__name__).splitlines()[0][:200]}") from None
        model = DiffusersAutoencoder(module)
    model.fingerprint = vae_fingerprint(folder)
    model.source = str(folder)
    return model.to(device).eval()


__all__ = ["DiffusersAutoencoder", "IdentityAutoencoder", "SUPPORTED_DIFFUSERS", "load_autoencoder",
           "vae_fingerprint", "weights_file"]
