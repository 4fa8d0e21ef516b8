"""Shared fixtures of the pipeline tests: a tiny UNet3D pipeline (4 frames, 16x16) and its checkpoint."""
import pytest
import torch

from vidiff.checkpoint import save_pretrained
from vidiff.config import config_to_dict
from vidiff.models import build_model
from vidiff.pipelines import DiffusionConfig, VideoFormat, VideoPipeline

TINY = {"arch": "unet3d", "base_channels": 8, "channel_mults": [1, 2], "attention_levels": [1],
        "head_dim": 8, "norm_groups": 8, "patch_size": 1}


def _tiny_model():
    torch.manual_seed(0)
    model = build_model(TINY)
    with torch.no_grad():  # perturb so zero-initialised output layers do not make every frame alike
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="session")
def tiny_pipe():
    """A VideoPipeline around a tiny random UNet3D: 4-frame windows of 16x16 RGB, v-prediction."""
    return VideoPipeline(_tiny_model(), DiffusionConfig(), VideoFormat(frames=4, size=16, fps=6), name="tiny")


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, tiny_pipe):
    """The same tiny model as a checkpoint folder (what `--model` takes)."""
    folder = tmp_path_factory.mktemp("tiny_ckpt")
    save_pretrained(folder, tiny_pipe.model, {
        "model": config_to_dict(tiny_pipe.model.config),
        "diffusion": config_to_dict(tiny_pipe.diffusion),
        "video": config_to_dict(tiny_pipe.video),
        "summary": {"steps": 0},
    })
    return folder
