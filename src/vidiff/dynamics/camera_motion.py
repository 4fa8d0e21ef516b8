"""Global (camera) + local (scene) motion for image animation: a per-frame affine composed with the
oscillation of Generative Image Dynamics, and its inverse for extracting a spectral volume from a
hand-held clip.

Model. A photo's pixel p first moves by the scene's own displacement L_t(p) (the motion texture of a
spectral volume, `spectral.motion_texture`), then the camera maps the moved point by the affine
C_t ∈ R^{2×3} from frame 0 to frame t (C_0 = identity; same convention as `vidiff.metrics.camera`:
p̃ = (x, y, 1)ᵀ, x = column, y = row):

    D_t(p) = C_t (p + L_t(p))~ − p = g_t(p) + M_t L_t(p),     g_t(p) = C_t p̃ − p,

with M_t the linear part of C_t. D_t is the one displacement field the renderer splats (forward warp).
A constant camera step A (pan, zoom, roll per frame, about the image centre) gives C_t = A^t, so the
frame-to-frame affine that `metrics.camera.estimate_camera_motion` recovers from the rendered clip is A.

Inverse. Trajectories D_t measured from a video (`flow.flow_to_frames`, reference frame 0) are turned into
the scene's own motion by L_t(p) = C_t⁻¹ (p + D_t(p))~ − p — the same composition with C_t⁻¹ — where
C_t is the product of the frame-to-frame affines fitted to the video's optical flow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..metrics.camera import affine_flow, estimate_camera_motion
from ..utils import VidiffError
from .animate import get_renderer, render_video
from .loop import playback_times
from .spectral import motion_texture, resize_spectral

CAMERA_SYNTAX = ("give --camera as comma-separated parts pan:DX,DY (px per frame), zoom:S (scale per frame, "
                 "e.g. 1.01) and rotate:DEG (degrees per frame, counter-clockwise), e.g. 'pan:1,0,zoom:1.01'")
_ARITY = {"pan": 2, "zoom": 1, "rotate": 1}


@dataclass(frozen=True)
class CameraMotion:
    """A constant camera step per frame about the image centre: translation (px), scale and roll (degrees)."""

    pan: tuple[float, float] = (0.0, 0.0)
    zoom: float = 1.0
    rotate: float = 0.0


def parse_camera(text: str) -> CameraMotion:
    """'pan:DX,DY,zoom:S,rotate:DEG' (any subset, any order) -> `CameraMotion`; anything else is a VidiffError."""
    parts: dict[str, list[str]] = {}
    current = None
    for token in (t.strip() for t in str(text).split(",")):
        if ":" in token:
            name, token = (s.strip() for s in token.split(":", 1))
            if name not in _ARITY:
                raise VidiffError(f"--camera {text!r}: unknown part {name!r}; {CAMERA_SYNTAX}")
            if name in parts:
                raise VidiffError(f"--camera {text!r}: {name} is given twice; {CAMERA_SYNTAX}")
            current = parts[name] = []
        if current is None:
            raise VidiffError(f"--camera {text!r}: expected a part name before {token!r}; {CAMERA_SYNTAX}")
        current.append(token)
    if not parts:
        raise VidiffError(f"--camera is empty; {CAMERA_SYNTAX}")
    values = {}
    for name, tokens in parts.items():
        try:
            nums = [float(t) for t in tokens]
        except ValueError:
            nums = []
        if len(nums) != _ARITY[name] or not all(math.isfinite(v) for v in nums):
            raise VidiffError(f"--camera {text!r}: {name} takes {_ARITY[name]} number(s), got "
                              f"{','.join(tokens)!r}; {CAMERA_SYNTAX}")
        values[name] = nums
    if "zoom" in values and values["zoom"][0] <= 0:
        raise VidiffError(f"--camera {text!r}: zoom must be positive (1 = no zoom), got {values['zoom'][0]:g}")
    return CameraMotion(pan=tuple(values.get("pan", (0.0, 0.0))), zoom=values.get("zoom", [1.0])[0],
                        rotate=values.get("rotate", [0.0])[0])


def step_affine(camera: CameraMotion, height: int, width: int) -> np.ndarray:
    """The frame-to-frame affine A (2, 3) float64 of `camera`: p ↦ c + s R(θ)(p − c) + pan, c the image centre."""
    th = math.radians(camera.rotate)
    # x right, y down: this rotation turns the picture counter-clockwise on screen for θ > 0
    lin = camera.zoom * np.array([[math.cos(th), math.sin(th)], [-math.sin(th), math.cos(th)]])
    c = np.array([(width - 1) / 2, (height - 1) / 2])
    return np.concatenate([lin, (c - lin @ c + np.asarray(camera.pan, np.float64))[:, None]], 1)


def _homogeneous(affines: np.ndarray) -> np.ndarray:
    """(N, 2, 3) -> (N, 3, 3) with last row (0, 0, 1)."""
    n = affines.shape[0]
    return np.concatenate([affines, np.broadcast_to(np.array([0.0, 0.0, 1.0]), (n, 1, 3))], 1)


def camera_affines(camera: CameraMotion, frames: int, height: int, width: int) -> np.ndarray:
    """C_t = A^t for t = 0..frames-1: (frames, 2, 3) float64 affines from frame 0 to frame t."""
    a = _homogeneous(step_affine(camera, height, width)[None])[0]
    return np.stack([np.linalg.matrix_power(a, t)[:2] for t in range(frames)])


def accumulate_affines(steps: np.ndarray) -> np.ndarray:
    """Frame-to-frame affines (N, 2, 3) (A_t: frame t -> t+1) -> (N+1, 2, 3) from frame 0:
    C_0 = I, C_{t+1} = A_t C_t."""
    steps = _homogeneous(np.asarray(steps, np.float64))
    out = [np.eye(3)]
    for a in steps:
        out.append(a @ out[-1])
    return np.stack(out)[:, :2]


def invert_affines(affines: np.ndarray) -> np.ndarray:
    """(N, 2, 3) -> their inverses (N, 2, 3)."""
    return np.linalg.inv(_homogeneous(np.asarray(affines, np.float64)))[:, :2]


def compose_flow(affines: np.ndarray, local: Tensor) -> Tensor:
    """D_t(p) = C_t (p + L_t(p))~ − p (module doc): affines (N, 2, 3), local (N, 2, H, W) -> (N, 2, H, W)."""
    n, _, h, w = local.shape
    if affines.shape != (n, 2, 3):
        raise VidiffError(f"need one affine (2, 3) per displacement field: got {affines.shape} for {n} fields")
    g = torch.from_numpy(affine_flow(affines, h, w)).permute(0, 3, 1, 2).to(local)  # (N, 2, H, W) camera flow
    lin = torch.from_numpy(np.asarray(affines, np.float64)[:, :, :2]).to(local)       # (N, 2, 2)
    return g + torch.einsum("nij,njhw->nihw", lin, local)


def animate_with_camera(photo: Tensor, motion: dict | None, frames: int, camera: CameraMotion, *,
                        slowmo: float = 1.0, magnify: float = 1.0, loop: bool = False,
                        renderer=None) -> np.ndarray:
    """`animate.animate` with the camera composed in: the photo (1, 3, H, W) in [-1, 1] moved by its
    motion's oscillation (none when `motion` is None) and by `camera` (one step per output frame);
    uint8 (frames, H, W, 3). A still camera gives `animate.animate`'s frames exactly."""
    if slowmo <= 0:
        raise VidiffError(f"--slowmo must be positive, got {slowmo}")
    if frames < 1:
        raise VidiffError(f"--frames must be >= 1, got {frames}")
    h, w = photo.shape[-2:]
    affines = camera_affines(camera, frames, h, w)
    if motion is None:
        def local(a: int, b: int) -> Tensor:
            return photo.new_zeros(b - a, 2, h, w)
    else:
        sv = resize_spectral(motion["spectral_volume"], (h, w))
        times = playback_times(frames, motion["period"], slowmo=slowmo, loop=loop)

        def local(a: int, b: int) -> Tensor:
            return motion_texture(sv, times[a:b], motion["period"], magnify=magnify)  # (b-a, 2, H, W)

    return render_video(photo, lambda a, b: compose_flow(affines[a:b], local(a, b)), frames,
                        renderer if renderer is not None else get_renderer(), desc="animating")


def remove_camera(frames: np.ndarray, trajectories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The scene's own trajectories of a hand-held clip: uint8 frames (T, H, W, 3) and their trajectories
    (T, 2, H, W) from frame 0 -> (L (T, 2, H, W) float32, camera affines C_t (T, 2, 3)), with
    L_t(p) = C_t⁻¹ (p + D_t(p))~ − p and C_t accumulated from `estimate_camera_motion` (module doc)."""
    trajectories = np.asarray(trajectories)
    if trajectories.ndim != 4 or trajectories.shape[1] != 2 or trajectories.shape[0] != len(frames):
        raise VidiffError(f"trajectories must be (T, 2, H, W) for the {len(frames)} frames, "
                          f"got {trajectories.shape}")
    cams = accumulate_affines(estimate_camera_motion(frames))                        # (T, 2, 3)
    local = compose_flow(invert_affines(cams), torch.from_numpy(trajectories).double())
    return local.float().numpy(), cams
