"""Image data in video training: joint image–video training (VDM, Ho et al. 2022, sec. 3.3) and image models.

    vidiff train --data VIDEOS --images DIR --image-ratio 0.25 ...   # a quarter of the samples are images
    vidiff train --data DIR_OF_IMAGES --frames 1 ...                  # an image model (temporal: none)

`ImageFrames` serves a folder of images as clips of `frames` *independent* images stacked along F
(C, F, H, W); `JointDataset` draws, for each (step, index), a video clip or (at rate `image_ratio`) such
an image stack flagged `is_image`, a pure function of (seed, step, index) like every batch of the
trainer. `with_is_image` puts the batch's flags into the `Cond` the loss gets: the backbone then skips
its temporal layers for those samples (their frames stay independent), while the spatial layers learn
from images and videos alike.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..conditioning.cond import Cond, cond_or_empty
from ..data.dataset import resize_short_side
from ..data.io import IMAGE_EXTS, list_videos, read_image
from ..utils import VidiffError

IMAGE_STREAM = 11  # the stream (of numpy's seed sequence) of which images an image item stacks
CHOICE_STREAM = 13  # ... and of whether an item of a JointDataset is an image stack


def list_images(root: str | Path) -> list[Path]:
    """Every image file under `root` (recursively), sorted."""
    root = Path(root)
    if not root.exists():
        raise VidiffError(f"image folder not found: {root}")
    if root.is_file():
        return [root] if root.suffix.lower() in IMAGE_EXTS else []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def is_image_folder(root: str | Path) -> bool:
    """True for a folder of image files that holds no video (a flat folder of PNG/JPEG)."""
    root = Path(root)
    return root.is_dir() and not list_videos(root) and bool(list_images(root))


class ImageFrames(torch.utils.data.Dataset):
    """A folder of images as items of `frames` independent images (C, F, H, W) in [-1, 1]: item i is image i
    followed by `frames` − 1 images drawn at random (a pure function of seed, epoch and i); each is
    resized on its short side to `size` and centre-cropped. Items have VideoDataset's keys."""

    def __init__(self, root: str | Path, frames: int, size: int, seed: int = 0):
        self.root, self.frames, self.size, self.seed, self.epoch = Path(root), frames, size, seed, 0
        paths = list_images(self.root)
        if not paths:
            raise VidiffError(f"no images found in {self.root}; expected {'/'.join(IMAGE_EXTS)} files")
        self.paths, self.images = [], []
        for p in paths:
            try:
                img = resize_short_side(read_image(p)[None], size)[0]  # (H, W, 3) uint8, short side = size
            except VidiffError:
                continue
            h, w = img.shape[:2]
            top, left = (h - size) // 2, (w - size) // 2
            self.images.append(np.ascontiguousarray(img[top:top + size, left:left + size]))
            self.paths.append(p)
        if not self.images:
            raise VidiffError(f"none of the {len(paths)} image(s) in {self.root} could be read")
        self.num_classes = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def all_captions(self) -> list[str]:
        return []

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index, IMAGE_STREAM])
        picks = [index] + rng.integers(len(self.images), size=self.frames - 1).tolist()
        stack = np.stack([self.images[i] for i in picks])  # (F, H, W, 3)
        x = torch.from_numpy(stack).permute(3, 0, 1, 2).float() / 127.5 - 1  # (C, F, H, W)
        return {"video": x, "caption": "", "class_id": -1, "index": index,
                "path": self.paths[index].relative_to(self.root).as_posix() if self.root.is_dir()
                else self.paths[index].name}


class JointDataset(torch.utils.data.Dataset):
    """`videos` with a share `image_ratio` of its items replaced by image stacks of `images` (VDM's joint
    training): item (epoch, i) is an image stack with probability `image_ratio`, drawn from (seed, epoch,
    i) alone. Every item carries "is_image" (bool)."""

    def __init__(self, videos, images: ImageFrames, image_ratio: float, seed: int = 0):
        if not 0.0 < image_ratio <= 1.0:
            raise VidiffError(f"--image-ratio is the share of training samples that are images, in (0, 1]; "
                              f"got {image_ratio}")
        self.videos, self.images, self.image_ratio, self.seed, self.epoch = videos, images, image_ratio, seed, 0
        self.num_classes = getattr(videos, "num_classes", 0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for part in (self.videos, self.images):
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index, CHOICE_STREAM])
        if rng.random() < self.image_ratio:
            item = dict(self.images[int(rng.integers(len(self.images)))])
            return {**item, "is_image": True}
        return {**self.videos[index], "is_image": False}


def joint_dataset(videos, images: str | Path | None, image_ratio: float, *, frames: int, size: int, seed: int = 0):
    """`videos`, or with an image folder `images` a `JointDataset` mixing image stacks in at `image_ratio`."""
    if images is None:
        if image_ratio:
            raise VidiffError("--image-ratio mixes images into video training: give the images with --images DIR")
        return videos
    if not image_ratio:
        raise VidiffError("--images needs --image-ratio, the share of training samples that are images (e.g. 0.25)")
    if frames < 2:
        raise VidiffError("--images mixes images into video training; with --frames 1 give the images as --data")
    return JointDataset(videos, ImageFrames(images, frames, size, seed=seed), image_ratio, seed=seed)


def with_is_image(cond: Cond | None, batch: dict, device: torch.device | str = "cpu") -> Cond | None:
    """`cond` carrying the batch's "is_image" flags (B,) on `device` as `Cond.is_image`; `cond` as is for a
    batch without them (plain video training)."""
    flags = batch.get("is_image") if isinstance(batch, dict) else None
    if flags is None:
        return cond
    cond = cond_or_empty(cond)
    cond.is_image = torch.as_tensor(flags, dtype=torch.bool).to(device)  # (B,)
    return cond
