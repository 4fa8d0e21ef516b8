"""Latent video diffusion end to end from the command line, on tiny shapes videos (5 frames of 32x32):
`vae train` (with the discriminator on) -> `vae recon` / `vae encode` / `vae decode` -> `train` on the cache
and with `--latent` -> `sample` decodes to pixels; exact resume of the autoencoder run; bad inputs."""
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vidiff.cli import main
from vidiff.data.io import read_video, to_uint8, write_png
from vidiff.models.autoencoders import load_autoencoder, vae_fingerprint

from ._tiny import TINY as TINY_UNET
from ._tiny import run

VAE_FLAGS = ["--frames", "5", "--size", "32", "--crop", "16", "--base-channels", "8", "--batch", "2",
             "--disc-start", "1", "--sample-every", "2", "--save-every", "0"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Shapes videos, a 3-step autoencoder run and its latent cache."""
    root = tmp_path_factory.mktemp("latent")
    assert main(["data", "synth", "shapes", str(root / "shapes"), "--num", "3", "--frames", "5", "--size", "32"]) == 0
    assert main(["vae", "train", "--data", str(root / "shapes"), "--out", str(root / "vae"), "--steps", "3",
                 *VAE_FLAGS]) == 0
    assert main(["vae", "encode", str(root / "shapes"), "--vae", str(root / "vae"), "--out", str(root / "cache"),
                 "--frames", "5", "--size", "32"]) == 0
    (root / "tiny.json").write_text(json.dumps(TINY_UNET))
    return root


def test_vae_train_writes_a_loadable_autoencoder_with_its_scaling_factor(world):
    cfg = json.loads((world / "vae" / "config.json").read_text())
    ae = load_autoencoder(world / "vae")
    assert ae.spatial_factor == 4 and ae.latent_channels == 4
    assert ae.scaling_factor == cfg["vae"]["scaling_factor"] != 1.0  # measured at the end of training
    # previews: input | reconstruction side by side; the discriminator trained after its warm-up step
    preview = read_video(world / "vae" / "samples" / "step_0000003.mp4")
    assert preview.shape == (5, 2 * 32 * 8, 2 * 32 * 8, 3)  # 2 clips stacked, each input | reconstruction, ×8
    state = json.loads(next((world / "vae" / "train_state").glob("step_*/state.json")).read_text())
    assert {"disc.safetensors", "vae.safetensors", "disc.optimizer.pt"} <= set(state["files"])
    assert [v is not None for v in state["other_losses"]["disc"]] == [False, True, True]


def test_vae_train_resumes_exactly(world, tmp_path):
    args = ["vae", "train", "--data", str(world / "shapes"), *VAE_FLAGS, "--sample-every", "0"]
    assert main([*args, "--out", str(tmp_path / "a"), "--steps", "2"]) == 0
    assert main([*args, "--out", str(tmp_path / "a"), "--steps", "3", "--resume"]) == 0
    assert vae_fingerprint(tmp_path / "a") == vae_fingerprint(world / "vae")


def test_recon_encode_decode(world, capsys, tmp_path):
    code, out, _ = run(capsys, "vae", "recon", world / "shapes" / "shape_00000.mp4", "--vae", world / "vae",
                       "--out", tmp_path / "recon.mp4")
    assert code == 0 and "PSNR" in out and "SSIM" in out
    assert read_video(tmp_path / "recon.mp4").shape == (5, 32, 64, 3)  # input | reconstruction
    index = json.loads((world / "cache" / "index.json").read_text())
    assert index["latent_shape"] == [4, 5, 8,
                                     8] and index["autoencoder"]["fingerprint"] == vae_fingerprint(world / "vae")
    code, out, _ = run(capsys, "vae", "decode", world / "cache", "--vae", world / "vae", "--out", tmp_path / "dec",
                       "--num", "2", "--decode-chunk", "2", "--format", "mp4,npy")
    assert code == 0 and read_video(tmp_path / "dec" / "decoded" / "001.mp4").shape == (5, 32, 32, 3)
    # what is decoded is the cache's stored posterior mean, decoded in one piece: the clip's encoding
    ae = load_autoencoder(world / "vae")
    with safe_open(str(world / "cache" / "shard-00000.safetensors"), "pt") as f:
        mean = f.get_tensor("mean")[:2]
    with torch.no_grad():
        want = to_uint8(ae.decode(mean).clamp(-1, 1))
    got = np.load(tmp_path / "dec" / "decoded.npy")
    assert got.shape == (2, 5, 32, 32, 3) and np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_train_on_the_cache_and_on_the_fly_then_sample_pixels(world, capsys, tmp_path):
    for name, data, condition in (
            ("cached", ["--data", world / "cache"], "class"),
            ("fly", ["--data", world / "shapes", "--latent", world / "vae", "--frames", "5", "--size", "32"],
             "first_frame")):
        code, _, err = run(capsys, "train", *data, "--model", world / "tiny.json", "--steps", "3", "--batch", "2",
                           "--out", tmp_path / name, "--sample-every", "0", "--condition", condition)
        assert code == 0, err
        cfg = json.loads((tmp_path / name / "config.json").read_text())
        latent = cfg["latent"]
        assert latent["fingerprint"] == vae_fingerprint(world / "vae") and latent["latent_shape"] == [4, 5, 8, 8]
        assert cfg["model"]["in_channels"] == cfg["model"]["out_channels"] == 4
        assert cfg["video"]["size"] == 32 and cfg["video"]["frames"] == 5
        assert (tmp_path / name / "samples" / "step_0000003.gif").is_file()  # the preview is decoded pixels
    code, out, err = run(capsys, "sample", "--model", tmp_path / "cached", "--num", "1", "--steps", "2",
                         "--class", "1", "--guidance", "2", "--out", tmp_path / "out", "--scale", "1",
                         "--format", "mp4", "--decode-chunk", "2")
    assert code == 0, err
    assert read_video(tmp_path / "out" / "samples" / "000.mp4").shape == (5, 32, 32, 3)
    # a first-frame model: the image is encoded to its latent
    write_png(tmp_path / "first.png", read_video(world / "shapes" / "shape_00000.mp4")[0])
    code, out, err = run(capsys, "sample", "--model", tmp_path / "fly", "--num", "1", "--steps", "2", "--image",
                         tmp_path / "first.png", "--out", tmp_path / "out", "--name", "ff", "--format", "npy")
    assert code == 0, err
    assert np.load(tmp_path / "out" / "ff.npy").shape == (1, 5, 32, 32, 3)


def test_bad_inputs_are_one_line(world, capsys, tmp_path):
    code, _, err = run(capsys, "vae", "encode", world / "shapes", "--vae", world / "vae", "--out", tmp_path / "c",
                       "--frames", "5", "--size", "30")
    assert code == 2 and "not divisible by the autoencoder's spatial factor 4" in err and "28 or 32" in err
    code, _, err = run(capsys, "vae", "train", "--data", world / "shapes", "--out", tmp_path / "v", "--steps", "1",
                       "--size", "36", "--spatial-factor", "8")
    assert code == 2 and "spatial factor 8" in err and "32 or 40" in err
    # NaN latents in a shard: refused, naming the shard
    cache = tmp_path / "nan_cache"
    assert main(["vae", "encode", str(world / "shapes"), "--vae", str(world / "vae"), "--out", str(cache),
                 "--frames", "5", "--size", "32"]) == 0
    shard = cache / "shard-00000.safetensors"
    with safe_open(str(shard), "pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    tensors["mean"][1, 0, 0, 0, 0] = float("nan")
    save_file(tensors, str(shard), metadata=meta)
    capsys.readouterr()
    code, _, err = run(capsys, "train", "--data", cache, "--model", world / "tiny.json", "--steps", "2", "--batch", "3",
                       "--out", tmp_path / "nan_run", "--sample-every", "0")
    assert code == 2 and err.startswith("error: ") and "shard-00000.safetensors holds NaN" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "nan_run").exists()  # refused before training


def test_video_ldm_two_stages_per_frame_then_temporal_decoder(world, capsys, tmp_path):
    """A per-frame autoencoder initialises a conv3d one whose output it keeps; `--train temporal` then changes only
    the decoder's temporal layers (Video LDM §3.1.1)."""
    flags = [*VAE_FLAGS, "--sample-every", "0", "--disc-weight", "0"]
    assert main(["vae", "train", "--data", str(world / "shapes"), "--out", str(tmp_path / "frame"), "--steps", "2",
                 "--temporal", "none", *flags]) == 0
    code, _, err = run(capsys, "vae", "train", "--data", world / "shapes", "--out", tmp_path / "video", "--steps", "2",
                       "--temporal", "conv3d", "--init", tmp_path / "frame", "--train", "temporal", *flags)
    assert code == 0, err
    frame, video = load_autoencoder(tmp_path / "frame"), load_autoencoder(tmp_path / "video")
    own, theirs = video.state_dict(), frame.state_dict()
    assert all(torch.equal(own[k], v) for k, v in theirs.items())  # everything but the temporal layers is frozen
    temporal = [k for k in own if ".temporal." in k and k not in theirs]
    assert temporal and any(own[k].abs().sum() > 0 for k in temporal if k.endswith("conv2.weight"))
    from vidiff.training.vae_task import VAETrainConfig, check_vae_config
    fresh = check_vae_config(VAETrainConfig(data="x", steps=1, frames=5, size=32, base_channels=8,
                                            temporal="conv3d", init=str(tmp_path / "frame")))
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        z = frame.encode(x).mode()
        assert torch.allclose(fresh.eval().decode(z), frame.decode(z), atol=1e-5)  # identity-initialised
    code, _, err = run(capsys, "vae", "train", "--data", world / "shapes", "--out", tmp_path / "bad", "--steps", "1",
                       "--temporal", "conv3d", "--init", tmp_path / "frame", *flags, "--base-channels", "16")
    assert code == 2 and "does not fit this recipe" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "vae", "train", "--data", world / "shapes", "--out", tmp_path / "bad", "--steps", "1",
                       "--temporal", "conv3d", "--init", tmp_path / "frame", *flags, "--norm-groups", "2")
    assert code == 2 and "pass --norm-groups" in err and len(err.strip().splitlines()) == 1
