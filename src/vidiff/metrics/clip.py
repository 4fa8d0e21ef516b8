"""CLIP score (Hessel et al. 2021, eq. 1 with w = 100 as text-to-video papers use it): 100·max(cos(E_I, E_T), 0)
between each frame's CLIP image embedding and its video's prompt embedding, averaged over frames and videos.

The CLIP is an OpenCLIP ViT (Radford et al. 2021; Cherti et al. 2023) loaded from a user's local weight file
with OpenCLIP's parameter names: `open_clip_model.safetensors` / `open_clip_pytorch_model.bin` of an OpenCLIP
release, an OpenAI CLIP state dict in the same layout, or a Hugging Face `CLIPModel`'s `model.safetensors`
(renamed on load; nothing is downloaded). `--clip-model` names the
architecture as OpenCLIP does (ViT-B-32, ViT-L-14, … with `-quickgelu` for OpenAI-trained weights) or is a path
to an OpenCLIP config JSON (`open_clip_config.json` of a release, or a bare model config). The tokenizer reads
the release's merges file (`clip_tokenizer`).

Frames are preprocessed as OpenCLIP's eval transform does: the short side resized to the model's image size
(bicubic, antialiased), a centre crop, then the OpenAI CLIP mean/std.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import config_to_dict
from ..utils import VidiffError
from .clip_tokenizer import BPE_FILES, CLIPTokenizer
from .extractors import _check_file, _read_state_dict, load_matching
from .inception_score import ScoreProtocol
from .protocol import as_video_tensor, sha256_file

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_FORMATS = ("OpenCLIP state dict open_clip_model.safetensors", "open_clip_pytorch_model.bin",
                "an OpenAI CLIP state dict in the same layout", "a Hugging Face CLIPModel model.safetensors")
# OpenCLIP's model configs of the plain ViT CLIPs (vision heads = width / head_width, head_width 64 by default)
CLIP_CONFIGS = {
    "ViT-B-32": {"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}},
    "ViT-B-16": {"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 16},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}},
    "ViT-L-14": {"embed_dim": 768, "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}},
    "ViT-L-14-336": {"embed_dim": 768,
                     "vision_cfg": {"image_size": 336, "layers": 24, "width": 1024, "patch_size": 14},
                     "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}},
    "ViT-H-14": {"embed_dim": 1024,
                 "vision_cfg": {"image_size": 224, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24}},
    "ViT-g-14": {"embed_dim": 1024, "vision_cfg": {"image_size": 224, "layers": 40, "width": 1408, "head_width": 88,
                                                   "mlp_ratio": 4.3637, "patch_size": 14},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24}},
    "ViT-bigG-14": {"embed_dim": 1280, "vision_cfg": {"image_size": 224, "layers": 48, "width": 1664,
                                                      "head_width": 104, "mlp_ratio": 4.9231, "patch_size": 14},
                    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1280, "heads": 20, "layers": 32}},
}
_VISION_KEYS = {"image_size", "layers", "width", "patch_size", "head_width", "mlp_ratio"}
_TEXT_KEYS = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"}
_PREPROCESS = {"interpolation": "bicubic", "resize_mode": "shortest", "mode": "RGB"}  # OpenCLIP's eval transform


def clip_config(model: str | dict) -> dict:
    """An OpenCLIP model config {embed_dim, quick_gelu, vision_cfg, text_cfg, mean, std} from a known name
    (optionally `-quickgelu`), a config JSON path (a release's `preprocess_cfg` mean/std are kept), or a dict;
    refuses the OpenCLIP variants this CLIP does not build."""
    pre: dict = {}
    if isinstance(model, dict):
        cfg, where = model, "the CLIP config"
    elif str(model).endswith(".json"):
        path = Path(model)
        try:
            cfg = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise VidiffError(f"cannot read --clip-model {path} as an OpenCLIP config JSON ({type(e).__name__})") \
                from None
        pre = cfg.get("preprocess_cfg", {}) if isinstance(cfg, dict) else {}
        cfg, where = cfg.get("model_cfg", cfg) if isinstance(cfg, dict) else cfg, str(path)
    else:
        name = str(model).removesuffix("-quickgelu")
        if name not in CLIP_CONFIGS:
            raise VidiffError(f"unknown --clip-model {model!r}; use one of {', '.join(CLIP_CONFIGS)} (add -quickgelu "
                              "for OpenAI-trained weights) or an OpenCLIP config JSON")
        cfg = {**CLIP_CONFIGS[name], "quick_gelu": str(model).endswith("-quickgelu")}
        where = str(model)
    if not isinstance(cfg, dict) or not {"embed_dim", "vision_cfg", "text_cfg"} <= set(cfg):
        raise VidiffError(f"{where} is not an OpenCLIP model config (needs embed_dim, vision_cfg, text_cfg)")
    size = cfg["vision_cfg"].get("image_size")
    extra = (set(cfg) - {"embed_dim", "quick_gelu", "vision_cfg", "text_cfg", "mean", "std"}) | \
        (set(cfg["vision_cfg"]) - _VISION_KEYS) | (set(cfg["text_cfg"]) - _TEXT_KEYS) | \
        {f"preprocess_cfg.{k}={v}" for k, v in pre.items()
         if (k in _PREPROCESS and v != _PREPROCESS[k]) or (k == "size" and v not in (size, [size, size]))}
    if extra or isinstance(cfg["vision_cfg"].get("layers"), (list, tuple)):
        raise VidiffError(f"{where} uses OpenCLIP options {sorted(extra) or ['ResNet tower']} that vidiff's CLIP does "
                          f"not build; it supports the plain ViT CLIPs ({', '.join(CLIP_CONFIGS)})")
    mean, std = pre.get("mean", cfg.get("mean", CLIP_MEAN)), pre.get("std", cfg.get("std", CLIP_STD))
    return {"quick_gelu": False, **cfg, "mean": tuple(mean), "std": tuple(std)}


class QuickGELU(nn.Module):
    """x·σ(1.702x), the activation of OpenAI's CLIP."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: x + attn(ln_1 x), then x + mlp(ln_2 x) (OpenCLIP names)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, quick_gelu: bool):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, hidden))
        self.mlp.add_module("gelu", QuickGELU() if quick_gelu else nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(hidden, width))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.ln_1(x)  # (B, L, width)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float, quick_gelu: bool):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads, mlp_ratio, quick_gelu)
                                       for _ in range(layers))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class VisionTransformer(nn.Module):
    """ViT image tower: patches + class token, ln_pre, transformer, ln_post of the class token, projection."""

    def __init__(self, cfg: dict, embed_dim: int, quick_gelu: bool):
        super().__init__()
        width, patch, self.image_size = cfg["width"], cfg["patch_size"], cfg["image_size"]
        grid = self.image_size // patch
        self.conv1 = nn.Conv2d(3, width, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, cfg["layers"], width // cfg.get("head_width", 64),
                                       cfg.get("mlp_ratio", 4.0), quick_gelu)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, embed_dim))

    def forward(self, x: Tensor) -> Tensor:
        """Normalized images (B, 3, S, S) -> embeddings (B, embed_dim)."""
        x = self.conv1(x).flatten(2).transpose(1, 2)  # (B, grid², width)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], 1)  # (B, 1 + grid², width)
        x = self.transformer(self.ln_pre(x + self.positional_embedding))
        return self.ln_post(x[:, 0]) @ self.proj  # (B, embed_dim)


class CLIP(nn.Module):
    """OpenCLIP's `CLIP` (ViT image tower, causal text transformer) with its parameter names."""

    def __init__(self, cfg: dict):
        super().__init__()
        t, q = cfg["text_cfg"], cfg["quick_gelu"]
        self.visual = VisionTransformer(cfg["vision_cfg"], cfg["embed_dim"], q)
        self.context_length, self.vocab_size = t["context_length"], t["vocab_size"]
        self.token_embedding = nn.Embedding(t["vocab_size"], t["width"])
        self.positional_embedding = nn.Parameter(torch.zeros(t["context_length"], t["width"]))
        self.transformer = Transformer(t["width"], t["layers"], t["heads"], t.get("mlp_ratio", 4.0), q)
        self.ln_final = nn.LayerNorm(t["width"])
        self.text_projection = nn.Parameter(torch.zeros(t["width"], cfg["embed_dim"]))
        self.logit_scale = nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))
        self.mean, self.std = cfg.get("mean", CLIP_MEAN), cfg.get("std", CLIP_STD)  # of the input pixels
        causal = torch.full((t["context_length"],) * 2, float("-inf")).triu(1)  # token i sees tokens ≤ i
        self.register_buffer("attn_mask", causal, persistent=False)

    def encode_image(self, x: Tensor) -> Tensor:
        """Normalized images (B, 3, S, S) -> (B, embed_dim)."""
        return self.visual(x)

    def encode_text(self, ids: Tensor) -> Tensor:
        """Token ids (B, context_length) -> (B, embed_dim), read at the end token (the largest id)."""
        x = self.token_embedding(ids) + self.positional_embedding  # (B, L, width)
        x = self.ln_final(self.transformer(x, self.attn_mask))
        return x[torch.arange(len(ids), device=ids.device), ids.argmax(dim=-1)] @ self.text_projection


def from_transformers(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """A Hugging Face `CLIPModel` state dict under OpenCLIP's names: q, k, v projections joined into in_proj,
    the projections transposed (Linear weights (D, width) -> matrices (width, D))."""
    out = {"visual.conv1.weight": sd["vision_model.embeddings.patch_embedding.weight"],
           "visual.class_embedding": sd["vision_model.embeddings.class_embedding"],
           "visual.positional_embedding": sd["vision_model.embeddings.position_embedding.weight"],
           "visual.proj": sd["visual_projection.weight"].T.contiguous(),
           "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
           "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
           "text_projection": sd["text_projection.weight"].T.contiguous()}
    if "logit_scale" in sd:
        out["logit_scale"] = sd["logit_scale"]
    norms = {"visual.ln_pre": "vision_model.pre_layrnorm", "visual.ln_post": "vision_model.post_layernorm",
             "ln_final": "text_model.final_layer_norm"}
    block = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
             "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    for tower, prefix in (("vision_model", "visual."), ("text_model", "")):
        i = 0
        while f"{tower}.encoder.layers.{i}.layer_norm1.weight" in sd:
            src, dst = f"{tower}.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
            norms.update({dst + ours: src + theirs for ours, theirs in block.items()})
            for kind in ("weight", "bias"):
                out[dst + f"attn.in_proj_{kind}"] = torch.cat([sd[src + f"self_attn.{c}_proj.{kind}"] for c in "qkv"])
            i += 1
    for ours, theirs in norms.items():
        out.update({f"{ours}.{kind}": sd[f"{theirs}.{kind}"] for kind in ("weight", "bias")})
    return out


def _check_hf_activation(path: Path, cfg: dict) -> None:
    """A Hugging Face folder's config.json names the activation the shapes cannot tell: refuse a mismatch."""
    config = path.parent / "config.json"
    try:
        act = json.loads(config.read_text()).get("text_config", {}).get("hidden_act")
    except (OSError, json.JSONDecodeError, AttributeError):
        return
    if act and (act == "quick_gelu") != cfg["quick_gelu"]:
        want = "a -quickgelu --clip-model (e.g. ViT-L-14-quickgelu)" if act == "quick_gelu" else \
            "a --clip-model without -quickgelu"
        raise VidiffError(f"{config} says hidden_act {act!r} but --clip-model uses "
                          f"{'QuickGELU' if cfg['quick_gelu'] else 'GELU'}; pass {want}")


def load_clip(weights, model: str | dict = "ViT-B-32", device: str = "cpu") -> CLIP:
    """A CLIP of architecture `model` (name, config JSON or dict) with a local OpenCLIP (or Hugging Face
    CLIPModel) state dict."""
    path = _check_file(weights)
    cfg = clip_config(model)
    sd = _read_state_dict(path, CLIP_FORMATS)
    if "vision_model.embeddings.patch_embedding.weight" in sd:
        _check_hf_activation(path, cfg)
        try:
            sd = from_transformers(sd)
        except KeyError as e:
            raise VidiffError(f"{path} looks like a Hugging Face CLIPModel but lacks {e}; accepted formats: "
                              f"{'; '.join(CLIP_FORMATS)}") from None
    for key in ("input_resolution", "context_length", "vocab_size", "attn_mask"):  # OpenAI extras, buffers
        sd.pop(key, None)
    return load_matching(CLIP(cfg), sd, path, CLIP_FORMATS).to(device)


def find_tokenizer(weights, tokenizer: str | None = None) -> Path:
    """The merges file: `tokenizer` when given, else one next to the weights (as a release ships it), else the
    one bundled with an installed open_clip package; refuse naming --clip-tokenizer."""
    if tokenizer:
        return Path(tokenizer)
    candidates = [Path(weights).parent / name for name in BPE_FILES]
    spec = importlib.util.find_spec("open_clip")  # located without importing it (it pulls torchvision)
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / BPE_FILES[0])
    for c in candidates:
        if c.is_file():
            return c
    raise VidiffError(f"clip needs the CLIP tokenizer's merges file: pass --clip-tokenizer {BPE_FILES[0]} (OpenAI/"
                      f"OpenCLIP) or {BPE_FILES[1]} (from the weights' release), or put it next to {weights}")


def preprocess(frames: Tensor, size: int, mean=CLIP_MEAN, std=CLIP_STD) -> Tensor:
    """Frames (B, 3, H, W) in [-1, 1] -> CLIP input (B, 3, size, size): short side to `size` (bicubic,
    antialiased), centre crop, (x - mean) / std (OpenAI's by default)."""
    h, w = frames.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = (frames.float() + 1) / 2  # (B, 3, H, W) in [0, 1]
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[..., top:top + size, left:left + size]  # (B, 3, size, size)
    mean, std = (torch.tensor(v, device=x.device, dtype=x.dtype).view(1, 3, 1, 1) for v in (mean, std))
    return (x - mean) / std


def clip_similarity(image_emb: Tensor, text_emb: Tensor) -> Tensor:
    """100·max(cos(E_I, E_T), 0) row by row: (N, D), (N, D) -> (N,)."""
    return 100 * F.cosine_similarity(image_emb.double(), text_emb.double(), dim=-1).clamp(min=0)


def check_clip_options(clip_model: str | None, clip_weights: str | None) -> None:
    """Refuse `clip` without weights, before any video is read."""
    if not clip_weights:
        raise VidiffError("clip needs local CLIP weights: pass --clip-weights open_clip_model.safetensors with "
                          "--clip-model ViT-B-32 (or the weights' architecture); nothing is downloaded")
    if not clip_model:
        raise VidiffError("--clip-weights needs --clip-model naming its architecture (e.g. ViT-B-32, ViT-L-14, "
                          "ViT-B-32-quickgelu for OpenAI weights, or an OpenCLIP config JSON)")


def read_prompts(num: int, prompt: str | None = None,
                 prompts: str | list[str] | None = None) -> tuple[list[str], str, str]:
    """One prompt per generated video: `prompt` for all, or `prompts`, a .txt (one line per video) or a .json
    list, in the order the videos are read (sorted names; an .npy's videos in index order).
    Returns (prompts, their source, SHA-256 of the source)."""
    if isinstance(prompts, (list, tuple)) and prompt is None:  # from Python: the prompts themselves
        items = list(prompts)
        if len(items) != num or not all(isinstance(s, str) for s in items):
            raise VidiffError(f"prompts: {len(items)} prompts for {num} generated videos; give one string per video")
        return items, "list", hashlib.sha256(json.dumps(items).encode()).hexdigest()
    if (prompt is None) == (prompts is None):
        raise VidiffError("clip needs the videos' prompts: pass --prompt TEXT (one for all) or --prompts FILE "
                          "(.txt one per line, or a .json list, in the videos' order)")
    if prompt is not None:
        return [prompt] * num, "--prompt", hashlib.sha256(prompt.encode()).hexdigest()
    path = Path(prompts)
    if not path.is_file():
        raise VidiffError(f"--prompts {path} not found; give a .txt (one prompt per line) or a .json list")
    try:
        text = path.read_text(encoding="utf-8")
        items = json.loads(text) if path.suffix == ".json" else [s for s in text.splitlines() if s.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VidiffError(f"cannot read --prompts {path} ({type(e).__name__}); give a .txt (one prompt per line) "
                          "or a .json list of strings") from None
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise VidiffError(f"--prompts {path} must be a .json list of strings (or a .txt, one per line)")
    if len(items) != num:
        raise VidiffError(f"--prompts {path} has {len(items)} prompts for {num} generated videos; give one per video "
                          "in the order they are read")
    return items, str(path), sha256_file(path)


@torch.no_grad()
def score_clip(fake, prompts: list[str], clip_weights: str, clip_model: str | dict = "ViT-B-32",
               clip_tokenizer: str | None = None, *, base: dict, source: tuple[str, str] = ("", ""),
               device: str = "cpu", batch_size: int = 8) -> dict:
    """CLIP score of every frame of `fake` (uint8 (N, F, H, W, 3)) against its video's prompt; `base` holds the
    EvalProtocol's clip fields. Returns the score entry (mean over videos, per-video values) with its protocol."""
    check_clip_options(clip_model, clip_weights)
    model = load_clip(clip_weights, clip_model, device)
    tok_path = find_tokenizer(clip_weights, clip_tokenizer)
    tokenizer = CLIPTokenizer.from_file(tok_path, model.vocab_size, model.context_length)
    size = model.visual.image_size
    per_video = []
    for s in range(0, len(fake), batch_size):
        v = as_video_tensor(fake[s:s + batch_size])  # (b, 3, F, H, W)
        b, _, f = v.shape[:3]
        text = model.encode_text(tokenizer(prompts[s:s + b]).to(device))  # (b, D)
        frames = v.permute(0, 2, 1, 3, 4).reshape(b * f, 3, *v.shape[-2:])  # (b*F, 3, H, W)
        img = model.encode_image(preprocess(frames.to(device), size, model.mean, model.std))  # (b*F, D)
        sim = clip_similarity(img, text.repeat_interleave(f, 0))  # (b*F,)
        per_video += sim.view(b, f).mean(1).cpu().tolist()
    name = Path(clip_model).stem if isinstance(clip_model, str) and clip_model.endswith(".json") else \
        clip_model if isinstance(clip_model, str) else "custom"
    p = ScoreProtocol(**base, resize_method="bicubic-short-side+center-crop+clip-mean-std", resize_size=size,
                      value_range=(0.0, 1.0), extractor=f"open-clip-{name}", extractor_kind="image-text",
                      extractor_weights_sha256=sha256_file(clip_weights),
                      comparable_to_published=True, images=len(per_video) * base["frames"], prompts=source[0],
                      prompts_sha256=source[1], metric="clip")
    entry = {"value": float(np.mean(per_video)), "per_video": per_video, "images": p.images,
             "tokenizer": str(tok_path), "tokenizer_sha256": sha256_file(tok_path), "protocol": config_to_dict(p)}
    return entry
