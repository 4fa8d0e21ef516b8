"""Latent video diffusion: what a 128×128 model costs in an autoencoder's latent space vs in pixels.

    OMP_NUM_THREADS=2 python benchmarks/bench_latent.py [--model unet-nano-joint] [--vae runs/vae] [--repeats 3]
    python benchmarks/bench_latent.py --quick          # a reduced run that only checks the script works

Measured in one run, as ratios against baselines from the same run (same backbone preset):
  * one training step (forward + backward + AdamW, batch `--batch`) of the latent model at 16×128×128
    (latents 16×32×32×4, read from a cache) vs a pixel model at 16×128×128 and vs a pixel model at 16×32×32
    (target: latent 128² ≤ 1.3× the 32² pixel step); also the cost of encoding a batch on the fly;
  * sampling one video with 25 DDIM steps (the latent one includes decoding to pixels) for the same three;
  * peak memory (RSS growth of a fresh process) of decoding 16, 64, 256 frames with and without temporal
    chunking (--decode-chunk 8, exact: each window carries the decoder's receptive field as context, so a clip
    that one window covers is decoded whole): chunked decoding should stay flat in length beyond that;
  * seconds to sample one 16×128×128 video with 25 steps (target ≤ 5 s on 2 cores);
  * decoding 64 frames three ways, peak memory and seconds: streamed in chunks of 8 (the temporal convolutions'
    caches carried between chunks, each latent frame decoded once), overlapped chunks of 8 (each chunk decodes
    the receptive field again as context on both sides) and in one piece; all three give the same video
    (`--decode-only` runs just this section).
The autoencoder is `--vae` (a trained folder or bundled name) or an untrained default `VAEConfig` (4× spatial,
4 channels, conv3d temporal decoder): speed and memory do not depend on its weights.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import threading
import time

import torch

from vidiff.diffusion.loss import diffusion_loss
from vidiff.models import build_model
from vidiff.models.presets import get_preset
from vidiff.models.vae import VAEConfig, VideoAutoencoder
from vidiff.pipelines import DiffusionConfig, LatentVideoPipeline, VideoFormat, VideoPipeline
from vidiff.pipelines.latent import effective_chunk


def autoencoder(spec: str | None):
    if spec:
        from vidiff.bundled import find_autoencoder
        from vidiff.models.autoencoders import load_autoencoder

        return load_autoencoder(find_autoencoder(spec))
    torch.manual_seed(0)
    return VideoAutoencoder(VAEConfig()).eval()


def backbone(preset: str, channels: int):
    import dataclasses

    torch.manual_seed(0)
    return build_model(dataclasses.replace(get_preset(preset), in_channels=channels, out_channels=channels))


def train_step_seconds(model, shape, repeats: int, warmup: int = 1) -> float:
    """Median seconds of one forward + backward + AdamW step on a fixed batch of `shape`."""
    from vidiff.diffusion import get_schedule

    schedule, opt = get_schedule("cosine"), torch.optim.AdamW(model.parameters(), lr=1e-4)
    x0, g = torch.randn(shape), torch.Generator().manual_seed(0)
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        loss = diffusion_loss(model, x0, schedule, parameterization="v", generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def encode_seconds(ae, shape, repeats: int) -> float:
    x = torch.rand(shape) * 2 - 1
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            ae.encode(x).sample(torch.Generator().manual_seed(0))
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sample_seconds(pipe, steps: int, repeats: int) -> float:
    pipe(num=1, steps=2, sampler="ddim")  # warm-up
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        pipe(num=1, steps=steps, sampler="ddim", seed=r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


DECODE_MODES = ("pipeline", "stream", "overlap", "whole")


def decode_probe(frames: int, latent: int, chunk: int, vae: str | None, mode: str = "pipeline") -> None:
    """(in a fresh process) decode `frames` latent frames of latent×latent and print the peak RSS growth in MiB
    (RSS sampled every 2 ms while decoding; the output video is included) and the seconds it took. `mode`:
    "pipeline" as the latent pipeline decodes (`effective_chunk`: streamed where the decoder can, in one piece
    where the clip fits a chunk), "stream", "overlap" (chunks with the receptive field as context) or "whole"."""
    ae = autoencoder(vae)
    z = torch.randn(1, ae.latent_channels, frames, latent, latent)
    if mode == "pipeline":
        chunk = effective_chunk(ae, frames, chunk)
    kwargs = {"whole": {}, "stream": {"chunk": chunk},
              "overlap": {"chunk": chunk, "stream": False}}.get(mode, {"chunk": chunk})
    with torch.no_grad():
        ae.decode(z[:, :, :1])  # warm-up: kernels and allocator pools
    before, peak, done = rss_bytes(), [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        ae.decode(z, **kwargs)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    done.set()
    watcher.join()
    print(json.dumps({"peak_mib": max(0, peak[0] - before) / 2**20, "seconds": seconds, "cpu_seconds": cpu_seconds}))


def decode_run(frames: int, latent: int, chunk: int, vae: str | None, mode: str = "pipeline") -> dict:
    """{"peak_mib", "seconds", "cpu_seconds"} of `decode_probe` in a fresh process."""
    cmd = [sys.executable, __file__, "--decode-probe", str(frames), str(latent), str(chunk), "--decode-mode", mode]
    if vae:
        cmd += ["--vae", vae]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def decode_peak_mib(frames: int, latent: int, chunk: int, vae: str | None) -> float:
    return decode_run(frames, latent, chunk, vae)["peak_mib"]


def decode_modes(frames: int, latent: int, vae: str | None, repeats: int) -> dict:
    """{mode: {"peak_mib", "seconds", "cpu_seconds"}} of decoding `frames` latent frames streamed, overlapped and
    whole (chunks of 8; the median of `repeats` fresh processes for each; CPU seconds count the work even when
    other processes share the cores)."""
    out = {}
    for mode in ("stream", "overlap", "whole"):
        runs = [decode_run(frames, latent, 8, vae, mode) for _ in range(repeats)]
        out[mode] = {k: statistics.median(r[k] for r in runs) for k in ("peak_mib", "seconds", "cpu_seconds")}
    return out


def print_decode_modes(frames: int, modes: dict) -> None:
    s = modes["stream"]
    for mode, m in modes.items():
        print(f"decode {frames} frames {mode:>7}: peak +{m['peak_mib']:.0f} MiB, {m['seconds']:.2f}s "
              f"({m['seconds'] / s['seconds']:.2f}× the streamed time), {m['cpu_seconds']:.2f} CPU-s "
              f"({m['cpu_seconds'] / s['cpu_seconds']:.2f}×)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="unet-nano-joint", help="backbone preset of all three models")
    ap.add_argument("--vae", default=None, help="autoencoder folder or bundled name (default: an untrained one)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=25, help="sampling steps")
    ap.add_argument("--quick", action="store_true", help="4 frames at 64×64, decoding 4/8/16 frames, 1 repeat")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--decode-only", action="store_true", help="only the streamed / overlapped / whole decoding")
    ap.add_argument("--decode-probe", nargs=3, type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--decode-mode", default="pipeline", choices=DECODE_MODES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.decode_probe:
        decode_probe(*args.decode_probe, args.vae, args.decode_mode)
        return
    frames, size, decode_frames = (4, 64, (4, 8, 16)) if args.quick else (16, 128, (16, 64, 256))
    repeats, steps = (1, 3) if args.quick else (args.repeats, args.steps)
    ae = autoencoder(args.vae)
    c, f, h, w = ae.latent_shape(frames, size, size)
    small = size // ae.spatial_factor
    long_frames = 16 if args.quick else 64
    if args.decode_only:
        modes = decode_modes(long_frames, h, args.vae, repeats)
        print_decode_modes(long_frames, modes)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"decode_modes": {str(long_frames): modes}}, fh, indent=1)
        return
    print(f"backbone {args.model}; autoencoder {args.vae or 'untrained VAEConfig()'}: {frames}×{size}² → "
          f"latents {f}×{h}×{w}×{c}; {torch.get_num_threads()} threads")
    latent_model, pix_big, pix_small = backbone(args.model, c), backbone(args.model, 3), backbone(args.model, 3)
    b = args.batch
    res = {"train_s": {
        "latent": train_step_seconds(latent_model, (b, c, f, h, w), repeats),
        "pixel_big": train_step_seconds(pix_big, (b, 3, frames, size, size), repeats),
        "pixel_small": train_step_seconds(pix_small, (b, 3, frames, small, small), repeats)},
        "encode_batch_s": encode_seconds(ae, (b, 3, frames, size, size), repeats)}
    diffusion = DiffusionConfig()
    latent_pipe = LatentVideoPipeline(latent_model.eval(), diffusion, VideoFormat(frames=frames, size=size), ae)
    res["sample_s"] = {
        "latent": sample_seconds(latent_pipe, steps, repeats),
        "pixel_big": sample_seconds(VideoPipeline(pix_big.eval(), diffusion, VideoFormat(frames=frames, size=size)),
                                    steps, repeats),
        "pixel_small": sample_seconds(VideoPipeline(pix_small.eval(), diffusion,
                                                    VideoFormat(frames=frames, size=small)), steps, repeats)}
    res["decode_peak_mib"] = {str(n): {"chunk8": decode_peak_mib(n, h, 8, args.vae),
                                       "whole": decode_peak_mib(n, h, 0, args.vae)} for n in decode_frames}
    res["decode_modes"] = {str(long_frames): decode_modes(long_frames, h, args.vae, repeats)}
    t, s = res["train_s"], res["sample_s"]
    res["ratios"] = {"train_latent_vs_pixel_big": t["latent"] / t["pixel_big"],
                     "train_latent_vs_pixel_small": t["latent"] / t["pixel_small"],
                     "sample_latent_vs_pixel_big": s["latent"] / s["pixel_big"],
                     "sample_latent_vs_pixel_small": s["latent"] / s["pixel_small"]}
    print(f"train step (batch {b}): latent {t['latent']:.3f}s, pixel {size}² {t['pixel_big']:.3f}s, "
          f"pixel {small}² {t['pixel_small']:.3f}s; encoding a batch on the fly {res['encode_batch_s']:.3f}s")
    print(f"sample 1 video, {steps} DDIM steps: latent (with decoding) {s['latent']:.2f}s, pixel {size}² "
          f"{s['pixel_big']:.2f}s, pixel {small}² {s['pixel_small']:.2f}s")
    for n, m in res["decode_peak_mib"].items():
        print(f"decode {n:>4} frames: peak +{m['chunk8']:.0f} MiB chunked (8), +{m['whole']:.0f} MiB whole")
    print_decode_modes(long_frames, res["decode_modes"][str(long_frames)])
    for k, v in res["ratios"].items():
        print(f"{k}: {v:.2f}×")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
