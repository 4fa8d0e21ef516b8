"""OpenMP threads that wait sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE) unless the user chose a
policy: `import vidiff` sets it before torch loads libgomp. Spinning threads are what made training
collapse beside other busy processes."""
import os
import subprocess
import sys

# idle gaps between small parallel matrix products: spinning workers burn CPU through the gaps
PROBE = """
import time, vidiff, os, torch
torch.set_num_threads(2)
x = torch.randn(256, 256)
for _ in range(5):
    x @ x
c0, t0 = time.process_time(), time.perf_counter()
for _ in range(100):
    x @ x
    time.sleep(0.002)
print(os.environ["OMP_WAIT_POLICY"], (time.process_time() - c0) / (time.perf_counter() - t0))
"""


def _probe(env: dict) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    policy, cpu_per_wall = out.stdout.split()
    return policy, float(cpu_per_wall)


def test_waiting_threads_sleep_by_default_and_the_users_choice_is_kept():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    policy, passive = _probe(env)
    chosen, active = _probe({**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert (policy, chosen) == ("PASSIVE", "ACTIVE")
    assert passive < 0.7 * active, (passive, active)  # CPU seconds per wall second through the idle gaps
