"""Per-clip curation scores, after Stable Video Diffusion's data curation (Blattmann et al. 2023, sec. 3):
shot cuts (PySceneDetect's content / adaptive detectors), optical-flow motion (OpenCV DIS) and the camera's
share of it (`vidiff.metrics.camera`), sharpness, brightness, on-screen text (tesseract OCR), perceptual
hashes for near-duplicates, caption similarity.

Every score is measured on "analysis frames": RGB uint8 frames resized so that the long side is
`ANALYSIS_SIZE` pixels, so scores of sources of different resolutions are comparable. A clip's scores read
only a few of its frames (`needed_frames`: the flow pairs, first, middle and last), so a source is measured
while it streams, holding those frames of one clip (`ClipFrames`) and never the whole video.
"""
from __future__ import annotations

import shutil
from functools import lru_cache

import cv2
import numpy as np

from ..metrics.camera import camera_motion_score
from ..utils import notice

ANALYSIS_SIZE = 256  # long side (pixels) of the frames every score is measured on
HASH_BITS = 64        # bits of one frame's perceptual hash
PAIRS = 8             # consecutive-frame pairs per clip that the motion scores measure
_notified: set[str] = set()


def _notice_once(key: str, msg: str) -> None:
    if key not in _notified:
        _notified.add(key)
        notice(msg)


def analysis_frame(frame: np.ndarray, long_side: int = ANALYSIS_SIZE) -> np.ndarray:
    """uint8 (H, W, 3) resized (area filter, never up) so that max(H, W) <= long_side."""
    h, w = frame.shape[:2]
    s = long_side / max(h, w)
    if s >= 1:
        return np.ascontiguousarray(frame)
    return cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def grey(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> luma uint8 (H, W)."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


# --- shot cuts ------------------------------------------------------------------------------------
def histogram_distances(frames: np.ndarray, bins: int = 16) -> np.ndarray:
    """d_t for t = 1..F-1: total variation distance between consecutive per-channel colour histograms."""
    f = frames.shape[0]
    q = (frames.reshape(f, -1, 3).astype(np.int64) * bins) // 256 + np.arange(3) * bins  # (F, P, 3) bins
    h = np.stack([np.bincount(x.ravel(), minlength=3 * bins) for x in q]).astype(np.float64)
    h /= h.sum(axis=1, keepdims=True)
    return 0.5 * np.abs(np.diff(h, axis=0)).sum(axis=1)


class CutDetector:
    """Streaming shot-cut detection: `push(t, rgb_frame)` for t = 0, 1, ..., then `finish()`; both return
    the frame indices where a new shot starts. `method` is PySceneDetect's "content" (HSV + edge change
    above `threshold`, default 27) or "adaptive" (that change relative to its neighbours, default ratio 3);
    without the scenedetect package a colour-histogram detector (total variation > `threshold`, default
    0.4) is used, with one notice."""

    def __init__(self, method: str = "content", threshold: float | None = None, min_scene_len: int = 15,
                 fps: float = 25.0):
        if method not in ("content", "adaptive"):
            raise ValueError(f"unknown cut detector {method!r}")
        self.fps, self.last = fps, -1
        try:
            from scenedetect import FrameTimecode
            from scenedetect.detectors import AdaptiveDetector, ContentDetector
        except ImportError:
            _notice_once("scenedetect", "PySceneDetect is not installed (pip install 'vidiff[data]'); "
                                        "shot cuts come from colour-histogram differences")
            self.detector, self.threshold = None, 0.4 if threshold is None else threshold
            self.min_scene_len, self.prev, self.last_cut = min_scene_len, None, 0
            return
        self._timecode = FrameTimecode
        if method == "content":
            self.detector = ContentDetector(threshold=27.0 if threshold is None else threshold,
                                            min_scene_len=min_scene_len)
        else:
            self.detector = AdaptiveDetector(adaptive_threshold=3.0 if threshold is None else threshold,
                                             min_scene_len=min_scene_len)

    def push(self, t: int, frame: np.ndarray) -> list[int]:
        """Feed RGB frame t; cuts decided so far (may lag a few frames)."""
        self.last = t
        if self.detector is None:
            prev, self.prev = self.prev, frame
            if prev is None:
                return []
            d = histogram_distances(np.stack([prev, frame]))[0]
            if d > self.threshold and t - self.last_cut >= self.min_scene_len:
                self.last_cut = t
                return [t]
            return []
        cuts = self.detector.process_frame(self._timecode(t, fps=self.fps), np.ascontiguousarray(frame[..., ::-1]))
        return [c.frame_num for c in cuts]

    def finish(self) -> list[int]:
        """Cuts still buffered when the video ends."""
        if self.detector is None or self.last < 0:
            return []
        return [c.frame_num for c in self.detector.post_process(self._timecode(self.last, fps=self.fps))]


def detect_cuts(frames: np.ndarray, method: str = "content", threshold: float | None = None,
                min_scene_len: int = 15, fps: float = 25.0) -> list[int]:
    """Shot starts (frame indices > 0, sorted) in RGB uint8 frames (F, H, W, 3)."""
    det = CutDetector(method, threshold, min_scene_len, fps)
    cuts = [c for t, fr in enumerate(frames) for c in det.push(t, fr)] + det.finish()
    return sorted({c for c in cuts if 0 < c < len(frames)})


# --- the frames a clip's scores read ------------------------------------------------------------------
def pair_starts(n: int, pairs: int = PAIRS) -> np.ndarray:
    """First frames t of the up to `pairs` evenly spaced consecutive-frame pairs (t, t + 1) of an n-frame
    clip (n >= 2)."""
    return np.unique(np.linspace(0, n - 2, min(pairs, n - 1)).round().astype(int))


def needed_frames(n: int, pairs: int = PAIRS) -> list[int]:
    """Indices of the frames of an n-frame clip that its scores read: the flow pairs (`pair_flows`), the
    first, middle and last frames (sharpness, brightness, hashes, text, thumbnail); at most 2 * pairs + 3."""
    idx = {0, n // 2, n - 1}
    if n >= 2:
        for t in pair_starts(n, pairs).tolist():
            idx.update((t, t + 1))
    return sorted(idx)


class ClipFrames:
    """An n-frame clip of which only some frames are held (`frames`: {index: analysis frame}, normally
    `needed_frames(n)`), indexed like the whole clip (negative indices too) by every score here; reading a
    frame that is not held is an IndexError."""

    def __init__(self, n: int, frames: dict[int, np.ndarray]):
        self.n, self.frames = n, frames

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        j = i + self.n if i < 0 else i
        if j not in self.frames:
            raise IndexError(f"frame {i} of a {self.n}-frame clip is not held")
        return self.frames[j]


# --- motion, sharpness, brightness ------------------------------------------------------------------
def pair_flows(frames: list[np.ndarray] | np.ndarray | ClipFrames, pairs: int = PAIRS) -> np.ndarray:
    """OpenCV DIS optical flows (P, H, W, 2), in pixels, of up to `pairs` evenly spaced consecutive-frame
    pairs (P = 0 for fewer than 2 frames)."""
    n = len(frames)
    if n < 2:
        return np.zeros((0, 0, 0, 2), np.float32)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    starts = pair_starts(n, pairs)
    return np.stack([dis.calc(grey(frames[t]), grey(frames[t + 1]), None) for t in starts])


def flow_motion(frames: list[np.ndarray] | np.ndarray, pairs: int = PAIRS, flows: np.ndarray | None = None) -> float:
    """Mean optical-flow magnitude (pixels per frame at the frames' resolution) over up to `pairs`
    evenly spaced consecutive-frame pairs: SVD's motion score, with OpenCV's DIS flow (`flows`: those
    of `pair_flows`, when already computed)."""
    flows = pair_flows(frames, pairs) if flows is None else flows
    if not len(flows):
        return 0.0
    return float(np.mean([float(np.sqrt((f ** 2).sum(-1)).mean()) for f in flows]))


def camera_motion(frames: list[np.ndarray] | np.ndarray, pairs: int = PAIRS, flows: np.ndarray | None = None) -> float:
    """The camera's motion (pixels per frame): the mean displacement of the robust affine fit of the same
    flows as `flow_motion` (`metrics.camera`); a pan, zoom or shake scores its speed, things moving in
    front of a still camera score ~0."""
    flows = pair_flows(frames, pairs) if flows is None else flows
    return camera_motion_score(flows=flows) if len(flows) else 0.0


def sharpness(frames: list[np.ndarray] | np.ndarray) -> float:
    """Variance of the Laplacian of the grey first, middle and last frames, averaged (low = blurred)."""
    picks = [frames[0], frames[len(frames) // 2], frames[-1]]
    return float(np.mean([cv2.Laplacian(grey(f), cv2.CV_64F).var() for f in picks]))


def brightness(frames: list[np.ndarray] | np.ndarray) -> float:
    """Mean luma / 255 of the first, middle and last frames, in [0, 1] (low = dark)."""
    picks = [frames[0], frames[len(frames) // 2], frames[-1]]
    return float(np.mean([grey(f).mean() for f in picks]) / 255)


# --- text overlays ------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def ocr_available() -> bool:
    """True when pytesseract and the tesseract binary are both installed."""
    try:
        import pytesseract  # noqa: F401
    except ImportError:
        return False
    return shutil.which("tesseract") is not None


def text_area(frame: np.ndarray, min_conf: float = 60.0) -> float | None:
    """Fraction of the frame covered by words tesseract reads with confidence >= min_conf (SVD's OCR
    filter drops clips with much on-screen text); None when tesseract is not installed."""
    if not ocr_available():
        _notice_once("tesseract", "tesseract is not installed (apt-get install tesseract-ocr; "
                                  "pip install pytesseract): the text-overlay filter is skipped")
        return None
    import pytesseract

    g = grey(frame)
    g = cv2.resize(g, (g.shape[1] * 2, g.shape[0] * 2), interpolation=cv2.INTER_CUBIC)  # small text reads better
    d = pytesseract.image_to_data(g, output_type=pytesseract.Output.DICT, config="--psm 11")
    area = 0.0
    for text, conf, w, h in zip(d["text"], d["conf"], d["width"], d["height"]):
        if float(conf) >= min_conf and sum(ch.isalnum() for ch in str(text)) >= 2:
            area += w * h
    return float(min(1.0, area / (g.shape[0] * g.shape[1])))


# --- perceptual hashes ----------------------------------------------------------------------------------
def phash(frame: np.ndarray) -> int:
    """64-bit DCT perceptual hash: the 8x8 lowest frequencies of the 32x32 grey image, each bit = above
    their median."""
    small = cv2.resize(grey(frame), (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low)
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def clip_hashes(frames: list[np.ndarray] | np.ndarray) -> list[str]:
    """Perceptual hashes of the first, middle and last frames, as 16-digit hex strings."""
    return [f"{phash(f):016x}" for f in (frames[0], frames[len(frames) // 2], frames[-1])]


def hash_distance(a: list[str], b: list[str]) -> float:
    """Mean Hamming distance (bits, 0..64) between two clips' frame hashes."""
    return float(np.mean([bin(int(x, 16) ^ int(y, 16)).count("1") for x, y in zip(a, b)]))


def near_duplicates(hashes: list[list[str]], max_distance: float) -> list[int]:
    """Indices of clips within `max_distance` of an earlier clip that is itself kept (greedy, in order)."""
    kept: list[np.ndarray] = []
    dup = []
    for i, h in enumerate(hashes):
        bits = np.array([[(int(x, 16) >> k) & 1 for k in range(HASH_BITS)] for x in h], np.uint8)  # (3, 64)
        if kept and (np.abs(np.stack(kept) - bits[None]).sum(-1).mean(-1) <= max_distance).any():
            dup.append(i)
        else:
            kept.append(bits.astype(np.int16))
    return dup


# --- captions -------------------------------------------------------------------------------------------
def caption_similarity(captions: list[str], query: str) -> list[float]:
    """Cosine similarity of each caption's MiniLM sentence embedding to the query's (vidiff[text])."""
    import torch

    from ..conditioning.text import get_text_encoder

    enc = get_text_encoder()
    q = enc.encode([query]).pooled                      # (1, D)
    out = []
    for i in range(0, len(captions), 64):
        p = enc.encode(captions[i:i + 64]).pooled       # (B, D)
        out += torch.nn.functional.cosine_similarity(p, q).tolist()
    return [float(x) for x in out]
