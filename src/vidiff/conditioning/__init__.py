"""Conditioning: the `Cond` container, class labels, text (MiniLM), first frame / known frames."""
from .cond import Cond, cond_or_empty, null_like

__all__ = ["Cond", "cond_or_empty", "null_like"]
