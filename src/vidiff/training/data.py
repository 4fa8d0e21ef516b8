"""Batch sources whose draws are a pure function of (seed, step, rank), so a resumed run sees the batches
the uninterrupted one saw.

`step_generator(seed, step, rank, stream)` is the generator of one optimisation step's random draws.
`StepBatches` serves the batch of each step through a `torch.utils.data.DataLoader` (optionally with
worker processes): its batch sampler draws `batch` indices with replacement from the step's "data"
stream, and the dataset sees the step as its epoch (`set_epoch`: clip starts, crops, captions), so
neither prefetching nor the number of workers changes a batch.
"""
from __future__ import annotations

import hashlib
import itertools
from typing import Any, Callable, Iterable, Iterator

import torch

from ..utils import VidiffError

# independent streams of one step's draws: the task's (t, noise, dropout), the data's (which clips),
# and the global torch RNG (dropout layers and anything else drawing without a generator)
TASK_STREAM, DATA_STREAM, GLOBAL_STREAM = 0, 1, 2


def step_seed(seed: int, step: int, rank: int = 0, stream: int = TASK_STREAM) -> int:
    """A 63-bit seed that is a hash of (seed, step, rank, stream): distinct tuples give unrelated streams."""
    digest = hashlib.blake2b(f"{seed},{step},{rank},{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def step_generator(seed: int, step: int, rank: int = 0, stream: int = TASK_STREAM) -> torch.Generator:
    """The CPU generator of all random draws of one optimisation step on one rank (one `stream` of them)."""
    return torch.Generator().manual_seed(step_seed(seed, step, rank, stream))


class _StepSampler(torch.utils.data.Sampler):
    """For step = start, start + 1, ...: the batch [(step, i), ...] of `batch` indices drawn with
    replacement from the step's data stream."""

    def __init__(self, size: int, batch: int, seed: int, rank: int, start: int):
        self.size, self.batch, self.seed, self.rank, self.start = size, batch, seed, rank, start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in itertools.count(self.start):
            g = step_generator(self.seed, step, self.rank, DATA_STREAM)
            yield [(step, i) for i in torch.randint(self.size, (self.batch,), generator=g).tolist()]


class _AtStep(torch.utils.data.Dataset):
    """`dataset` indexed by (step, i): item i as drawn at that step (the step is the dataset's epoch)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        step, i = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(step)
        return self.dataset[i]


class TensorItems(torch.utils.data.Dataset):
    """Item i of equal-length tensors, as a dict {name: tensor[i]} (data held in memory)."""

    def __init__(self, **tensors: torch.Tensor):
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1:
            raise VidiffError(f"TensorItems needs tensors of one length; got {sorted(lengths)}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> dict:
        return {k: t[i] for k, t in self.tensors.items()}


class StepBatches:
    """The batch of every optimisation step from a map-style `dataset`, a pure function of (seed, step, rank).

    `iterate(start, rank)` yields the batches of steps start, start + 1, ... (endless) through a DataLoader
    with `num_workers` worker processes; `collate_fn` defaults to torch's (a dict of items becomes a dict
    of stacked tensors and lists of strings)."""

    def __init__(self, dataset, batch: int, *, seed: int = 0, num_workers: int = 0,
                 collate_fn: Callable[[list], Any] | None = None, pin_memory: bool = False):
        if batch < 1:
            raise VidiffError(f"--batch must be at least 1; got {batch}")
        if num_workers < 0:
            raise VidiffError(f"the number of data workers must be >= 0; got {num_workers}")
        if len(dataset) < 1:
            raise VidiffError("the training data holds no items")
        self.dataset, self.batch, self.seed = dataset, batch, seed
        self.num_workers, self.collate_fn, self.pin_memory = num_workers, collate_fn, pin_memory

    def iterate(self, start: int = 0, rank: int = 0) -> Iterator[Any]:
        loader = torch.utils.data.DataLoader(
            _AtStep(self.dataset), batch_sampler=_StepSampler(len(self.dataset), self.batch, self.seed, rank, start),
            num_workers=self.num_workers, collate_fn=self.collate_fn, pin_memory=self.pin_memory)
        return iter(loader)

    def at(self, step: int, rank: int = 0) -> Any:
        """The batch of one step (what `iterate(step, rank)` yields first)."""
        return next(self.iterate(step, rank))


def batches_from(source: StepBatches | Iterable, start: int, rank: int = 0) -> Iterator[Any]:
    """An iterator over the batches of steps start, start + 1, ...: a `StepBatches` is positioned at
    `start`; any other iterable is consumed as it comes (no exact resume for those)."""
    if isinstance(source, StepBatches):
        return source.iterate(start, rank)
    return iter(source)
