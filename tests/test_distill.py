"""Progressive distillation (Salimans & Ho 2022, Algorithm 2): the defining identity, a tiny run, loading."""
import json

import numpy as np
import pytest
import torch

from vidiff.checkpoint import save_pretrained
from vidiff.cli import main as cli
from vidiff.config import config_to_dict
from vidiff.diffusion import Denoiser, convert, ddim, get_schedule
from vidiff.distill import distill, distill_loss, grid_alpha_sigma, two_step_target
from vidiff.models import build_model
from vidiff.pipelines import DiffusionConfig, VideoFormat, load_pipeline
from vidiff.utils import VidiffError

TINY = {"arch": "unet3d", "base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "attention_levels": [1],
        "head_dim": 8, "scale_shift_norm": True, "min_group_channels": 4}


def _teacher_fn(z, t, cond=None):
    """A smooth nonlinear stand-in for a network: depends on z and t."""
    tt = t.reshape(-1, *([1] * (z.dim() - 1)))
    return 0.7 * torch.tanh(1.3 * z + tt) + 0.2 * z * tt


@pytest.mark.parametrize("param", ["eps", "v"])
@pytest.mark.parametrize("schedule_name", ["cosine", "shifted_cosine"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_one_student_ddim_step_with_x_tilde_lands_on_two_teacher_steps(param, schedule_name, dtype, tol):
    """Algorithm 2: one DDIM step of a student predicting x̃, from t to t'' = t − 1/N, equals the teacher's two
    DDIM steps t → t' → t'' — both run through the library's `ddim` sampler on explicit time grids."""
    if param == "eps" and dtype == torch.float32:
        pytest.skip("ε → x̂ at t = 1 divides by α_1 = 4.5e-5: float32 cancellation, the paper's reason for v")
    schedule = get_schedule(schedule_name, **({"shift": 4.0} if schedule_name == "shifted_cosine" else {}))
    N = 4
    z = torch.randn(N, 3, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=dtype)
    i = torch.arange(1, N + 1)  # every student step, t'' = 0 included
    teacher = Denoiser(_teacher_fn, param)
    x_tilde, z2 = two_step_target(teacher, z, i, N, schedule)
    for b in range(N):
        t, t1, t2 = i[b].item() / N, (2 * i[b].item() - 1) / (2 * N), (i[b].item() - 1) / N
        zb = z[b:b + 1]
        ref = ddim(teacher, zb, schedule, 2, spacing=torch.tensor([t, t1, t2], dtype=torch.float64))
        torch.testing.assert_close(z2[b:b + 1], ref, atol=tol, rtol=0)  # the teacher's steps are the sampler's

        a, s = grid_alpha_sigma(schedule, torch.tensor([t]), zb)
        out = convert(x_tilde[b:b + 1], "x0", param, zb, a, s)  # what a perfect student network outputs

        def student_fn(zz, tt, cond=None, out=out):
            return out

        one = ddim(Denoiser(student_fn, param), zb, schedule, 1, spacing=torch.tensor([t, t2], dtype=torch.float64))
        torch.testing.assert_close(one, ref, atol=tol, rtol=0)
    # and it is not trivially true: the teacher's own x̂ at t does not land there in one step
    assert (teacher(z, (i / N).to(dtype), schedule).x0 - x_tilde).abs().max() > 1e-2


def test_loss_is_zero_for_a_perfect_student():
    """max(SNR, 1)‖x̃ − x̂_θ‖² vanishes when the student outputs x̃; it is positive for the teacher itself."""
    schedule = get_schedule("cosine")
    x0 = torch.rand(4, 3, 2, 4, 4, dtype=torch.float64) * 2 - 1
    teacher = Denoiser(_teacher_fn, "v")
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731

    class Perfect:
        def __call__(self, z, t, schedule, cond=None):
            from vidiff.diffusion import Prediction

            i = torch.round(t.double() * 2).long()  # N = 2
            x_tilde, _ = two_step_target(teacher, z, i, 2, schedule)
            a, s = grid_alpha_sigma(schedule, t, z)
            return Prediction.from_output("x0", x_tilde, z, a, s)

    assert distill_loss(Perfect(), teacher, x0, schedule, 2, generator=g()).item() < 1e-20
    assert distill_loss(teacher, teacher, x0, schedule, 2, generator=g()).item() > 1e-4


@pytest.fixture(scope="module")
def teacher_and_data(tmp_path_factory):
    from vidiff.data.synth import generate_shapes

    root = tmp_path_factory.mktemp("distill")
    generate_shapes(root / "shapes", num=4, frames=4, size=16, seed=0, progress=False)
    torch.manual_seed(0)
    model = build_model(TINY)
    with torch.no_grad():  # make the zero-initialised output layers live so the teacher is not trivial
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    teacher = save_pretrained(root / "teacher", model, {
        "model": config_to_dict(model.config), "diffusion": config_to_dict(DiffusionConfig()),
        "video": config_to_dict(VideoFormat(frames=4, size=16, fps=6)), "summary": {"steps": 0}})
    return teacher, root / "shapes"


def test_tiny_distillation_rounds_lower_the_loss_and_checkpoints_load(teacher_and_data, tmp_path):
    from vidiff.data.dataset import VideoDataset
    from vidiff.training import StepBatches

    teacher, data = teacher_and_data
    folders = distill(str(teacher), str(tmp_path / "d"), data=str(data), start_steps=4, rounds=2, steps_per_round=6,
                      batch=2, lr=2e-3, log_every=3, cache=False, progress=False)
    assert [f.name for f in folders] == ["steps-2", "steps-1"]
    for f, (n, tn) in zip(folders, [(2, 4), (1, 2)]):
        cfg = json.loads((f / "config.json").read_text())
        assert cfg["distill"]["steps"] == n and cfg["distill"]["teacher_steps"] == tn
        losses = json.loads((f / "losses.json").read_text())
        assert len(losses) == 6 and np.isfinite(losses).all()
        pipe = load_pipeline(str(f))
        v = pipe(1, steps=n, seed=0)
        assert v.shape == (1, 4, 16, 16, 3) and v.dtype == torch.uint8
    # round 1's student matches its teacher's 4 steps better than the teacher itself does in 2 steps
    t_pipe, s_pipe = load_pipeline(str(teacher)), load_pipeline(str(folders[0]))
    schedule = t_pipe.diffusion.build_schedule()
    x0 = StepBatches(VideoDataset(data, frames=4, size=16, cache=False, progress=False), 8, seed=99).at(0)["video"]
    t_den, s_den = Denoiser(t_pipe.model, "v"), Denoiser(s_pipe.model, "v")
    with torch.no_grad():
        before = distill_loss(t_den, t_den, x0, schedule, 2, generator=torch.Generator().manual_seed(5))
        after = distill_loss(s_den, t_den, x0, schedule, 2, generator=torch.Generator().manual_seed(5))
    assert torch.isfinite(after) and after < before


def test_distill_errors_and_cli(teacher_and_data, tmp_path, capsys):
    teacher, data = teacher_and_data
    with pytest.raises(VidiffError, match="cannot be halved 2 time"):
        distill(str(teacher), str(tmp_path / "x"), data=str(data), start_steps=6, rounds=2, steps_per_round=1)
    with pytest.raises(VidiffError, match="give a budget per round"):
        distill(str(teacher), str(tmp_path / "x"), data=str(data))
    assert cli(["distill", str(teacher), "--data", str(data), "--out", str(tmp_path / "c"), "--rounds", "1",
                "--start-steps", "2", "--steps-per-round", "2", "--batch", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert cli(["sample", "--model", str(tmp_path / "c" / "steps-1"), "--num", "1", "--steps", "1",
                "--out", str(tmp_path / "s"), "--format", "npy"]) == 0
    assert np.load(tmp_path / "s" / "samples.npy").shape == (1, 4, 16, 16, 3)
    capsys.readouterr()
    assert cli(["distill", str(teacher), "--data", str(data), "--out", str(tmp_path / "e"), "--rounds", "3",
                "--start-steps", "4", "--steps-per-round", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --start-steps 4 cannot be halved 3 time(s)") and "\n" not in err


def _with_guide(teacher, dest, guide_model, w: float = 1.0):
    """`teacher` copied to `dest` with `guide_model` as its autoguidance guide (default weight w)."""
    from vidiff.checkpoint import load_state_dict

    cfg = json.loads((teacher / "config.json").read_text())
    model = build_model(TINY)
    model.load_state_dict(load_state_dict(teacher / "model.safetensors"))
    save_pretrained(dest, model, {**cfg, "autoguidance": {"guide": "guide", "w": w}})
    save_pretrained(dest / "guide", guide_model, cfg)
    return dest


def test_guided_distillation_learns_the_autoguided_teacher(teacher_and_data, tmp_path):
    """Meng et al. 2023: round 1 matches the guided teacher. A guide equal to the teacher leaves the
    guided prediction x̂ + w (x̂ − x̂) = x̂, so the run equals the unguided one; another guide changes the
    targets; the students ship without the guide and load."""
    from vidiff.checkpoint import load_state_dict

    teacher, data = teacher_and_data
    same = build_model(TINY)
    same.load_state_dict(load_state_dict(teacher / "model.safetensors"))
    other = build_model(TINY)
    with torch.no_grad():
        g = torch.Generator().manual_seed(3)
        for p in other.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    kw = dict(data=str(data), start_steps=4, rounds=2, steps_per_round=3, batch=2, lr=2e-3, cache=False,
              progress=False)
    plain = distill(str(teacher), str(tmp_path / "plain"), **kw)
    same_g = distill(str(_with_guide(teacher, tmp_path / "t_same", same)), str(tmp_path / "same"), **kw)
    other_t = _with_guide(teacher, tmp_path / "t_other", other)
    other_g = distill(str(other_t), str(tmp_path / "other"), **kw)
    off = distill(str(other_t), str(tmp_path / "off"), autoguidance=0.0, **kw)
    losses = lambda f: np.array(json.loads((f / "losses.json").read_text()))  # noqa: E731
    for r in range(2):
        np.testing.assert_allclose(losses(same_g[r]), losses(plain[r]), rtol=1e-5)
        np.testing.assert_array_equal(losses(off[r]), losses(plain[r]))
    assert not np.allclose(losses(other_g[0]), losses(plain[0]), rtol=1e-3)
    cfg = json.loads((other_g[0] / "config.json").read_text())
    assert "autoguidance" not in cfg and cfg["distill"]["autoguidance"] == {"w": 1.0}
    assert json.loads((off[0] / "config.json").read_text())["distill"]["autoguidance"] is None
    pipe = load_pipeline(str(other_g[1]))
    assert pipe.guide is None and pipe(1, steps=1, seed=0).shape == (1, 4, 16, 16, 3)
    with pytest.raises(VidiffError, match="ships no guide"):
        distill(str(teacher), str(tmp_path / "x"), autoguidance=1.0, **kw)


def test_a_self_conditioned_teacher_is_refused_clearly(teacher_and_data, tmp_path):
    teacher, data = teacher_and_data
    model = build_model({**TINY, "self_cond": True})
    sc = save_pretrained(tmp_path / "sc", model, {
        "model": config_to_dict(model.config), "diffusion": config_to_dict(DiffusionConfig()),
        "video": config_to_dict(VideoFormat(frames=4, size=16, fps=6)), "summary": {"steps": 0}})
    with pytest.raises(VidiffError, match="self-conditioned"):
        distill(str(sc), str(tmp_path / "d"), data=str(data), start_steps=4, rounds=1, steps_per_round=1)


def test_an_interrupted_distillation_resumes_exactly(teacher_and_data, tmp_path, monkeypatch):
    """Ctrl-C in round 2 saves that round's state; --resume loads round 1's student and continues round 2
    where it stopped: every round's losses equal the uninterrupted run's."""
    import vidiff.distill as distill_mod

    teacher, data = teacher_and_data
    kw = dict(data=str(data), start_steps=4, rounds=2, steps_per_round=3, batch=2, lr=2e-3, cache=False,
              progress=False)
    full = distill(str(teacher), str(tmp_path / "full"), **kw)
    real = distill_mod.DistillTask.losses

    def interrupt_round_2(self, trainer, batch, step, generator):
        if self.steps == 1 and step == 1:
            raise KeyboardInterrupt
        return real(self, trainer, batch, step, generator)

    monkeypatch.setattr(distill_mod.DistillTask, "losses", interrupt_round_2)
    with pytest.raises(KeyboardInterrupt):
        distill(str(teacher), str(tmp_path / "part"), **kw)
    monkeypatch.undo()
    with pytest.raises(VidiffError, match="already holds a distillation; pass --resume"):
        distill(str(teacher), str(tmp_path / "part"), **kw)
    part = distill(str(teacher), str(tmp_path / "part"), resume=True, **kw)
    losses = lambda f: json.loads((f / "losses.json").read_text())  # noqa: E731
    assert [losses(f) for f in part] == [losses(f) for f in full] and len(losses(part[1])) == 3
