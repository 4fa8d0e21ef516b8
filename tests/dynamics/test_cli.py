"""End to end: procedural video -> extract -> animate / simulate / xt, through `vidiff` in-process."""
import numpy as np
import pytest
import torch

from vidiff.cli import main
from vidiff.data import io
from vidiff.dynamics.procedural import make_scene
from vidiff.dynamics.spectral import load_spectral_volume, save_spectral_volume


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("gid")
    sc = make_scene(0, (32, 48), frames=32, k=8)
    io.write_mp4(d / "v.mp4", sc.video, fps=16)
    io.write_png(d / "photo.png", sc.image)
    save_spectral_volume(d / "true.npz", sc.spectral_volume, sc.period, 16.0)
    return d, sc


def test_extract_writes_volume_and_plot(scene_files):
    d, sc = scene_files
    assert main(["dynamics", "extract", str(d / "v.mp4"), "--out", str(d / "sv.npz"), "--frames", "32", "--k",
                 "8"]) == 0
    data = load_spectral_volume(d / "sv.npz")
    assert data["spectral_volume"].shape == (8, 4, 32, 48)
    assert data["period"] == 32 and abs(data["fps"] - 16) < 1e-6 and data["reference"].shape == (32, 48, 3)
    assert (d / "sv.png").stat().st_size > 1000


@pytest.mark.parametrize("args,n", [(["--frames", "12", "--loop"], 12), (["--frames", "7", "--slowmo", "2",
        "--magnify", "1.5"], 7)])
def test_animate_with_spectral_volume(scene_files, args, n):
    d, _ = scene_files
    if not (d / "sv.npz").exists():
        main(["dynamics", "extract", str(d / "v.mp4"), "--out", str(d / "sv.npz"), "--frames", "32", "--k", "8"])
    out = d / f"anim{n}.mp4"
    assert main(["animate", str(d / "photo.png"), "--out", str(out), "--spectral-volume", str(d / "sv.npz"),
                 *args]) == 0
    assert io.read_video(out).shape == (n, 32, 48, 3)


def test_animate_with_true_motion_reproduces_the_video(scene_files):
    d, sc = scene_files
    out = d / "true.npy"
    assert main(["animate", str(d / "photo.png"), "--out", str(out), "--spectral-volume", str(d / "true.npz"),
                 "--frames", "32"]) == 0
    rendered = io.read_video(out).astype(float)
    err = np.abs(rendered - sc.video).mean()
    still = np.abs(sc.image.astype(float)[None] - sc.video).mean()  # a frozen photo as the baseline
    assert err < 0.5 * still, (err, still)


def test_simulate_and_xt(scene_files):
    d, sc = scene_files
    out = d / "sim.mp4"
    assert main(["dynamics", "simulate", str(d / "photo.png"), "--poke", "20,10,3,0", "--poke", "30,5,0,1",
                 "--spectral-volume", str(d / "true.npz"), "--frames", "10", "--out", str(out)]) == 0
    assert io.read_video(out).shape == (10, 32, 48, 3)
    assert main(["dynamics", "xt", str(d / "v.mp4"), "--row", "12", "--out", str(d / "xt.png")]) == 0
    xt = io.read_image(d / "xt.png")
    assert xt.shape == (32, 48, 3)
    np.testing.assert_allclose(xt.astype(float), io.read_video(d / "v.mp4")[:, 12].astype(float), atol=0)


def test_clear_errors(scene_files, capsys, monkeypatch, tmp_path):
    import vidiff.dynamics.animate as gid

    d, _ = scene_files
    monkeypatch.setattr(gid, "BUNDLED_MOTION", tmp_path / "no-motion-model")  # an install without the weights
    assert main(["animate", str(d / "photo.png"), "--out", str(d / "x.mp4")]) == 2
    assert "--spectral-volume" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["dynamics", "simulate", str(d / "photo.png"), "--poke", "1,2,3", "--spectral-volume",
                 str(d / "true.npz"), "--out", str(d / "x.mp4")]) == 2
    assert "x,y,dx,dy" in capsys.readouterr().err
    assert main(["dynamics", "xt", str(d / "v.mp4"), "--row", "99", "--out", str(d / "x.png")]) == 2
    assert main(["animate", str(d / "photo.png"), "--out", str(d / "x.mp4"), "--spectral-volume",
                 str(d / "nope.npz")]) == 2
    assert not (d / "x.mp4").exists()


def test_animate_and_simulate_with_a_motion_model(scene_files, tmp_path):
    from vidiff.dynamics.motion_model import MotionModel, MotionModelConfig, save_motion_model

    d, _ = scene_files
    cfg = MotionModelConfig(k=6, size=16, period=12, mode="coordinated", vae_channels=8, base_channels=8,
                            channel_mults=(1, 2), freq_embed_dim=4, head_dim=8, norm_groups=4)
    save_motion_model(tmp_path / "mm", MotionModel(cfg))
    out = tmp_path / "a.mp4"
    assert main(["animate", str(d / "photo.png"), "--out", str(out), "--motion-model", str(tmp_path / "mm"),
                 "--frames", "5", "--steps", "2", "--loop-guidance", "1.0"]) == 0
    assert io.read_video(out).shape == (5, 32, 48, 3)
    assert main(["dynamics", "simulate", str(d / "photo.png"), "--poke", "3,4,1,1", "--motion-model",
                 str(tmp_path / "mm"), "--frames", "4", "--out", str(tmp_path / "s.mp4")]) == 0
    assert io.read_video(tmp_path / "s.mp4").shape == (4, 32, 48, 3)


def test_animate_out_of_the_box_with_the_bundled_motion_model(scene_files, tmp_path):
    d, _ = scene_files
    out = tmp_path / "a.gif"
    assert main(["animate", str(d / "photo.png"), "--out", str(out), "--frames", "6", "--steps", "2"]) == 0
    video = io.read_video(out)
    assert video.shape == (6, 32, 48, 3)


def test_the_bundled_learned_renderer_is_the_default_and_beats_the_splat(scene_files, tmp_path, capsys):
    """scripts/train_renderer.py's renderer (shipped in weights/renderer) renders a held-out procedural scene
    from its true motion closer to the true frames than the non-learned softmax splat."""
    from vidiff.dynamics.animate import get_renderer
    from vidiff.dynamics.render import ImageRenderer, SplatRenderer
    from vidiff.dynamics.spectral import motion_texture
    from vidiff.pipelines import bundled_models

    assert isinstance(get_renderer(None), ImageRenderer) and isinstance(get_renderer("splat"), SplatRenderer)
    assert "renderer" not in bundled_models()  # not a video model for `vidiff sample`
    learned, splat = get_renderer(None), SplatRenderer()
    sc = make_scene(1003, (64, 64), frames=60, k=16)  # a seed the renderer was not trained on
    img = torch.from_numpy(sc.image).permute(2, 0, 1)[None].float() / 127.5 - 1
    err = {"learned": [], "splat": []}
    for t in (11, 29, 47):
        flow = motion_texture(sc.spectral_volume, float(t), 60)[None]
        truth = torch.from_numpy(sc.video[t]).permute(2, 0, 1)[None].float() / 127.5 - 1
        with torch.no_grad():
            for name, r in (("learned", learned), ("splat", splat)):
                err[name].append(float((r(img, flow).clamp(-1, 1) - truth).pow(2).mean()))
    assert np.mean(err["learned"]) < 0.5 * np.mean(err["splat"]), err  # ≥ 3 dB better
    d, _ = scene_files
    out = tmp_path / "s.mp4"
    assert main(["animate", str(d / "photo.png"), "--out", str(out), "--spectral-volume", str(d / "true.npz"),
                 "--frames", "4", "--renderer", "splat"]) == 0
    assert io.read_video(out).shape == (4, 32, 48, 3)
    assert main(["animate", str(d / "photo.png"), "--out", str(tmp_path / "x.mp4"), "--spectral-volume",
                 str(d / "true.npz"), "--renderer", str(tmp_path / "nowhere")]) == 2
    err_line = capsys.readouterr().err.strip()
    assert "no renderer checkpoint there" in err_line and "\n" not in err_line
    assert not (tmp_path / "x.mp4").exists()
