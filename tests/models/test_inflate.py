"""Inflation: at initialisation the video model equals the image model applied frame by frame."""
import dataclasses
import json

import pytest
import torch

from vidiff.models import UNet3D, UNet3DConfig
from vidiff.models.inflate import inflate, inflate_from_diffusers
from vidiff.utils import VidiffError


@pytest.fixture
def diffusers_folder(tmp_path):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=8)
    with torch.no_grad():  # diffusers zero-inits nothing here, but make every weight non-trivial anyway
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    unet.save_pretrained(tmp_path / "unet2d")
    return unet.eval(), tmp_path / "unet2d"


@pytest.mark.parametrize("temporal", ["attention", "conv", "full3d", "videoldm", "none"])
def test_inflated_diffusers_unet_equals_per_frame(diffusers_folder, temporal):
    unet2d, folder = diffusers_folder
    video = inflate_from_diffusers(folder, temporal=temporal).eval()
    assert video.config.num_res_blocks == 1 and video.config.attention_levels == (1,)
    x, t = torch.randn(2, 3, 4, 8, 8), torch.tensor([0.3, 0.8])
    with torch.no_grad():
        y = video(x, t)
        ref = torch.stack([unet2d(x[:, :, i], 1000 * t).sample for i in range(4)], dim=2)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=0)


def test_inflate_own_image_model_causal_full3d():
    cfg = UNet3DConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), head_dim=8, norm_groups=4)
    image = UNet3D(dataclasses.replace(cfg, temporal="none")).eval()
    video = inflate(image.state_dict(), dataclasses.replace(cfg, temporal="full3d", causal=True)).eval()
    x, t = torch.randn(1, 3, 3, 8, 8), torch.rand(1)
    with torch.no_grad():
        torch.testing.assert_close(video(x, t), image(x, t), atol=1e-5, rtol=0)
    with pytest.raises(VidiffError, match="no weight for"):
        inflate({}, cfg)


def test_unsupported_diffusers_config(diffusers_folder):
    _, folder = diffusers_folder
    cfg = json.loads((folder / "config.json").read_text())
    cfg["down_block_types"] = ["DownBlock2D", "SkipDownBlock2D"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(VidiffError, match="unsupported UNet2DModel block types"):
        inflate_from_diffusers(folder)
