"""Every sampling feature on a latent model. Oracle: with the identity autoencoder a latent pipeline is the pixel
pipeline, so extension, interpolation (both methods, with autoguidance) and distillation give bit-identical
results; then the commands run end to end on a tiny latent checkpoint trained with `vidiff train --latent`
(CFG + autoguidance, long videos by windows, extend, interpolate, distill whose students find the same VAE)."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vidiff.checkpoint import save_pretrained
from vidiff.cli import main
from vidiff.config import config_to_dict
from vidiff.data.io import from_uint8, read_video
from vidiff.models import build_model
from vidiff.models.autoencoders import IdentityAutoencoder, vae_fingerprint
from vidiff.models.vae import VAEConfig, VideoAutoencoder, save_vae
from vidiff.pipelines import DiffusionConfig, LatentVideoPipeline, VideoFormat, VideoPipeline, extend, interpolate
from vidiff.utils import VidiffError

from ._tiny import TINY, run
from ._tiny import perturbed_model as _model


@pytest.fixture(scope="module")
def pixel_pipe():
    """A tiny unconditional pixel pipeline (4 frames of 16x16) with a perturbed guide model."""
    return VideoPipeline(_model(0), DiffusionConfig(), VideoFormat(frames=4, size=16), {"autoguidance": {"w": 1.0}},
                         name="tiny", guide=_model(5))


def _video(frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, 16, 16, 3), dtype=np.uint8)


@pytest.mark.parametrize("method", ["reconstruction", "replacement"])
def test_identity_autoencoder_extends_and_interpolates_like_the_pixel_pipeline(pixel_pipe, method):
    latent = LatentVideoPipeline.from_pixel_pipeline(pixel_pipe, IdentityAutoencoder())
    kw = dict(steps=2, seed=3, method=method, autoguidance=0.5)
    a = extend(pixel_pipe, _video(3), 7, context=2, **kw)
    b = extend(latent, _video(3), 7, context=2, **kw)
    assert a.shape == (3, 7, 16, 16) and torch.equal(a, b)
    a = interpolate(pixel_pipe, _video(4, 1)[None], 2, **kw)  # a batch of one: batch dimension kept
    b = interpolate(latent, _video(4, 1)[None], 2, **kw)
    assert a.shape == (1, 3, 7, 16, 16) and torch.equal(a, b)


def test_identity_autoencoder_distils_like_the_pixel_pipeline(pixel_pipe, tmp_path, monkeypatch):
    import vidiff.distill as distill_module
    from vidiff.data.synth import generate_shapes

    generate_shapes(tmp_path / "shapes", num=3, frames=4, size=16, seed=0, progress=False)
    cfg = {"model": config_to_dict(pixel_pipe.model.config), "diffusion": config_to_dict(DiffusionConfig()),
           "video": config_to_dict(VideoFormat(frames=4, size=16))}
    teacher = save_pretrained(tmp_path / "teacher", pixel_pipe.model, cfg)
    kw = dict(data=str(tmp_path / "shapes"), start_steps=4, rounds=1, steps_per_round=2, batch=2, cache=False,
              progress=False)
    pixel = distill_module.distill(str(teacher), str(tmp_path / "pixel"), **kw)[0]
    as_identity = lambda folder: LatentVideoPipeline.from_pixel_pipeline(  # noqa: E731
        VideoPipeline.from_pretrained(folder), IdentityAutoencoder())
    monkeypatch.setattr(distill_module, "load_pipeline", as_identity)
    latent = distill_module.distill(str(teacher), str(tmp_path / "latent"), **kw)[0]
    a, b = load_file(str(pixel / "model.safetensors")), load_file(str(latent / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], v) for k, v in load_file(str(teacher / "model.safetensors")).items())


# --- the commands on a tiny latent checkpoint ---------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Shapes videos (5 frames of 32x32), an autoencoder with live temporal layers, a class-conditional latent
    model trained on it for 2 steps (`vidiff train --latent`) and exported with a 1-step snapshot as its guide."""
    root = tmp_path_factory.mktemp("latent_features")
    assert main(["data", "synth", "shapes", str(root / "shapes"), "--num", "3", "--frames", "5", "--size", "32"]) == 0
    torch.manual_seed(0)
    ae = VideoAutoencoder(VAEConfig(base_channels=8, norm_groups=4, spatial_factor=4, mid_attention=False))
    with torch.no_grad():
        for p in ae.temporal_parameters():
            p.add_(0.05 * torch.randn(p.shape))
    save_vae(root / "vae", ae)
    (root / "tiny.json").write_text(json.dumps(TINY))
    assert main(["train", "--data", str(root / "shapes"), "--latent", str(root / "vae"), "--frames", "4",
                 "--size", "32", "--model", str(root / "tiny.json"), "--steps", "2", "--batch", "2",
                 "--condition", "class", "--snapshot-steps", "1", "--sample-every", "0",
                 "--out", str(root / "run")]) == 0
    assert main(["export", str(root / "run"), str(root / "model"), "--guide",
                 str(root / "run" / "snapshots" / "step_0000001")]) == 0
    return root


def test_sample_with_cfg_autoguidance_and_long_windows(world, capsys, tmp_path):
    outs = {}
    for name, extra in (("plain", ["--autoguidance", "0"]), ("guided", ["--guidance", "2", "--autoguidance", "1.5"]),
                        ("long", ["--frames", "10", "--window", "4", "--overlap", "2", "--guidance", "2"])):
        code, _, err = run(capsys, "sample", "--model", world / "model", "--num", "1", "--steps", "2", "--class", "1",
                           "--out", tmp_path, "--name", name, "--format", "npy", *extra)
        assert code == 0, err
        outs[name] = np.load(tmp_path / f"{name}.npy")
    assert outs["plain"].shape == outs["guided"].shape == (1, 4, 32, 32, 3)
    assert not np.array_equal(outs["plain"], outs["guided"])  # the guidance changed the latents
    assert outs["long"].shape == (1, 10, 32, 32, 3)


def test_extend_and_interpolate_a_pixel_video(world, capsys, tmp_path):
    src = world / "shapes" / "shape_00000.mp4"
    given = read_video(src)  # (5, 32, 32, 3)
    code, out, err = run(capsys, "extend", src, "--frames", "9", "--context", "2", "--model", world / "model",
                         "--steps", "2", "--autoguidance", "1", "--out", tmp_path, "--name", "ext", "--format", "npy")
    assert code == 0, err
    y = np.load(tmp_path / "ext.npy")
    assert y.shape == (9, 32, 32, 3) and np.array_equal(y[:5], given)  # the given frames come first, as given
    code, out, err = run(capsys, "interpolate", src, "--factor", "2", "--model", world / "model", "--steps", "2",
                         "--out", tmp_path, "--name", "int", "--format", "npy")
    assert code == 0, err
    y = np.load(tmp_path / "int.npy")
    assert y.shape == (9, 32, 32, 3) and np.array_equal(y[::2], given)


def test_distilled_students_record_and_find_the_same_autoencoder(world, capsys, tmp_path):
    code, _, err = run(capsys, "distill", world / "model", "--data", world / "shapes", "--out", tmp_path / "d",
                       "--rounds", "1", "--start-steps", "4", "--steps-per-round", "2", "--batch", "2")
    assert code == 0, err
    teacher = json.loads((world / "model" / "config.json").read_text())["latent"]
    student = json.loads((tmp_path / "d" / "steps-2" / "config.json").read_text())["latent"]
    assert student["fingerprint"] == teacher["fingerprint"] == vae_fingerprint(world / "vae")
    code, _, err = run(capsys, "sample", "--model", tmp_path / "d" / "steps-2", "--num", "1", "--steps", "2",
                       "--class", "0", "--out", tmp_path, "--name", "s", "--format", "npy")
    assert code == 0, err
    assert np.load(tmp_path / "s.npy").shape == (1, 4, 32, 32, 3)


def test_a_time_compressing_autoencoder_extends_but_cannot_interpolate():
    causal = VideoAutoencoder(VAEConfig(base_channels=8, norm_groups=4, causal=True, temporal_compression=4,
                                        mid_attention=False))
    torch.manual_seed(0)
    model = build_model({**TINY, "in_channels": 4, "out_channels": 4}).eval()
    pipe = LatentVideoPipeline(model, DiffusionConfig(), VideoFormat(frames=9, size=16), causal)
    y = extend(pipe, _video(5), 12, steps=1)  # latents 2 -> 4 (context 1 of a 3-latent window), decoded, cut to 12
    assert y.shape == (3, 12, 16, 16) and torch.equal(y[:, :5], from_uint8(_video(5)))  # the given frames first
    with pytest.raises(VidiffError, match="compresses time 4x"):
        interpolate(pipe, _video(3), 2, steps=1)
    with pytest.raises(VidiffError, match="cannot extend the video: 4 frames do not fit the causal autoencoder"):
        extend(pipe, _video(4), 9, steps=1)
