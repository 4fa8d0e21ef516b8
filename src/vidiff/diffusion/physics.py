"""Physics-aware guidance (the textbook chapter's §11.3.6): a differentiable physical constraint on x̂₀,
applied at every sampling step with gradient guidance (VDM eq. 7, `GradientGuidance`).

"smooth" — Newton's first law between collisions: a free object keeps its velocity, so its centroid's
acceleration a_f = c_{f+1} − 2 c_f + c_{f−1} is zero except where it bounces off a wall. The centroid c_f
is the soft-argmax of the frame's soft foreground mask (`conditioning.trajectory.foreground_mask`,
differentiable in x̂₀), and the penalty is Σ_f Σ_axis (1 − wall_{f,axis}) a_{f,axis}² in pixels²,
where wall marks the accelerations whose three frames touch a wall along that axis (the object's soft
extent within the checker's `wall_margin` (+ 0.6 |v|) of the border), as the shapes checker
(`data.checker`) judges smooth motion.

    vidiff sample --model M --physics smooth [--physics-weight W]
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..conditioning.trajectory import foreground_mask, soft_centroids
from ..data.checker import CheckerConfig
from ..utils import VidiffError
from .guidance import GradientGuidance
from .param import Prediction

DEFAULT_WEIGHT = 1.0


def wall_contacts(centroids: Tensor, mask: Tensor, margin: float | None = None) -> Tensor:
    """(B, F − 2, 2) bool: acceleration f (frames f−1, f, f+1) is at a wall along x / y. The object's half
    extent per axis is half the soft mask's profile length; "at a wall" is the box within `margin` pixels
    of the border (default: the checker's wall_margin of the frame size + 0.6 of the median step)."""
    h, w = mask.shape[-2:]
    c, m = centroids.detach(), mask.detach()
    half = torch.stack([m.amax(-2).sum(-1), m.amax(-1).sum(-1)], -1) / 2  # (B, F, 2) half extents x, y
    if margin is None:
        step = torch.linalg.norm(c[:, 1:] - c[:, :-1], dim=-1)  # (B, F − 1)
        med = step.median(-1, keepdim=True).values[..., None] if step.shape[1] else 0.0  # (B, 1, 1)
        margin = CheckerConfig().wall_margin * max(h, w) + 0.6 * med
    size = torch.tensor([w, h], dtype=c.dtype, device=c.device)
    near = (c - half <= margin) | (c + half >= size - margin)  # (B, F, 2)
    return near[:, :-2] | near[:, 1:-1] | near[:, 2:]


def smooth_motion_penalty(x0: Tensor) -> Tensor:
    """Σ of the squared off-wall accelerations (pixels²) of the object's soft centroid in videos
    x0 (B, C, F, H, W) in [−1, 1]: (B,), differentiable in x0; zero for fewer than 3 frames."""
    if x0.dim() != 5:
        raise VidiffError(f"physics guidance needs video (B, C, F, H, W); got shape {tuple(x0.shape)}")
    if x0.shape[2] < 3:
        return x0.new_zeros(x0.shape[0])
    mask = foreground_mask(x0)  # (B, F, H, W)
    c = soft_centroids(mask)  # (B, F, 2) pixels
    a = c[:, 2:] - 2 * c[:, 1:-1] + c[:, :-2]  # (B, F − 2, 2)
    free = (~wall_contacts(c, mask)).to(a.dtype)
    return (free * a**2).sum((1, 2))


CONSTRAINTS: dict[str, Callable[[Tensor], Tensor]] = {"smooth": smooth_motion_penalty}


class PhysicsGuidance(GradientGuidance):
    """Gradient guidance towards a physical constraint on x̂₀ (`CONSTRAINTS`):
    x̃₀ = x̂₀ − (w α_t / 2) ∇_{z_t} L(x̂₀(z_t)). A weight of 0 returns the wrapped denoiser's prediction
    untouched (sampling is bit-identical to unguided sampling)."""

    def __init__(self, denoiser: Callable, weight: float = DEFAULT_WEIGHT, constraint: str = "smooth"):
        if constraint not in CONSTRAINTS:
            raise VidiffError(f"unknown physics constraint {constraint!r}; use {', '.join(CONSTRAINTS)}")
        if not weight >= 0:
            raise VidiffError(f"--physics-weight must be >= 0; got {weight}")
        super().__init__(denoiser, CONSTRAINTS[constraint], weight)

    def __call__(self, z: Tensor, t, schedule, cond: Any = None) -> Prediction:
        if self.weight == 0.0:
            return self.denoiser(z, t, schedule, cond)
        return super().__call__(z, t, schedule, cond)
