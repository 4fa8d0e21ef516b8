"""Shared building blocks of the video backbones.

  primitives    embeddings, norms, positions (relative bias, RoPE), the FFN, the U-Net's `VideoCtx`
  attention     SDPA attention with swappable processors (cross-frame, sparse-causal); spatial,
                temporal, joint, windowed and cross attention
  mixing        convolutions over frames and Video LDM's α-merge
  conditioning  the global embedding, concat / self-conditioning channels, the learned null condition

Layout conventions. Video tensors enter a backbone as (B, C, F, H, W). Inside the U-Net the
frames are folded into the batch, `(B*F, C, H, W)`, so a 2D convolution over that tensor *is* a
1×3×3 video convolution (VDM §3); temporal layers unfold the frames with einops patterns that
double as documentation. Token layers work on `(N, L, D)` sequences.

`keep` tensors are (B,) floats: 1 for video samples, 0 for samples flagged `Cond.is_image`
(VDM joint image–video training): temporal layers are bypassed for the zeros.
"""
from .attention import (ROLES, Attention, AttnProcessor, CrossAttention, CrossAttentionBlock,
                        CrossFrameAttnProcessor, SparseCausalAttnProcessor, SpatialAttentionBlock,
                        TemporalAttention, TemporalAttentionBlock, WindowAttention3D, frame_mask, set_attn_processor)
from .conditioning import NullCondition, apply_null_condition, concat_condition, embed_conditions, self_condition
from .mixing import AlphaBlend, TemporalConv, TemporalResBlock, VideoConv3d
from .primitives import (FeedForward, GroupNorm, RelativePositionBias, RMSNorm, TimestepEmbedder, VideoCtx, apply_rope,
                         causal_bias, count_params, frame_keep, group_norm, maybe_checkpoint, modulate, rope_angles,
                         rope_angles_grid, sincos_1d, sincos_3d, timestep_embedding)

__all__ = [
    "ROLES", "AlphaBlend", "Attention", "AttnProcessor", "CrossAttention", "CrossAttentionBlock",
    "CrossFrameAttnProcessor", "FeedForward", "GroupNorm", "NullCondition", "RMSNorm", "RelativePositionBias",
    "SparseCausalAttnProcessor", "SpatialAttentionBlock", "TemporalAttention", "TemporalAttentionBlock",
    "TemporalConv", "TemporalResBlock", "TimestepEmbedder", "VideoConv3d", "VideoCtx", "WindowAttention3D",
    "apply_null_condition", "apply_rope", "causal_bias", "concat_condition", "count_params", "embed_conditions",
    "frame_keep", "frame_mask", "group_norm", "maybe_checkpoint", "modulate", "rope_angles", "rope_angles_grid",
    "self_condition", "set_attn_processor", "sincos_1d", "sincos_3d", "timestep_embedding",
]
