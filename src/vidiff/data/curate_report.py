"""The curation report: DATASET/report/report.json (clips dropped by each filter), histograms.png (each
score's distribution with its thresholds) and contact_sheet.png (thumbnails of kept and dropped clips,
each dropped one labelled with the filters it failed)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..utils import atomic_path, atomic_write_text

# score -> (lower-bound field, upper-bound field, axis label)
PLOTS = {"motion": ("min_motion", "max_motion", "optical-flow motion (px / frame at 256 px)"),
         "camera": (None, "max_camera", "camera motion (px / frame at 256 px)"),
         "sharpness": ("min_sharpness", None, "sharpness (Laplacian variance)"),
         "brightness": ("min_brightness", None, "brightness (mean luma)"),
         "aspect": ("min_aspect", "max_aspect", "aspect (width / height)"),
         "text": (None, "max_text", "text area (OCR)"),
         "caption_similarity": ("min_caption_similarity", None, "caption similarity to the query")}


def write_histograms(path: Path, clips: list[dict], filters: dict) -> None:
    """One histogram per measured score, kept and dropped clips stacked, thresholds as red lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in PLOTS if any(c["scores"].get(k) is not None for c in clips)]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(3.2 * max(1, len(names)), 2.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        kept = [c["scores"][name] for c in clips if c["keep"] and c["scores"].get(name) is not None]
        dropped = [c["scores"][name] for c in clips if not c["keep"] and c["scores"].get(name) is not None]
        lo, hi, label = PLOTS[name]
        marks = [filters[b] for b in (lo, hi) if b is not None and filters.get(b) is not None]
        vals = kept + dropped
        a, b = min(vals), max(vals)
        near = [m for m in marks if a - (b - a) <= m <= b + (b - a)]  # thresholds far off the data squash it
        a, b = min([a] + near), max([b] + near)
        pad = max(0.05 * (b - a), 1e-3 * max(abs(a), abs(b), 1.0))
        edges = np.linspace(a - pad, b + pad, 21)
        ax.hist([kept, dropped], bins=edges, stacked=True, color=["tab:green", "tab:grey"], label=["kept", "dropped"])
        for m in near:
            ax.axvline(m, color="red", lw=1)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def _labelled(thumb: np.ndarray, text: str, ok: bool, width: int) -> np.ndarray:
    h = thumb.shape[0]
    tile = np.full((h + 14, width, 3), 255, np.uint8)
    t = thumb[:, :width]
    tile[:h, :t.shape[1]] = t
    cv2.putText(tile, text[:22], (2, h + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33,
                (0, 120, 0) if ok else (180, 0, 0), 1, cv2.LINE_AA)
    return tile


def contact_sheet(thumbs: list[tuple[np.ndarray, str, bool]], cols: int = 8, width: int = 128) -> np.ndarray:
    """Grid of labelled thumbnails, uint8 (H, W, 3)."""
    tiles = [_labelled(t, label, ok, width) for t, label, ok in thumbs]
    th = max(t.shape[0] for t in tiles)
    rows = []
    for i in range(0, len(tiles), cols):
        row = [np.pad(t, ((0, th - t.shape[0]), (0, 0), (0, 0)), constant_values=255) for t in tiles[i:i + cols]]
        row += [np.full((th, width, 3), 255, np.uint8)] * (cols - len(row))
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def write_report(out: Path, manifest: dict, per_side: int = 16) -> None:
    """report.json, histograms.png and contact_sheet.png under DATASET/report/."""
    from .curate import read_thumbnails
    from .io import write_png

    rep = out / "report"
    clips = manifest["clips"]
    atomic_write_text(rep / "report.json", json.dumps({"counts": manifest["counts"], "filters": manifest["filters"]},
                                                      indent=1) + "\n")
    if not clips:
        return
    write_histograms(rep / "histograms.png", clips, manifest["filters"])
    kept = [c for c in clips if c["keep"]]
    dropped = [c for c in clips if not c["keep"]]
    pick = [kept[i] for i in np.linspace(0, len(kept) - 1,
                                         min(per_side, len(kept))).round().astype(int)] if kept else []
    pick += [dropped[i] for i in np.linspace(0, len(dropped) - 1, min(per_side, len(dropped))).round().astype(int)] \
        if dropped else []
    thumbs = read_thumbnails(out, [c["key"] for c in pick])
    sheet = contact_sheet([(thumbs[c["key"]], "kept" if c["keep"] else ",".join(c["dropped_by"]), c["keep"])
                           for c in pick])
    write_png(rep / "contact_sheet.png", sheet)
