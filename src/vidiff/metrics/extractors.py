"""Feature extractors for FVD / FID / KID, from user-supplied local files only (nothing is downloaded).

Accepted weight files:
  I3D (video, FVD):  StyleGAN-V `i3d_torchscript.pt` (TorchScript; the one format where a TorchScript archive
                     is accepted), or the VideoGPT/TATS state dict `i3d_pretrained_400.pt` (loaded with
                     torch.load(weights_only=True) into our InceptionI3d), or the same state dict as .safetensors.
  Inception (image, FID/KID): pytorch-fid's `pt_inception-2015-12-05-*.pth` state dict (or .safetensors).
Without a file, `fallback_extractor` gives features of a fixed random-init network; it is labelled as such
and never substituted silently.
"""
from __future__ import annotations

import dataclasses
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils import VidiffError, notice
from .protocol import as_video_tensor, resize_video, sha256_file

I3D_FORMATS = ("StyleGAN-V TorchScript i3d_torchscript.pt", "VideoGPT/TATS state dict i3d_pretrained_400.pt",
               "that state dict as .safetensors")
INCEPTION_FORMATS = ("pytorch-fid state dict pt_inception-2015-12-05-*.pth", "that state dict as .safetensors")


@dataclasses.dataclass
class FeatureExtractor:
    """Maps videos to features. `kind='video'`: one vector per clip; `kind='image'`: one per frame."""

    name: str
    kind: Literal["video", "image"]
    input_size: int
    fn: Callable[[Tensor], Tensor]  # (B, 3, F, S, S) or (B, 3, S, S) in [-1, 1] -> (B, D)
    weights_sha256: str | None = None
    comparable: bool = False
    device: str = "cpu"

    @torch.no_grad()
    def __call__(self, videos, batch_size: int = 8, progress: bool = False) -> np.ndarray:
        """Videos (B, C, F, H, W) in [-1, 1] (or uint8 (N, F, H, W, 3)) -> float64 features (B or B·F, D)."""
        if isinstance(videos, Tensor):
            v = as_video_tensor(videos)
            if self.kind == "image":  # every frame is an image
                v = v.permute(0, 2, 1, 3, 4).reshape(-1, v.shape[1], 1, *v.shape[-2:])  # (B*F, C, 1, H, W)
        else:  # uint8 (N, F, H, W, 3): converted batch by batch to bound memory
            v = np.asarray(videos)
            v = v[None] if v.ndim == 4 else v
            if self.kind == "image":
                v = v.reshape(-1, 1, *v.shape[2:])  # (N*F, 1, H, W, 3)
        out = []
        starts = range(0, v.shape[0], batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc=f"features ({self.name})", leave=False)
        for s in starts:
            x = resize_video(as_video_tensor(v[s:s + batch_size]), self.input_size).to(self.device)  # (b, 3, F, S, S)
            if self.kind == "image":
                x = x[:, :, 0]  # (b, 3, S, S)
            out.append(self.fn(x).double().cpu().reshape(x.shape[0], -1))
        return torch.cat(out).numpy()


def _looks_like_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _read_state_dict(path: Path, formats: tuple[str, ...]) -> dict[str, Tensor]:
    """A tensor mapping from .safetensors or a torch.save file (weights_only=True), unwrapped."""
    accepted = "; ".join(formats)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling / parsing errors of many kinds
        msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:100]}" if str(e).strip() else type(e).__name__
        raise VidiffError(f"cannot read weights {path} as a state dict ({msg}); accepted formats: {accepted}") from None
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise VidiffError(f"{path} holds no state dict of tensors; accepted formats: {accepted}")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_matching(model: nn.Module, sd: dict[str, Tensor], path: Path, formats: tuple[str, ...]) -> nn.Module:
    """Load `sd` into `model` requiring the same names and shapes (BatchNorm counters optional)."""
    own = model.state_dict()
    skip = "num_batches_tracked"
    missing = [k for k in own if k not in sd and not k.endswith(skip)]
    unexpected = [k for k in sd if k not in own]
    wrong = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
                  else f"shape mismatch {wrong[:3]}")
        raise VidiffError(
            f"{path} does not match {type(model).__name__} ({detail}); accepted formats: {'; '.join(formats)}"
        )
    model.load_state_dict({**{k: v for k, v in own.items() if k.endswith(skip)}, **sd})
    return model.eval()


def _check_file(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise VidiffError(f"weights file not found: {path}; give a local file (nothing is downloaded)")
    return path


def load_i3d(path, features: Literal["logits", "pool"] = "logits", device: str = "cpu") -> FeatureExtractor:
    """I3D extractor from a local file; input 224×224 in [-1, 1].

    TorchScript (StyleGAN-V) is called as model(x, rescale=False, resize=False, return_features=True);
    a state dict loads into InceptionI3d and gives the 400 logits (features='logits', as VideoGPT/TATS) or the
    1024-d pooled features (features='pool').
    """
    path = _check_file(path)
    sha = sha256_file(path)
    if _looks_like_torchscript(path):
        notice(f"{path} is a TorchScript file: loading it runs the model code it contains; use only files you trust")
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated upstream but is this file's format
                warnings.simplefilter("ignore", DeprecationWarning)
                ts = torch.jit.load(str(path), map_location=device).eval()
        except Exception as e:  # noqa: BLE001
            raise VidiffError(f"cannot load TorchScript {path}: {str(e).splitlines()[0][:120]}; "
                              f"accepted formats: {'; '.join(I3D_FORMATS)}") from None

        def fn(x: Tensor) -> Tensor:
            return ts(x, rescale=False, resize=False, return_features=True)

        return FeatureExtractor("i3d-torchscript", "video", 224, fn, sha, True, device)
    from .i3d import InceptionI3d

    model = load_matching(InceptionI3d(), _read_state_dict(path, I3D_FORMATS), path, I3D_FORMATS).to(device)
    if features not in ("logits", "pool"):
        raise VidiffError(f"unknown I3D features {features!r}; use 'logits' or 'pool'")
    fn = model if features == "logits" else model.features
    return FeatureExtractor(f"i3d-400-{features}", "video", 224, fn, sha, True, device)


def load_inception(path, device: str = "cpu", output: Literal["pool3", "logits"] = "pool3") -> FeatureExtractor:
    """FID Inception-v3 extractor (2048-d pool3, or the 1008 logits for the Inception Score) from pytorch-fid's
    state dict; frames resized to 299×299."""
    if output not in ("pool3", "logits"):
        raise VidiffError(f"unknown Inception output {output!r}; use 'pool3' or 'logits'")
    path = _check_file(path)
    if _looks_like_torchscript(path):
        raise VidiffError(f"{path} is a TorchScript archive; accepted formats: {'; '.join(INCEPTION_FORMATS)}")
    from .inception import FIDInceptionV3

    model = load_matching(FIDInceptionV3(), _read_state_dict(path, INCEPTION_FORMATS), path, INCEPTION_FORMATS)
    model = model.to(device)
    fn = model.features if output == "pool3" else model
    return FeatureExtractor(f"inception-v3-fid-{output}", "image", 299, fn, sha256_file(path), True, device)


class RandomVideoNet(nn.Module):
    """Fixed random-init 3-D conv net (He-normal weights from `seed`); features: mean and std of 3 stages."""

    def __init__(self, seed: int = 0, width: int = 16):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        chans = [3, width, 2 * width, 4 * width]
        self.convs = nn.ModuleList(nn.Conv3d(a, b, 3, stride=(1, 2, 2), padding=1) for a, b in zip(chans, chans[1:]))
        for conv in self.convs:
            fan_in = conv.weight[0].numel()
            conv.weight.data = torch.randn(conv.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5
            conv.bias.data.zero_()
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        feats = []
        for conv in self.convs:
            x = F.relu(conv(x))  # (B, c, F, H/2, W/2)
            feats += [x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4), unbiased=False)]
        return torch.cat(feats, 1)  # (B, 2 * (16 + 32 + 64))


def motion_statistics(x: Tensor) -> Tensor:
    """Hand-made motion features (B, 9): per channel mean |Δ_t x|, mean temporal std, mean |∇_xy x|."""
    dt = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(2, 3, 4)) if x.shape[2] > 1 else x.new_zeros(x.shape[:2])
    st = x.std(dim=2, unbiased=False).mean(dim=(2, 3)) if x.shape[2] > 1 else x.new_zeros(x.shape[:2])
    gs = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(2, 3, 4)) + (x[..., 1:] - x[..., :-1]).abs().mean(dim=(2, 3,
            4))
    return torch.cat([dt, st, gs], 1)


def fallback_extractor(kind: Literal["video", "image"] = "video", seed: int = 0, size: int = 64,
                       device: str = "cpu") -> FeatureExtractor:
    """Offline stand-in (NOT comparable to published numbers): random-init conv features (+ motion stats)."""
    net = RandomVideoNet(seed).to(device)
    if kind == "video":
        def fn(x: Tensor) -> Tensor:
            return torch.cat([net(x), motion_statistics(x)], 1)

        return FeatureExtractor(f"random-i3d-seed{seed}+motion-stats", "video", size, fn, None, False, device)
    return FeatureExtractor(f"random-cnn-seed{seed}", "image", size, lambda x: net(x[:, :, None]), None, False, device)
