"""build_model / presets / save_model + load_model round trip."""
import dataclasses

import pytest
import torch

from vidiff.conditioning import Cond
from vidiff.config import config_to_dict
from vidiff.models import (DiTConfig, UNet3DConfig, build_model, load_model, model_config_from_dict,
                           save_model)
from vidiff.models.layers import count_params
from vidiff.models.presets import PRESETS, get_preset
from vidiff.utils import VidiffError

TINY_UNET = UNet3DConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), head_dim=8, norm_groups=4,
                         num_classes=2, text_dim=4, cond_channels=1)
TINY_DIT = DiTConfig(hidden_size=16, depth=2, heads=2, num_classes=2, text_dim=4, cond_channels=1)


def test_presets_registry():
    assert {"unet-tiny", "unet-s", "dit-tiny", "dit-s/2"} <= set(PRESETS)
    with pytest.raises(VidiffError, match="known presets: .*unet-tiny"):
        get_preset("unet-huge")
    with torch.device("meta"):
        n = count_params(build_model("unet-tiny"))
    assert 1e6 <= n <= 4e6
    # conditional variants are built from the preset with dataclasses.replace
    cfg = dataclasses.replace(get_preset("unet-tiny"), num_classes=10, text_dim=384, cond_channels=3)
    with torch.device("meta"):
        model = build_model(cfg)
        y = model(torch.randn(2, 3, 4, 8, 8), torch.rand(2), Cond(class_ids=torch.tensor([1, 2])))
    assert y.shape == (2, 3, 4, 8, 8)


@pytest.mark.parametrize("cfg", [TINY_UNET, TINY_DIT], ids=["unet", "dit"])
def test_config_dict_round_trip(cfg):
    d = config_to_dict(cfg)
    assert d["arch"] in ("unet3d", "dit")
    assert model_config_from_dict(d) == cfg
    assert build_model(d).config == cfg
    with pytest.raises(VidiffError, match="unknown config key"):
        model_config_from_dict({**d, "bogus": 1})
    with pytest.raises(VidiffError, match="unknown model arch"):
        model_config_from_dict({**d, "arch": "resnet"})


@pytest.mark.parametrize("cfg", [TINY_UNET, TINY_DIT], ids=["unet", "dit"])
def test_save_load_round_trip_exact(cfg, tmp_path, perturb):
    model = perturb(build_model(cfg), scale=0.05).eval()
    save_model(tmp_path / "ckpt", model, extra_config={"diffusion": {"schedule": "cosine"}})
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.config == cfg and not loaded.training
    x, t = torch.randn(2, 3, 4, 8, 8), torch.rand(2)
    cond = Cond(class_ids=torch.tensor([0, 1]), text=torch.randn(2, 3, 4), concat=torch.randn(2, 1, 4, 8, 8))
    with torch.no_grad():
        assert torch.equal(model(x, t, cond), loaded(x, t, cond))
    import json
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert saved["diffusion"] == {"schedule": "cosine"} and saved["model"] == config_to_dict(cfg)


def test_load_errors(tmp_path):
    with pytest.raises(VidiffError, match="config.json is missing"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text('{"data": {}}')
    with pytest.raises(VidiffError, match="no 'model' section"):
        load_model(tmp_path)


def test_bundled_checkpoints_match_the_backbones_keys_and_shapes():
    """Every shipped video model (and its guide) has exactly the state-dict keys and shapes its config builds."""
    import json

    from vidiff.bundled import available
    from vidiff.checkpoint import WEIGHTS_NAME, load_state_dict

    folders = [f for folder in available("model").values() for f in (folder, folder / "guide")
               if (f / WEIGHTS_NAME).is_file()]
    assert len(folders) >= 3  # the demo model, its guide, ...
    for folder in folders:
        with torch.device("meta"):
            model = build_model(json.loads((folder / "config.json").read_text())["model"])
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert {k: tuple(v.shape) for k, v in load_state_dict(folder / WEIGHTS_NAME).items()} == expected, folder
