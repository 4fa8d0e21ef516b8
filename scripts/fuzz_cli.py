"""Run `vidiff` on a list of bad inputs and write docs/reliability.md: what was tried, the one-line
error each gave, tracebacks, partial outputs left behind and exit codes.

Every command runs in a subprocess with a timeout and a 12 GiB address-space limit, in a fresh folder
of its own under one temporary directory, with VIDIFF_MAX_MEMORY capping what a request may plan to use.
A run counts as:
  - "error" when it exits 2 with exactly one `error: ...` line and no traceback;
  - "ok" when it exits 0;
  - "TRACEBACK", "TIMEOUT" or "exit N" otherwise.
Partial output is any file a failed run left (in its folder or among the fixtures), or any staging
or temporary file (`.*.tmp*`) left by any run.

    python scripts/fuzz_cli.py                 # all cases -> docs/reliability.md
    python scripts/fuzz_cli.py --only sample   # cases whose id contains "sample", printed only
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vidiff.data import io
from vidiff.data.synth import generate_shapes
from vidiff.dynamics.spectral import save_spectral_volume
from vidiff.pipelines import resolve_model

ROOT = Path(__file__).resolve().parents[1]
MEMORY_CAP = "3G"
ADDRESS_SPACE = 12 << 30  # a hard cap per command, so a request that is not refused cannot exhaust the machine

# (id, arguments, expected: "error" | "ok" | "any"); FX/ is the fixtures folder, paths without it are
# relative to the run's own folder. Options that the bundled models make slow get --steps 1.
S = ["--steps", "1", "--sampler", "ddim"]
CASES: list[tuple[str, list[str], str]] = [
    # usage
    ("usage-unknown-option", ["--bogus"], "error"),
    ("usage-unknown-command", ["nosuchcommand"], "error"),
    ("usage-sample-num-text", ["sample", "--num", "abc"], "error"),
    ("usage-sample-bogus", ["sample", "--bogus"], "error"),
    ("usage-extend-missing-arg", ["extend"], "error"),
    ("usage-data-check-missing", ["data", "check"], "error"),
    ("usage-eval-missing-fake", ["eval", "--real", "FX/set.npy"], "error"),
    ("usage-export-missing", ["export"], "error"),
    # sample: values
    ("sample-num-0", ["sample", "--num", "0", *S], "error"),
    ("sample-num-neg", ["sample", "--num", "-1", *S], "error"),
    ("sample-num-100000", ["sample", "--num", "100000", *S], "error"),
    ("sample-frames-0", ["sample", "--frames", "0", *S], "error"),
    ("sample-frames-neg", ["sample", "--frames", "-3", *S], "error"),
    ("sample-frames-100000", ["sample", "--frames", "100000", *S], "error"),
    ("sample-steps-0", ["sample", "--steps", "0"], "error"),
    ("sample-steps-neg", ["sample", "--steps", "-1"], "error"),
    ("sample-scale-0", ["sample", "--scale", "0", *S], "error"),
    ("sample-scale-neg", ["sample", "--scale", "-2", *S], "error"),
    ("sample-scale-4096", ["sample", "--scale", "4096", *S], "error"),
    ("sample-sampler-bogus", ["sample", "--sampler", "nope"], "error"),
    ("sample-format-avi", ["sample", "--format", "avi", *S], "error"),
    ("sample-format-empty", ["sample", "--format", ",", *S], "error"),
    ("sample-trajectory-unconditional", ["sample", "--trajectory", "FX/bad_json/config.json", *S], "error"),
    ("sample-drag-malformed", ["sample", "--drag", "1,2", *S], "error"),
    ("sample-physics-bogus", ["sample", "--physics", "gravity", *S], "error"),
    ("sample-physics-weight-alone", ["sample", "--physics-weight", "2", *S], "error"),
    ("sample-physics-weight-neg", ["sample", "--physics", "smooth", "--physics-weight", "-1", *S], "error"),
    ("sample-model-missing", ["sample", "--model", "no-such-model", *S], "error"),
    ("sample-model-empty-dir", ["sample", "--model", "FX/a_dir", *S], "error"),
    ("sample-model-wrong-type", ["sample", "--model", "FX/bad_info", *S], "error"),
    ("sample-model-bad-json", ["sample", "--model", "FX/bad_json", *S], "error"),
    ("sample-model-is-file", ["sample", "--model", "FX/a_file", *S], "error"),
    ("sample-model-nan-weights", ["sample", "--model", "FX/nan_model", "--num", "1", *S], "any"),
    ("sample-model-truncated-weights", ["sample", "--model", "FX/trunc_model", "--num", "1", *S], "error"),
    ("sample-out-is-file", ["sample", "--num", "1", "--out", "FX/a_file", *S], "error"),
    ("sample-out-under-file", ["sample", "--num", "1", "--out", "FX/a_file/sub", *S], "error"),
    ("sample-out-read-only", ["sample", "--num", "1", "--out", "FX/ro_dir", *S], "error"),
    ("sample-out-read-only-sub", ["sample", "--num", "1", "--out", "FX/ro_dir/new", *S], "error"),
    ("sample-name-slash", ["sample", "--num", "1", "--name", "a/b", *S], "error"),
    ("sample-name-empty", ["sample", "--num", "1", "--name", "", *S], "error"),
    ("sample-name-taken", ["sample", "--num", "1", "--out", "FX", "--name", "taken", *S], "error"),
    ("sample-prompt-uncond", ["sample", "--num", "1", "--prompt", "a red circle", *S], "error"),
    ("sample-class-uncond", ["sample", "--num", "1", "--class", "3", *S], "error"),
    ("sample-image-uncond", ["sample", "--num", "1", "--image", "FX/photo.png", *S], "error"),
    ("sample-image-missing", ["sample", "--num", "1", "--model", "shapes-i2v-tiny", "--image", "nope.png", *S],
     "error"),
    ("sample-image-random-bytes", ["sample", "--num", "1", "--model", "shapes-i2v-tiny", "--image", "FX/rnd.png", *S],
     "error"),
    ("sample-window-0", ["sample", "--num", "1", "--window", "0", *S], "error"),
    ("sample-overlap-too-big", ["sample", "--num", "1", "--frames", "20", "--window", "4", "--overlap", "9", *S],
     "error"),
    ("sample-snr-without-pc", ["sample", "--num", "1", "--snr", "0.1", *S], "error"),
    ("sample-corrector-range-text", ["sample", "--num", "1", "--sampler", "pc", "--steps", "1",
                                     "--corrector-range", "abc"], "error"),
    ("sample-autoguidance-no-guide", ["sample", "--num", "1", "--model", "shapes-ssr-tiny", "--autoguidance", "2", *S],
     "error"),
    # info
    ("info-wrong-type", ["info", "FX/bad_info"], "error"),
    ("info-empty-dir", ["info", "FX/a_dir"], "error"),
    ("info-missing", ["info", "no-such-model"], "error"),
    ("info-bad-json", ["info", "FX/bad_json"], "error"),
    ("info-file", ["info", "FX/a_file"], "error"),
    # extend / interpolate
    ("extend-frames-0", ["extend", "FX/clip.npy", "--frames", "0", *S], "error"),
    ("extend-frames-fewer", ["extend", "FX/clip.npy", "--frames", "4", *S], "error"),
    ("extend-frames-100000", ["extend", "FX/clip.npy", "--frames", "100000", *S], "error"),
    ("extend-context-0", ["extend", "FX/clip.npy", "--frames", "24", "--context", "0", *S], "error"),
    ("extend-context-99", ["extend", "FX/clip.npy", "--frames", "24", "--context", "99", *S], "error"),
    ("extend-random-bytes-npy", ["extend", "FX/rnd.npy", "--frames", "24", *S], "error"),
    ("extend-object-npy", ["extend", "FX/obj.npy", "--frames", "24", *S], "error"),
    ("extend-empty-mp4", ["extend", "FX/empty.mp4", "--frames", "24", *S], "error"),
    ("extend-truncated-mp4", ["extend", "FX/trunc.mp4", "--frames", "24", *S], "any"),
    ("extend-text-as-mp4", ["extend", "FX/text.mp4", "--frames", "24", *S], "error"),
    ("extend-missing-input", ["extend", "nope.mp4", "--frames", "24", *S], "error"),
    ("extend-empty-dir", ["extend", "FX/a_dir", "--frames", "24", *S], "error"),
    ("extend-method-bogus", ["extend", "FX/clip.npy", "--frames", "24", "--method", "bogus", *S], "error"),
    ("extend-out-is-file", ["extend", "FX/clip.npy", "--frames", "24", "--out", "FX/a_file", *S], "error"),
    ("extend-out-read-only", ["extend", "FX/clip.npy", "--frames", "24", "--out", "FX/ro_dir", *S], "error"),
    ("extend-scale-4096", ["extend", "FX/clip.npy", "--frames", "24", "--scale", "4096", *S], "error"),
    ("extend-steps-0", ["extend", "FX/clip.npy", "--frames", "24", "--steps", "0"], "error"),
    ("extend-5d-npy", ["extend", "FX/set.npy", "--frames", "24", *S], "error"),
    ("interpolate-factor-0", ["interpolate", "FX/clip.npy", "--factor", "0", *S], "error"),
    ("interpolate-factor-1", ["interpolate", "FX/clip.npy", "--factor", "1", *S], "error"),
    ("interpolate-factor-100", ["interpolate", "FX/clip.npy", "--factor", "100", *S], "error"),
    ("interpolate-random-bytes", ["interpolate", "FX/rnd.npy", *S], "error"),
    ("interpolate-one-frame", ["interpolate", "FX/one_frame.npy", *S], "error"),
    # upsample / cascade
    ("upsample-time-0", ["upsample", "FX/clip.npy", "--time", "0", *S], "error"),
    ("upsample-space-0", ["upsample", "FX/clip.npy", "--space", "0", *S], "error"),
    ("upsample-space-3", ["upsample", "FX/clip.npy", "--space", "3", *S], "error"),
    ("upsample-space-4096", ["upsample", "FX/clip.npy", "--space", "4096", *S], "error"),
    ("upsample-time-4096", ["upsample", "FX/clip.npy", "--time", "4096", *S], "error"),
    ("upsample-random-bytes", ["upsample", "FX/rnd.npy", "--space", "2", *S], "error"),
    ("upsample-model-missing", ["upsample", "FX/clip.npy", "--ssr-model", "no-such-model", *S], "error"),
    ("upsample-noise-aug-2", ["upsample", "FX/clip.npy", "--space", "2", "--noise-aug", "2", *S], "error"),
    ("upsample-out-is-file", ["upsample", "FX/clip.npy", "--space", "2", "--out", "FX/a_file", *S], "error"),
    ("upsample-not-square", ["upsample", "FX/wide.npy", "--space", "2", *S], "error"),
    ("upsample-wrong-model-kind", ["upsample", "FX/clip.npy", "--ssr-model", "shapes-tiny", *S], "error"),
    ("cascade-config-missing", ["cascade", "--config", "nope.yaml"], "error"),
    ("cascade-config-garbage", ["cascade", "--config", "FX/rnd.yaml"], "error"),
    ("cascade-config-wrong-type", ["cascade", "--config", "FX/cascade_bad.yaml"], "error"),
    ("cascade-num-0", ["cascade", "--config", "FX/cascade_bad.yaml", "--num", "0"], "error"),
    # train / distill / export
    ("train-batch-0", ["train", "--data", "FX/data", "--out", "run", "--batch", "0", "--steps", "1"], "error"),
    ("train-lr-neg", ["train", "--data", "FX/data", "--out", "run", "--lr", "-1", "--steps", "1"], "error"),
    ("train-steps-0", ["train", "--data", "FX/data", "--out", "run", "--steps", "0"], "error"),
    ("train-steps-neg", ["train", "--data", "FX/data", "--out", "run", "--steps", "-5"], "error"),
    ("train-size-4096", ["train", "--data", "FX/data", "--out", "run", "--size", "4096", "--steps", "1"], "error"),
    ("train-frames-0", ["train", "--data", "FX/data", "--out", "run", "--frames", "0", "--steps", "1"], "error"),
    ("train-stride-0", ["train", "--data", "FX/data", "--out", "run", "--stride", "0", "--steps", "1"], "error"),
    ("train-minutes-neg", ["train", "--data", "FX/data", "--out", "run", "--minutes", "-1"], "error"),
    ("train-cond-drop-2", ["train", "--data", "FX/data", "--out", "run", "--cond-drop", "2", "--steps", "1"], "error"),
    ("train-condition-bogus", ["train", "--data", "FX/data", "--out", "run", "--condition", "bogus", "--steps", "1"],
     "error"),
    ("train-model-bogus", ["train", "--data", "FX/data", "--out", "run", "--model", "bogus", "--steps", "1"], "error"),
    ("train-data-missing", ["train", "--data", "nope", "--out", "run", "--steps", "1"], "error"),
    ("train-data-empty", ["train", "--data", "FX/a_dir", "--out", "run", "--steps", "1"], "error"),
    ("train-data-corrupt-only", ["train", "--data", "FX/corrupt_data", "--out", "run", "--steps", "1"], "error"),
    ("train-config-missing", ["train", "--config", "nope.yaml"], "error"),
    ("train-config-wrong-type", ["train", "--config", "FX/train_bad.yaml"], "error"),
    ("train-config-unknown-key", ["train", "--config", "FX/train_unknown.yaml"], "error"),
    ("train-config-garbage", ["train", "--config", "FX/rnd.yaml"], "error"),
    ("train-out-is-file", ["train", "--data", "FX/data", "--out", "FX/a_file", "--steps", "1"], "error"),
    ("train-out-read-only", ["train", "--data", "FX/data", "--out", "FX/ro_dir/run", "--steps", "1"], "error"),
    ("train-resume-nothing", ["train", "--data", "FX/data", "--out", "run", "--resume", "--steps", "1"], "error"),
    ("train-init-from-missing", ["train", "--data", "FX/data", "--out", "run", "--init-from", "nope", "--steps", "1"],
     "error"),
    ("train-snapshot-steps-text", ["train", "--data", "FX/data", "--out", "run", "--snapshot-steps", "abc"], "error"),
    ("distill-teacher-missing", ["distill", "nope", "--data", "FX/data", "--out", "d"], "error"),
    ("distill-data-missing", ["distill", "shapes-tiny", "--data", "nope", "--out", "d"], "error"),
    ("distill-out-is-file", ["distill", "shapes-tiny", "--data", "FX/data", "--out", "FX/a_file"], "error"),
    ("export-run-missing", ["export", "nope", "dest"], "error"),
    ("export-run-empty", ["export", "FX/a_dir", "dest"], "error"),
    # models
    ("models-frames-0", ["models", "--frames", "0"], "error"),
    ("models-size-0", ["models", "--size", "0"], "error"),
    # eval
    ("eval-batch-size-0", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--metrics", "psnr",
                           "--frames", "4", "--batch-size", "0"], "error"),
    ("eval-device-tpu", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--device", "tpu"], "error"),
    ("eval-device-cuda-none", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--metrics", "psnr",
                               "--frames", "4", "--device", "cuda"], "any"),
    ("eval-real-missing", ["eval", "--real", "nope", "--fake", "FX/set.npy"], "error"),
    ("eval-fake-random-bytes", ["eval", "--real", "FX/set.npy", "--fake", "FX/rnd.npy"], "error"),
    ("eval-fake-object", ["eval", "--real", "FX/set.npy", "--fake", "FX/obj.npy"], "error"),
    ("eval-fake-empty-dir", ["eval", "--real", "FX/set.npy", "--fake", "FX/a_dir"], "error"),
    ("eval-fake-sample-npy-dir", ["eval", "--real", "FX/set.npy", "--fake", "FX/setdir", "--metrics", "psnr,ssim",
                                  "--frames", "4", "--out", "r.json"], "ok"),
    ("eval-out-is-dir", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--metrics", "psnr", "--frames", "4",
                         "--out", "FX/a_dir"], "error"),
    ("eval-report-dir-is-file", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--metrics", "psnr",
                                 "--frames", "4", "--out", "r.json", "--report-dir", "FX/a_file"], "error"),
    ("eval-out-read-only", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--metrics", "psnr",
                            "--frames", "4", "--out", "FX/ro_dir/r.json"], "error"),
    ("eval-frames-0", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--frames", "0"], "error"),
    ("eval-frames-1000", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--frames", "1000"], "error"),
    ("eval-stride-0", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--stride", "0"], "error"),
    ("eval-metrics-bogus", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--metrics", "bogus"], "error"),
    ("eval-fvd-one-video", ["eval", "--real", "FX/clip.npy", "--fake", "FX/clip.npy", "--metrics", "fvd",
                            "--frames", "4"], "error"),
    ("eval-kid-subsets-0", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--metrics", "kid",
                            "--frames", "4", "--kid-subsets", "0"], "error"),
    ("eval-i3d-missing", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--metrics", "fvd", "--frames", "4",
                          "--i3d", "nope.pt"], "error"),
    ("eval-i3d-random-bytes", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--metrics", "fvd",
                               "--frames", "4", "--i3d", "FX/rnd.npy"], "error"),
    ("eval-window-0", ["eval", "--real", "FX/set.npy", "--fake", "FX/set.npy", "--window", "0"], "error"),
    # data
    ("check-limit-0", ["data", "check", "FX/set.npy", "--limit", "0"], "error"),
    ("check-limit-neg", ["data", "check", "FX/set.npy", "--limit", "-1"], "error"),
    ("check-random-bytes", ["data", "check", "FX/rnd.npy"], "error"),
    ("check-object", ["data", "check", "FX/obj.npy"], "error"),
    ("check-float", ["data", "check", "FX/float.npy"], "error"),
    ("check-json-is-dir", ["data", "check", "FX/set.npy", "--json", "FX/a_dir"], "error"),
    ("check-json-read-only", ["data", "check", "FX/set.npy", "--json", "FX/ro_dir/x.json"], "error"),
    ("check-missing", ["data", "check", "nope"], "error"),
    ("check-empty-dir", ["data", "check", "FX/a_dir"], "error"),
    ("check-corrupt-only", ["data", "check", "FX/corrupt_data"], "error"),
    ("synth-num-0", ["data", "synth", "shapes", "s", "--num", "0"], "error"),
    ("synth-size-4", ["data", "synth", "shapes", "s", "--num", "1", "--size", "4"], "error"),
    ("synth-size-100000", ["data", "synth", "shapes", "s", "--num", "1", "--size", "100000"], "error"),
    ("synth-frames-0", ["data", "synth", "shapes", "s", "--num", "1", "--frames", "0"], "error"),
    ("synth-format-avi", ["data", "synth", "shapes", "s", "--num", "1", "--format", "avi"], "error"),
    ("synth-colours-bogus", ["data", "synth", "shapes", "s", "--num", "1", "--colours", "purple"], "error"),
    ("synth-out-is-file", ["data", "synth", "shapes", "FX/a_file", "--num", "1"], "error"),
    ("synth-out-read-only", ["data", "synth", "shapes", "FX/ro_dir/s", "--num", "1"], "error"),
    ("curate-src-missing", ["data", "curate", "nope", "--out", "c"], "error"),
    ("curate-min-frames-0", ["data", "curate", "FX/data", "--out", "c", "--min-frames", "0"], "error"),
    ("curate-out-is-file", ["data", "curate", "FX/data", "--out", "FX/a_file"], "error"),
    # Generative Image Dynamics
    ("animate-frames-0", ["animate", "FX/photo.png", "--out", "a.mp4", "--frames", "0", "--steps", "1"], "error"),
    ("animate-frames-100000", ["animate", "FX/photo.png", "--out", "a.mp4", "--frames", "100000", "--steps", "1"],
     "error"),
    ("animate-slowmo-0", ["animate", "FX/photo.png", "--out", "a.mp4", "--slowmo", "0"], "error"),
    ("animate-out-avi", ["animate", "FX/photo.png", "--out", "a.avi"], "error"),
    ("animate-out-is-dir", ["animate", "FX/photo.png", "--out", "FX/a_dir.mp4", "--steps", "1"], "error"),
    ("animate-out-read-only", ["animate", "FX/photo.png", "--out", "FX/ro_dir/a.mp4", "--steps", "1"], "error"),
    ("animate-sv-garbage", ["animate", "FX/photo.png", "--out", "a.mp4", "--spectral-volume", "FX/rnd.npz"], "error"),
    ("animate-sv-missing", ["animate", "FX/photo.png", "--out", "a.mp4", "--spectral-volume", "nope.npz"], "error"),
    ("animate-fps-0", ["animate", "FX/photo.png", "--out", "a.mp4", "--fps", "0"], "error"),
    ("animate-photo-random-bytes", ["animate", "FX/rnd.png", "--out", "a.mp4", "--steps", "1"], "error"),
    ("animate-photo-missing", ["animate", "nope.png", "--out", "a.mp4", "--steps", "1"], "error"),
    ("animate-renderer-missing", ["animate", "FX/photo.png", "--out", "a.mp4", "--renderer", "nope", "--steps", "1"],
     "error"),
    ("animate-steps-0", ["animate", "FX/photo.png", "--out", "a.mp4", "--steps", "0"], "error"),
    ("extract-frames-0", ["dynamics", "extract", "FX/clip.npy", "--out", "sv.npz", "--frames", "0"], "error"),
    ("extract-k-0", ["dynamics", "extract", "FX/clip.npy", "--out", "sv.npz", "--k", "0"], "error"),
    ("extract-k-100", ["dynamics", "extract", "FX/clip.npy", "--out", "sv.npz", "--k", "100"], "error"),
    ("extract-out-txt", ["dynamics", "extract", "FX/clip.npy", "--out", "sv.txt"], "error"),
    ("extract-out-is-dir", ["dynamics", "extract", "FX/clip.npy", "--out", "FX/a_dir.npz", "--k", "2"], "error"),
    ("extract-random-bytes", ["dynamics", "extract", "FX/rnd.npy", "--out", "sv.npz"], "error"),
    ("extract-method-bogus", ["dynamics", "extract", "FX/clip.npy", "--out", "sv.npz", "--k", "2", "--method", "x"],
     "error"),
    ("simulate-poke-text", ["dynamics", "simulate", "FX/photo.png", "--poke", "abc", "--out", "s.mp4"], "error"),
    ("simulate-frames-0", ["dynamics", "simulate", "FX/photo.png", "--poke", "1,1,1,1", "--out", "s.mp4",
                           "--frames", "0"], "error"),
    ("simulate-frames-10M", ["dynamics", "simulate", "FX/photo.png", "--poke", "1,1,1,1", "--out", "s.mp4",
                             "--frames", "10000000", "--spectral-volume", "FX/sv.npz"], "error"),
    ("xt-row-1000", ["dynamics", "xt", "FX/clip.npy", "--out", "x.png", "--row", "1000"], "error"),
    ("xt-out-is-dir", ["dynamics", "xt", "FX/clip.npy", "--out", "FX/a_dir"], "error"),
    ("xt-random-bytes", ["dynamics", "xt", "FX/rnd.npy", "--out", "x.png"], "error"),
    # Gen-1 edit / stylize
    ("edit-content-not-gen1-model", ["edit", "FX/clip.npy", "--content", "FX/photo.png", "--model", "shapes-tiny",
                                     "--out", "e.mp4"], "error"),
    ("edit-content-and-prompt", ["edit", "FX/clip.npy", "--content", "FX/photo.png", "--prompt", "a cat", "--model",
                                 "shapes-tiny", "--out", "e.mp4"], "error"),
    ("stylize-style-random-bytes", ["stylize", "FX/clip.npy", "--style", "FX/rnd.png", "--out", "s.mp4"], "error"),
    ("stylize-style-missing", ["stylize", "FX/clip.npy", "--style", "nope.png", "--out", "s.mp4"], "error"),
    ("stylize-clip-text", ["stylize", "FX/text.mp4", "--style", "FX/photo.png", "--out", "s.mp4"], "error"),
    ("stylize-blend-1", ["stylize", "FX/clip.npy", "--style", "FX/photo.png", "--blend", "1", "--out", "s.mp4"],
     "error"),
    ("stylize-smooth-neg", ["stylize", "FX/clip.npy", "--style", "FX/photo.png", "--smooth", "-1", "--out", "s.mp4"],
     "error"),
    ("stylize-out-is-dir", ["stylize", "FX/clip.npy", "--style", "FX/photo.png", "--out", "FX/a_dir.mp4"], "error"),
]


def make_fixtures(fx: Path) -> None:
    """Small inputs, good and bad, shared by the cases (never written by a case that succeeds)."""
    rng = np.random.default_rng(0)
    fx.mkdir(parents=True)
    clip = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    io.write_npy(fx / "clip.npy", clip)
    io.write_npy(fx / "one_frame.npy", clip[:1])
    io.write_npy(fx / "wide.npy", rng.integers(0, 256, (8, 32, 48, 3), dtype=np.uint8))
    io.write_mp4(fx / "clip.mp4", clip)
    data = (fx / "clip.mp4").read_bytes()
    (fx / "trunc.mp4").write_bytes(data[: len(data) // 2])
    (fx / "empty.mp4").write_bytes(b"")
    (fx / "text.mp4").write_text("not a video\n")
    io.write_npy(fx / "set.npy", rng.integers(0, 256, (4, 16, 32, 32, 3), dtype=np.uint8))
    (fx / "setdir").mkdir()
    io.write_npy(fx / "setdir" / "samples.npy", rng.integers(0, 256, (4, 16, 32, 32, 3), dtype=np.uint8))
    np.save(fx / "float.npy", rng.normal(size=(2, 4, 8, 8, 3)))
    np.save(fx / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name in ("rnd.npy", "rnd.png", "rnd.npz", "rnd.yaml"):
        (fx / name).write_bytes(rng.bytes(512))
    io.write_png(fx / "photo.png", rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    save_spectral_volume(fx / "sv.npz", torch.zeros(2, 4, 64, 64), period=8, fps=30.0)
    (fx / "a_file").write_text("x")
    (fx / "a_dir").mkdir()
    (fx / "a_dir.mp4").mkdir()
    (fx / "a_dir.npz").mkdir()
    (fx / "taken").mkdir()
    generate_shapes(fx / "data", 4, frames=16, size=16, progress=False)
    (fx / "corrupt_data").mkdir()
    for i in range(3):
        (fx / "corrupt_data" / f"v{i}.mp4").write_bytes(rng.bytes(300))
    model = resolve_model("shapes-tiny")
    for name in ("bad_info", "bad_json", "nan_model", "trunc_model"):  # without the autoguidance guide
        shutil.copytree(model, fx / name, ignore=shutil.ignore_patterns("guide"))
        good = json.loads((fx / name / "config.json").read_text())
        good.pop("autoguidance", None)
        (fx / name / "config.json").write_text(json.dumps(good, indent=2))
    cfg = (fx / "bad_info" / "config.json").read_text()
    bad = json.loads(cfg)
    bad["video"]["frames"] = "sixteen"
    (fx / "bad_info" / "config.json").write_text(json.dumps(bad))
    (fx / "bad_json" / "config.json").write_text(cfg[: len(cfg) // 2])
    weights = load_file(fx / "nan_model" / "model.safetensors")
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in weights.items()},
              fx / "nan_model" / "model.safetensors")
    w = (fx / "trunc_model" / "model.safetensors").read_bytes()
    (fx / "trunc_model" / "model.safetensors").write_bytes(w[: len(w) // 2])
    (fx / "train_bad.yaml").write_text("data: FX\nbatch: many\n")
    (fx / "train_unknown.yaml").write_text("data: FX\nbatchsize: 4\n")
    (fx / "cascade_bad.yaml").write_text("base: {model: shapes-tiny, steps: many}\n")
    (fx / "ro_dir").mkdir()
    _read_only(fx / "ro_dir", True)


def _read_only(path: Path, on: bool) -> None:
    """An unwritable folder: immutable (chattr +i, refuses even root) when possible, else mode 0555."""
    if os.geteuid() == 0 and shutil.which("chattr"):
        if subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True).returncode == 0:
            return
    path.chmod(0o555 if on else 0o755)


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def snapshot(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


def run_case(case_id: str, args: list[str], fx: Path, work: Path, timeout: float) -> dict:
    cwd = work / case_id
    cwd.mkdir()
    argv = [str(fx) + a[2:] if a.startswith("FX") else a for a in args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VIDIFF_MAX_MEMORY": MEMORY_CAP, "NO_COLOR": "1",
           "COLUMNS": "200"}
    before = snapshot(fx)
    t0 = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, "-m", "vidiff.cli", *argv], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=timeout, preexec_fn=_cap_memory)
        code, err = r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        code, err = None, (e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or ""))
    seconds = time.perf_counter() - t0
    after = snapshot(fx)
    new_fx = sorted(k for k in after if k not in before or after[k] != before[k])
    left = sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*") if p.is_file())
    temps = [p for p in left + new_fx if ".tmp" in Path(p).name]
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    traceback = "Traceback (most recent call last)" in err
    if code is None:
        result = "TIMEOUT"
    elif traceback:
        result = "TRACEBACK"
    elif code == 2 and len(errors) == 1:
        result = "error"
    elif code == 0:
        result = "ok"
    else:
        result = f"exit {code}"
    partial = (left + new_fx) if result not in ("ok",) else temps
    def scrub(text: str) -> str:  # the table names fixtures as the command lines do
        return text.replace(str(fx), "FX").replace(str(cwd) + "/", "")

    return dict(id=case_id, args=args, code=code, result=result, message=scrub(errors[0][7:] if errors else ""),
                traceback=traceback, partial=partial, seconds=seconds,
                last=scrub((err.strip().splitlines() or [""])[-1][:160]))


def markdown(rows: list[dict], expected: dict[str, str], total_s: float) -> str:
    n = len(rows)
    one_line = sum(r["result"] == "error" for r in rows)
    tracebacks = sum(r["traceback"] for r in rows)
    partial = sum(bool(r["partial"]) for r in rows)
    timeouts = sum(r["result"] == "TIMEOUT" for r in rows)
    unexpected = [r for r in rows if expected[r["id"]] != "any" and r["result"] != expected[r["id"]]]
    lines = [
        "# Reliability: bad inputs tried",
        "",
        "Generated by `python scripts/fuzz_cli.py` (do not edit by hand): every command below ran in a",
        "subprocess in a fresh folder, with `VIDIFF_MAX_MEMORY=" + MEMORY_CAP + "` (the memory a request may plan to",
        "use; see `vidiff/limits.py`), a 12 GiB address-space limit, `OMP_NUM_THREADS=1` and a timeout.",
        "`FX/` is a folder of fixtures: good and bad videos (`clip.npy`, random bytes `rnd.npy`, an object",
        "array `obj.npy`, an empty and a truncated mp4), a file `a_file`, folders `a_dir` and `ro_dir`",
        "(immutable), checkpoints with a wrong-typed, half-written or NaN config/weights, and a tiny shapes",
        "dataset.",
        "",
        f"- inputs tried: **{n}** ({total_s / 60:.1f} min)",
        f"- one-line errors (exit 2, one `error:` line): **{one_line}**",
        f"- tracebacks: **{tracebacks}**",
        f"- partial outputs (files left by a failed run, or temporary files by any run): **{partial}**",
        f"- timeouts: **{timeouts}**",
        f"- behaviour other than expected: **{len(unexpected)}**"
        + (" (" + ", ".join(r["id"] for r in unexpected) + ")" if unexpected else ""),
        "",
        "| # | command | exit | result | message (or last line of stderr) | partial output |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        cmd = "vidiff " + " ".join(a if a and " " not in a else repr(a) for a in r["args"])
        msg = r["message"] or r["last"]
        lines.append(f"| {i} | `{cmd}` | {'-' if r['code'] is None else r['code']} | {r['result']} | "
                     f"{msg.replace('|', '/')} | {', '.join(r['partial'][:3]) or '-'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="run only the cases whose id contains this text (prints, writes nothing)")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per command")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    args = ap.parse_args()
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    cases = [c for c in CASES if args.only is None or args.only in c[0]]
    tmp = Path(tempfile.mkdtemp(prefix="vidiff-fuzz-"))
    fx, work = tmp / "FX", tmp / "runs"
    work.mkdir()
    rows = []
    t0 = time.perf_counter()
    try:
        make_fixtures(fx)
        for case_id, argv, expect in cases:
            row = run_case(case_id, argv, fx, work, args.timeout)
            rows.append(row)
            flag = "" if expect in ("any", row["result"]) else f"   <-- expected {expect}"
            print(f"{case_id:34s} {row['result']:9s} {row['seconds']:5.1f}s  "
                  f"{(row['message'] or row['last'])[:110]}{flag}", flush=True)
    finally:
        _read_only(fx / "ro_dir", False)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.only is None:
        args.out.write_text(markdown(rows, {c[0]: c[2] for c in CASES}, time.perf_counter() - t0))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
