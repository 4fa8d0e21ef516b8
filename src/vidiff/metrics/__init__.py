"""vidiff.metrics: Fréchet/kernel distances, local-weight feature extractors, paired and temporal metrics,
visual reports and `vidiff eval`. Names are imported lazily so `vidiff --help` stays fast."""
from __future__ import annotations

import importlib

_EXPORTS = {
    "frechet_distance": "frechet", "frechet_distance_features": "frechet", "feature_stats": "frechet",
    "trace_sqrt_product": "frechet",
    "kernel_distance": "kid", "mmd2_unbiased": "kid", "polynomial_kernel": "kid",
    "FeatureExtractor": "extractors", "load_i3d": "extractors", "load_inception": "extractors",
    "fallback_extractor": "extractors",
    "InceptionI3d": "i3d", "FIDInceptionV3": "inception",
    "psnr": "image", "ssim": "image",
    "flicker": "temporal", "warp_error": "temporal", "motion_consistency": "temporal",
    "motion_magnitude": "temporal", "over_windows": "temporal", "sliding_windows": "temporal",
    "optical_flow": "flow", "warp": "flow",
    "estimate_camera_motion": "camera", "decompose_motion": "camera", "camera_motion_score": "camera",
    "EvalProtocol": "protocol", "sample_clip": "protocol", "resize_video": "protocol",
    "xt_slice": "report", "save_xt_png": "report", "save_side_by_side_mp4": "report", "plot_over_time": "report",
    "evaluate": "evaluation", "METRICS": "evaluation",
    "load_lpips": "lpips",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
