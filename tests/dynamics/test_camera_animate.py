"""Camera + scene motion: synthesis (`animate_with_camera`, `vidiff animate --camera`) and its inverse
(`remove_camera`, `vidiff dynamics extract --remove-camera`), checked against the camera analysis of
`vidiff.metrics.camera` and analytic videos with a known oscillation."""
import numpy as np
import pytest
import torch

from ._synth import known_field, texture, warped_video
from vidiff.cli import main
from vidiff.data import io
from vidiff.dynamics.animate import animate, photo_tensor
from vidiff.dynamics.camera_motion import (CameraMotion, animate_with_camera, camera_affines, compose_flow,
                                           invert_affines, parse_camera, remove_camera, step_affine)
from vidiff.dynamics.flow import flow_to_frames
from vidiff.dynamics.procedural import make_scene
from vidiff.dynamics.render import SplatRenderer
from vidiff.dynamics.spectral import amplitude_error, complex_to_spectral, trajectories_to_spectral
from vidiff.metrics.camera import affine_flow, decompose_motion, estimate_camera_motion
from vidiff.utils import VidiffError

H, W = 48, 64


@pytest.fixture(scope="module")
def photo():
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    return np.clip(np.round(texture(xx, yy, 0)), 0, 255).astype(np.uint8)[..., None].repeat(3, -1)


def test_parse_camera():
    assert parse_camera("pan:1,-0.5,zoom:1.01") == CameraMotion(pan=(1.0, -0.5), zoom=1.01)
    assert parse_camera(" rotate: 2 , pan:0,3") == CameraMotion(pan=(0.0, 3.0), rotate=2.0)


@pytest.mark.parametrize("text", ["", "pan:1", "pan:1,2,3", "zoom:0", "zoom:a", "tilt:1", "1,pan:1,0",
                                  "pan:1,0,pan:2,0", "rotate:nan"])
def test_bad_camera_strings(text):
    with pytest.raises(VidiffError, match="--camera"):
        parse_camera(text)


@pytest.mark.parametrize("text", ["pan:1", "zoom:0"])
def test_bad_camera_strings_are_one_error_line(text, tmp_path, capsys):
    img = np.zeros((8, 8, 3), np.uint8)
    io.write_png(tmp_path / "p.png", img)
    assert main(["animate", str(tmp_path / "p.png"), "--out", str(tmp_path / "o.npy"), "--camera", text]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--camera" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.npy").exists()


def test_affines_compose_and_invert():
    cam = CameraMotion(pan=(0.5, -0.25), zoom=1.02, rotate=3.0)
    c = camera_affines(cam, 4, H, W)
    assert np.allclose(c[0], np.eye(3)[:2]) and np.allclose(c[1], step_affine(cam, H, W))
    centre = np.array([(W - 1) / 2, (H - 1) / 2, 1.0])
    assert np.allclose(camera_affines(CameraMotion(zoom=1.02, rotate=3.0), 4, H, W)[3] @ centre, centre[:2])
    assert np.allclose(camera_affines(CameraMotion(pan=(0.5, -0.25)), 4, H, W)[3] @ centre,
                       centre[:2] + 3 * np.array([0.5, -0.25]))  # zoom and roll keep the centre; pans add up
    local = torch.randn(4, 2, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    back = compose_flow(invert_affines(c), compose_flow(c, local))  # C⁻¹(C(p + L)) − p = L
    assert torch.allclose(back, local, atol=1e-4)  # affine_flow works in float32
    assert torch.equal(compose_flow(camera_affines(CameraMotion(), 4, H, W), local.float()), local.float())


def test_pure_pan_translates_the_photo(photo):
    video = animate_with_camera(photo_tensor(photo), None, 6, parse_camera("pan:2,-1"), renderer=SplatRenderer())
    for t in range(6):  # frame t shows the photo moved by (2t, -t): photo[y, x] at (y - t, x + 2t)
        got = video[t, 8:H - 8, 8 + 2 * t:W - 8].astype(int)
        want = photo[8 + t:H - 8 + t, 8:W - 8 - 2 * t].astype(int)
        assert np.abs(got - want).max() <= 1, t


def test_still_camera_is_the_plain_animation():
    sc = make_scene(0, (32, 48), frames=16, k=4)
    image = photo_tensor(sc.image)
    motion = {"spectral_volume": sc.spectral_volume, "period": sc.period, "fps": 16.0}
    kw = dict(slowmo=1.5, magnify=1.2, renderer=SplatRenderer())
    assert np.array_equal(animate_with_camera(image, motion, 10, CameraMotion(), **kw),
                          animate(image, motion, 10, **kw))


@pytest.mark.parametrize("text", ["pan:0.7,-0.4", "zoom:1.01", "rotate:0.5", "pan:0.5,0.3,zoom:0.99,rotate:-0.4"])
def test_analysis_recovers_the_rendered_camera(photo, text):
    cam = parse_camera(text)
    video = animate_with_camera(photo_tensor(photo), None, 5, cam, renderer=SplatRenderer())
    want = step_affine(cam, H, W)
    got = estimate_camera_motion(video)                                    # (4, 2, 3) frame-to-frame affines
    assert np.abs(got[..., :2] - want[:, :2]).max() < 3e-3
    g, local = decompose_motion(video)
    m = 8
    err = np.abs(g - affine_flow(want[None], H, W))[:, m:-m, m:-m].max()   # px, interior
    assert err < 0.1, err
    assert np.abs(local[:, m:-m, m:-m]).mean() < 0.05                      # nothing moves on its own


def _oscillation_and_pan(pan, period=16, k=4):
    """An analytic clip: a local blob oscillating at f = 1 (x) and 2 (y) on a texture, plus a camera pan;
    with the blob's true spectral volume (k, 4, H, W)."""
    amp = lambda x, y: 1.5 * np.exp(-((x - 40) ** 2 + (y - 22) ** 2) / (2 * 7 ** 2))  # noqa: E731
    comps = [(0, 1, amp, lambda x, y: 0 * x), (1, 2, lambda x, y: 0.6 * amp(x, y), lambda x, y: 0 * x + 0.5)]
    truth, d = known_field(H, W, period, comps)

    def moved(t, x, y):
        dx, dy = d(t, x, y)
        return [dx + pan[0] * t, dy + pan[1] * t]

    true = torch.zeros(k, 2, H, W, dtype=torch.complex128)
    for (axis, f), c in truth.items():
        true[f, axis] = torch.from_numpy(c)
    return warped_video(H, W, period, moved), complex_to_spectral(true).float()


def test_remove_camera_recovers_the_oscillation():
    video, true = _oscillation_and_pan((0.4, 0.2))
    traj = flow_to_frames(video)
    local, cams = remove_camera(video, traj)
    assert np.abs(cams[-1, :, 2] - 15 * np.array([0.4, 0.2])).max() < 0.3   # the pan over 15 frames
    m = 12
    raw = amplitude_error(trajectories_to_spectral(torch.from_numpy(traj), k=4), true)[0]
    err, scale = amplitude_error(trajectories_to_spectral(torch.from_numpy(local), k=4)[..., m:-m, m:-m],
                                 true[..., m:-m, m:-m])
    full = amplitude_error(trajectories_to_spectral(torch.from_numpy(local), k=4), true)[0]
    assert full < 0.2 * raw, (full, raw)
    assert err < 0.6 * scale, (err, scale)  # inside the frame: much closer than "no motion" (ratio 1)


def test_cli_camera_and_remove_camera(tmp_path):
    video, _ = _oscillation_and_pan((0.4, 0.2))
    io.write_mp4(tmp_path / "v.mp4", video, fps=16)
    for flag, name in (([], "raw"), (["--remove-camera"], "still")):
        assert main(["dynamics", "extract", str(tmp_path / "v.mp4"), "--out", str(tmp_path / f"{name}.npz"),
                     "--frames", "16", "--k", "4", "--no-plot", *flag]) == 0
    raw = np.load(tmp_path / "raw.npz")["spectral_volume"]
    still = np.load(tmp_path / "still.npz")["spectral_volume"]
    assert np.abs(still[1:]).mean() < 0.3 * np.abs(raw[1:]).mean()  # the pan's ramp no longer leaks into f >= 1
    io.write_png(tmp_path / "p.png", video[0])
    out = tmp_path / "a.npy"
    assert main(["animate", str(tmp_path / "p.png"), "--out", str(out), "--spectral-volume",
                 str(tmp_path / "still.npz"), "--frames", "5", "--renderer", "splat",
                 "--camera", "pan:1,0,zoom:1.01"]) == 0
    rendered = io.read_video(out)
    assert rendered.shape == (5, H, W, 3)
    a = estimate_camera_motion(rendered)
    assert np.abs(a[..., :2] - step_affine(CameraMotion(pan=(1.0, 0.0), zoom=1.01), H, W)[:, :2]).max() < 5e-3
