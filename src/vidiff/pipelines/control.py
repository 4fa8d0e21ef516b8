"""Motion control at sampling: trajectories, drags and physics-aware guidance for a `VideoPipeline`.

    vidiff sample --model M --trajectory path.json          # a model trained with --condition trajectory
    vidiff sample --model M --drag 8,8:24,20 --image first.png
    vidiff sample --model M --physics smooth [--physics-weight W]

`control_request` turns these options into the keywords of a pipeline call (`cond` with the encoded
trajectory and any prompt / class / first frame, and `denoiser_wrapper` with the physics guidance);
`sample_controlled` is the Python entry point.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..conditioning.image_embed import embeds_first_frame
from ..conditioning.tasks import request_cond
from ..conditioning.trajectory import drag_trajectory, encode_tracks, load_trajectory, parse_drag
from ..diffusion.physics import CONSTRAINTS, DEFAULT_WEIGHT, PhysicsGuidance
from ..utils import VidiffError
from .base import VideoPipeline, load_image
from .latent import LatentVideoPipeline


def control_request(pipe: VideoPipeline, *, num: int, frames: int | None = None, trajectory=None,
                    drag: str | None = None, image=None, physics: str | None = None,
                    physics_weight: float | None = None, prompt: str | None = None,
                    class_id: int | None = None, long: bool = False) -> dict:
    """Keywords for `pipe(...)` that apply the control options; {} when none is given.

    `trajectory` is a JSON path (`conditioning.trajectory` format) or points (K, F, 2) in the model's
    pixels; `drag` "X0,Y0:X1,Y1" moves what is under the start point of `image` (a path, array or tensor;
    without it, the point itself) to the end point over the clip; `image` also conditions the first frame
    when the model takes one. `physics` names a constraint of `diffusion.physics` ("smooth")."""
    if trajectory is None and drag is None and physics is None:
        if physics_weight is not None:
            raise VidiffError("--physics-weight needs --physics smooth")
        return {}
    if long:
        raise VidiffError("--trajectory, --drag and --physics apply to one window of the model's length; "
                          "leave out --window and keep --frames at most the model's")
    if drag is not None:
        parse_drag(drag)  # the syntax first: a malformed drag is named before anything about the model
    out: dict = {}
    frames = pipe.video.frames if frames is None else frames
    size = pipe.video.size
    if trajectory is not None or drag is not None:
        out["cond"] = _trajectory_cond(pipe, num, frames, size, trajectory, drag, image, prompt, class_id)
    if physics is not None:
        if physics not in CONSTRAINTS:
            raise VidiffError(f"unknown --physics {physics!r}; use {', '.join(CONSTRAINTS)}")
        if isinstance(pipe, LatentVideoPipeline):
            raise VidiffError("--physics guides pixel-space models (it reads the object in x̂₀); "
                              "this is a latent model")
        weight = DEFAULT_WEIGHT if physics_weight is None else float(physics_weight)
        if not weight >= 0:
            raise VidiffError(f"--physics-weight must be >= 0; got {physics_weight}")
        if weight > 0:  # a weight of 0 leaves the denoiser unwrapped: sampling is bit-identical
            out["denoiser_wrapper"] = partial(PhysicsGuidance, weight=weight, constraint=physics)
    elif physics_weight is not None:
        raise VidiffError("--physics-weight needs --physics smooth")
    return out


def _trajectory_cond(pipe: VideoPipeline, num: int, frames: int, size: int, trajectory, drag, image, prompt,
                     class_id):
    kinds = pipe.condition
    if "trajectory" not in kinds:
        took = ", ".join(kinds) or "none"
        raise VidiffError(f"this model was not trained with trajectory conditioning (its condition: {took}), so "
                          "--trajectory and --drag cannot be used; train one with `vidiff train --condition "
                          "trajectory` (scripts/train_trajectory.sh)")
    if trajectory is not None and drag is not None:
        raise VidiffError("give either --trajectory or --drag, not both")
    if image is not None and drag is None and "first_frame" not in kinds:
        raise VidiffError("this model takes no first frame, so --image applies only with --drag (to find the object "
                          "under its start point)")
    img = None if image is None else load_image(image, size)  # (3, H, W) in [-1, 1]
    if drag is not None:
        start, end = parse_drag(drag)
        if image is not None:  # the drag is in the given image's pixels: to the model's frame, as load_image maps it
            start, end = (_to_model_pixels(p, _image_size(image), size) for p in (start, end))
        points = drag_trajectory(start, end, frames, size, size, image=img)
    elif isinstance(trajectory, (str, Path)):
        points = load_trajectory(trajectory, frames, size, size)
    else:
        points = np.asarray(trajectory, np.float64)
        if points.ndim != 3 or points.shape[1:] != (frames, 2):
            raise VidiffError(f"trajectory points must have shape (K, {frames}, 2); got {points.shape}")
    encoded = encode_tracks(points, size, size)  # (CHANNELS, F, H, W)
    encoder = None
    if "text" in kinds:
        from ..conditioning.text import get_text_encoder

        encoder = get_text_encoder()
    return request_cond(kinds, num, frames=frames, prompt=prompt, class_id=class_id,
                        image=img if "first_frame" in kinds else None, text_encoder=encoder,
                        num_classes=getattr(pipe.model.config, "num_classes", 0), trajectory=encoded,
                        image_embed=embeds_first_frame(kinds, pipe.model.config))


def _to_model_pixels(point, hw: tuple[int, int], size: int) -> tuple[float, float]:
    """A point of an (H, W) image in the size x size frame `load_image` makes of it (centre square, scaled)."""
    h, w = hw
    side = min(h, w)
    x, y = point
    return (x - (w - side) // 2) * size / side, (y - (h - side) // 2) * size / side


def _image_size(image) -> tuple[int, int]:
    """(H, W) of an image given as a path, a uint8 (H, W, 3) array or a (3, H, W) tensor."""
    if isinstance(image, (str, Path)):
        from PIL import Image

        with Image.open(image) as im:
            return im.height, im.width
    shape = tuple(image.shape)
    return shape[:2] if shape[-1] == 3 and shape[0] != 3 else shape[1:]


def sample_controlled(pipe: VideoPipeline, num: int = 1, *, trajectory=None, drag: str | None = None, image=None,
                      physics: str | None = None, physics_weight: float | None = None, frames: int | None = None,
                      prompt: str | None = None, class_id: int | None = None, **kwargs) -> torch.Tensor:
    """`pipe(num, ...)` under trajectory / drag / physics control: uint8 videos (N, F, H, W, 3)."""
    control = control_request(pipe, num=num, frames=frames, trajectory=trajectory, drag=drag, image=image,
                              physics=physics, physics_weight=physics_weight, prompt=prompt, class_id=class_id)
    if "cond" not in control:  # physics alone: the pipeline builds the Cond as for any request
        kwargs.update(prompt=prompt, class_id=class_id, image=image)
    return pipe(num, frames=frames, **control, **kwargs)
