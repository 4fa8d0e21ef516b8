"""vidiff.models: video backbones behind one interface, `forward(x, t, cond=None) -> Tensor`.

x (B, C, F, H, W), t (B,) continuous time in [0, 1], cond a `vidiff.conditioning.Cond` or None.
"""
from __future__ import annotations

from .backbone import Backbone
from .dit import DiT, DiTConfig
from .registry import ARCHS, build_model, load_model, model_config_from_dict, save_model
from .temporal import VideoLDM, select_parameters, set_trainable, video_ldm_from_image
from .unet3d import UNet3D, UNet3DConfig

__all__ = ["ARCHS", "Backbone", "DiT", "DiTConfig", "UNet3D", "UNet3DConfig", "VideoLDM", "build_model", "load_model",
           "model_config_from_dict", "save_model", "select_parameters", "set_trainable", "video_ldm_from_image"]
