"""Helpers for the backbone tests: tiny configs and weight perturbation."""
import pytest
import torch


def _perturb(model: torch.nn.Module, scale: float = 0.2, seed: int = 1) -> torch.nn.Module:
    """Add noise to every parameter, so zero/identity-initialised branches are active."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture
def perturb():
    return _perturb
