"""Camera motion: the shapes generator's synthetic camera (ground truth) and vidiff.metrics.camera's
global/local decomposition recovering it."""
import hashlib
import json

import cv2
import numpy as np
import pytest

from vidiff.data import synth
from vidiff.metrics import camera
from vidiff.utils import VidiffError

S = 64


def _cfg(**kw) -> synth.ShapesConfig:
    return synth.ShapesConfig(**{"frames": 4, "size": S, "background": "texture", **kw})


def _err_px(est: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame mean over pixels of the displacement difference of two affine sets (N, 2, 3)."""
    d = camera.affine_flow(est, S, S) - camera.affine_flow(truth, S, S)
    return np.linalg.norm(d, axis=-1).mean((1, 2))


def test_default_generator_is_unchanged():
    videos, meta = synth.render_shapes(4, 5, 16, seed=7)
    # digest of these videos and records as rendered before camera motion and textures were added
    h = hashlib.sha256(videos.tobytes() + json.dumps(meta).encode()).hexdigest()
    assert h == "d49c4230439e1b02221901ba37da49c27b734071d5b53c3db04437ca4299dd3e"
    assert not any("camera" in m or "background" in m for m in meta)
    black, _ = synth.render_shapes(4, cfg=synth.ShapesConfig(frames=5, size=16, background="black"), seed=7)
    np.testing.assert_array_equal(black, videos)
    # the textured version keeps the object's pixels and path: equal wherever the object covers a pixel fully
    tex, tmeta = synth.render_shapes(4, cfg=synth.ShapesConfig(frames=5, size=16, background="texture"), seed=7)
    full = (videos > 0).all(-1) & (np.abs(videos.astype(int) - np.array([m["rgb"] for m in meta])[:, None, None,
                                                                                                  None]).max(-1) == 0)
    assert full.any() and (tex[full] == videos[full]).all()
    assert [m["x0"] for m in tmeta] == [m["x0"] for m in meta]
    assert all("textured background" in m["caption"] or "black" not in m["caption"] for m in tmeta)


def test_metadata_affines_match_the_rendered_background():
    cfg = _cfg(frames=5, camera_speed=(0.02, 0.04), camera_rotation=1.5, camera_zoom=0.02, camera_shake=0.005)
    videos, meta = synth.render_shapes(2, cfg=cfg, seed=3)
    for i, (video, m) in enumerate(zip(videos, meta)):
        A = np.array(m["camera"]["affines"])                                   # (F-1, 2, 3)
        assert A.shape == (4, 2, 3) and np.allclose(A, synth.camera_affines(i, 3, cfg))
        bg = synth.background_frames(i, 3, cfg)
        still = np.abs(video.astype(np.float32) - bg.round()).max(-1) == 0     # pixels the object leaves alone
        inner = np.zeros((S, S), bool)
        inner[8:-8, 8:-8] = True
        for t in range(4):
            # frame t+1 sampled back through the camera: out(p) = frame_{t+1}(A_t p̃) = frame_t(p)
            back, back_still = (cv2.warpAffine(x.astype(np.float32), A[t], (S, S),
                                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
                                for x in (video[t + 1], still[t + 1]))
            ok = still[t] & still[t + 1] & (back_still == 1) & inner                # background in both frames
            err = np.abs(back - video[t])[ok].mean()
            err_static = np.abs(video[t + 1].astype(np.float32) - video[t])[ok].mean()
            assert err < 1.5 and err_static > 5 * err, (t, err, err_static)
        assert m["background"] == "texture" and np.isclose(m["camera"]["zoom"], np.hypot(*A[0, :, 0]))


def test_pure_translation_of_a_texture_within_a_tenth_of_a_pixel():
    cfg = _cfg(frames=3, camera_speed=(0.01, 0.04), camera_shake=0.004)
    for index in range(3):
        frames = synth.background_frames(index, 0, cfg).round().astype(np.uint8)
        truth = synth.camera_affines(index, 0, cfg)                             # translations only
        est = camera.estimate_camera_motion(frames)                              # (F-1, 2, 3)
        assert est.shape == (2, 2, 3)
        assert np.abs(est[:, :, 2] - truth[:, :, 2]).max() < 0.1
        assert np.abs(est[:, :, :2] - np.eye(2)).max() < 0.01


def test_known_affine_recovered_with_a_moving_object():
    cfg = _cfg(camera_speed=(0.02, 0.04), camera_rotation=2.0, camera_zoom=0.02)
    videos, meta = synth.render_shapes(3, cfg=cfg, seed=5)
    for video, m in zip(videos, meta):
        truth = np.array(m["camera"]["affines"])
        moved = np.linalg.norm(camera.affine_flow(truth, S, S), axis=-1).mean()
        err = _err_px(camera.estimate_camera_motion(video), truth)
        assert moved > 1.0 and err.max() < 0.1, (moved, err)


def test_fit_affine_ignores_a_large_independently_moving_region():
    rng = np.random.default_rng(0)
    A = np.tile(np.eye(3)[:2], (3, 1, 1)) + rng.normal(scale=[[0.02, 0.02, 1.5]], size=(3, 2, 3))
    flows = camera.affine_flow(A, 40, 48) + rng.normal(scale=0.02, size=(3, 40, 48, 2)).astype(np.float32)
    flows[:, 5:25, 10:35] = rng.normal(scale=3.0, size=2).astype(np.float32)   # a third of the frame, its own way
    est = camera.fit_affine(flows)
    assert np.abs(camera.affine_flow(est, 40, 48) - camera.affine_flow(A, 40, 48)).max() < 0.02
    # ordinary least squares over every pixel is pulled towards the region
    yy, xx = np.mgrid[0:40, 0:48]
    X = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)], 1)                # (P, 3)
    ls = np.linalg.lstsq(X, (X[:, :2] + flows[0].reshape(-1, 2)), rcond=None)[0].T  # (2, 3)
    assert np.abs(camera.affine_flow(ls[None], 40, 48) - camera.affine_flow(A[:1], 40, 48)).max() > 0.5


def test_static_camera_leaves_the_flow_local():
    cfg = _cfg(frames=4)
    videos, meta = synth.render_shapes(2, cfg=cfg, seed=1)
    assert "camera" not in meta[0]
    for video in videos:
        g, loc = camera.decompose_motion(video)                                  # (F-1, H, W, 2) each
        flows = camera.video_flows(video)
        np.testing.assert_allclose(g + loc, flows, atol=1e-5)
        assert np.linalg.norm(g, axis=-1).max() < 0.05                            # no camera: g ≈ 0, l ≈ u
        assert np.linalg.norm(loc - flows, axis=-1).max() < 0.05
        assert camera.camera_motion_score(video) < 0.05


def test_local_flow_of_a_textured_object_under_a_pan_is_its_own_motion():
    # background: a texture seen by a panning, rolling camera; object: another texture translating by d per
    # frame inside a square window moving with it (flat objects' insides carry no flow: textured here)
    cam = _cfg(frames=3, camera_speed=(0.03, 0.03), camera_rotation=1.0)
    bg, A = synth.background_frames(0, 1, cam), synth.camera_affines(0, 1, cam)
    obj_cfg = _cfg(frames=3, camera_speed=(0.035, 0.035))
    obj, d = synth.background_frames(1, 1, obj_cfg), synth.camera_affines(1, 1, obj_cfg)[0, :, 2]
    video = bg.copy()
    for t in range(3):
        x0, y0 = np.round(np.array([20.0, 20.0]) + d * t).astype(int)
        video[t, y0:y0 + 22, x0:x0 + 22] = obj[t, y0:y0 + 22, x0:x0 + 22]
    g, loc = camera.decompose_motion(video.round().astype(np.uint8))
    gt_g = camera.affine_flow(A, S, S)
    for t in range(2):
        x0, y0 = np.round(np.array([20.0, 20.0]) + d * t).astype(int)
        core = (slice(y0 + 6, y0 + 16), slice(x0 + 6, x0 + 16))
        want = d[None, None] - gt_g[t][core]                                     # its motion minus the camera's
        assert np.linalg.norm(want, axis=-1).min() > 2.0
        assert np.linalg.norm(loc[t][core] - want, axis=-1).mean() < 0.25
        outside = np.ones((S, S), bool)
        outside[max(0, y0 - 8):y0 + 30, max(0, x0 - 8):x0 + 30] = False
        outside[:6], outside[-6:], outside[:, :6], outside[:, -6:] = False, False, False, False
        assert np.linalg.norm(loc[t][outside], axis=-1).mean() < 0.1             # the background has no local motion


def test_camera_motion_score_and_errors():
    cfg = _cfg(frames=3, camera_speed=(0.03, 0.03))
    video, meta = synth.render_shapes(1, cfg=cfg, seed=2)
    assert abs(camera.camera_motion_score(video[0]) - 0.03 * S) < 0.1
    import torch

    from vidiff.data.io import from_uint8

    np.testing.assert_allclose(camera.estimate_camera_motion(from_uint8(video[0])),
                               camera.estimate_camera_motion(video[0]), atol=1e-6)
    with pytest.raises(VidiffError, match="at least 2 frames"):
        camera.estimate_camera_motion(video[0, :1])
    with pytest.raises(VidiffError, match="uint8 frames"):
        camera.estimate_camera_motion(video[0].astype(np.float32))
    with pytest.raises(VidiffError, match="tensor"):
        camera.estimate_camera_motion(torch.zeros(2, 3, 8, 8))
    with pytest.raises(VidiffError, match="uniform background"):
        synth.ShapesConfig(camera_speed=(0.01, 0.02)).validate()
    with pytest.raises(VidiffError, match="background"):
        synth.ShapesConfig(background="plaid").validate()


def test_cli_writes_camera_ground_truth(tmp_path):
    import typer
    from typer.testing import CliRunner

    from vidiff.cli.data import register
    from vidiff.data.io import load_npy

    app = typer.Typer()
    register(app)
    app.callback()(lambda: None)
    args = ["data", "synth", "shapes", str(tmp_path / "d"), "--num", "2", "--frames", "4", "--size", "32",
            "--format", "npy", "--background", "texture", "--camera-pan", "0.04", "--camera-rotation", "1"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    meta = synth.read_metadata(tmp_path / "d")
    cfg = synth.ShapesConfig(frames=4, size=32, background="texture", camera_speed=(0.04, 0.04), camera_rotation=1)
    videos, want = synth.render_shapes(2, cfg=cfg)
    for i, (name, m) in enumerate(sorted(meta.items())):
        np.testing.assert_array_equal(load_npy(tmp_path / "d" / name), videos[i])
        assert m["camera"] == want[i]["camera"] and np.hypot(*m["camera"]["pan"]) == pytest.approx(0.04 * 32)
    r = CliRunner().invoke(app, args[:-6] + ["--camera-pan", "0.01,x"])
    assert isinstance(r.exception, VidiffError) and "--camera-pan" in str(r.exception)  # `error: ...` in vidiff


def test_dynamics_camera_filter_sees_a_zoom_the_median_flow_misses():
    from vidiff.dynamics.real_data import camera_shift

    T, H, W = 6, 32, 32
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    zoom = 1.02 ** np.arange(T, dtype=np.float32)[:, None, None] - 1                # D(t, p) = (s^t − 1)(p − c)
    traj = np.stack([zoom * (xx - (W - 1) / 2), zoom * (yy - (H - 1) / 2)], 1)      # (T, 2, H, W)
    assert np.abs(np.median(traj.reshape(T, 2, -1), axis=2)).max() < 0.01           # the median flow sees nothing
    want = np.hypot(xx - (W - 1) / 2, yy - (H - 1) / 2).mean() * zoom.max()
    assert camera_shift(traj) == pytest.approx(want, rel=1e-3) and want > 1.0
    sway = np.zeros((T, 2, H, W), np.float32)
    sway[:, 0, 4:18, 4:18] = 2 * np.sin(np.arange(T))[:, None, None]                  # a fifth of the frame sways
    assert camera_shift(sway) < 0.05


def test_curation_camera_score_separates_a_pan_from_a_moving_object():
    from vidiff.data import curate, curate_scores

    still, _ = synth.render_shapes(1, cfg=_cfg(frames=5), seed=0)               # an object moves, the camera not
    pan, meta = synth.render_shapes(1, cfg=_cfg(frames=5, camera_speed=(0.03, 0.03)), seed=0)
    flows = curate_scores.pair_flows(still[0])
    assert curate_scores.flow_motion(still[0], flows=flows) == curate_scores.flow_motion(still[0])
    assert curate_scores.flow_motion(still[0]) > 0.1 and curate_scores.camera_motion(still[0]) < 0.05
    assert curate_scores.camera_motion(pan[0]) == pytest.approx(0.03 * S, abs=0.1)
    scores = {"motion": 2.0, "sharpness": 100.0, "brightness": 0.5, "aspect": 1.0}
    f = curate.Filters(max_camera=0.5)
    assert curate.failed_filters({**scores, "camera": 1.9}, f) == ["camera"]
    assert curate.failed_filters({**scores, "camera": 0.01}, f) == []
    assert curate.failed_filters(scores, f) == []                                 # manifests from before the score
