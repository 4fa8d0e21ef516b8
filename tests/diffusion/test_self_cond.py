"""Self-conditioning (Chen et al. 2022, "Analog Bits", sec. 3.3): the training objective's two passes,
the sampler-side wrapper that feeds x̂₀ back, and how it composes with CFG, windows and backbones."""
import dataclasses

import pytest
import torch

from vidiff.conditioning import Cond
from vidiff.diffusion import (
    ClassifierFreeGuidance,
    Denoiser,
    SelfConditioning,
    diffusion_loss,
    get_schedule,
    sample,
    v_from_eps_x0,
    x0_from_v,
)
from vidiff.diffusion.analytic import GaussianData
from vidiff.diffusion.param import broadcast
from vidiff.utils import VidiffError


class Recorder:
    """A backbone (z, t, cond) -> 0.5 z + 0.1 that records what each call saw."""

    def __init__(self):
        self.calls = []

    def __call__(self, z, t, cond=None):
        self.calls.append((z.clone(), t.clone(), None if cond is None else cond.self_cond))
        return 0.5 * z + 0.1


def _draws(B, shape, seed):
    """The loss's draw order: t, then ε, then the self-conditioning coin."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((B,), generator=g), torch.randn(shape, generator=g), torch.rand((B,), generator=g)


def test_loss_feeds_the_first_pass_x0_to_the_second():
    sched = get_schedule("cosine")
    x0 = torch.rand(4, 3, 2, 4, 4, dtype=torch.float64) * 2 - 1
    model = Recorder()
    loss = diffusion_loss(model, x0, sched, parameterization="v", self_cond_prob=1.0,
                          generator=torch.Generator().manual_seed(3))
    t, eps, _ = _draws(4, x0.shape, 3)
    a, s = (broadcast(v, x0) for v in sched.alpha_sigma(t.double()))
    z = a * x0 + s * eps
    assert len(model.calls) == 2
    (z1, t1, sc1), (z2, t2, sc2) = model.calls
    assert sc1 is None and torch.allclose(z1, z) and torch.allclose(z2, z)
    expected = x0_from_v(z, 0.5 * z + 0.1, a, s).clamp(-1, 1)  # the first pass's x̂₀, clamped
    assert torch.allclose(sc2, expected, atol=1e-12)
    target = v_from_eps_x0(eps, x0, a, s)
    assert torch.allclose(loss, ((0.5 * z + 0.1 - target) ** 2).mean(), atol=1e-12)


def test_loss_self_conditions_the_drawn_share_and_is_unchanged_without_it():
    sched = get_schedule("cosine")
    x0 = torch.rand(64, 1, 2, 2, 2, dtype=torch.float64) * 2 - 1
    model = Recorder()
    diffusion_loss(model, x0, sched, self_cond_prob=0.5, generator=torch.Generator().manual_seed(0))
    _, _, coin = _draws(64, x0.shape, 0)
    used = coin < 0.5
    sc = model.calls[-1][2]
    nonzero = sc.reshape(64, -1).abs().sum(1) > 0
    assert torch.equal(nonzero, used) and 20 < int(used.sum()) < 44
    assert torch.equal(model.calls[0][0], model.calls[-1][0][used])  # the first pass saw those samples only
    # prob 0: one call, no self_cond, and the same loss as before the option existed
    plain, again = Recorder(), Recorder()
    l0 = diffusion_loss(plain, x0, sched, generator=torch.Generator().manual_seed(0))
    l1 = diffusion_loss(again, x0, sched, self_cond_prob=0.0, generator=torch.Generator().manual_seed(0))
    assert len(plain.calls) == 1 and plain.calls[0][2] is None and torch.equal(l0, l1)


def test_loss_first_pass_bypasses_a_ddp_wrapper():
    inner = Recorder()

    class Wrapped:  # stands in for DistributedDataParallel: .module is the bare network
        module = inner
        calls = 0

        def __call__(self, z, t, cond=None):
            Wrapped.calls += 1
            return inner(z, t, cond)

    x0 = torch.zeros(2, 3, 2, 4, 4)
    diffusion_loss(Wrapped(), x0, get_schedule("cosine"), self_cond_prob=1.0,
                   generator=torch.Generator().manual_seed(0))
    assert Wrapped.calls == 1 and len(inner.calls) == 2


def test_sampler_wrapper_feeds_back_each_steps_x0():
    sched = get_schedule("cosine")
    seen, returned = [], []

    def den(z, t, schedule, cond=None):
        seen.append(cond.self_cond)
        pred = Denoiser(GaussianData(0.2, 0.7).model(schedule, "v"), "v")(z, t, schedule, None)
        returned.append(pred.x0)
        return pred

    noise = torch.randn(2, 3, 2, 4, 4, dtype=torch.float64)
    out = sample(SelfConditioning(den), noise, sched, 5, sampler="ddim")
    assert seen[0] is None and len(seen) == 5
    for k in range(1, 5):
        assert torch.equal(seen[k], returned[k - 1].clamp(-1, 1))
    # an oracle that ignores self_cond samples exactly as without the wrapper
    plain = sample(Denoiser(GaussianData(0.2, 0.7).model(sched, "v"), "v"), noise, sched, 5, sampler="ddim")
    assert torch.equal(out, plain)
    with pytest.raises(VidiffError, match="needs cond=None or a Cond"):
        SelfConditioning(den)(noise, 0.5, sched, cond={"a": 1})


def test_cfg_branches_share_the_self_condition():
    sched = get_schedule("cosine")
    got = []

    def den(z, t, schedule, cond=None):
        got.append(cond)
        return Denoiser(lambda z, t, c: 0.1 * z, "v")(z, t, schedule, None)

    B = 3
    cond = Cond(class_ids=torch.zeros(B, dtype=torch.long), self_cond=torch.randn(B, 3, 2, 4, 4))
    null = Cond(class_ids=torch.full((1,), 5, dtype=torch.long))
    ClassifierFreeGuidance(den, 2.0, null)(torch.randn(B, 3, 2, 4, 4), 0.5, sched, cond)
    sc = got[0].self_cond
    assert sc.shape[0] == 2 * B and torch.equal(sc[:B], cond.self_cond) and torch.equal(sc[B:], cond.self_cond)


def test_windows_slice_the_self_condition_along_frames():
    from vidiff.pipelines.long import TemporalWindows

    sched = get_schedule("cosine")
    seen = []

    def den(z, t, schedule, cond=None):
        seen.append((z.clone(), cond.self_cond.clone()))
        return Denoiser(lambda z, t, c: 0.1 * z, "v")(z, t, schedule, None)

    z = torch.randn(1, 3, 12, 4, 4)
    TemporalWindows(den, window=8, overlap=4)(z, 0.5, sched, Cond(self_cond=z.clone()))
    assert len(seen) == 1  # both windows in one batch
    zw, scw = seen[0]
    assert zw.shape == (2, 3, 8, 4, 4) and torch.equal(zw, scw)  # self_cond cut where z was cut


@pytest.mark.parametrize("arch", ["unet3d", "dit"])
def test_backbones_read_zeros_without_a_previous_estimate(arch):
    from vidiff.models import build_model
    from vidiff.models.dit import DiTConfig
    from vidiff.models.unet3d import UNet3DConfig

    cfg = (UNet3DConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), head_dim=8, self_cond=True)
           if arch == "unet3d" else DiTConfig(hidden_size=16, depth=1, heads=2, patch_size=2, self_cond=True))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    for p in model.parameters():  # zero-initialised output layers would hide the input
        torch.nn.init.normal_(p, std=0.2)
    x, t = torch.randn(2, 3, 4, 8, 8), torch.rand(2)
    with torch.no_grad():
        none = model(x, t, Cond())
        zeros = model(x, t, Cond(self_cond=torch.zeros_like(x)))
        other = model(x, t, Cond(self_cond=torch.randn_like(x)))
    assert torch.equal(none, zeros) and not torch.allclose(none, other)
    with pytest.raises(VidiffError, match="self_cond must have the shape"):
        model(x, t, Cond(self_cond=torch.zeros(2, 3, 4, 4, 4)))
    plain = build_model(dataclasses.replace(cfg, self_cond=False))
    with pytest.raises(VidiffError, match="built with self_cond=False"):
        plain(x, t, Cond(self_cond=x))
