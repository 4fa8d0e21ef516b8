"""The DiT's cost estimates: the analytic forward FLOPs against torch's FlopCounterMode on the meta device, and
`vidiff plan`'s peak memory against a measured training and sampling step (it was 4-5x too high when the
DiT's activation count included the MLP's hidden width on top of the per-block constants)."""
import dataclasses
import os

import pytest
import torch

from vidiff.limits import SECONDS_PER_FLOP, dit_forward_flops, sampling_seconds
from vidiff.models.presets import get_preset
from vidiff.models.stats import config_stats
from vidiff.planner import plan

from ._measure import measured_step_bytes

DIT = get_preset("dit-tiny")


@pytest.mark.parametrize("overrides, shape", [
    ({}, (8, 32, 32)),
    ({"space_time": "joint"}, (8, 16, 16)),
    ({"space_time": "window"}, (8, 16, 24)),
    ({"patch_t": 2, "mlp_ratio": 2.0}, (8, 32, 32)),
    ({"temporal": "none", "patch_size": 4}, (4, 32, 32)),
    ({"hidden_size": 64, "heads": 2, "depth": 2, "self_cond": True}, (4, 32, 32)),
])
def test_analytic_dit_flops_match_the_counted_forward(overrides, shape):
    cfg = dataclasses.replace(DIT, **overrides)
    _, gflops = config_stats(cfg, *shape, batch=2)
    assert 2 * dit_forward_flops(cfg, *shape) / 1e9 == pytest.approx(gflops, rel=0.05)


def test_dit_eta_follows_its_flops():
    seconds = sampling_seconds(DIT, 3, 10, 8, 32, 32)
    threads = max(1, min(os.cpu_count() or 1, torch.get_num_threads()))
    assert seconds == pytest.approx(3 * 10 * dit_forward_flops(DIT, 8, 32, 32) * SECONDS_PER_FLOP / threads)




@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak RSS is read from /proc")
def test_dit_peak_memory_estimate_is_close_to_a_measured_step():
    measured = measured_step_bytes("dit-tiny", frames=8, size=32, batch=1)
    p = plan("dit-tiny", frames=8, size=32, batch=1)
    assert 0.7 <= p.train_bytes / measured["train"] <= 1.4, (p.train_bytes, measured)
    assert 0.5 <= p.sample_bytes / measured["sample"] <= 2.0, (p.sample_bytes, measured)
