"""vidiff: video diffusion in PyTorch — schedules, samplers, backbones, pipelines, evaluation."""
__version__ = "0.1.0"


def load_pipeline(name_or_path: str, **kwargs):
    """Load a sampling pipeline from a bundled model name or a checkpoint folder."""
    from .pipelines import load_pipeline as _load

    return _load(name_or_path, **kwargs)
