"""The training state is one unit: a save interrupted at any write point leaves a state that resumes
exactly (the loss sequence of the uninterrupted run) or is refused with one line; damaged or foreign
parts are refused; what a crash leaves behind is cleaned; log.jsonl never repeats a step."""
import errno
import json
import shutil

import pytest
import torch

from vidiff.training import state as train_state
from vidiff.training.state import clean_orphans, committed, read_state
from vidiff.utils import VidiffError

from ._toy import Regression, run

WRITE_POINTS = ("_write", "_rename", "_point", "_remove")


class Killed(BaseException):
    """A kill: no `except Exception` handler sees it, so nothing is cleaned up on the way out."""


def _instrument(monkeypatch, fail_at=None, error=None):
    """Count every write operation of a save (and the task's export); raise `error` at call `fail_at`."""
    calls = []

    def wrap(name, fn):
        def op(*args, **kwargs):
            calls.append(name)
            if len(calls) == fail_at:
                raise error
            return fn(*args, **kwargs)
        return op

    for name in WRITE_POINTS:
        monkeypatch.setattr(train_state, name, wrap(name, getattr(train_state, name)))
    monkeypatch.setattr(Regression, "export", wrap("export", Regression.export))
    return calls


def _log_steps(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted 6-step run (saves at 2, 4, 6) and the write operations of each save."""
    mp = pytest.MonkeyPatch()
    try:
        calls = _instrument(mp)
        d = tmp_path_factory.mktemp("ref")
        final = run(d, 6)
    finally:
        mp.undo()
    # the operations of one save: the step's parts, rename, pointer, old folder removed, export
    per_save = ["_write"] * 4 + ["_rename", "_point"]
    first = per_save + ["export"]
    second = per_save + ["_remove", "export"]
    assert calls[:len(first) + len(second)] == first + second
    return final, _log_steps(d), calls, len(first), len(second)


def test_every_write_point_of_a_save_resumes_exactly_or_is_refused(reference, tmp_path, monkeypatch):
    ref, ref_log, ops, n_first, n_second = reference
    for k in range(n_first + 1, n_first + n_second + 1):  # each operation of the save at step 4
        for error in (Killed(), OSError(errno.ENOSPC, "No space left on device")):
            d = tmp_path / f"op{k}-{type(error).__name__}"
            mp = pytest.MonkeyPatch()
            _instrument(mp, fail_at=k, error=error)
            raised = None
            try:
                run(d, 6)
            except (Killed, VidiffError) as e:
                raised = e
            finally:
                mp.undo()
            if raised is None:  # only removing the superseded folder is best effort (cleaned at the next start)
                assert ops[k - 1] == "_remove" and isinstance(error, OSError)
                continue
            if isinstance(raised, VidiffError):  # a full disk: one line, and the committed state is kept
                msg = str(raised)
                assert "\n" not in msg and "No space left" in msg and "free some disk space" in msg
            kept = committed(d)
            assert kept is not None and kept.name in ("step_0000002", "step_0000004")
            try:
                resumed = run(d, 6, resume=True)
            except VidiffError as e:  # refusing is allowed, with one line
                assert "\n" not in str(e)
                continue
            assert resumed["losses"] == ref["losses"], (k, error)  # exact, not approximate
            log = _log_steps(d)
            assert [e["step"] for e in log] == list(range(1, 7)) and log == [
                {**e, "elapsed": x["elapsed"]} for e, x in zip(ref_log, log)]
            ts = d / "train_state"
            assert sorted(p.name for p in ts.iterdir()) == ["LATEST", "step_0000006"]  # orphans cleaned
            assert not list(d.rglob(".*.tmp*"))


def test_damaged_or_foreign_state_is_refused_with_one_line(tmp_path):
    good = tmp_path / "good"
    run(good, 2)
    folder, state = read_state(good)
    assert state["step"] == 2 and set(state["files"]) == {
        "model.safetensors", "model.ema.safetensors", "model.optimizer.pt"}

    def damaged(name, how):
        d = tmp_path / name
        shutil.copytree(good, d)
        how(committed(d))
        with pytest.raises(VidiffError) as e:
            run(d, 3, resume=True)
        assert "\n" not in str(e.value)
        return str(e.value)

    def truncate(path):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    msg = damaged("opt", lambda f: truncate(f / "model.optimizer.pt"))
    assert "model.optimizer.pt does not match the checksum" in msg and "start a new run" in msg
    msg = damaged("json", lambda f: truncate(f / "state.json"))
    assert "state.json is missing, truncated" in msg
    msg = damaged("pointer", lambda f: (f.parent / "LATEST").write_text("step_0000009\n"))
    assert "names 'step_0000009'" in msg

    def other_step(f):  # a part of another step, with a checksum that matches it: the step tag tells
        other = tmp_path / "other"
        run(other, 1)
        shutil.copy(committed(other) / "model.ema.safetensors", f / "model.ema.safetensors")
        st = json.loads((f / "state.json").read_text())
        st["files"]["model.ema.safetensors"] = train_state.sha256(f / "model.ema.safetensors")
        (f / "state.json").write_text(json.dumps(st))
    msg = damaged("mixed", other_step)
    assert "model.ema.safetensors is of step 1, the state of step 2" in msg

    # a different network than the run's: one line naming the first differing tensor
    with pytest.raises(VidiffError, match=r"holds another network than this run builds \(0.weight is \(16, 4\) "
                                          r"there, \(8, 4\) here\)"):
        run(good, 3, resume=True, width=8)
    # nothing to resume, or the old single-folder layout
    with pytest.raises(VidiffError, match="not found; start without --resume"):
        run(tmp_path / "none", 1, resume=True)
    legacy = tmp_path / "legacy" / "train_state"
    legacy.mkdir(parents=True)
    (legacy / "state.json").write_text('{"step": 3}')
    with pytest.raises(VidiffError, match="older vidiff .* --init-from"):
        run(tmp_path / "legacy", 4, resume=True)
    # and the run itself is intact: it resumes
    assert run(good, 3, resume=True)["step"] == 3


def test_orphans_are_cleaned_and_a_new_run_never_overwrites_one(tmp_path):
    d = tmp_path / "run"
    run(d, 2)
    ts = d / "train_state"
    (ts / ".tmp-step_0000004-123").mkdir()
    (ts / ".tmp-step_0000004-123" / "model.safetensors").write_bytes(b"half")
    (ts / "step_0000004").mkdir()  # renamed, but the pointer was never switched
    (d / ".model.abc123.tmp.safetensors").write_bytes(b"half")
    removed = clean_orphans(d)
    assert {p.name for p in removed} == {".tmp-step_0000004-123", "step_0000004", ".model.abc123.tmp.safetensors"}
    assert sorted(p.name for p in ts.iterdir()) == ["LATEST", "step_0000002"]
    with pytest.raises(VidiffError, match="already holds a run; pass --resume"):
        run(d, 3)
    # a run that crashed before its first save holds nothing to protect: it starts again
    fresh = tmp_path / "fresh"
    (fresh / "train_state" / ".tmp-step_0000002-1").mkdir(parents=True)
    (fresh / "log.jsonl").parent.mkdir(exist_ok=True)
    (fresh / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
    assert run(fresh, 1)["step"] == 1
    assert [e["step"] for e in _log_steps(fresh)] == [1]


def test_state_json_and_log_are_strict_json(tmp_path):
    d = tmp_path / "run"
    state = run(d, 2, task=Regression())
    text = (committed(d) / "state.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in state.json"))
    assert state["losses"] == json.loads(text)["losses"] and len(state["losses"]) == 2
    assert torch.isfinite(torch.tensor(state["losses"])).all()
