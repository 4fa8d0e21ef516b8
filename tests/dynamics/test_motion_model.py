"""Motion latent diffusion: stage-2 structure, frequency independence vs coordination, loop guidance."""

import pytest
import torch

from vidiff.dynamics.loop import loop_loss
from vidiff.dynamics.motion_model import (MotionModel, MotionModelConfig, coordinated_from_independent,
                                          load_motion_model, sample_motion, save_motion_model, train_diffusion,
                                          train_vae)
from vidiff.dynamics.normalize import FrequencyNormalizer
from vidiff.dynamics.procedural import ProceduralDataset
from vidiff.utils import VidiffError

K, S = 6, 16


def _cfg(mode):
    return MotionModelConfig(k=K, size=S, period=12, mode=mode, vae_channels=8, base_channels=8, channel_mults=(1, 2),
                             freq_embed_dim=4, head_dim=8, norm_groups=4)


def _batches(n=4, batch=2):
    ds = ProceduralDataset(n, size=(S, S), frames=12, k=K, seed=3)
    items = [ds[i] for i in range(n)]
    while True:
        for i in range(0, n, batch):
            yield {k: torch.stack([it[k] for it in items[i:i + batch]]) for k in ("image", "spectral_volume")}


def test_stage2_copies_and_freezes_2d_layers_and_starts_equal():
    ind = MotionModel(_cfg("independent"))
    co = coordinated_from_independent(ind)
    trainable = [n for n, p in co.named_parameters() if p.requires_grad]
    assert trainable and all(".temporal." in n for n in trainable)
    z = torch.randn(2, 4, K, S // 2, S // 2)
    t = torch.rand(2)
    cond = ind.condition(torch.rand(2, 3, S, S) * 2 - 1, 2)
    torch.testing.assert_close(co.backbone_fn(z, t, cond), ind.backbone_fn(z, t, cond))
    with pytest.raises(VidiffError):
        coordinated_from_independent(co)


def test_independent_slices_do_not_interact_but_coordinated_ones_do():
    ind = MotionModel(_cfg("independent")).eval()
    co = coordinated_from_independent(ind).eval()
    with torch.no_grad():
        for n, p in co.named_parameters():
            if ".temporal." in n:
                p.add_(0.2 * torch.randn_like(p))
    z = torch.randn(1, 4, K, S // 2, S // 2)
    z2 = z.clone()
    z2[:, :, 4] += 1.0  # perturb frequency slice 4 only
    t, cond = torch.rand(1), ind.condition(torch.rand(1, 3, S, S), 1)
    with torch.no_grad():
        d_ind = (ind.backbone_fn(z2, t, cond) - ind.backbone_fn(z, t, cond)).abs().amax(dim=(0, 1, 3, 4))
        d_co = (co.backbone_fn(z2, t, cond) - co.backbone_fn(z, t, cond)).abs().amax(dim=(0, 1, 3, 4))
    assert d_ind[4] > 1e-3 and float(d_ind[[0, 1, 2, 3, 5]].max()) < 1e-6
    assert float(d_co[[0, 1, 2, 3, 5]].min()) > 1e-5


def test_loop_guidance_lowers_seam_of_sampled_motion():
    torch.manual_seed(0)
    m = MotionModel(_cfg("independent")).eval()
    with torch.no_grad():  # an untrained model: random (not zero) output layer, so samples carry motion
        m.backbone.conv_out.weight.normal_(0, 0.05)
    image = torch.rand(2, 3, S, S) * 2 - 1
    end = 7.0  # a clip that does not span whole periods: the seam is not closed by construction
    kw = dict(steps=6, loop_end_time=end)
    plain = sample_motion(m, image, generator=torch.Generator().manual_seed(1), **kw)
    guided = sample_motion(m, image, generator=torch.Generator().manual_seed(1), loop_weight=100.0, **kw)
    assert plain.shape == (2, K, 4, S, S)
    before, after = loop_loss(plain, 12, end), loop_loss(guided, 12, end)
    assert (after < 0.85 * before).all(), (before, after)


@pytest.mark.parametrize("mode", ["coordinated", "volume"])
def test_training_steps_and_round_trip(tmp_path, mode):
    vols = torch.cat([next(_batches())["spectral_volume"] for _ in range(2)])
    norm = FrequencyNormalizer.fit(vols)
    m = MotionModel(_cfg(mode), norm)
    vl = train_vae(m, (b["spectral_volume"] for b in _batches()), steps=30, lr=3e-3)
    assert vl[-1] < vl[0]
    with torch.no_grad():
        z = m.encode(vols)
    assert abs(float(z.std()) - 1.0) < 0.3  # latent_scale normalises the latents
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    losses = train_diffusion(m, _batches(), steps=3)
    assert all(torch.isfinite(torch.tensor(losses)))
    changed = [n for n, p in m.named_parameters() if not torch.equal(p, before[n])]
    assert changed and all(n.startswith("backbone.") for n in changed)
    save_motion_model(tmp_path / "mm", m)
    back = load_motion_model(tmp_path / "mm")
    assert back.normalizer == norm and back.cfg == m.cfg
    image = torch.rand(1, 3, S, S) * 2 - 1
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    torch.testing.assert_close(sample_motion(back, image, steps=3, generator=g(), cfg_scale=1.0),
                               sample_motion(m, image, steps=3, generator=g(), cfg_scale=1.0))


def test_stage2_training_only_moves_attention():
    ind = MotionModel(_cfg("independent"))
    co = coordinated_from_independent(ind)
    before = {n: p.detach().clone() for n, p in co.named_parameters()}
    train_diffusion(co, _batches(), steps=2, lr=1e-2)
    changed = [n for n, p in co.named_parameters() if not torch.equal(p, before[n])]
    assert changed and all(".temporal." in n for n in changed)


def test_train_script_runs_end_to_end(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "train_motion.py"
    spec = importlib.util.spec_from_file_location("train_motion", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rep = mod.main(["--out", str(tmp_path / "mm"), "--size", "16", "--k", "6", "--frames", "12", "--scenes", "4",
                    "--heldout", "1", "--batch", "2", "--vae-steps", "2", "--stage1-steps", "2", "--stage2-steps", "2",
                    "--base-channels", "8", "--sample-steps", "2"])
    assert (tmp_path / "mm" / "model.safetensors").exists() and rep["mode"] == "coordinated"
    full = load_motion_model(tmp_path / "mm")
    assert full.cfg.mode == "coordinated"
    # stage 1 is kept as the "independent" ablation, with the same VAE
    ind = load_motion_model(tmp_path / "mm" / "independent")
    assert ind.cfg.mode == "independent"
    assert all(torch.equal(a, b) for a, b in zip(ind.vae.state_dict().values(), full.vae.state_dict().values()))
    for key in ("heldout_amplitude_error_rel", "heldout_amplitude_error_rel_independent"):
        assert rep[key] >= 0
    # an ablation reusing that VAE and normaliser: no VAE training, identical VAE weights
    rep = mod.main(["--out", str(tmp_path / "vol"), "--mode", "volume", "--vae-from", str(tmp_path / "mm"),
                    "--size", "16", "--k", "6", "--frames", "12", "--scenes", "4", "--heldout", "1", "--batch", "2",
                    "--stage1-steps", "2", "--base-channels", "8", "--sample-steps", "2"])
    vol = load_motion_model(tmp_path / "vol")
    assert vol.cfg.mode == "volume" and rep["vae_loss"] is None
    assert vol.normalizer == full.normalizer
    assert all(torch.equal(a, b) for a, b in zip(vol.vae.state_dict().values(), full.vae.state_dict().values()))


def test_onehot_frequency_embedding_marks_each_slice_and_round_trips(tmp_path):
    import dataclasses

    from vidiff.dynamics.motion_model import frequency_embedding

    emb = frequency_embedding(K, 4, (3, 5), "onehot")  # (K, K, h, w): channel c is 1 exactly on slice c
    assert emb.shape == (K, K, 3, 5)
    assert torch.equal(emb[:, :, 1, 2], torch.eye(K))
    with pytest.raises(VidiffError, match="onehot"):
        frequency_embedding(K, 4, (3, 5), "learned")
    cfg = dataclasses.replace(_cfg("coordinated"), freq_embedding="onehot")
    model = MotionModel(cfg).eval()
    cond = model.condition(torch.zeros(2, 3, S, S), 2)
    assert cond.concat.shape == (2, 3 + K, K, S // 2, S // 2)
    save_motion_model(tmp_path / "m", model)
    again = load_motion_model(tmp_path / "m")
    assert again.cfg.freq_embedding == "onehot"
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    image = torch.rand(1, 3, S, S) * 2 - 1
    assert torch.equal(sample_motion(model, image, 2, generator=g()), sample_motion(again, image, 2, generator=g()))


def test_conv_image_encoder_is_trained_in_stage1_frozen_in_stage2_and_round_trips(tmp_path):
    import dataclasses

    cfg = dataclasses.replace(_cfg("independent"), image_encoder="conv", image_channels=5)
    model = MotionModel(cfg)
    cond = model.condition(torch.zeros(2, 3, S, S), 2)
    assert cond.concat.shape == (2, 3 + 5 + 4, K, S // 2, S // 2)  # area RGB + encoder features + embedding
    # the null image (None) is the encoder applied to a black photo, as in the dropout of training
    torch.testing.assert_close(model.condition(None, 2).concat, cond.concat)
    before = {n: p.clone() for n, p in model.image_encoder.named_parameters()}
    model.vae.latent_scale.fill_(1.0)
    train_diffusion(model, _batches(), 3, lr=1e-3)
    assert any(not torch.equal(before[n], p) for n, p in model.image_encoder.named_parameters())
    co = coordinated_from_independent(model)
    assert not any(p.requires_grad for p in co.image_encoder.parameters())
    z, t = torch.randn(2, 4, K, S // 2, S // 2), torch.rand(2)
    image = torch.rand(2, 3, S, S) * 2 - 1
    torch.testing.assert_close(co.backbone_fn(z, t, co.condition(image, 2)),
                               model.backbone_fn(z, t, model.condition(image, 2)))
    save_motion_model(tmp_path / "m", co)
    again = load_motion_model(tmp_path / "m")
    assert again.cfg.image_encoder == "conv"
    torch.testing.assert_close(again.condition(image, 2).concat, co.condition(image, 2).concat)
    with pytest.raises(VidiffError, match="image_encoder"):
        MotionModel(dataclasses.replace(cfg, image_encoder="resnet"))


def test_canonical_phase_model_trains_on_canonical_targets_and_samples_random_phases(tmp_path, monkeypatch):
    import dataclasses

    from vidiff.dynamics.spectral import canonical_phase, spectral_to_complex

    cfg = dataclasses.replace(_cfg("independent"), phase="canonical")
    model = MotionModel(cfg, FrequencyNormalizer.fit(next(_batches())["spectral_volume"]))
    model.vae.latent_scale.fill_(1.0)
    seen = []
    encode = model.encode
    monkeypatch.setattr(model, "encode", lambda sv, **kw: (seen.append(sv), encode(sv, **kw))[1])
    batch = next(_batches())
    train_diffusion(model, iter([batch]), 1, lr=1e-3)
    torch.testing.assert_close(seen[0], canonical_phase(batch["spectral_volume"]))
    monkeypatch.undo()
    model.eval()
    save_motion_model(tmp_path / "m", model)
    assert load_motion_model(tmp_path / "m").cfg.phase == "canonical"
    image = torch.rand(2, 3, S, S) * 2 - 1
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = sample_motion(model, image, 2, generator=g(), random_phase=False)
    rand = sample_motion(model, image, 2, generator=g())  # default for canonical models: random phases
    a, b = spectral_to_complex(plain)[:, 1:], spectral_to_complex(rand)[:, 1:]
    torch.testing.assert_close(b.abs(), a.abs(), atol=1e-5, rtol=1e-4)  # same amplitudes
    assert not torch.allclose(b, a, atol=1e-4)  # new phases
    torch.testing.assert_close(rand, sample_motion(model, image, 2, generator=g()))  # seeded
    torch.testing.assert_close(canonical_phase(rand), canonical_phase(plain), atol=1e-5, rtol=1e-4)
    with pytest.raises(VidiffError, match="phase"):
        MotionModel(dataclasses.replace(cfg, phase="random"))


def test_schedule_shift_trains_and_samples_on_the_shifted_cosine_and_round_trips(tmp_path, monkeypatch):
    import dataclasses
    import math

    import vidiff.dynamics.motion_model as loss_mod  # the module whose diffusion_loss training calls
    from vidiff.diffusion.schedule import get_schedule

    cfg = dataclasses.replace(_cfg("independent"), schedule_shift=4.0)
    model = MotionModel(cfg)
    model.vae.latent_scale.fill_(1.0)
    t = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    # Hoogeboom et al. eq. 7: λ_shifted(t) = λ_cosine(t) − 2 log(shift); shift 1 is the plain cosine schedule
    torch.testing.assert_close(model.schedule().logsnr(t), get_schedule("cosine").logsnr(t) - 2 * math.log(4.0))
    torch.testing.assert_close(MotionModel(_cfg("independent")).schedule().logsnr(t), get_schedule("cosine").logsnr(t))
    seen = []
    real = loss_mod.diffusion_loss
    monkeypatch.setattr(loss_mod, "diffusion_loss", lambda m, x0, schedule, **kw: (seen.append(schedule),
                                                                                  real(m, x0, schedule, **kw))[1])
    train_diffusion(model, _batches(), 1, lr=1e-3)
    torch.testing.assert_close(seen[0].logsnr(t), model.schedule().logsnr(t))
    monkeypatch.undo()
    model.eval()
    image = torch.rand(1, 3, S, S) * 2 - 1
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    default = sample_motion(model, image, 3, generator=g())
    torch.testing.assert_close(default, sample_motion(model, image, 3, generator=g(), schedule=model.schedule()))
    assert not torch.allclose(default, sample_motion(model, image, 3, generator=g(), schedule=get_schedule("cosine")))
    save_motion_model(tmp_path / "m", model)
    again = load_motion_model(tmp_path / "m")
    assert again.cfg.schedule_shift == 4.0
    torch.testing.assert_close(sample_motion(again, image, 3, generator=g()), default)
    with pytest.raises(VidiffError, match="schedule_shift"):
        MotionModel(dataclasses.replace(cfg, schedule_shift=0.0))
