"""Oracles for softmax splatting and the frequency-adaptive normalization."""
import torch
import pytest

from vidiff.dynamics.normalize import FrequencyNormalizer
from vidiff.dynamics.splat import motion_metric, splat, splat_accumulate
from vidiff.utils import VidiffError


@pytest.mark.parametrize("mode", ["sum", "average", "softmax"])
def test_zero_flow_is_identity(mode):
    x = torch.randn(2, 3, 7, 9)
    out = splat(x, torch.zeros(2, 2, 7, 9), mode=mode)
    torch.testing.assert_close(out, x, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["sum", "average", "softmax"])
def test_integer_translation_is_exact_shift(mode):
    x = torch.randn(1, 4, 10, 12)
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0], flow[:, 1] = 3.0, -2.0
    out, cover = splat(x, flow, mode=mode, return_weight=True)
    torch.testing.assert_close(out[..., 0:8, 3:12], x[..., 2:10, 0:9], rtol=0, atol=1e-6)
    assert (out[..., 8:, :] == 0).all() and (cover[..., 8:, :] == 0).all()  # holes uncovered
    assert (out[..., :, :3] == 0).all()


def test_sum_conserves_mass():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 16, 16, generator=g)
    flow = torch.rand(2, 2, 16, 16, generator=g) * 3 - 1.5
    x[..., :2, :] = 0; x[..., -2:, :] = 0; x[..., :, :2] = 0; x[..., :, -2:] = 0  # nothing leaves the frame
    out = splat(x, flow, mode="sum")
    torch.testing.assert_close(out.sum(dim=(2, 3)), x.sum(dim=(2, 3)))


def test_softmax_prefers_larger_metric_and_is_stable():
    x = torch.zeros(1, 1, 1, 4)
    x[0, 0, 0, 0], x[0, 0, 0, 2] = 1.0, 5.0
    flow = torch.zeros(1, 2, 1, 4)
    flow[0, 0, 0, 0] = 2.0  # pixel 0 lands on pixel 2
    z = torch.zeros(1, 1, 1, 4)
    z[0, 0, 0, 0] = 1000.0  # huge metric: a naive exp would overflow
    out = splat(x, flow, mode="softmax", metric=z)
    assert torch.isfinite(out).all() and abs(float(out[0, 0, 0, 2]) - 1.0) < 1e-6
    avg = splat(x, flow, mode="average")
    assert abs(float(avg[0, 0, 0, 2]) - 3.0) < 1e-6
    torch.testing.assert_close(motion_metric(flow)[0, 0, 0], torch.tensor([2.0, 0, 0, 0]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["sum", "softmax"])
def test_gradcheck(mode):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 2, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    flow = (torch.rand(1, 2, 4, 5, dtype=torch.float64, generator=g) * 1.6 - 0.8 + 0.05).requires_grad_()
    z = torch.rand(1, 1, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    if mode == "sum":
        assert torch.autograd.gradcheck(lambda a, f: splat_accumulate(a, f), (x, flow))
    else:
        assert torch.autograd.gradcheck(lambda a, f, m: splat(a, f, mode="softmax", metric=m), (x, flow, z))


def test_bad_flow_shape_raises():
    with pytest.raises(VidiffError):
        splat(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 5))
    with pytest.raises(VidiffError):
        splat(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), mode="max")


def test_normalizer_round_trip_and_scales(tmp_path):
    g = torch.Generator().manual_seed(0)
    vols = torch.randn(6, 5, 4, 8, 8, generator=g) * torch.tensor([8.0, 4, 2, 1, 0.5]).view(1, 5, 1, 1, 1)
    norm = FrequencyNormalizer.fit(vols)
    amp = torch.complex(vols[:, :, 0::2], vols[:, :, 1::2]).abs()  # (N, K, 2, H, W)
    for f in range(5):
        a = amp[:, f].flatten().double()
        frac = float((a <= norm.scales[f]).double().mean())
        assert abs(frac - 0.95) < 0.01
    y = norm.normalize(vols.double())
    torch.testing.assert_close(norm.denormalize(y), vols.double(), rtol=1e-12, atol=1e-12)
    norm.save(tmp_path / "norm.json")
    back = FrequencyNormalizer.load(tmp_path / "norm.json")
    assert back == norm
    with pytest.raises(VidiffError):
        norm.normalize(torch.zeros(3, 4, 2, 2))


def test_normalizer_ignores_static_pixels():
    vols = torch.zeros(2, 3, 4, 10, 10)
    vols[:, 1, 0, :2, :2] = torch.linspace(1, 2, 8).view(2, 2, 2)  # 4% of pixels move, at frequency 1 only
    norm = FrequencyNormalizer.fit(vols)
    assert norm.scales[0] == 1.0 and norm.scales[2] == 1.0  # no motion: unit scale
    assert 1.5 < norm.scales[1] <= 2.0
    torch.testing.assert_close(norm.denormalize(norm.normalize(vols)), vols)
