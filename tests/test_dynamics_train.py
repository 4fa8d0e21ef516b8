"""`vidiff dynamics train` on real-footage-like videos: the camera-motion filter, training pairs,
exact resume, the no-usable-clip error, and `vidiff animate --mask`."""
import dataclasses
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidiff.checkpoint import load_state_dict
from vidiff.cli import main
from vidiff.data import io
from vidiff.dynamics.animate import predict_motion
from vidiff.dynamics.normalize import FrequencyNormalizer
from vidiff.dynamics.real_data import (ClipSet, MotionPairs, camera_shift, crop_pair, extract_clips, flip_volume,
                                       vegetation_mask)
from vidiff.dynamics.spectral import save_spectral_volume
from vidiff.dynamics.train_real import RealMotionConfig, stage_budgets, train_motion_real

sys.path.insert(0, str(Path(__file__).parent / "dynamics"))
from _synth import texture, warped_video  # noqa: E402

T, H, W = 8, 24, 32
TINY = RealMotionConfig(size=16, k=4, frames=T, work_size=32, base_channels=8, vae_channels=8, batch=2,
                        preview_steps=1, checkpoint_every=0, device="cpu")


def _sway(t, x, y):
    """A blob left of centre swaying at f = 2 (x) and f = 1 (y); the rest of the frame still."""
    a = 1.5 * np.exp(-((x - 12) ** 2 + (y - 12) ** 2) / 50)
    return [a * np.cos(2 * np.pi * 2 * t / T), 0.5 * a * np.sin(2 * np.pi * t / T)]


def _pan(t, x, y):
    """The whole frame sliding right by 0.6 px per frame (a panning camera) plus the sway."""
    sx, sy = _sway(t, x, y)
    return [sx + 0.6 * t, sy]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("footage")
    io.write_npy(d / "sway.npy", warped_video(H, W, T, _sway, frames=2 * T))
    io.write_npy(d / "pan.npy", warped_video(H, W, T, _pan, frames=T))
    still = warped_video(H, W, T, lambda t, x, y: [0 * x, 0 * x], frames=1)
    io.write_npy(d / "still.npy", np.repeat(still, T + 2, axis=0) + np.arange(T + 2, dtype=np.uint8)[:, None, None,
                                                                                                       None] % 2)
    return d


def _clips(path: Path) -> ClipSet:
    return extract_clips([path], frames=T, k=4, work_size=32)


def test_camera_filter_rejects_a_pan_and_keeps_a_sway(videos):
    sway, pan, still = _clips(videos / "sway.npy"), _clips(videos / "pan.npy"), _clips(videos / "still.npy")
    assert len(sway) == 3 and sum(sway.rejected.values()) == 0  # windows at 0, 4, 8 of 16 frames
    assert len(pan) == 0 and pan.rejected["camera motion"] == 1
    assert len(still) == 0 and still.rejected["no motion"] >= 1  # brightness flicker is not motion
    # the swaying part moves (peak |S_2| of x near 1.5 px), the frame's corners do not
    amp = sway.volumes[0][2, :2].norm(dim=0)  # (H, W) |S_2| of x
    assert 1.0 < float(amp.max()) < 2.0 and float(amp[:, -6:].max()) < 0.3
    traj = torch.zeros(T, 2, H, W)
    traj[:, 0] = torch.arange(T).view(T, 1, 1) * 0.6  # a pan: every pixel alike
    assert abs(camera_shift(traj) - 0.6 * (T - 1)) < 1e-5


def test_training_pairs_round_trip_through_normalisation(videos):
    clips = _clips(videos / "sway.npy")
    yy, xx = np.mgrid[0:40, 0:40].astype(np.float64)
    grey = texture(xx, yy, seed=3)
    photo = np.stack([grey * 0.5, grey, grey * 0.4], -1).astype(np.uint8)  # textured green: vegetation
    photo[:, 20:] = 128  # flat grey: a wall
    mask = vegetation_mask(photo)
    assert mask[:, :14].mean() > 0.9 and mask[:, 28:].max() == 0
    # a semi-synthetic pair moves only where the mask is: the whole photo (crop 1) at 16 px, wall columns >= 12
    whole = MotionPairs(clips, 16, crop=1.0, photos=[photo], seed=0)
    for epoch in range(4):
        whole.set_epoch(epoch)
        item = whole[len(clips)]
        wall = item["spectral_volume"].abs().amax(dim=(0, 1, 2))  # (16,) per column
        assert not item["real"] and min(float(wall[12:].max()), float(wall[:4].max())) == 0  # (or mirrored)
    pairs = MotionPairs(clips, 16, crop=0.6, photos=[photo], seed=0)
    vols = []
    for epoch in range(3):
        pairs.set_epoch(epoch)
        for i in range(len(pairs)):
            item = pairs[i]
            assert item["image"].shape == (3, 16, 16) and item["spectral_volume"].shape == (4, 4, 16, 16)
            vols.append(item["spectral_volume"])
    pairs.set_epoch(1)
    assert torch.equal(pairs[0]["spectral_volume"], vols[len(pairs)])  # a pure function of (epoch, item)
    norm = FrequencyNormalizer.fit(torch.stack(vols))
    for v in vols:
        assert torch.allclose(norm.denormalize(norm.normalize(v)), v, atol=1e-6)
    # crops scale displacements with the image; flips negate x; the whole frame at its own size is the volume
    sv, img = clips.volumes[0], clips.images[0]
    assert torch.allclose(crop_pair(img, sv, (0, 0, H), H, False)[1], sv[..., :H])
    half = crop_pair(img, sv, (0, 0, H), H // 2, False)[1]
    assert abs(float(half.abs().max()) / float(sv[..., :H].abs().max()) - 0.5) < 0.1
    assert torch.equal(flip_volume(flip_volume(sv)), sv)
    assert torch.equal(crop_pair(img, sv, (0, 0, H), H, True)[1][:, 0], -sv[:, 0, :, :H].flip(-1))


def test_dynamics_train_resumes_exactly_and_previews(videos, tmp_path, capsys):
    assert stage_budgets(6, None, False) == {"vae": (1, None), "stage1": (3, None), "stage2": (2, None)}
    data = tmp_path / "data"
    data.mkdir()
    (data / "sway.npy").symlink_to(videos / "sway.npy")
    full = train_motion_real(data, tmp_path / "full", TINY, steps=6, progress=False)
    assert full["real_clips"] == 3 and full["stages"]["stage2"]["steps"] == 2

    def interrupt(stage, step, values):
        if stage == "stage1" and step == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train_motion_real(data, tmp_path / "part", TINY, steps=6, progress=False, callback=interrupt)
    assert not (tmp_path / "part" / "model.safetensors").exists()
    with pytest.raises(Exception, match="--resume"):
        train_motion_real(data, tmp_path / "part", TINY, steps=6, progress=False)
    capsys.readouterr()
    train_motion_real(data, tmp_path / "part", dataclasses.replace(TINY, batch=4), steps=6, resume=True,
                      progress=False)
    assert "with its saved settings; ignored: --batch" in capsys.readouterr().err
    a = load_state_dict(tmp_path / "full" / "model.safetensors")
    b = load_state_dict(tmp_path / "part" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # exact, not approximate
    motion = predict_motion(torch.zeros(1, 3, H, W), tmp_path / "part", steps=1)  # `vidiff animate`'s path
    assert motion["spectral_volume"].shape == (4, 4, H, W) and motion["fps"] == full["fps"] == 30.0
    samples = tmp_path / "part" / "stage2" / "samples"
    assert (samples / "step_0000002.gif").stat().st_size > 0 and (samples / "step_0000002_motion.png").is_file()


def test_no_usable_clip_is_one_line_counting_each_reason(videos, tmp_path, capsys):
    data = tmp_path / "bad"
    data.mkdir()
    for name in ("pan.npy", "still.npy"):
        (data / name).symlink_to(videos / name)
    (data / "broken.npy").write_bytes(b"not a video")
    code = main(["dynamics", "train", "--videos", str(data), "--out", str(tmp_path / "run"), "--steps", "3",
                 "--frames", str(T), "--k", "4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: no usable clip in ")
    assert "1 camera motion, 0 scene cut, 1 no motion, 0 too short, 1 unreadable" in err[-1]
    assert any("pan.npy" in line and "camera moves" in line for line in err[:-1])  # the moving camera's notice
    assert not (tmp_path / "run" / "run.json").exists()


def test_animate_mask_of_another_size_is_resized_with_a_notice(tmp_path, capsys):
    photo = (np.random.default_rng(0).integers(0, 255, (24, 32, 3))).astype(np.uint8)
    io.write_png(tmp_path / "photo.png", photo)
    sv = torch.zeros(4, 4, 24, 32)
    sv[1, 0] = 2.0  # everything sways 2 px along x at f = 1
    save_spectral_volume(tmp_path / "sv.npz", sv, period=8, fps=8.0)
    mask = np.zeros((12, 16, 3), np.uint8)
    mask[:, :8] = 255  # the left half moves, painted at half the photo's size
    io.write_png(tmp_path / "mask.png", mask)
    out = tmp_path / "anim.npy"
    assert main(["animate", str(tmp_path / "photo.png"), "--spectral-volume", str(tmp_path / "sv.npz"), "--out",
                 str(out), "--frames", "8", "--mask", str(tmp_path / "mask.png"), "--renderer", "splat"]) == 0
    assert "--mask mask.png is 16x12, the photo 32x24: resized to the photo" in capsys.readouterr().err
    video = np.load(out).reshape(8, 24, 32, 3)
    assert np.array_equal(video[:, :, 20:], np.broadcast_to(photo[:, 20:], (8, 24, 12, 3)))  # still
    assert np.abs(video[4, :, :10].astype(int) - photo[:, :10]).mean() > 10  # moves
