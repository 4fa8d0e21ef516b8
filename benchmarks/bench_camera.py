"""How well `vidiff.metrics.camera` recovers a camera's motion and the objects' own motion, on shapes clips
seen by a synthetic moving camera (`vidiff data synth shapes --background texture --camera-pan ...`).

    OMP_NUM_THREADS=2 python benchmarks/bench_camera.py [--num 64] [--frames 16] [--size 64] [--json out.json]
    python benchmarks/bench_camera.py --quick        # 4 small clips: a smoke run

Two camera settings, each on `--num` clips (textured background, one flat object bouncing in the frame):
  * pan: a pan of 1–5 % of the frame per frame in a random direction;
  * pan+roll+zoom+shake: the same plus a roll of up to 1°/frame, a zoom of up to ±1 %/frame and a per-frame
    jitter of the pan (std 0.5 % of the frame).
Ground truth: the generator's frame-to-frame affines A_t (metadata "camera") and the object's path. Measured,
per frame pair (mean and 95th percentile over all pairs of all clips):
  * pan error: ‖(Â_t − A_t) c̃‖ at the frame centre c (px/frame), and the camera-flow error mean_p ‖ĝ_t(p) − g_t(p)‖
    over the whole frame (px/frame; it also counts roll and zoom errors), for the robust affine (IRLS), and two
    baselines measured in the same run on the same flows: the median flow as a translation (the camera
    filter `vidiff dynamics train` used before) and an ordinary least-squares affine over every pixel;
  * object motion error: ‖mean_p l_t(p) − (c_{t+1} − c_t − mean_p g_t(p))‖ over the object's fully covered
    pixels (px/frame): its own motion recovered from the local flow, against the raw flow (no decomposition),
    and the flow's own error there (mean flow against the object's true displacement c_{t+1} − c_t: flat
    objects carry no texture inside, so this bounds what any decomposition of this flow can do);
  * background residual: mean ‖l_t(p)‖ over background pixels away from the object and the border (px/frame):
    motion wrongly left as local.
"""
from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from vidiff.data import synth
from vidiff.metrics.camera import affine_flow, fit_affine, video_flows

SETTINGS = {
    "pan": dict(camera_speed=(0.01, 0.05)),
    "pan+roll+zoom+shake": dict(camera_speed=(0.01, 0.05), camera_rotation=1.0, camera_zoom=0.01,
                                camera_shake=0.005),
}


def median_translation(flows: np.ndarray) -> np.ndarray:
    """Baseline: [I | median_p u(p)] per frame, (N, 2, 3)."""
    A = np.tile(np.eye(3)[:2], (len(flows), 1, 1))
    A[:, :, 2] = np.median(flows.reshape(len(flows), -1, 2), axis=1)
    return A


def least_squares_affine(flows: np.ndarray) -> np.ndarray:
    """Baseline: the affine minimising Σ_p ‖A p̃ − p − u(p)‖² over every pixel, (N, 2, 3)."""
    n, h, w = flows.shape[:3]
    yy, xx = np.mgrid[0:h, 0:w]
    X = np.stack([xx.ravel(), yy.ravel(), np.ones(h * w)], 1)                  # (P, 3)
    return np.stack([np.linalg.lstsq(X, X[:, :2] + f.reshape(-1, 2), rcond=None)[0].T for f in flows])


def clip_errors(video: np.ndarray, meta: dict, params: synth.ShapeParams, cfg: synth.ShapesConfig, bg: np.ndarray,
                timings: list[tuple[float, float]]) -> dict[str, list[float]]:
    """Per-frame-pair errors of one clip (module doc)."""
    S, F = cfg.size, cfg.frames
    truth = np.array(meta["camera"]["affines"])                                # (F-1, 2, 3)
    t0 = time.perf_counter()
    flows = video_flows(video)                                                 # (F-1, H, W, 2)
    t1 = time.perf_counter()
    est = {"affine (IRLS)": fit_affine(flows)}
    timings.append((time.perf_counter() - t1, t1 - t0))
    est["median flow"] = median_translation(flows)
    est["least squares"] = least_squares_affine(flows)
    c = np.array([(S - 1) / 2, (S - 1) / 2, 1.0])
    g_true = affine_flow(truth, S, S)
    out: dict[str, list[float]] = {}
    for name, A in est.items():
        out[f"pan {name}"] = list(np.linalg.norm((A - truth) @ c, axis=-1))
        out[f"camera flow {name}"] = list(np.linalg.norm(affine_flow(A, S, S) - g_true, axis=-1).mean((1, 2)))
    g = affine_flow(est["affine (IRLS)"], S, S)
    local = flows - g
    centres = synth.trajectories([params], F, S)[0]                            # (F, 2)
    obj = (video == np.array(params.rgb, np.uint8)).all(-1)                    # (F, H, W) fully covered pixels
    still = np.abs(video.astype(np.float32) - bg.round()).max(-1) == 0         # (F, H, W) untouched background
    m = max(2, S // 16)
    inner = np.zeros((S, S), bool)
    inner[m:-m, m:-m] = True
    out.update({"object affine (IRLS)": [], "object raw flow": [], "object flow vs its true motion": [],
                "background residual": []})
    for t in range(F - 1):
        o = obj[t] & inner
        far = cv2.erode(still[t].astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & inner
        if far.any():
            out["background residual"].append(float(np.linalg.norm(local[t][far], axis=-1).mean()))
        if o.sum() < 4:
            continue
        want = centres[t + 1] - centres[t] - g_true[t][o].mean(0)              # the object's own motion
        out["object affine (IRLS)"].append(float(np.linalg.norm(local[t][o].mean(0) - want)))
        out["object raw flow"].append(float(np.linalg.norm(flows[t][o].mean(0) - want)))
        out["object flow vs its true motion"].append(float(np.linalg.norm(flows[t][o].mean(0) - centres[t + 1]
                                                                          + centres[t])))
    return out


def run(num: int, frames: int, size: int, seed: int) -> dict:
    results = {}
    for setting, kw in SETTINGS.items():
        cfg = synth.ShapesConfig(frames=frames, size=size, background="texture", **kw)
        videos, meta = synth.render_shapes(num, cfg=cfg, seed=seed)
        errs: dict[str, list[float]] = {}
        timings: list[tuple[float, float]] = []
        for i, (video, m) in enumerate(zip(videos, meta)):
            params = synth.sample_params(i, seed, cfg)
            bg = synth.background_frames(i, seed, cfg)
            for k, v in clip_errors(video, m, params, cfg, bg, timings).items():
                errs.setdefault(k, []).extend(v)
        fit_s, flow_s = np.sum(timings, axis=0) / (num * (frames - 1))
        results[setting] = {
            "pairs": num * (frames - 1),
            "true camera motion px/frame": float(np.mean([np.linalg.norm(affine_flow(
                np.array(m["camera"]["affines"]), size, size), axis=-1).mean() for m in meta])),
            **{k: {"mean": float(np.mean(v)), "p95": float(np.percentile(v, 95)), "n": len(v)}
               for k, v in errs.items()},
            "ms per pair: flow": 1e3 * flow_s, "ms per pair: affine fit": 1e3 * fit_s,
        }
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="4 clips of 6 frames at 48 px")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    if a.quick:
        a.num, a.frames, a.size = 4, 6, 48
    cv2.setNumThreads(1)
    res = run(a.num, a.frames, a.size, a.seed)
    print(f"{a.num} clips x {a.frames - 1} frame pairs at {a.size}x{a.size}, seed {a.seed}")
    for setting, r in res.items():
        print(f"\n{setting}: true camera motion {r['true camera motion px/frame']:.2f} px/frame (mean over pixels); "
              f"flow {r['ms per pair: flow']:.1f} ms, affine fit {r['ms per pair: affine fit']:.1f} ms per pair")
        print(f"  {'error (px/frame)':<36}{'mean':>9}{'p95':>9}{'n':>7}")
        for k, v in r.items():
            if isinstance(v, dict):
                print(f"  {k:<36}{v['mean']:>9.3f}{v['p95']:>9.3f}{v['n']:>7}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"args": vars(a), "results": res}, fh, indent=1)


if __name__ == "__main__":
    main()
