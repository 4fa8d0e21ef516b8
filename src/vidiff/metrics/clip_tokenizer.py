"""CLIP's text tokenizer (Radford et al. 2021, §2.4): lower-cased byte-level BPE with start/end-of-text tokens,
padded with 0 (or cut, keeping the end token) to the model's context length — as OpenAI's CLIP and OpenCLIP
tokenize, so the text tower sees the ids it was trained on.

The merges come from a local file (nothing is downloaded): OpenAI/OpenCLIP's `bpe_simple_vocab_16e6.txt.gz` or
a Hugging Face `merges.txt` (the same list; both start with a `#version` line). The vocabulary is built from
them in CLIP's order: the 256 byte symbols, the same with the end-of-word mark `</w>`, one token per merge, then
`<|startoftext|>` and `<|endoftext|>` (the largest id, where the text tower pools).
"""
from __future__ import annotations

import gzip
import html
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from ..utils import VidiffError

SOT, EOT, EOW = "<|startoftext|>", "<|endoftext|>", "</w>"
BPE_FILES = ("bpe_simple_vocab_16e6.txt.gz", "merges.txt")
# words: contractions, runs of letters, single digits, runs of other non-space characters (the CLIP split)
WORD_PATTERN = (r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"
                r"[^\s\p{L}\p{N}]+")


@lru_cache(maxsize=1)
def byte_symbols() -> dict[int, str]:
    """Reversible byte -> printable character map: printable Latin-1 bytes map to themselves (listed first),
    the other 68 bytes to U+0100 onwards in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    table.update({b: chr(256 + i) for i, b in enumerate(b for b in range(256) if b not in table)})
    return table


def clean_text(text: str) -> str:
    """ftfy's mojibake repair (when installed), HTML entities unescaped, whitespace collapsed, lower case."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # only changes broken Unicode; plain prompts are unaffected
        pass
    return " ".join(html.unescape(html.unescape(text)).split()).lower()


def read_merges(path: str | Path, count: int) -> list[tuple[str, str]]:
    """The first `count` merges of a BPE merges file (gzip or text; a leading `#version` line is skipped)."""
    path = Path(path)
    if not path.is_file():
        raise VidiffError(f"CLIP tokenizer file not found: {path}; give --clip-tokenizer {BPE_FILES[0]} or "
                          f"{BPE_FILES[1]} (nothing is downloaded)")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        lines = raw.decode("utf-8").split("\n")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise VidiffError(f"cannot read {path} as a BPE merges file ({type(e).__name__}); give "
                          f"{' or '.join(BPE_FILES)}") from None
    if lines and "#version" in lines[0]:  # `#version: 0.2` (merges.txt) or `"bpe_simple_vocab_16e6.txt#version: 0.2`
        lines = lines[1:]
    merges = [tuple(line.split()) for line in lines[:count]]
    if len(merges) < count or any(len(m) != 2 for m in merges):
        raise VidiffError(f"{path} holds fewer than the {count} merges the CLIP text tower's vocabulary needs "
                          f"(or malformed lines); give the tokenizer file of the same model ({' or '.join(BPE_FILES)})")
    return merges


class CLIPTokenizer:
    """Text -> token ids (B, context_length) for a CLIP text tower of vocabulary `2·256 + len(merges) + 2`."""

    def __init__(self, merges: list[tuple[str, str]], context_length: int = 77):
        import regex  # the \p{L} / \p{N} classes of the CLIP split

        self.pattern = regex.compile(WORD_PATTERN, regex.IGNORECASE)
        self.bytes = byte_symbols()
        symbols = list(self.bytes.values())
        vocab = symbols + [s + EOW for s in symbols] + ["".join(m) for m in merges] + [SOT, EOT]
        self.ids = {tok: i for i, tok in enumerate(vocab)}
        self.rank = {m: i for i, m in enumerate(merges)}
        self.context_length = context_length
        self.sot, self.eot = self.ids[SOT], self.ids[EOT]
        self._cache: dict[str, list[str]] = {SOT: [SOT], EOT: [EOT]}

    @classmethod
    def from_file(cls, path: str | Path, vocab_size: int, context_length: int = 77) -> CLIPTokenizer:
        """The tokenizer of a text tower with `vocab_size` tokens from a local merges file."""
        return cls(read_merges(path, vocab_size - 2 * 256 - 2), context_length)

    @property
    def vocab_size(self) -> int:
        return len(self.ids)

    def bpe(self, word: str) -> list[str]:
        """Merge the symbols of one word (its last one marked end-of-word) lowest merge rank first."""
        if word in self._cache:
            return self._cache[word]
        parts = list(word[:-1]) + [word[-1] + EOW]
        while len(parts) > 1:
            pairs = {(a, b) for a, b in zip(parts, parts[1:])}
            best = min(pairs, key=lambda p: self.rank.get(p, float("inf")))
            if best not in self.rank:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self._cache[word] = parts
        return parts

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` without the start/end tokens."""
        out = []
        for word in self.pattern.findall(clean_text(text)):
            out += [self.ids[p] for p in self.bpe("".join(self.bytes[b] for b in word.encode("utf-8")))]
        return out

    def __call__(self, texts: str | list[str]) -> Tensor:
        """Prompts -> int64 ids (B, context_length): start, tokens, end, zeros; a long prompt is cut and ends
        with the end token."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        ids = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            toks = [self.sot] + self.encode(text) + [self.eot]
            if len(toks) > self.context_length:
                toks = toks[:self.context_length - 1] + [self.eot]
            ids[i, :len(toks)] = torch.tensor(toks)
        return ids
