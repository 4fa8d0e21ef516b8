"""Synthetic "moving shapes" videos: one anti-aliased object on a black background, bouncing off the walls.

Every video is a pure function of `(seed, index)`; its metadata (shape, colour, size, initial
position, velocity, direction, class id, caption) is the ground truth the checker recovers.
Positions and sizes are in pixels of the output frame; `y` grows downwards ("up" is -y).

Optionally (`ShapesConfig.background = "texture"`, `camera_*`) the background is a smooth random
texture seen by a moving camera: a per-clip pan, roll and zoom (an affine per frame, `camera_affines`)
move the background, while the object keeps its bouncing path in the frame; the metadata's "camera"
record holds the frame-to-frame affines, the ground truth of `vidiff.metrics.camera`.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..utils import VidiffError, atomic_path

BACKGROUND = (0, 0, 0)
# Saturated colours far apart in RGB (and in chroma), so they survive H.264's 4:2:0 subsampling.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (235, 30, 30),
    "green": (30, 210, 40),
    "blue": (40, 90, 255),
    "yellow": (245, 225, 20),
    "magenta": (230, 40, 230),
    "cyan": (20, 220, 230),
}
DEFAULT_COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle")
# Compass directions as unit steps (dx, dy) in image coordinates (y down).
DIRECTIONS: dict[str, tuple[int, int]] = {
    "right": (1, 0), "up-right": (1, -1), "up": (0, -1), "up-left": (-1, -1),
    "left": (-1, 0), "down-left": (-1, 1), "down": (0, 1), "down-right": (1, 1),
}
SIZE_NAMES = ("small", "large")
BACKGROUNDS = {"black": "black", "texture": "textured"}  # background -> the word captions use
TEXTURE_WAVES = 12  # plane waves summed into a textured background

# Training captions use exactly these words ...
_DIR_PHRASE = {
    "right": "right", "left": "left", "up": "up", "down": "down",
    "up-right": "up and right", "up-left": "up and left",
    "down-right": "down and right", "down-left": "down and left",
}
_DIR_PHRASE_TO = {
    "right": "to the right", "left": "to the left", "up": "upwards", "down": "downwards",
    "up-right": "up and to the right", "up-left": "up and to the left",
    "down-right": "down and to the right", "down-left": "down and to the left",
}
TEMPLATES = (
    "a {colour} {shape} moving {dir}",
    "a {size} {colour} {shape} moves {dir_to}",
    "a {colour} {shape} moves {dir_to} and bounces off the walls",
    "a {size} {colour} {shape} moving {dir} on a black background",
)
# ... and these are held out of them, for evaluating text conditioning on unseen paraphrases.
COLOUR_SYNONYMS = {
    "red": ("crimson", "scarlet"), "green": ("emerald", "grass-coloured"),
    "blue": ("azure", "sapphire"), "yellow": ("golden", "lemon-coloured"),
    "magenta": ("fuchsia", "pink"), "cyan": ("turquoise", "aqua"),
}
SHAPE_SYNONYMS = {
    "circle": ("disc", "ball", "round dot"), "square": ("box", "block"),
    "triangle": ("wedge", "triangular tile"),
}
_PARA_DIR = {
    "right": ("to the east", "rightward"), "left": ("to the west", "leftward"),
    "up": ("towards the top", "skyward"), "down": ("towards the bottom", "downward"),
    "up-right": ("towards the top right corner",), "up-left": ("towards the top left corner",),
    "down-right": ("towards the bottom right corner",),
    "down-left": ("towards the bottom left corner",),
}
PARAPHRASE_VERBS = ("drifting", "sliding", "gliding", "travelling", "heading")

# Caption variants for training text models on more than four templates (`caption_variants`): a
# bank of synonyms whose words (and stems) are disjoint from the held-out ones above, so paraphrase
# scores measure generalisation to unseen words. metadata.jsonl stores them as "captions".
VARIANT_COLOURS = {
    "red": ("ruby", "cherry", "tomato", "blood-red", "rose-red", "vermilion", "cardinal", "maroon",
            "wine-red", "rust-red", "fire-red", "strawberry", "garnet", "carmine", "cranberry", "raspberry"),
    "green": ("lime", "jade", "leaf-green", "forest-green", "mint", "olive", "moss-green", "pine-green",
              "fern-green", "sage", "pea-green", "apple-green", "jungle-green", "shamrock", "clover", "avocado"),
    "blue": ("cobalt", "navy", "cerulean", "ultramarine", "royal-blue", "ocean-blue", "sea-blue", "denim",
             "indigo", "cornflower", "midnight-blue", "steel-blue", "periwinkle", "electric-blue",
             "baby-blue", "blueberry"),
    "yellow": ("amber", "canary", "mustard", "sunflower", "saffron", "banana", "butter-yellow", "honey",
               "dandelion", "sunny", "blonde", "daffodil", "buttercup", "straw-yellow", "mango", "citrine"),
    "magenta": ("violet", "purple", "orchid", "plum", "mauve", "lilac", "hot-purple", "berry-purple"),
    "cyan": ("teal", "ice-blue", "peacock", "mint-blue", "cyan-blue", "glacier-blue", "lagoon", "seafoam"),
}
VARIANT_SHAPES = {
    "circle": ("orb", "sphere", "coin", "bubble", "circular shape", "marble", "pearl", "full moon"),
    "square": ("cube", "rectangle", "brick", "crate", "quadrilateral", "four-sided shape", "dice", "parcel"),
    "triangle": ("pyramid", "arrowhead", "delta", "three-sided shape", "cone", "spike", "tent", "shark fin"),
}
VARIANT_VERBS = ("moving", "rolling", "floating", "flying", "going", "racing", "cruising", "zooming",
                 "coasting", "wandering", "darting", "speeding")
VARIANT_DIRECTIONS = {
    "right": ("to the right edge", "across to the right", "to the right-hand side", "along to the right",
              "right across the frame"),
    "left": ("to the left edge", "across to the left", "to the left-hand side", "along to the left",
             "left across the frame"),
    "up": ("to the north", "northwards", "up the screen", "to the upper edge", "higher and higher"),
    "down": ("to the south", "southwards", "down the screen", "to the lower edge", "lower and lower"),
    "up-right": ("to the upper right", "diagonally up and right", "up and across to the right",
                 "north and to the right", "up the screen and to the right"),
    "up-left": ("to the upper left", "diagonally up and left", "up and across to the left",
                "north and to the left", "up the screen and to the left"),
    "down-right": ("to the lower right", "diagonally down and right", "down and across to the right",
                   "south and to the right", "down the screen and to the right"),
    "down-left": ("to the lower left", "diagonally down and left", "down and across to the left",
                  "south and to the left", "down the screen and to the left"),
}
VARIANT_TEMPLATES = (
    "a {colour} {shape} {verb} {dir}",
    "the {colour} {shape} is {verb} {dir}",
    "{colour} {shape} {verb} {dir}",
    "a {size} {colour} {shape} {verb} {dir} over a black background",
    "one {colour} {shape} {verb} {dir}",
    "a {size} {colour} {shape} that keeps {verb} {dir}",
    "video of a {colour} {shape} {verb} {dir}",
)


@dataclass(frozen=True)
class ShapesConfig:
    """What `generate_shapes` draws from; sizes and speeds are fractions of the frame size."""

    frames: int = 16
    size: int = 32
    colours: tuple[str, ...] = DEFAULT_COLOURS
    shapes: tuple[str, ...] = SHAPES
    directions: tuple[str, ...] = tuple(DIRECTIONS)
    small: tuple[float, float] = (0.22, 0.27)   # object extent / frame size, "small"
    large: tuple[float, float] = (0.31, 0.36)   # ... "large"
    speed: tuple[float, float] = (0.04, 0.08)   # pixels per frame / frame size
    safe_frames: int = 4                         # no bounce during the first frames
    supersample: int = 4                         # render at 4x and box-downsample
    caption_variants: int = 8                    # extra captions per video from the VARIANT_* bank
    background: str = "black"                    # or "texture": a smooth random texture that shows camera motion
    camera_speed: tuple[float, float] = (0.0, 0.0)  # camera pan: the background's motion, px per frame / size
    camera_rotation: float = 0.0                 # max |roll| per frame about the frame centre, degrees
    camera_zoom: float = 0.0                     # max |log zoom| per frame about the frame centre
    camera_shake: float = 0.0                    # per-frame jitter of the pan (std, px per frame / size)

    def validate(self) -> None:
        """Raise VidiffError on unknown names or sizes the generator cannot draw."""
        for name, known in ((self.colours, PALETTE), (self.shapes, SHAPES), (self.directions, DIRECTIONS)):
            bad = [n for n in name if n not in known]
            if bad or not name:
                raise VidiffError(f"unknown or empty choice {bad or list(name)}; choose from {list(known)}")
        if self.size < 8 or self.frames < 1:
            raise VidiffError(f"shapes need size >= 8 and frames >= 1, got size={self.size}, frames={self.frames}")
        if self.caption_variants < 0:
            raise VidiffError(f"caption_variants must be >= 0, got {self.caption_variants}")
        if self.background not in BACKGROUNDS:
            raise VidiffError(f"unknown background {self.background!r}; choose from {list(BACKGROUNDS)}")
        lo, hi = self.camera_speed
        if not 0 <= lo <= hi or min(self.camera_rotation, self.camera_zoom, self.camera_shake) < 0:
            raise VidiffError(f"camera motion needs 0 <= speed min <= speed max and rotation, zoom, shake >= 0; "
                              f"got speed={self.camera_speed}, rotation={self.camera_rotation}, "
                              f"zoom={self.camera_zoom}, shake={self.camera_shake}")
        if self.camera_moves and self.background == "black":
            raise VidiffError("a camera moving over a uniform background is invisible; "
                              "use the textured background (--background texture)")

    @property
    def camera_moves(self) -> bool:
        """True when any camera motion (pan, roll, zoom, shake) is asked for."""
        return max(*self.camera_speed, self.camera_rotation, self.camera_zoom, self.camera_shake) > 0

    @property
    def num_classes(self) -> int:
        """Number of (colour, shape) classes."""
        return len(self.colours) * len(self.shapes)


@dataclass(frozen=True)
class ShapeParams:
    """Ground truth of one video (pixels, y down)."""

    index: int
    shape: str
    colour: str
    rgb: tuple[int, int, int]
    size_name: str
    extent: float          # circle diameter / square side / triangle base and height
    x0: float              # initial centre of the bounding box
    y0: float
    vx: float              # pixels per frame
    vy: float
    direction: str
    speed: float
    class_id: int
    caption: str


def class_id(colour: str, shape: str, cfg: ShapesConfig = ShapesConfig()) -> int:
    """Class index colour-major: colour_index * len(shapes) + shape_index."""
    return cfg.colours.index(colour) * len(cfg.shapes) + cfg.shapes.index(shape)


def class_name(cid: int, cfg: ShapesConfig = ShapesConfig()) -> tuple[str, str]:
    """Inverse of `class_id`: (colour, shape)."""
    return cfg.colours[cid // len(cfg.shapes)], cfg.shapes[cid % len(cfg.shapes)]


def caption(colour: str, shape: str, direction: str, size_name: str = "small", template: int = 0) -> str:
    """A training caption, e.g. "a red circle moving left" (template 0)."""
    return TEMPLATES[template % len(TEMPLATES)].format(
        colour=colour, shape=shape, size=size_name, dir=_DIR_PHRASE[direction],
        dir_to=_DIR_PHRASE_TO[direction])


def caption_variants(p: ShapeParams, num: int, seed: int = 0) -> list[str]:
    """`num` rephrasings of video `p.index`'s caption from the VARIANT_* bank ("the cobalt cube is rolling
    to the north"); each slot keeps the caption's own word with probability 0.3. Pure in (seed, index)."""
    rng = np.random.default_rng([seed, p.index, 2])  # a stream of its own: the video does not change

    def pick(options):
        return options[rng.integers(len(options))]

    out = []
    for _ in range(num):
        own = rng.random(3) < 0.3
        colour = p.colour if own[0] else pick(VARIANT_COLOURS[p.colour])
        shape = p.shape if own[1] else pick(VARIANT_SHAPES[p.shape])
        direction = (pick((_DIR_PHRASE[p.direction], _DIR_PHRASE_TO[p.direction])) if own[2]
                     else pick(VARIANT_DIRECTIONS[p.direction]))
        out.append(pick(VARIANT_TEMPLATES).format(colour=colour, shape=shape, verb=pick(VARIANT_VERBS),
                                                  dir=direction, size=p.size_name))
    return out


def training_vocabulary() -> set[str]:
    """Every word any training caption (the four templates and the caption variants) can contain."""
    words = set()
    for t in TEMPLATES + VARIANT_TEMPLATES:
        words |= set(re.sub(r"\{\w+\}", " ", t).split())
    for group in (PALETTE, SHAPES, SIZE_NAMES, BACKGROUNDS.values(), _DIR_PHRASE.values(), _DIR_PHRASE_TO.values(),
                  VARIANT_VERBS, *VARIANT_COLOURS.values(), *VARIANT_SHAPES.values(), *VARIANT_DIRECTIONS.values()):
        for w in group:
            words |= set(w.split())
    return words


def canonical_prompts(num: int = 64, seed: int = 0, cfg: ShapesConfig = ShapesConfig()) -> Iterator[tuple[str, dict]]:
    """Yield `num` training-style prompts ("a red circle moving left") with their target attributes
    {"colour", "shape", "direction"}: the in-distribution counterpart of `paraphrase_prompts`."""
    rng = np.random.default_rng([seed, 104729])
    for _ in range(num):
        colour = cfg.colours[rng.integers(len(cfg.colours))]
        shape = cfg.shapes[rng.integers(len(cfg.shapes))]
        direction = cfg.directions[rng.integers(len(cfg.directions))]
        yield caption(colour, shape, direction), {"colour": colour, "shape": shape, "direction": direction}


def paraphrase_prompts(num: int = 64, seed: int = 0, cfg: ShapesConfig = ShapesConfig()) -> Iterator[tuple[str, dict]]:
    """Yield `num` held-out paraphrased prompts ("a crimson disc drifting to the west") with their
    target attributes {"colour", "shape", "direction"}; no word of the synonyms occurs in training captions."""
    rng = np.random.default_rng([seed, 7919])
    for _ in range(num):
        colour = cfg.colours[rng.integers(len(cfg.colours))]
        shape = cfg.shapes[rng.integers(len(cfg.shapes))]
        direction = cfg.directions[rng.integers(len(cfg.directions))]
        syn_c = COLOUR_SYNONYMS[colour][rng.integers(len(COLOUR_SYNONYMS[colour]))]
        syn_s = SHAPE_SYNONYMS[shape][rng.integers(len(SHAPE_SYNONYMS[shape]))]
        syn_d = _PARA_DIR[direction][rng.integers(len(_PARA_DIR[direction]))]
        verb = PARAPHRASE_VERBS[rng.integers(len(PARAPHRASE_VERBS))]
        yield f"a {syn_c} {syn_s} {verb} {syn_d}", {"colour": colour, "shape": shape, "direction": direction}


def sample_params(index: int, seed: int = 0, cfg: ShapesConfig = ShapesConfig()) -> ShapeParams:
    """Draw the parameters of video `index`; a pure function of (seed, index, cfg)."""
    rng = np.random.default_rng([seed, index])
    S = cfg.size
    colour = cfg.colours[rng.integers(len(cfg.colours))]
    shape = cfg.shapes[rng.integers(len(cfg.shapes))]
    direction = cfg.directions[rng.integers(len(cfg.directions))]
    size_name = SIZE_NAMES[rng.integers(2)]
    lo, hi = cfg.small if size_name == "small" else cfg.large
    extent = float(rng.uniform(lo, hi) * S)
    speed = float(rng.uniform(*cfg.speed) * S)
    dx, dy = DIRECTIONS[direction]
    norm = float(np.hypot(dx, dy))
    vx, vy = speed * dx / norm, speed * dy / norm
    r = extent / 2
    # Start where the first `safe_frames` steps stay inside, so the initial direction is visible.
    k = min(cfg.safe_frames, cfg.frames - 1)
    pos = []
    for v in (vx, vy):
        a, b = r, S - r
        a, b = (a, b - k * v) if v >= 0 else (a - k * v, b)
        if b < a:  # too fast for the frame: start anywhere
            a, b = r, S - r
        pos.append(float(rng.uniform(a, b)))
    template = int(rng.integers(len(TEMPLATES)))
    text = _on_background(caption(colour, shape, direction, size_name, template), cfg)
    return ShapeParams(
        index=index, shape=shape, colour=colour, rgb=PALETTE[colour], size_name=size_name,
        extent=extent, x0=pos[0], y0=pos[1], vx=vx, vy=vy, direction=direction, speed=speed,
        class_id=class_id(colour, shape, cfg), caption=text,
    )


def _on_background(text: str, cfg: ShapesConfig) -> str:
    """A caption naming the configured background instead of "black"."""
    return text.replace("black background", f"{BACKGROUNDS[cfg.background]} background")


def _bounce(p0: np.ndarray, v: np.ndarray, t: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Straight motion p0 + v t reflected between lo and hi (a triangle wave of period 2 (hi - lo))."""
    L = hi - lo
    u = np.mod(p0 - lo + v * t, 2 * L)
    return lo + L - np.abs(u - L)


def trajectories(params: list[ShapeParams], frames: int, size: int) -> np.ndarray:
    """Bounding-box centres (N, F, 2) as (x, y): straight lines reflected at the walls."""
    p0 = np.array([[p.x0, p.y0] for p in params])[:, None]           # (N, 1, 2)
    v = np.array([[p.vx, p.vy] for p in params])[:, None]             # (N, 1, 2)
    r = np.array([p.extent / 2 for p in params])[:, None, None]       # (N, 1, 1)
    t = np.arange(frames, dtype=np.float64)[None, :, None]            # (1, F, 1)
    return _bounce(p0, v, t, r, size - r)


def _coverage(shape_ids: np.ndarray, centres: np.ndarray, r: np.ndarray, size: int, ss: int) -> np.ndarray:
    """Anti-aliased coverage (N, F, size, size) in [0, 1]: point-sample an ss x ss grid per pixel, then average."""
    n = ss * size
    g = (np.arange(n, dtype=np.float32) + 0.5) / ss                   # sub-pixel centres in pixels
    X = g[None, None, None, :] - centres[..., 0, None, None].astype(np.float32)  # (N, F, 1, n)
    Y = g[None, None, :, None] - centres[..., 1, None, None].astype(np.float32)  # (N, F, n, 1)
    R = r[:, None, None, None].astype(np.float32)
    sid = shape_ids[:, None, None, None]
    circle = X**2 + Y**2 <= R**2
    square = (np.abs(X) <= R) & (np.abs(Y) <= R)
    # upward isosceles triangle in the box: apex (0, -R), base y = +R from x = -R to +R
    triangle = (Y <= R) & (np.abs(X) <= (Y + R) / 2)
    inside = np.where(sid == 0, circle, np.where(sid == 1, square, triangle))  # (N, F, n, n)
    N, F = inside.shape[:2]
    return inside.reshape(N, F, size, ss, size, ss).mean(axis=(3, 5), dtype=np.float32)


def camera_affines(index: int, seed: int = 0, cfg: ShapesConfig = ShapesConfig()) -> np.ndarray:
    """Frame-to-frame camera affines (F-1, 2, 3) of video `index`, a pure function of (seed, index, cfg):
    a static background point at pixel p of frame t is at A_t [p; 1] in frame t+1, in pixel-index
    coordinates (x = column, y = row, pixel centres at integers, as optical flow).

        A_t = [s R(θ) | c − s R(θ) c + d_t],   d_t = d + ε_t,

    a roll θ (|θ| <= camera_rotation degrees) and zoom s = e^z (|z| <= camera_zoom) about the frame centre
    c = ((S−1)/2, (S−1)/2), then the pan d (|d| / S in camera_speed, any direction) plus shake ε_t ~
    N(0, (camera_shake·S)²). Identity affines when the camera is static."""
    rng = np.random.default_rng([seed, index, 3])  # a stream of its own: the object does not change
    S, n = cfg.size, max(cfg.frames - 1, 0)
    speed, angle = rng.uniform(*cfg.camera_speed) * S, rng.uniform(0, 2 * np.pi)
    theta = np.deg2rad(rng.uniform(-cfg.camera_rotation, cfg.camera_rotation))
    s = np.exp(rng.uniform(-cfg.camera_zoom, cfg.camera_zoom))
    shake = rng.normal(size=(n, 2)) * cfg.camera_shake * S
    L = s * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    c = np.full(2, (S - 1) / 2)
    d = speed * np.array([np.cos(angle), np.sin(angle)]) + shake                 # (F-1, 2)
    out = np.empty((n, 2, 3))
    out[:, :, :2] = L
    out[:, :, 2] = c - L @ c + d
    return out


def background_frames(index: int, seed: int = 0, cfg: ShapesConfig = ShapesConfig()) -> np.ndarray:
    """The textured background of video `index` as float32 (F, H, W, 3) in [0, 255], seen through the camera
    of `camera_affines`: a sum of TEXTURE_WAVES random plane waves (wavelengths 0.1..0.4 of the frame)
    W(w) = Σ_k a_k cos(k_k·w + φ_k) in the world (frame 0's pixel coordinates), frame t showing W(M_t⁻¹ p)
    with M_t = A_{t-1} ⋯ A_0, box-filtered over `supersample`² sub-pixels; a muted random colour."""
    rng = np.random.default_rng([seed, index, 4])
    S, ss, K = cfg.size, cfg.supersample, TEXTURE_WAVES
    lam = rng.uniform(0.1, 0.4, K) * S
    ang, phase = rng.uniform(0, 2 * np.pi, K), rng.uniform(0, 2 * np.pi, K)
    base, tint = rng.uniform(50, 120, 3), rng.uniform(0.6, 1.0, 3)
    k = 2 * np.pi / lam[:, None] * np.stack([np.cos(ang), np.sin(ang)], 1)      # (K, 2) wave vectors
    A = camera_affines(index, seed, cfg)
    M = np.tile(np.eye(3), (cfg.frames, 1, 1))                                 # (F, 3, 3) frame 0 -> frame t
    for t in range(1, cfg.frames):
        M[t] = np.vstack([A[t - 1], [0, 0, 1]]) @ M[t - 1]
    Minv = np.linalg.inv(M)                                                    # frame t -> world
    # k·(L p + b) + φ = (Lᵀk)·p + (k·b + φ): each frame is a sum of plane waves in its own pixels,
    # separable as cos(α(x) + β(y)) = cos α cos β − sin α sin β
    kp = np.einsum("fij,ki->fkj", Minv[:, :2, :2], k)                          # (F, K, 2)
    ph = k @ Minv[:, :2, 2].T + phase[:, None]                                 # (K, F)
    g = (np.arange(S * ss) + 0.5) / ss - 0.5                                   # sub-pixel centres, pixel index
    a = g[None, :, None] * kp[:, None, :, 0] + ph.T[:, None, :]                # (F, n, K) along x
    b = g[None, :, None] * kp[:, None, :, 1]                                   # (F, n, K) along y
    amp = np.sqrt(2 / K)
    v = amp * (np.cos(b) @ np.cos(a).transpose(0, 2, 1) - np.sin(b) @ np.sin(a).transpose(0, 2, 1))  # (F, n, n)
    v = v.reshape(cfg.frames, S, ss, S, ss).mean(axis=(2, 4))                  # (F, H, W)
    return np.clip(base + 30.0 * v[..., None] * tint, 0, 255).astype(np.float32)


def render(params: list[ShapeParams], frames: int, size: int, supersample: int = 4,
           background: np.ndarray | None = None) -> np.ndarray:
    """Render videos as uint8 (N, F, size, size, 3) on black, or on `background` (N, F, H, W, 3) float."""
    if not params:
        return np.zeros((0, frames, size, size, 3), np.uint8)
    centres = trajectories(params, frames, size)
    shape_ids = np.array([SHAPES.index(p.shape) for p in params])
    r = np.array([p.extent / 2 for p in params])
    cov = _coverage(shape_ids, centres, r, size, supersample)[..., None]      # (N, F, H, W, 1)
    bg = np.array(BACKGROUND, np.float32) if background is None else background
    rgb = np.array([p.rgb for p in params], np.float32)[:, None, None, None]  # (N, 1, 1, 1, 3)
    return np.round(bg + cov * (rgb - bg)).astype(np.uint8)


def render_shapes(num: int, frames: int = 16, size: int = 32, seed: int = 0, start: int = 0,
                  cfg: ShapesConfig | None = None, chunk: int = 32) -> tuple[np.ndarray, list[dict]]:
    """Videos `start .. start+num-1` as uint8 (N, F, H, W, 3) plus one metadata dict each."""
    cfg = ShapesConfig(frames=frames, size=size) if cfg is None else cfg
    cfg.validate()
    params = [sample_params(i, seed, cfg) for i in range(start, start + num)]
    out = np.empty((num, cfg.frames, cfg.size, cfg.size, 3), np.uint8)
    for i in range(0, num, chunk):
        part = params[i:i + chunk]
        bg = None if cfg.background == "black" else np.stack([background_frames(p.index, seed, cfg) for p in part])
        out[i:i + chunk] = render(part, cfg.frames, cfg.size, cfg.supersample, bg)
    return out, [metadata(p, cfg, seed) for p in params]


def shapes_tensor(num: int, frames: int = 16, size: int = 32, seed: int = 0, cfg: ShapesConfig | None = None):
    """In-memory training batch: (videos (N, C, F, H, W) float in [-1, 1], class ids (N,) long, captions)."""
    import torch

    from .io import from_uint8

    videos, meta = render_shapes(num, frames, size, seed, cfg=cfg)
    x = from_uint8(videos) if num else torch.zeros(0, 3, frames, size, size)
    return x, torch.tensor([m["class_id"] for m in meta], dtype=torch.long), [m["caption"] for m in meta]


def metadata(p: ShapeParams, cfg: ShapesConfig = ShapesConfig(), seed: int = 0) -> dict:
    """The JSON record of one video: caption, caption variants ("captions") and all attributes (and the
    dataset's number of classes)."""
    d = asdict(p)
    d["rgb"] = list(p.rgb)
    d["num_classes"] = cfg.num_classes
    if cfg.caption_variants:
        d["captions"] = [_on_background(c, cfg) for c in caption_variants(p, cfg.caption_variants, seed)]
    if cfg.background != "black":
        d["background"] = cfg.background
    if cfg.camera_moves:
        A = camera_affines(p.index, seed, cfg)  # (F-1, 2, 3): frame t pixel p -> frame t+1 pixel A_t [p; 1]
        c = np.full(2, (cfg.size - 1) / 2)
        pan = A[:, :, 2] - c + A[:, :, :2] @ c if len(A) else np.zeros((0, 2))  # d_t of `camera_affines`
        d["camera"] = {"pan": pan.mean(0).tolist() if len(A) else [0.0, 0.0],
                       "rotation": float(np.degrees(np.arctan2(A[0, 1, 0], A[0, 0, 0]))) if len(A) else 0.0,
                       "zoom": float(np.hypot(A[0, 0, 0], A[0, 1, 0])) if len(A) else 1.0,
                       "affines": A.tolist()}
    return d


def generate_shapes(out_dir: str | Path, num: int, frames: int = 16, size: int = 32, seed: int = 0,
                    fmt: str = "mp4", cfg: ShapesConfig | None = None, fps: float = 8.0,
                    progress: bool = True, workers: int | None = None) -> Path:
    """Write `num` videos (`shape_00000.mp4`, ...) and `metadata.jsonl` (file, caption, attributes) into
    `out_dir`; every file is written atomically, encoders run in `workers` threads."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from ..limits import check_frames_memory
    from .io import check_output, write_video

    if fmt not in ("mp4", "gif", "npy"):
        raise VidiffError(f"unknown format {fmt!r}; use mp4, gif or npy")
    if num < 1:
        raise VidiffError(f"--num must be at least 1, got {num}")
    cfg = ShapesConfig(frames=frames, size=size) if cfg is None else cfg
    cfg.validate()
    # a chunk of 64 videos is rendered at 4x supersampling (float coverage) before it is written
    check_frames_memory(min(64, num) * cfg.frames, 4 * cfg.size, 4 * cfg.size, "rendering", bytes_per_pixel=8,
                        option="--size or --frames")
    out_dir = Path(out_dir)
    check_output(out_dir, "OUT_DIR", kind="dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(num - 1)))
    workers = workers or min(4, os.cpu_count() or 1)
    lines, chunk = [], 64
    with tqdm(total=num, desc="rendering shapes", unit="video", disable=not progress) as bar, \
            ThreadPoolExecutor(workers) as pool:
        for start in range(0, num, chunk):
            videos, meta = render_shapes(min(chunk, num - start), seed=seed, start=start, cfg=cfg)
            names = [f"shape_{m['index']:0{width}d}.{fmt}" for m in meta]
            for _ in pool.map(lambda a: write_video(out_dir / a[0], a[1], fps=fps), zip(names, videos)):
                bar.update(1)
            lines += [json.dumps({"file": n, **m}) for n, m in zip(names, meta)]
    with atomic_path(out_dir / "metadata.jsonl") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return out_dir


def read_metadata(root: str | Path) -> dict[str, dict]:
    """`metadata.jsonl` of a folder as {file (relative path): record}; {} when absent."""
    path = Path(root) / "metadata.jsonl"
    if not path.is_file():
        return {}
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            out[str(rec["file"])] = rec
        except (json.JSONDecodeError, KeyError, TypeError):
            raise VidiffError(f"{path}:{n}: bad metadata line; "
                              "each line must be a JSON object with a \"file\" key") from None
    return out
