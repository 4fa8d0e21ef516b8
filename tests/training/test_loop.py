"""The trainer core: several modules and optimizers in one state, frozen parameters, EMA, a non-finite
loss, SIGINT/SIGTERM (also during a save), and exact resume of all of it."""
import json
import os
import signal

import pytest
import torch
from torch import nn

from vidiff.checkpoint import load_state_dict
from vidiff.training import LoopConfig, OptimizerSpec, StepBatches, Task, Trainer, committed, ema_decay_at
from vidiff.training import state as train_state
from vidiff.utils import VidiffError

from ._toy import Points, Regression, make_model, run


class Adversarial(Task):
    """A generator and a critic with their own optimizers (hinge losses); the critic trains from step
    `warmup` on, as an autoencoder's discriminator does after a warm-up."""

    def __init__(self, warmup: int):
        self.warmup = warmup

    def losses(self, trainer, batch, step, generator):
        gen, critic = trainer.modules["gen"], trainer.modules["critic"]
        fake = gen(batch["x"] + 0.1 * torch.randn(batch["x"].shape, generator=generator))  # (B, 4)
        real = batch["x"]
        g_loss = (fake - real).pow(2).mean()
        if step < self.warmup:
            return {"gen": g_loss}
        g_loss = g_loss - 0.1 * critic(fake).mean()
        d_loss = torch.relu(1 - critic(real)).mean() + torch.relu(1 + critic(fake.detach())).mean()
        return {"gen": g_loss, "critic": d_loss}


def _adversarial(run_dir, steps, resume=False, warmup=2):
    torch.manual_seed(0)
    gen, critic = nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    trainer = Trainer({"gen": gen, "critic": critic},
                      {"gen": OptimizerSpec("gen", lr=1e-2), "critic": OptimizerSpec("critic", lr=1e-2, kind="adam")},
                      Adversarial(warmup), run_dir=run_dir, ema={"gen": 0.5},
                      config=LoopConfig(steps=steps, save_every=2, log_every=1, progress=False, device="cpu"))
    state = trainer.fit(StepBatches(Points(), 4, seed=1), resume=resume)
    return trainer, state


def test_two_modules_with_their_own_optimizers_resume_exactly(tmp_path):
    torch.manual_seed(0)  # the critic's initial weights, as `_adversarial` draws them
    nn.Linear(4, 4)
    critic0 = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)).state_dict()
    # up to the end of the warm-up, the critic has neither changed nor optimizer state
    trainer, state = _adversarial(tmp_path / "warm", 2)
    assert all(torch.equal(trainer.raw["critic"].state_dict()[k], v) for k, v in critic0.items())
    assert not trainer.optimizers["critic"].state_dict()["state"]
    assert state["other_losses"]["critic"] == [None, None]
    # after it both train, and a run interrupted at step 4 and resumed equals the uninterrupted one
    _, full = _adversarial(tmp_path / "full", 6)
    assert all(v is not None for v in full["other_losses"]["critic"][2:])
    _adversarial(tmp_path / "part", 4)
    trainer, part = _adversarial(tmp_path / "part", 6, resume=True)
    assert part["losses"] == full["losses"] and part["other_losses"] == full["other_losses"]
    files = json.loads((committed(tmp_path / "part") / "state.json").read_text())["files"]
    assert set(files) == {"gen.safetensors", "critic.safetensors", "gen.ema.safetensors", "gen.optimizer.pt",
                          "critic.optimizer.pt"}
    log = [json.loads(line) for line in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4, 5, 6] and log[0]["loss_critic"] is None
    assert log[-1]["loss_critic"] == pytest.approx(full["other_losses"]["critic"][-1])


def test_frozen_parameters_stay_bit_identical_and_get_no_optimizer_state(tmp_path):
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer({"model": model}, {"model": OptimizerSpec("model", lr=5e-2)}, Regression(),
                      config=LoopConfig(steps=5, progress=False, device="cpu"), ema={"model": 0.9},
                      trainable=["model.3."])  # the output layer only
    trainer.fit(StepBatches(Points(), 4))
    after = model.state_dict()
    assert torch.equal(after["0.weight"], before["0.weight"]) and torch.equal(after["0.bias"], before["0.bias"])
    assert not torch.equal(after["3.weight"], before["3.weight"])
    opt_state = trainer.optimizers["model"].state_dict()["state"]
    assert len(opt_state) == 2 and {tuple(s["exp_avg"].shape) for s in opt_state.values()} == {(1, 16), (1,)}
    assert torch.equal(trainer.ema["model"].state_dict()["0.weight"], before["0.weight"])
    assert all(p.requires_grad for p in model.parameters())  # the caller's flags are restored
    # a predicate works the same; a selection that matches nothing is one line
    with pytest.raises(VidiffError, match="match nothing"):
        Trainer({"model": make_model()}, {"model": OptimizerSpec("model", lr=1e-2)}, Regression(),
                config=LoopConfig(steps=1, progress=False, device="cpu"),
                trainable=lambda name, p: "temporal" in name).fit(StepBatches(Points(), 4))


def test_ema_follows_its_closed_form(tmp_path):
    """After one step from θ0 to θ1 the EMA is d θ0 + (1 − d) θ1 with d = min(decay, 1/10)."""
    model = make_model()
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer({"model": model}, {"model": OptimizerSpec("model", lr=1e-2)}, Regression(),
                      config=LoopConfig(steps=1, progress=False, device="cpu"), ema={"model": 0.999})
    trainer.fit(StepBatches(Points(), 4))
    d = ema_decay_at(0.999, 0)
    assert d == pytest.approx(0.1)
    for k, v in trainer.ema["model"].state_dict().items():
        torch.testing.assert_close(v, d * theta0[k] + (1 - d) * model.state_dict()[k])


def test_a_non_finite_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    d = tmp_path / "nan"
    with pytest.raises(VidiffError) as e:
        run(d, 10, task=Regression(nan_at=5))  # saves at 2 and 4, then the loss of step 5 is NaN
    msg = str(e.value)
    assert "\n" not in msg and "loss became nan at step 5" in msg and "keeps the checkpoint of step 4" in msg
    assert committed(d).name == "step_0000004"
    cfg = (d / "config.json").read_text()
    json.loads(cfg, parse_constant=lambda c: pytest.fail(f"bare {c} in config.json"))
    assert json.loads(cfg)["summary"]["steps"] == 4
    assert all(torch.isfinite(v).all() for v in load_state_dict(d / "model.safetensors").values())
    # from the first step on: nothing was saved, and the message says so
    with pytest.raises(VidiffError, match="no checkpoint was saved before"):
        run(tmp_path / "nan0", 3, task=Regression(nan_at=0))


def test_sigint_saves_and_resumes_exactly_also_when_it_arrives_during_a_save(tmp_path, monkeypatch):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)  # SIG_IGN in a background job
    full = run(tmp_path / "full", 6)

    def interrupt(step, losses):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    trainer = Trainer({"model": make_model()}, {"model": OptimizerSpec("model", lr=3e-2, grad_clip=1.0)}, Regression(),
                      run_dir=tmp_path / "intr", ema={"model": 0.9}, callback=interrupt,
                      config=LoopConfig(steps=6, save_every=2, log_every=1, progress=False, device="cpu"))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(StepBatches(Points(), 4, seed=0))
    assert committed(tmp_path / "intr").name == "step_0000003"
    assert run(tmp_path / "intr", 6, resume=True)["losses"] == full["losses"]
    # a signal while the state is being written: the save completes, then the run stops
    point = train_state._point

    def point_then_signal(ts, name):
        os.kill(os.getpid(), signal.SIGTERM)
        point(ts, name)

    monkeypatch.setattr(train_state, "_point", point_then_signal)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "during", 6)
    monkeypatch.undo()
    assert committed(tmp_path / "during").name == "step_0000002"
    assert run(tmp_path / "during", 6, resume=True)["losses"] == full["losses"]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers restored


def test_minutes_budget_and_bad_settings():
    with pytest.raises(VidiffError, match="--steps N or --minutes M"):
        Trainer({"model": make_model()}, {"model": OptimizerSpec("model", lr=1e-2)}, Regression(), config=LoopConfig())
    with pytest.raises(VidiffError, match="unknown module"):
        Trainer({"model": make_model()}, {"model": OptimizerSpec("net", lr=1e-2)}, Regression(),
                config=LoopConfig(steps=1))
    with pytest.raises(VidiffError, match="unknown optimizer 'sgd'"):
        Trainer({"model": make_model()}, {"model": OptimizerSpec("model", lr=1e-2, kind="sgd")}, Regression(),
                config=LoopConfig(steps=1, progress=False, device="cpu")).fit(StepBatches(Points(), 4))
    state = Trainer({"model": make_model()}, {"model": OptimizerSpec("model", lr=1e-2)}, Regression(),
                    config=LoopConfig(minutes=1e-9, progress=False, device="cpu")).fit(StepBatches(Points(), 4))
    assert state["step"] == 0  # a spent budget trains nothing
