"""Backbone speed and memory on this machine, against diffusers' UNet3DConditionModel in the same run.

For each preset and clip size (F×H×W):
  * train step: seconds for forward + backward + AdamW step at B=8 (median of --steps after a warm-up);
    also process CPU seconds / threads, which moves less than wall time when other jobs share the
    cores (if the two differ a lot, the machine was busy: rerun);
  * inference: milliseconds per denoising step (one forward, no grad) at B=1;
  * peak memory of one training step (forward + backward), with and without gradient checkpointing:
    each is measured in a fresh subprocess as the highest resident set size (sampled every 1 ms
    from /proc/self/statm by a thread; torch releases the GIL inside ops) minus the resident size
    just before the step (model and inputs already allocated), i.e. the activations and gradients
    the step needs. tracemalloc cannot see torch's C++ allocations and ru_maxrss is dominated by
    import-time peaks, hence the sampler. It is a high-water mark of the process, not a live-tensor count.
The baseline is a diffusers UNet3DConditionModel with ~1.3 M parameters (block_out_channels 32/64,
cross-attention to a 1-token dummy text), measured the same way; ratios are baseline / ours.

    OMP_NUM_THREADS=2 python benchmarks/bench_backbones.py --sizes 32            # the README table
    python benchmarks/bench_backbones.py --presets unet-tiny --sizes 32 --no-memory --no-baseline
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import torch

FRAMES = 16
BASELINE = "diffusers-unet3d"


def build(name: str, checkpointing: bool = False):
    """(model, forward(x, t)) for a vidiff preset or the diffusers baseline."""
    if name == BASELINE:
        from diffusers import UNet3DConditionModel

        model = UNet3DConditionModel(
            block_out_channels=(32, 64), layers_per_block=1, in_channels=3, out_channels=3,
            down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
            cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32)

        def forward(x, t):
            text = torch.zeros(x.shape[0], 1, 32)
            return model(x, 1000 * t, encoder_hidden_states=text).sample

        return model, forward
    from vidiff.models import build_model

    model = build_model(name)
    model.set_gradient_checkpointing(checkpointing)
    return model, model


def clip(batch: int, size: int, channels: int = 3):
    return torch.randn(batch, channels, FRAMES, size, size), torch.rand(batch)


def time_train(name: str, size: int, steps: int, batch: int = 8) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds / threads) of a training step."""
    model, forward = build(name)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, t = clip(batch, size)
    wall, cpu = [], []
    for i in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = (forward(x, t) - x).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # step 0 is the warm-up
            wall.append(time.perf_counter() - t0)
            cpu.append((time.process_time() - c0) / torch.get_num_threads())
    return statistics.median(wall), statistics.median(cpu)


def time_infer(name: str, size: int, steps: int) -> float:
    """Median milliseconds of one no-grad forward at B=1."""
    model, forward = build(name)
    model.eval()
    x, t = clip(1, size)
    out = []
    with torch.no_grad():
        for i in range(steps + 1):
            t0 = time.perf_counter()
            forward(x, t)
            if i:
                out.append(1000 * (time.perf_counter() - t0))
    return statistics.median(out)


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_child(name: str, size: int, checkpointing: bool) -> None:
    """Subprocess body: print the peak-RSS growth (MB) of one B=8 training step."""
    model, forward = build(name, checkpointing)
    model.train()
    x, t = clip(8, size)
    before, peak, done = _current_rss_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _current_rss_mb())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    (forward(x, t) - x).square().mean().backward()
    done.set()
    sampler.join()
    print(json.dumps({"peak_mb": max(peak[0], _current_rss_mb()) - before}))


def measure_memory(name: str, size: int, checkpointing: bool) -> float:
    cmd = [sys.executable, __file__, "--memory-child", name, str(size), str(int(checkpointing))]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="unet-tiny,unet-tiny-conv,dit-tiny", help="comma-separated presets")
    ap.add_argument("--sizes", default="32,64", help="comma-separated H=W (F is 16)")
    ap.add_argument("--steps", type=int, default=3, help="measured steps per figure (after one warm-up)")
    ap.add_argument("--baseline-steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--no-baseline", action="store_true", help="skip diffusers' UNet3DConditionModel")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--no-infer", action="store_true", help="skip inference timing")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        name, size, ck = args.memory_child
        memory_child(name, int(size), bool(int(ck)))
        return

    from vidiff.models.layers import count_params

    names = [n for n in args.presets.split(",") if n] + ([] if args.no_baseline else [BASELINE])
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for name in names:
            steps = args.baseline_steps if name == BASELINE else args.steps
            row = {"model": name, "size": f"{FRAMES}x{size}x{size}", "params_m": count_params(build(name)[0]) / 1e6}
            row["train_s"], row["train_cpu_s"] = time_train(name, size, steps)
            if not args.no_infer:
                row["infer_ms"] = time_infer(name, size, max(steps, 3))
            if not args.no_memory:
                row["mem_mb"] = measure_memory(name, size, False)
                if name != BASELINE:  # diffusers' UNet3DConditionModel does not support checkpointing
                    row["mem_ckpt_mb"] = measure_memory(name, size, True)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)

    cols = ["model", "size", "params_m", "train_s", "train_cpu_s", "infer_ms", "mem_mb", "mem_ckpt_mb"]
    cols = [c for c in cols if any(c in r for r in rows)]
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, B=8 train / B=1 inference, F={FRAMES}\n")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [f"{r[c]:.2f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        print("| " + " | ".join(cells) + " |")
    base = {r["size"]: r for r in rows if r["model"] == BASELINE}
    for r in rows:
        b = base.get(r["size"])
        if b is not None and r["model"] != BASELINE:
            msg = (f"{r['model']} @ {r['size']}: train step {b['train_s'] / r['train_s']:.1f}x faster than {BASELINE} "
                   f"(by CPU time {b['train_cpu_s'] / r['train_cpu_s']:.1f}x)")
            if "infer_ms" in r:
                msg += f", inference {b['infer_ms'] / r['infer_ms']:.1f}x"
            print(msg)
    if args.json:
        from vidiff.utils import atomic_write_text

        atomic_write_text(args.json, json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
