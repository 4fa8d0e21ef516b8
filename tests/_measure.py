"""Peak memory of one sampling and one training step of a preset, measured in a fresh process (for the planner
tests): peak RSS of a no-grad forward and of a training step (forward, backward, AdamW) over the RSS before the
model was built; the sampling step runs first, so the training high-water mark covers it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import json, torch
from vidiff.models import build_model
from vidiff.models.presets import get_preset

def rss(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))

torch.set_num_threads(1)
x, t = torch.randn({batch}, 3, {frames}, {size}, {size}), torch.rand({batch})
base = rss("VmRSS:")
model = build_model(get_preset({name!r})).eval()
with torch.no_grad():
    model(x, t)
sample = rss("VmHWM:") - base
model.train()
opt = torch.optim.AdamW(model.parameters())
(model(x, t) - x).square().mean().backward()
opt.step()
print(json.dumps({{"sample": sample, "train": rss("VmHWM:") - base}}))
"""


def measured_step_bytes(name: str, *, frames: int, size: int, batch: int) -> dict[str, int]:
    """{"sample": bytes, "train": bytes} of preset `name` on a (batch, 3, frames, size, size) input, 1 thread."""
    code = SCRIPT.format(name=name, frames=frames, size=size, batch=batch)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
