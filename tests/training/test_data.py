"""Batch sources: each step's batch is a pure function of (seed, step, rank), whatever the start step
and the number of DataLoader workers."""
import torch

from vidiff.training import StepBatches, step_generator, step_seed

from ._toy import Points


class EpochProbe(torch.utils.data.Dataset):
    """Items that tell which index and epoch (step) they were drawn at."""

    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return {"index": i, "epoch": self.epoch}


def _take(it, n):
    return [next(it) for _ in range(n)]


def test_batches_depend_on_seed_step_and_rank_only():
    src = StepBatches(Points(), 4, seed=3)
    run = _take(src.iterate(0), 6)
    resumed = _take(src.iterate(4), 2)  # a run resumed at step 4 sees the batches of steps 4 and 5
    for a, b in zip(run[4:], resumed):
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    assert torch.equal(src.at(2)["x"], run[2]["x"])
    assert not torch.equal(run[0]["x"], run[1]["x"])
    assert not torch.equal(src.at(0, rank=1)["x"], run[0]["x"])  # each rank draws its own batch
    assert not torch.equal(StepBatches(Points(), 4, seed=4).at(0)["x"], run[0]["x"])
    # the dataset sees the step as its epoch (clip starts, crops, captions)
    probe = _take(StepBatches(EpochProbe(), 3, seed=0).iterate(7), 2)
    assert probe[0]["epoch"].tolist() == [7, 7, 7] and probe[1]["epoch"].tolist() == [8, 8, 8]


def test_worker_processes_do_not_change_a_batch():
    a = _take(StepBatches(EpochProbe(), 5, seed=1).iterate(2), 3)
    b = _take(StepBatches(EpochProbe(), 5, seed=1, num_workers=2).iterate(2), 3)
    assert all(torch.equal(x["index"], y["index"]) and torch.equal(x["epoch"], y["epoch"]) for x, y in zip(a, b))


def test_step_streams_are_distinct_and_reproducible():
    seeds = {step_seed(s, k, r, st) for s in range(3) for k in range(50) for r in range(2) for st in range(3)}
    assert len(seeds) == 3 * 50 * 2 * 3 and all(0 <= v < 2**63 for v in seeds)
    a, b = (torch.rand(5, generator=step_generator(0, 9, 1)) for _ in range(2))
    assert torch.equal(a, b)
