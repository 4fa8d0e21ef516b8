"""Sampler quality vs. number of steps on a Gaussian mixture whose denoiser E[x | z_t] is exact.

    python benchmarks/bench_samplers.py [--n 100000] [--schedule cosine] [--spacing uniform]

Because the denoiser is exact, every error in the table is the sampler's own discretization
error (plus Monte Carlo noise of about 1/sqrt(n), shown in the last line). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import time

import torch

from vidiff.diffusion import Denoiser, get_schedule, sample
from vidiff.diffusion.analytic import GaussianMixtureData


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000, help="samples (1-D elements)")
    p.add_argument("--schedule", default="cosine")
    p.add_argument("--spacing", default="uniform")
    p.add_argument("--steps", default="5,10,20,50,100,250")
    p.add_argument("--samplers", default="ddpm,ddim,dpmpp_2m")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)

    data = GaussianMixtureData()
    schedule = get_schedule(args.schedule)
    denoiser = Denoiser(data.model(schedule, "v"), parameterization="v")
    mean, std = data.mean(), data.std()
    w_true = torch.tensor(data.weights, dtype=torch.float64) / sum(data.weights)

    print(f"Gaussian mixture weights={data.weights} means={data.means} stds={data.stds}; "
          f"schedule={args.schedule}, spacing={args.spacing}, n={args.n}, exact v-denoiser\n")
    print("| sampler | steps | mean err (% of std) | std err (%) | mode-weight err (max, abs) | time (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.samplers.split(","):
        for steps in [int(s) for s in args.steps.split(",")]:
            g = torch.Generator().manual_seed(args.seed)
            noise = torch.randn(args.n, 1, generator=g, dtype=torch.float64)
            t0 = time.perf_counter()
            x = sample(denoiser, noise, schedule, steps, sampler=name, generator=g, spacing=args.spacing)
            dt = time.perf_counter() - t0
            w = torch.bincount(data.mode_of(x).flatten(), minlength=len(data.weights)).double() / x.numel()
            print(f"| {name} | {steps} | {100 * abs(x.mean().item() - mean) / std:.2f} | "
                  f"{100 * abs(x.std().item() / std - 1):.2f} | {(w - w_true).abs().max().item():.4f} | {dt:.2f} |")
    ref = data.sample((args.n,), torch.Generator().manual_seed(args.seed + 1))
    w = torch.bincount(data.mode_of(ref), minlength=len(data.weights)).double() / ref.numel()
    print(f"| exact samples (Monte Carlo floor) | – | {100 * abs(ref.mean().item() - mean) / std:.2f} | "
          f"{100 * abs(ref.std().item() / std - 1):.2f} | {(w - w_true).abs().max().item():.4f} | – |")


if __name__ == "__main__":
    main()
