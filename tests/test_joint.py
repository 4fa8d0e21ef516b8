"""Joint image–video training (VDM): image stacks mixed into video batches, flagged `is_image` down to the
backbone, whose frames then stay independent; a short run through the CLI."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from vidiff.cli import main
from vidiff.conditioning.cond import Cond
from vidiff.data.dataset import VideoDataset
from vidiff.models import build_model
from vidiff.training import StepBatches, committed
from vidiff.training.diffusion_task import DiffusionTask, TrainConfig
from vidiff.training.joint import ImageFrames, JointDataset, joint_dataset, with_is_image
from vidiff.diffusion.config import DiffusionConfig
from vidiff.utils import VidiffError

TINY_MODEL = {"arch": "unet3d", "base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1,
              "attention_levels": [1], "head_dim": 8, "temporal": "attention"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """6 npy videos (dark) and 5 PNG images (bright, each one flat colour) of 16x16."""
    root = tmp_path_factory.mktemp("joint")
    videos, images = root / "videos", root / "images"
    videos.mkdir()
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        np.save(videos / f"v{i}.npy", rng.integers(0, 60, (6, 16, 16, 3)).astype(np.uint8))
    for i in range(5):
        Image.fromarray(np.full((16, 16, 3), 150 + 20 * i, np.uint8)).save(images / f"im{i}.png")
    (root / "model.json").write_text(json.dumps(TINY_MODEL))
    (root / "recipe.json").write_text(json.dumps({"sample_steps": 2, "num_samples": 1, "warmup": 1}))
    return root


def test_joint_dataset_mixes_flagged_image_stacks_at_the_ratio(files):
    videos = VideoDataset(files / "videos", frames=4, size=16, progress=False)
    joint = joint_dataset(videos, files / "images", 0.25, frames=4, size=16, seed=3)
    flags, per_frame = [], []
    for epoch in range(40):
        joint.set_epoch(epoch)
        for i in range(len(joint)):
            item = joint[i]
            flags.append(item["is_image"])
            if item["is_image"]:  # F images, each flat and bright: independent pictures, not a clip
                x = item["video"]  # (C, F, H, W)
                assert x.shape == (3, 4, 16, 16) and x.min() > 0
                per_frame.append(x.flatten(2).std(-1).max().item())
            else:
                assert item["video"].max() < 0  # a dark video clip
    assert 0.17 < np.mean(flags) < 0.33 and max(per_frame) == 0
    joint.set_epoch(7)
    again = [joint[i]["is_image"] for i in range(len(joint))]
    joint.set_epoch(7)
    assert again == [joint[i]["is_image"] for i in range(len(joint))]  # a pure function of (seed, epoch, index)
    batch = StepBatches(joint, 8, seed=0).at(5)
    assert batch["is_image"].dtype == torch.bool and batch["is_image"].shape == (8,)


def test_bad_joint_options_are_one_line(files):
    videos = VideoDataset(files / "videos", frames=4, size=16, progress=False)
    with pytest.raises(VidiffError, match="--images"):
        joint_dataset(videos, None, 0.25, frames=4, size=16)
    with pytest.raises(VidiffError, match="--image-ratio"):
        joint_dataset(videos, files / "images", 0.0, frames=4, size=16)
    with pytest.raises(VidiffError, match=r"in \(0, 1\]"):
        JointDataset(videos, ImageFrames(files / "images", 4, 16), 1.5)
    with pytest.raises(VidiffError, match="no images found"):
        ImageFrames(files / "videos", 4, 16)


class _Spy(torch.nn.Module):
    """A backbone that records the Cond it is given."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, x, t, cond=None):
        self.seen.append(cond)
        return x * self.w


class _Trainer:
    device = torch.device("cpu")

    def __init__(self, model):
        self.modules = {"model": model}


def test_the_loss_path_sets_is_image():
    cfg = TrainConfig(data="-", frames=4, size=8, steps=1)
    task = DiffusionTask(cfg, DiffusionConfig(), (), dataset=None, full_config={})
    spy = _Spy()
    flags = torch.tensor([True, False, False, True])
    batch = {"video": torch.rand(4, 3, 4, 8, 8) * 2 - 1, "class_id": torch.full((4,), -1),
             "caption": [""] * 4, "is_image": flags}
    loss = task.losses(_Trainer(spy), batch, 0, torch.Generator().manual_seed(0))["model"]
    assert torch.isfinite(loss)
    assert torch.equal(spy.seen[-1].is_image, flags)
    del batch["is_image"]  # plain video training: no flags
    task.losses(_Trainer(spy), batch, 0, torch.Generator().manual_seed(0))
    assert spy.seen[-1] is None or spy.seen[-1].is_image is None
    assert with_is_image(Cond(), {"is_image": [True]}).is_image.tolist() == [True]


def test_is_image_samples_have_independent_frames():
    torch.manual_seed(0)
    model = build_model(TINY_MODEL).eval()
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised output layers would hide any mixing
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 3, 4, 16, 16)
    t = torch.full((2,), 0.5)
    cond = with_is_image(None, {"is_image": torch.tensor([True, False])})
    with torch.no_grad():
        y = model(x, t, cond)
        x2 = x.clone()
        x2[:, :, 2] += 1.0  # perturb frame 2 of both samples
        y2 = model(x2, t, cond)
    others = [0, 1, 3]
    assert torch.equal(y[0][:, others], y2[0][:, others])  # image stack: the other frames are untouched
    assert not torch.allclose(y[1][:, others], y2[1][:, others])  # video: frames mix


def test_a_joint_run_of_a_few_steps(files, tmp_path):
    out = tmp_path / "run"
    code = main(["train", "--data", str(files / "videos"), "--images", str(files / "images"), "--image-ratio",
                 "0.5", "--model", str(files / "model.json"), "--frames", "4", "--size", "16", "--batch", "2",
                 "--steps", "3", "--sample-every", "0", "--save-every", "0", "--out", str(out),
                 "--config", str(files / "recipe.json")])
    assert code == 0
    losses = json.loads((committed(out) / "state.json").read_text())["losses"]
    assert len(losses) == 3 and all(np.isfinite(losses))
    cfg = json.loads((out / "config.json").read_text())["train"]
    assert cfg["images"] == str(files / "images") and cfg["image_ratio"] == 0.5


def test_images_with_an_autoencoder_that_compresses_time_are_refused(files, tmp_path, capsys):
    from vidiff.models.vae import VAEConfig, VideoAutoencoder, save_vae

    save_vae(tmp_path / "vae", VideoAutoencoder(VAEConfig(base_channels=8, norm_groups=4, causal=True,
                                                          temporal_compression=4, mid_attention=False)))
    code = main(["train", "--data", str(files / "videos"), "--images", str(files / "images"), "--image-ratio", "0.5",
                 "--latent", str(tmp_path / "vae"), "--model", str(files / "model.json"), "--frames", "5",
                 "--size", "16", "--steps", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: --images:") and "compresses time" in err[-1]
