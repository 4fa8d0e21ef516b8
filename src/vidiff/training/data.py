"""Batch sources whose draws are a pure function of (seed, step, rank), so a resumed run sees the batches
the uninterrupted one saw.

`step_generator(seed, step, rank, stream)` is the generator of one optimisation step's random draws.
`StepBatches` serves the batch of each step through a `torch.utils.data.DataLoader` (optionally with
worker processes): its batch sampler draws `batch` indices with replacement from the step's "data"
stream, and the dataset sees the step as its epoch (`set_epoch`: clip starts, crops, captions), so
neither prefetching nor the number of workers changes a batch. `EpochBatches` streams a dataset epoch by
epoch instead (every item once per epoch; WebDataset shards shard by shard), its batch at a step again a
pure function of (seed, step, rank, world size).
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

    def _sampler(self, start: int, rank: int) -> torch.utils.data.Sampler:
        return _StepSampler(len(self.dataset), self.batch, self.seed, rank, start)

    def iterate(self, start: int = 0, rank: int = 0) -> Iterator[Any]:
        loader = torch.utils.data.DataLoader(
            _AtStep(self.dataset), batch_sampler=self._sampler(start, rank),
            num_workers=self.num_workers, collate_fn=self.collate_fn, pin_memory=self.pin_memory)
        return _one_line_errors(iter(loader)) if self.num_workers else iter(loader)

    def at(self, step: int, rank: int = 0) -> Any:
        """The batch of one step (what `iterate(step, rank)` yields first)."""
        return next(self.iterate(step, rank))


def _one_line_errors(batches: Iterator[Any]) -> Iterator[Any]:
    """`batches` with a VidiffError raised in a DataLoader worker re-raised as its own one line (the
    DataLoader re-raises it wrapped in the worker's traceback)."""
    try:
        yield from batches
    except VidiffError as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        last = lines[-1] if lines else ""
        name = f"{VidiffError.__module__}.{VidiffError.__name__}: "
        if str(e).startswith("Caught ") and last.startswith(name):
            raise VidiffError(last[len(name):]) from None
        raise


class _EpochSampler(torch.utils.data.Sampler):
    """For step = start, start + 1, ...: the batch [(epoch, i), ...] at stream positions
    p = (step * world_size + rank) * batch + j, j < batch, where the stream is the concatenation of the
    epochs' orders (epoch = p // len, i = order(epoch)[p % len])."""

    def __init__(self, order: Callable[[int], list[int]], size: int, batch: int, rank: int, world_size: int,
                 start: int):
        self.order, self.size, self.batch, self.rank, self.world_size, self.start = \
            order, size, batch, rank, world_size, start
        self._orders: dict[int, list[int]] = {}

    def _at(self, p: int) -> tuple[int, int]:
        epoch = p // self.size
        if epoch not in self._orders:
            self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
            self._orders[epoch] = self.order(epoch)
        return epoch, self._orders[epoch][p % self.size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in itertools.count(self.start):
            first = (step * self.world_size + self.rank) * self.batch
            yield [self._at(p) for p in range(first, first + self.batch)]


class EpochBatches(StepBatches):
    """Epoch-based batches (every item once per epoch) that are still a pure function of (seed, step, rank,
    world size): the items are streamed epoch after epoch, each epoch in `dataset.epoch_order(seed, epoch)`
    when the dataset has one (`data.shards.ShardClips`: shard by shard) or a permutation drawn from (seed,
    epoch); step k on rank r takes the `batch` items at stream positions (k * world_size + r) * batch + j.
    So all ranks together see every item once per epoch (an epoch's tail and the next epoch's head share a
    batch; batches are always full), and a resumed run recomputes its place in the stream from the step:
    no cursor is saved, and the batches after a resume are the uninterrupted run's. The dataset sees each
    item's epoch as its epoch (`set_epoch`: clip starts, crops, captions). The world size is torch.distributed's
    when it is initialised (an accelerate launch), else `world_size`."""

    def __init__(self, dataset, batch: int, *, seed: int = 0, num_workers: int = 0,
                 collate_fn: Callable[[list], Any] | None = None, pin_memory: bool = False, world_size: int = 1):
        super().__init__(dataset, batch, seed=seed, num_workers=num_workers, collate_fn=collate_fn,
                         pin_memory=pin_memory)
        self.world_size = world_size

    def epoch_order(self, epoch: int) -> list[int]:
        """The item indices of one epoch, each once."""
        if hasattr(self.dataset, "epoch_order"):
            return list(self.dataset.epoch_order(self.seed, epoch))
        g = torch.Generator().manual_seed(step_seed(self.seed, epoch, 0, DATA_STREAM))
        return torch.randperm(len(self.dataset), generator=g).tolist()

    def _sampler(self, start: int, rank: int) -> torch.utils.data.Sampler:
        world = self.world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
        return _EpochSampler(self.epoch_order, len(self.dataset), self.batch, rank, world, start)


def batches_from(source: StepBatches | Iterable, start: int, rank: int = 0) -> Iterator[Any]:
    """An iterator over the batches of steps start, start + 1, ...: a `StepBatches` (or `EpochBatches`) is
    positioned at `start`; any other iterable is consumed as it comes (no exact resume for those)."""
    if isinstance(source, StepBatches):
        return source.iterate(start, rank)
    return iter(source)
