"""The DiT's cost estimates: the analytic forward FLOPs against torch's FlopCounterMode on the meta device, and
`vidiff plan`'s peak memory against a measured training and sampling step (it was 4-5x too high when the
DiT's activation count included the MLP's hidden width on top of the per-block constants)."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch

from vidiff.limits import SECONDS_PER_FLOP, dit_forward_flops, sampling_seconds
from vidiff.models.presets import get_preset
from vidiff.models.stats import config_stats
from vidiff.planner import plan

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


MEASURE = """
import json, torch
from vidiff.models import build_model
from vidiff.models.presets import get_preset

def rss(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))

torch.set_num_threads(1)
x, t = torch.randn(1, 3, 8, 32, 32), torch.rand(1)
base = rss("VmRSS:")
model = build_model(get_preset("dit-tiny")).eval()
with torch.no_grad():
    model(x, t)
sample = rss("VmHWM:") - base
model.train()
opt = torch.optim.AdamW(model.parameters())
(model(x, t) - x).square().mean().backward()
opt.step()
print(json.dumps({"sample": sample, "train": rss("VmHWM:") - base}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak RSS is read from /proc")
def test_dit_peak_memory_estimate_is_close_to_a_measured_step():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True, env=env, check=True)
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    p = plan("dit-tiny", frames=8, size=32, batch=1)
    assert 0.7 <= p.train_bytes / measured["train"] <= 1.4, (p.train_bytes, measured)
    assert 0.5 <= p.sample_bytes / measured["sample"] <= 2.0, (p.sample_bytes, measured)
