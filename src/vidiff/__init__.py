"""vidiff: video diffusion in PyTorch — schedules, samplers, backbones, pipelines, evaluation."""
import os

__version__ = "0.1.0"

# OpenMP threads waiting for work sleep instead of spinning. libgomp reads this when torch loads it, so it
# applies to `vidiff ...`, `python -m vidiff.train` and any program importing vidiff before torch; set
# OMP_WAIT_POLICY=ACTIVE to spin. Spinning threads collapse training beside other busy processes (2 threads
# on 2 cores: 0.2 steps/s instead of 1.3 with PASSIVE).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def load_pipeline(name_or_path: str, **kwargs):
    """Load a sampling pipeline from a bundled model name or a checkpoint folder."""
    from .pipelines import load_pipeline as _load

    return _load(name_or_path, **kwargs)
