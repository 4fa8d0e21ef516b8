"""vidiff.diffusion: schedules, parameterizations, loss, samplers and guidance — independent of any network.

Time runs from t = 0 (clean data) to t = 1 (pure noise); z_t = α_t x + σ_t ε, α² + σ² = 1.
"""
from .config import DiffusionConfig, VideoFormat
from .edm import EDMDenoiser, edm_loss, karras_sigmas
from .guidance import (
    AutoGuidance,
    ClassifierFreeGuidance,
    FrameRampGuidance,
    GradientGuidance,
    ReconstructionGuidance,
    SelfConditioning,
    expand_mask,
)
from .loss import diffusion_loss, min_snr_weight
from .noise import NOISE_KINDS, FrameNoise, rand, randn
from .param import (
    PARAMETERIZATIONS,
    Denoiser,
    Prediction,
    apply_clip,
    convert,
    dynamic_threshold,
    eps_from_v,
    eps_from_x0,
    v_from_eps,
    v_from_eps_x0,
    v_from_x0,
    x0_from_eps,
    x0_from_v,
)
from .samplers import (
    SAMPLERS,
    SPACINGS,
    ddim,
    ddim_invert,
    ddim_step,
    ddim_step_angular,
    ddpm,
    ddpm_posterior,
    dpmpp_2m,
    euler,
    heun,
    langevin_step,
    pc,
    sample,
    sample_generators,
    stacked_randn,
    timesteps,
)
from .schedule import (
    SCHEDULES,
    CosineSchedule,
    EDMSchedule,
    LinearSchedule,
    Schedule,
    ShiftedCosineSchedule,
    get_schedule,
)

__all__ = [
    "Schedule", "CosineSchedule", "LinearSchedule", "ShiftedCosineSchedule", "EDMSchedule", "SCHEDULES", "get_schedule",
    "PARAMETERIZATIONS", "Prediction", "Denoiser", "convert", "apply_clip", "dynamic_threshold",
    "x0_from_eps", "eps_from_x0", "v_from_eps_x0", "x0_from_v", "eps_from_v", "v_from_x0", "v_from_eps",
    "DiffusionConfig", "VideoFormat",
    "diffusion_loss", "min_snr_weight", "FrameNoise", "NOISE_KINDS", "randn", "rand",
    "SAMPLERS", "SPACINGS", "sample", "ddpm", "ddim", "dpmpp_2m", "ddim_invert", "timesteps",
    "ddim_step", "ddim_step_angular", "ddpm_posterior", "pc", "langevin_step", "euler", "heun", "stacked_randn",
    "sample_generators",
    "EDMDenoiser", "edm_loss", "karras_sigmas",
    "ClassifierFreeGuidance", "FrameRampGuidance", "AutoGuidance", "ReconstructionGuidance", "GradientGuidance",
    "expand_mask",
    "SelfConditioning",
]
