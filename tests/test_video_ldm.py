"""Video LDM through the real CLI and trainer: an image model (`--frames 1`, on videos or a folder of images),
then `--init-image IMAGE --train temporal`: the image weights stay bit-identical, only temporal tensors move,
and frozen parameters hold no optimizer state."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from vidiff.checkpoint import load_state_dict, read_config
from vidiff.cli import main
from vidiff.models.registry import build_model, load_model, save_model
from vidiff.models.temporal import select_parameters, video_ldm_from_image
from vidiff.models.vae import VAEConfig, VideoAutoencoder, save_vae
from vidiff.training import committed

TINY_MODEL = {"arch": "unet3d", "base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1,
              "attention_levels": [1], "head_dim": 8, "temporal": "attention"}
RECIPE = {"batch": 2, "lr": 2e-3, "warmup": 1, "log_every": 1, "save_every": 0, "sample_every": 0,
          "sample_steps": 2, "num_samples": 1, "size": 16}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder of 6 tiny npy videos (a moving square), a folder of PNGs, a model file and a recipe."""
    root = tmp_path_factory.mktemp("vldm")
    videos, images = root / "videos", root / "images"
    videos.mkdir()
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        v = np.zeros((8, 16, 16, 3), np.uint8)
        for f in range(8):
            x = (2 + f + i) % 12
            v[f, 5:9, x:x + 4] = [200, 40 + 30 * i, 40]
        v = np.clip(v.astype(int) + rng.integers(0, 8, v.shape), 0, 255).astype(np.uint8)
        np.save(videos / f"v{i}.npy", v)
        Image.fromarray(np.repeat(np.repeat(v[0], 2, 0), 3, 1)).save(images / f"im{i}.png")  # 32x48: resized, cropped
    (root / "model.json").write_text(json.dumps(TINY_MODEL))
    (root / "recipe.json").write_text(json.dumps(RECIPE))
    return root


def _train(files, out, *args):
    return main(["train", "--model", str(files / "model.json"), "--config", str(files / "recipe.json"),
                 "--out", str(out), *args])


@pytest.fixture(scope="module")
def image_model(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "image"
    assert _train(files, out, "--data", str(files / "videos"), "--frames", "1", "--steps", "3") == 0
    return out


def test_frames_1_trains_an_image_model(image_model):
    cfg = read_config(image_model)
    assert cfg["model"]["temporal"] == "none" and cfg["model"]["spatial_attention"] == "frame"
    assert cfg["video"]["frames"] == 1 and cfg["summary"]["steps"] == 3
    model = load_model(image_model)
    x = torch.randn(1, 3, 3, 16, 16)
    t = torch.full((1,), 0.5)
    with torch.no_grad():  # an image model: each frame's output depends on that frame alone
        y = model(x, t)
        x2 = x.clone()
        x2[:, :, 1] += 1.0
        y2 = model(x2, t)
    assert torch.equal(y[:, :, 0], y2[:, :, 0]) and torch.equal(y[:, :, 2], y2[:, :, 2])
    assert not torch.allclose(y[:, :, 1], y2[:, :, 1])


def test_frames_1_trains_on_a_folder_of_images(files, tmp_path):
    out = tmp_path / "img"
    assert _train(files, out, "--data", str(files / "images"), "--frames", "1", "--steps", "2") == 0
    assert read_config(out)["model"]["temporal"] == "none"
    assert json.loads((committed(out) / "state.json").read_text())["step"] == 2


def test_train_temporal_keeps_the_image_model_bit_identical(files, image_model, tmp_path):
    out = tmp_path / "video"
    assert _train(files, out, "--data", str(files / "videos"), "--frames", "4", "--steps", "3",
                  "--init-image", str(image_model), "--train", "temporal") == 0
    assert read_config(out)["model"]["temporal"] == "videoldm"
    image = load_state_dict(image_model / "model.safetensors")
    initial = video_ldm_from_image(image_model)
    temporal = set(select_parameters(initial, "temporal"))
    assert temporal and set(select_parameters(initial, "spatial")) == set(image)
    init_sd = initial.state_dict()
    for name, weights in {"ema": out / "model.safetensors", "raw": committed(out) / "model.safetensors"}.items():
        video = load_state_dict(weights)
        assert set(video) == set(init_sd)
        for key, tensor in image.items():  # every spatial tensor bit for bit
            assert torch.equal(video[key], tensor), (name, key)
        moved = [k for k in temporal if not torch.equal(video[k], init_sd[k])]
        assert moved, name  # the temporal layers trained
    opt = torch.load(committed(out) / "model.optimizer.pt", weights_only=True)["state"]
    assert len(opt["state"]) == len(temporal)  # no optimizer state for the frozen image model
    assert sum(len(g["params"]) for g in opt["param_groups"]) == len(temporal)


def test_train_temporal_without_temporal_layers_is_one_line(files, tmp_path, capsys):
    code = _train(files, tmp_path / "x", "--data", str(files / "videos"), "--frames", "1", "--steps", "1",
                  "--train", "temporal")
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and "no temporal layers" in line and "--init-image" in line


def test_init_image_must_match_condition_and_take_an_image_model(files, image_model, tmp_path, capsys):
    code = _train(files, tmp_path / "c", "--data", str(files / "videos"), "--frames", "4", "--steps", "1",
                  "--init-image", str(image_model), "--condition", "class")
    assert code == 2 and "condition 'none'" in capsys.readouterr().err
    video_run = tmp_path / "v"  # a video model (temporal attention) is no image model to start from
    save_model(video_run, build_model(TINY_MODEL), {"conditioning": {"condition": "none"}})
    code = _train(files, tmp_path / "d", "--data", str(files / "videos"), "--frames", "4", "--steps", "1",
                  "--init-image", str(video_run))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and "temporal='none'" in err[-1]


def test_video_ldm_in_a_latent_space(files, tmp_path):
    """The image model trained on a folder of images in an autoencoder's latent space, its video model over it:
    the latent image weights stay bit-identical."""
    torch.manual_seed(0)
    save_vae(tmp_path / "vae", VideoAutoencoder(VAEConfig(base_channels=8, norm_groups=4, mid_attention=False,
                                                          temporal_decoder="none")).eval())
    image, video = tmp_path / "image", tmp_path / "video"
    assert _train(files, image, "--data", str(files / "images"), "--latent", str(tmp_path / "vae"), "--frames", "1",
                  "--steps", "2") == 0
    assert read_config(image)["latent"]["latent_shape"] == [4, 1, 4, 4]
    assert _train(files, video, "--data", str(files / "videos"), "--latent", str(tmp_path / "vae"), "--frames", "4",
                  "--steps", "2", "--init-image", str(image), "--train", "temporal") == 0
    assert read_config(video)["latent"]["latent_shape"] == [4, 4, 4, 4]
    before, after = load_state_dict(image / "model.safetensors"), load_state_dict(video / "model.safetensors")
    assert all(torch.equal(after[k], v) for k, v in before.items())
