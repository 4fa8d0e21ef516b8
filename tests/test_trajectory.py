"""Trajectory control: keypoint splines, the JSON format, heat-map/flow encoding, object tracks from video,
the "trajectory" training condition, and `vidiff sample --trajectory / --drag` end to end."""
import json

import numpy as np
import pytest
import torch

from vidiff.conditioning.tasks import model_overrides, parse_condition, request_cond, training_cond
from vidiff.conditioning.trajectory import (CHANNELS, decode_heatmap, drag_trajectory, encode_tracks,
                                            interpolate_keypoints, load_trajectory, object_tracks, parse_drag,
                                            save_trajectory, track_error)
from vidiff.data.io import from_uint8
from vidiff.data.synth import ShapesConfig, render_shapes, sample_params, trajectories
from vidiff.utils import VidiffError


# --------------------------------------------------------------------------------------------- splines

@pytest.mark.parametrize("method", ["catmull-rom", "linear"])
def test_spline_passes_through_the_keypoints(method):
    keys = np.array([[0, 3.0, 4.0], [5, 20.0, 10.5], [9, 10.0, 25.0], [15, 29.0, 30.0]])
    p = interpolate_keypoints(keys, 16, method)
    assert p.shape == (16, 2)
    np.testing.assert_allclose(p[keys[:, 0].astype(int)], keys[:, 1:], atol=1e-12)


def test_catmull_rom_is_exact_on_a_uniform_straight_line_and_holds_outside_the_keys():
    keys = np.array([[2, 4.0, 6.0], [6, 12.0, 8.0], [10, 20.0, 10.0]])  # constant velocity (2, 0.5) per frame
    p = interpolate_keypoints(keys, 16)
    f = np.arange(2, 11)
    np.testing.assert_allclose(p[2:11], np.stack([4 + 2.0 * (f - 2), 6 + 0.5 * (f - 2)], 1), atol=1e-12)
    np.testing.assert_allclose(p[:2], [[4, 6]] * 2)
    np.testing.assert_allclose(p[11:], [[20, 10]] * 5)


def test_catmull_rom_velocity_is_continuous_at_a_keypoint_and_equals_its_tangent():
    keys = np.array([[0, 2.0, 2.0], [400, 10.0, 20.0], [800, 28.0, 4.0]])  # a sharp turn, finely sampled
    p = interpolate_keypoints(keys, 801)
    tangent = (keys[2, 1:] - keys[0, 1:]) / 800  # Catmull-Rom: (p2 - p0) / (t2 - t0)
    np.testing.assert_allclose(p[400] - p[399], tangent, atol=1e-3)
    np.testing.assert_allclose(p[401] - p[400], tangent, atol=1e-3)
    lin = interpolate_keypoints(keys, 801, "linear")
    assert np.abs((lin[401] - lin[400]) - (lin[400] - lin[399])).max() > 0.05  # the polyline kinks there


# --------------------------------------------------------------------------------------------- encoding

def test_heatmap_round_trips_to_the_points_within_half_a_pixel():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 32, (3, 16, 2))
    pts[0, 0], pts[1, 1], pts[2, 2] = [0.05, 31.9], [32.0, 0.0], [16.5, 16.5]  # edges and a pixel centre
    enc = encode_tracks(pts, 32, 32, per_track=True)
    assert enc.shape == (3 + 2, 16, 32, 32)
    dec = decode_heatmap(enc[:3]).double().numpy()
    assert np.abs(dec - pts).max() < 0.5
    assert np.abs(dec - pts).max() < 1e-3  # the log-parabola refinement is exact for a sampled Gaussian


def test_merged_heatmap_of_separate_tracks_peaks_at_each_and_flow_is_the_step():
    a = np.stack([np.linspace(4, 12, 8), np.full(8, 6.0)], 1)   # moves right 8/7 px per frame
    b = np.stack([np.full(8, 26.0), np.linspace(28, 14, 8)], 1)  # moves up 2 px per frame
    enc = encode_tracks(np.stack([a, b]), 32, 32)  # (3, F, H, W)
    assert enc.shape == (CHANNELS, 8, 32, 32)
    heat, flow = enc[0], enc[1:]
    assert heat.max() <= 1.0 + 1e-6
    left = decode_heatmap(heat[..., :16]).numpy()   # a's half of the frame
    right = decode_heatmap(heat[..., 16:]).numpy() + [16, 0]
    assert np.abs(left - a).max() < 0.05 and np.abs(right - b).max() < 0.05
    f = 3
    iy, ix = int(a[f, 1]), int(a[f, 0])
    np.testing.assert_allclose(flow[:, f, iy, ix] / heat[f, iy, ix], [(8 / 7) / 3.2, 0], atol=1e-5)
    iy, ix = int(b[f, 1]), int(b[f, 0])
    np.testing.assert_allclose(flow[:, f, iy, ix] / heat[f, iy, ix], [0, -2 / 3.2], atol=1e-5)
    assert flow[:, :, 30:, :3].abs().max() < 1e-6  # sparse: nothing away from the tracks


def test_nan_points_give_no_heat():
    pts = np.array([[[5.5, 5.5], [np.nan, np.nan], [7.5, 5.5]]])
    enc = encode_tracks(pts, 16, 16)
    assert enc[:, 1].abs().max() == 0 and enc[0, 0].max() > 0.9
    assert torch.isnan(decode_heatmap(enc[0])[1]).all()


# --------------------------------------------------------------------------------------------- files

def _write(tmp_path, doc, name="t.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_json_keypoints_and_per_frame_points(tmp_path):
    per_frame = [[float(f), 2.0 * f] for f in range(8)]
    path = _write(tmp_path, {"frames": 8, "tracks": [[[0, 1, 1], [7, 15, 9]], per_frame]})
    pts = load_trajectory(path, 8, 16, 16)
    assert pts.shape == (2, 8, 2)
    np.testing.assert_allclose(pts[0, [0, 7]], [[1, 1], [15, 9]])
    np.testing.assert_allclose(pts[1], per_frame)
    save_trajectory(tmp_path / "back.json", pts)
    np.testing.assert_allclose(load_trajectory(tmp_path / "back.json", 8, 16, 16), pts, atol=1e-3)


def test_json_size_rescales_to_the_model_frame(tmp_path):
    path = _write(tmp_path, {"size": [128, 64], "tracks": [[[0, 64, 32], [3, 128, 64]]]})
    pts = load_trajectory(path, 4, 32, 32)
    np.testing.assert_allclose(pts[0, [0, 3]], [[16, 16], [32, 32]])


@pytest.mark.parametrize("doc, match", [
    ('{"frames": 16, "tracks": [[[0, 1, 2]', "is not valid JSON"),
    ({"frames": 12, "tracks": [[[0, 1, 2]]]}, "but the video has 16 frames"),
    ({"tracks": [[[1, 2]] * 5]}, "has 5 \\[x, y\\] points but the video has 16 frames"),
    ({"tracks": [[[0, 1, 2], [20, 3, 4]]]}, "whole numbers in 0..15"),
    ({"tracks": [[[0, 40, 2], [15, 3, 4]]]}, "outside the 32x32 frame"),
    ({"tracks": [[[3.0, -1.0]] * 16]}, "track 0 at frame 0 is at \\(3, -1\\), outside"),
    ({"tracks": [[[0, "a", 2]]]}, "numbers only"),
    ({"tracks": []}, 'non-empty "tracks" list'),
    ([1, 2], 'non-empty "tracks" list'),
    ({"tracks": [[[0, 1, 2], [0, 3, 4]]]}, "must increase strictly"),
])
def test_bad_trajectory_files_are_one_line_errors(tmp_path, doc, match):
    with pytest.raises(VidiffError, match=match) as e:
        load_trajectory(_write(tmp_path, doc), 16, 32, 32)
    assert "\n" not in str(e.value)


def test_missing_file_and_bad_drag():
    with pytest.raises(VidiffError, match="not found"):
        load_trajectory("/nonexistent/t.json", 16, 32, 32)
    with pytest.raises(VidiffError, match="X0,Y0:X1,Y1"):
        parse_drag("3,4-5,6")
    assert parse_drag("3,4:5.5,6") == ((3.0, 4.0), (5.5, 6.0))
    with pytest.raises(VidiffError, match="outside the 32x32 frame"):
        drag_trajectory((3, 4), (40, 4), 8, 32, 32)


def test_drag_moves_the_object_under_the_start_point():
    video, meta = render_shapes(1, 4, 32, seed=3)
    first = from_uint8(video)[0, :, 0]  # (3, H, W)
    centre = object_tracks(from_uint8(video))[0, 0].numpy()
    grab = centre + [1.0, -1.0]  # a point on the object, off its centre
    pts = drag_trajectory(grab, grab + [6, 3], 8, 32, 32, image=first)
    np.testing.assert_allclose(pts[0, 0], centre, atol=1e-6)
    np.testing.assert_allclose(pts[0, -1], centre + [6, 3], atol=1e-6)
    corner = (0.5, 0.5) if np.hypot(*(centre - 0.5)) > 8 else (31.5, 31.5)
    with pytest.raises(VidiffError, match="no object under the start point"):
        drag_trajectory(corner, (16, 16), 8, 32, 32, image=first)
    plain = drag_trajectory((2, 3), (10, 3), 5, 32, 32)
    np.testing.assert_allclose(plain[0, :, 0], [2, 4, 6, 8, 10])


# --------------------------------------------------------------------------------------------- object tracks

def test_object_tracks_recover_the_shapes_ground_truth():
    cfg = ShapesConfig(frames=8, size=32)
    videos, meta = render_shapes(24, cfg=cfg, seed=1)
    got = object_tracks(from_uint8(videos)).numpy()  # (N, F, 2)
    truth = trajectories([sample_params(i, 1, cfg) for i in range(24)], 8, 32)  # bounding-box centres
    for i, m in enumerate(meta):
        # the mass centroid: the box centre, R/3 lower for the upward triangle (base at the bottom)
        expect = truth[i] + ([0, m["extent"] / 6] if m["shape"] == "triangle" else [0, 0])
        assert np.abs(got[i] - expect).max() < 0.25, m["shape"]


def test_an_empty_frame_has_no_track_point():
    x = -torch.ones(1, 3, 3, 16, 16)
    x[:, :, 0, 4:8, 4:8] = 1.0
    t = object_tracks(x)[0]
    np.testing.assert_allclose(t[0].numpy(), [6, 6], atol=1e-5)
    assert torch.isnan(t[1:]).all()
    assert track_error(t[None], t[None]).item() == 0.0


# --------------------------------------------------------------------------------------------- condition

def test_trajectory_condition_channels_training_and_request():
    assert parse_condition("first_frame+trajectory") == ("first_frame", "trajectory")
    with pytest.raises(VidiffError, match="super-resolution"):
        parse_condition("tsr+trajectory")
    assert model_overrides(("trajectory",))["cond_channels"] == CHANNELS
    assert model_overrides(("first_frame", "trajectory"))["cond_channels"] == 4 + CHANNELS
    videos, _ = render_shapes(4, 8, 32, seed=2)
    x0 = from_uint8(videos)
    cond = training_cond(("first_frame", "trajectory"), x0=x0, drop_prob=0.0)
    assert cond.concat.shape == (4, 4 + CHANNELS, 8, 32, 32)
    back = decode_heatmap(cond.concat[:, 4])  # the heat-map channel decodes to the clip's own track
    assert track_error(back, object_tracks(x0)).max() < 0.05
    dropped = training_cond(("trajectory",), x0=x0, drop_prob=1.0)
    assert dropped.concat.abs().max() == 0
    enc = encode_tracks(object_tracks(x0)[:1], 32, 32)  # (CHANNELS, F, H, W)
    req = request_cond(("first_frame", "trajectory"), 2, frames=8, trajectory=enc)
    assert req.concat.shape == (2, 4 + CHANNELS, 8, 32, 32) and req.concat[:, :4].abs().max() == 0
    req = request_cond(("first_frame", "trajectory"), 2, frames=8, image=x0[0, :, 0])
    assert req.concat[:, 4:].abs().max() == 0 and req.concat[:, 3, 0].min() == 1
    assert request_cond(("trajectory",), 2, frames=8) is not None
    with pytest.raises(VidiffError, match="not trained with trajectory conditioning"):
        request_cond(("first_frame",), 2, frames=8, trajectory=enc)
    with pytest.raises(VidiffError, match="latent models cannot"):
        training_cond(("trajectory",), x0=torch.zeros(1, 4, 2, 8, 8))


# --------------------------------------------------------------------------------------------- end to end

TINY_MODEL = {"arch": "unet3d", "base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1,
              "attention_levels": [1], "head_dim": 8, "norm_groups": 8, "patch_size": 1}


@pytest.fixture(scope="module")
def trajectory_run(tmp_path_factory):
    """A tiny model trained a few steps with condition "trajectory" on 4-frame 16x16 shapes clips."""
    from vidiff.data.synth import generate_shapes
    from vidiff.train import TrainConfig, train

    root = tmp_path_factory.mktemp("traj")
    data = generate_shapes(root / "data", num=4, frames=4, size=16, fmt="npy", progress=False)
    (root / "tiny.json").write_text(json.dumps(TINY_MODEL))
    cfg = TrainConfig(data=str(data), out=str(root / "run"), model=str(root / "tiny.json"), frames=4, size=16,
                      batch=2, steps=2, warmup=1, log_every=1, save_every=0, sample_every=0, sample_steps=2,
                      num_samples=1, condition="trajectory")
    return train(cfg)


def test_train_with_trajectories_then_sample_with_trajectory_and_drag_through_the_cli(trajectory_run, tmp_path):
    from vidiff.cli import main as cli
    from vidiff.data.io import read_video

    config = json.loads((trajectory_run / "config.json").read_text())
    assert config["conditioning"]["condition"] == "trajectory"
    assert config["model"]["cond_channels"] == CHANNELS
    path = _write(tmp_path, {"frames": 4, "tracks": [[[0, 3, 3], [1, 10, 3], [3, 12, 10]]]})
    common = ["--model", str(trajectory_run), "--num", "2", "--steps", "2", "--format", "npy,mp4"]
    assert cli(["sample", *common, "--trajectory", str(path), "--out", str(tmp_path / "a"), "--name", "t"]) == 0
    videos = np.load(tmp_path / "a" / "t.npy")
    assert videos.shape == (2, 4, 16, 16, 3) and read_video(tmp_path / "a" / "t.mp4").shape[0] == 4
    assert cli(["sample", *common, "--drag", "3,3:12,10", "--out", str(tmp_path / "b"), "--name", "t"]) == 0
    # the drag without an image is the straight track from start to end: the same condition as this file
    line_path = _write(tmp_path, {"frames": 4, "interpolation": "linear", "tracks": [[[0, 3, 3], [3, 12, 10]]]},
                       "line.json")
    assert cli(["sample", *common, "--trajectory", str(line_path), "--out", str(tmp_path / "c"), "--name", "t"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "t.npy"), np.load(tmp_path / "c" / "t.npy"))
    assert not np.array_equal(np.load(tmp_path / "a" / "t.npy"), np.load(tmp_path / "c" / "t.npy"))
    # a drag on a 64x64 first frame: coordinates in its pixels, the object under the start point found
    from PIL import Image

    video, _ = render_shapes(1, 1, 64, seed=3)
    Image.fromarray(video[0, 0]).save(tmp_path / "first.png")
    cx, cy = object_tracks(from_uint8(video))[0, 0].tolist()
    drag = f"{cx + 2:.1f},{cy:.1f}:{cx + 2 + 8:.1f},{cy + 4:.1f}"
    assert cli(["sample", *common, "--drag", drag, "--image", str(tmp_path / "first.png"),
                "--out", str(tmp_path / "d"), "--name", "t"]) == 0
    assert np.load(tmp_path / "d" / "t.npy").shape == (2, 4, 16, 16, 3)


def test_cli_control_errors_are_one_line(trajectory_run, tmp_path, capsys):
    from vidiff.cli import main as cli

    common = ["sample", "--model", str(trajectory_run), "--num", "1", "--steps", "2", "--out", str(tmp_path)]
    bad = _write(tmp_path, {"frames": 9, "tracks": [[[0, 3, 3]]]})
    cases = [(["--trajectory", str(bad)], "but the video has 4 frames"),
             (["--drag", "3,3"], "X0,Y0:X1,Y1"),
             (["--drag", "3,3:4,4", "--trajectory", str(bad)], "either --trajectory or --drag"),
             (["--physics", "gravity"], "unknown --physics 'gravity'"),
             (["--physics-weight", "2"], "needs --physics smooth"),
             (["--trajectory", str(bad), "--frames", "8"], "one window of the model's length"),
             (["--trajectory", str(bad), "--image", str(bad)], "--image applies only with --drag")]
    for extra, match in cases:
        assert cli(common + extra) == 2, extra
        err = capsys.readouterr().err.strip()
        assert match in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.glob("*.mp4"))


def test_an_unconditional_model_refuses_a_trajectory_and_physics_weight_zero_is_bit_identical(tmp_path):
    from vidiff.checkpoint import save_pretrained
    from vidiff.config import config_to_dict
    from vidiff.models import build_model
    from vidiff.pipelines import DiffusionConfig, VideoFormat, VideoPipeline
    from vidiff.pipelines.control import sample_controlled

    torch.manual_seed(0)
    model = build_model(TINY_MODEL)
    save_pretrained(tmp_path / "m", model, {"model": config_to_dict(model.config),
                                            "diffusion": config_to_dict(DiffusionConfig()),
                                            "video": config_to_dict(VideoFormat(frames=4, size=16))})
    pipe = VideoPipeline.from_pretrained(tmp_path / "m")
    with pytest.raises(VidiffError, match="not trained with trajectory conditioning"):
        sample_controlled(pipe, 1, drag="1,1:5,5", steps=2)
    plain = pipe(2, steps=3, seed=4)
    assert torch.equal(sample_controlled(pipe, 2, physics="smooth", physics_weight=0.0, steps=3, seed=4), plain)
    guided = sample_controlled(pipe, 2, physics="smooth", physics_weight=100.0, steps=3, seed=4)
    assert guided.shape == plain.shape and not torch.equal(guided, plain)
