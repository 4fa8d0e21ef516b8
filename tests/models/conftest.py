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


def _frame_change(model, x, t, i, cond=None):
    """Per-(sample, frame) max |Δ output| when frame i of every sample is perturbed."""
    with torch.no_grad():
        y0 = model(x, t, cond)
        x1 = x.clone()
        x1[:, :, i] += torch.randn_like(x1[:, :, i])
        y1 = model(x1, t, cond)
    return (y1 - y0).abs().amax(dim=(1, 3, 4))  # (B, F)


@pytest.fixture
def frame_change():
    return _frame_change
