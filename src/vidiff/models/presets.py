"""Named backbone sizes (`unet-tiny`, `dit-s/2`, ...): a registry used for CLI choices."""
from __future__ import annotations

import dataclasses
from typing import Any

from ..utils import VidiffError
from .dit import DiTConfig
from .unet3d import UNet3DConfig

# The tiny U-Net: RGB 16×32×32 clips, 3.26 M params. A 2×2 space-to-depth stem puts the U-Net levels
# at 16², 8², 4²; spatial attention only at 4² (and the middle), temporal attention at every level.
# ~0.6 s per B=8 training step on 2 CPU cores.
_UNET_TINY = UNet3DConfig(patch_size=2, base_channels=32, channel_mults=(1, 2, 4), num_res_blocks=1,
                          attention_levels=(2,), head_dim=32, temporal="attention",
                          scale_shift_norm=True, min_group_channels=4)

PRESETS: dict[str, Any] = {
    "unet-tiny": _UNET_TINY,
    # The 4² and middle attention is joint over all 16·4·4
    # space-time positions (an object meets itself in every frame in one hop); ~6% slower.
    "unet-tiny-joint": dataclasses.replace(_UNET_TINY, spatial_attention="joint"),
    # The demo backbone (shapes-tiny): unet-tiny-joint at half the width (16/32/64 channels, heads of
    # 16; 0.82 M params), ~0.29 s per B=8 training step, so twice the steps fit the 90-minute budget.
    "unet-nano-joint": dataclasses.replace(_UNET_TINY, spatial_attention="joint", base_channels=16, head_dim=16),
    # ... with axial RoPE over (F, H, W) in the joint attention (which otherwise has no position encoding).
    "unet-tiny-joint-rope": dataclasses.replace(_UNET_TINY, spatial_attention="joint", spatial_pos="rope"),
    # Pseudo-3D temporal convs (Make-A-Video) instead of temporal attention.
    "unet-tiny-conv": dataclasses.replace(_UNET_TINY, temporal="conv"),
    # An image model at the demo's width (frames never interact): the base of a Video LDM video model
    # (vidiff.models.video_ldm_from_image adds α-merged temporal layers over it, frozen).
    "unet-nano-image": dataclasses.replace(_UNET_TINY, base_channels=16, head_dim=16, temporal="none"),
    # A small VDM-style U-Net for 64×64 (GPU-sized).
    "unet-s": UNet3DConfig(base_channels=64, channel_mults=(1, 2, 3, 4), num_res_blocks=2,
                           attention_levels=(2, 3), head_dim=64, temporal="attention"),
    # Video DiTs on spacetime patches (Latte-style factorized blocks).
    "dit-tiny": DiTConfig(hidden_size=96, depth=4, heads=3, patch_size=2, patch_t=1),
    "dit-s/2": DiTConfig(hidden_size=384, depth=12, heads=6, patch_size=2, patch_t=1),
}


def get_preset(name: str) -> Any:
    """The config registered under `name`; unknown names raise VidiffError listing the known ones."""
    if name not in PRESETS:
        raise VidiffError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]
