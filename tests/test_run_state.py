"""Atomic writes and resumable state: nothing half-written is ever taken as done."""

import json
import logging

import pytest
import torch

from truepose_core import atomic, run_state
from truepose_core.errors import CheckpointError


def _payload(folder):
    torch.save({"state": {0: {"exp_avg": torch.ones(3)}}}, folder / "optimizer.pt")
    (folder / "model.safetensors").write_bytes(b"weights")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    atomic.write_text(path, "old")
    with pytest.raises(RuntimeError), atomic.atomic_file(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_failed_folder_write_publishes_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic.atomic_dir(tmp_path / "state-3") as tmp:
        (tmp / "model.safetensors").write_bytes(b"x")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_what_killed_writes_leave_is_removed_and_nothing_else(tmp_path):
    left = [".latest.safetensors.tmp", ".state-7.old", ".tmpUvFZ6D"]  # the last: safetensors'
    for name in left:
        (tmp_path / name).write_bytes(b"half")
    (tmp_path / ".state-9.tmp").mkdir()
    (tmp_path / "loss.csv").write_text("0,1.0\n")
    (tmp_path / "state-5").mkdir()
    removed = atomic.remove_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted([*left, ".state-9.tmp"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.csv", "state-5"]


def test_a_cut_off_last_line_is_not_read(tmp_path):
    path = tmp_path / "loss.csv"
    atomic.append_line(path, "step,loss")
    atomic.append_line(path, "1,0.5")
    with path.open("a") as f:
        f.write("2,0.4")  # what a power cut can leave
    assert atomic.complete_lines(path) == ["step,loss", "1,0.5"]


def test_resume_skips_an_incomplete_state_in_one_line(tmp_path, caplog):
    for step in (22, 23):
        run_state.save_state(tmp_path, step, _payload, keep=2)
    # What an older version left when killed inside a save (the state-24).
    broken = tmp_path / "state-24"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"weights")
    (broken / "optimizer.pt").write_bytes(b"\x80\x02trunc")
    (tmp_path / ".state-25.tmp").mkdir()  # and what this version leaves
    with caplog.at_level(logging.WARNING, logger="truepose"):
        assert run_state.latest_state(tmp_path) == tmp_path / "state-23"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert "state-24" in lines[1] and "incomplete" in lines[1]
    assert ".state-25.tmp" in lines[0] and "interrupted" in lines[0]


def test_a_save_keeps_the_newest_states_and_drops_the_rest(tmp_path):
    (tmp_path / "state-90").mkdir()  # a later state of an earlier run, started over
    for step in (1, 2, 3):
        run_state.save_state(tmp_path, step, _payload, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-2", "state-3"]
    record = json.loads((tmp_path / "state-3" / "trainer.json").read_text())
    assert record["step"] == 3 and set(record["files"]) == {"model.safetensors", "optimizer.pt"}
    run_state.save_state(tmp_path, 3, _payload, keep=1)  # the same step again: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-3"]


def test_a_state_truncated_after_its_save_names_the_file_and_the_fallback(tmp_path):
    for step in (4, 5):
        run_state.save_state(tmp_path, step, _payload, keep=2)
    optimizer = tmp_path / "state-5" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="state-5/optimizer.pt.*resume from state-4"):
        run_state.read_record(tmp_path / "state-5")


def test_a_state_that_does_not_load_is_a_checkpoint_error(tmp_path):
    run_state.save_state(tmp_path, 7, _payload, keep=1)
    state = tmp_path / "state-7"
    optimizer = state / "optimizer.pt"
    data = optimizer.read_bytes()
    optimizer.write_bytes(b"\0" * len(data))  # same size, garbled: only loading finds it
    run_state.read_record(state)
    with pytest.raises(CheckpointError, match="state-7/optimizer.pt.*no earlier state"):
        run_state.load_file(state, "optimizer.pt", lambda p: torch.load(p, weights_only=True))
    (state / "trainer.json").write_text('{"step": ')  # edited by hand
    with pytest.raises(CheckpointError, match="state-7/trainer.json: unreadable record"):
        run_state.read_record(state)


def test_replacing_a_file_of_a_state_keeps_its_record_true(tmp_path):
    run_state.save_state(tmp_path, 3, _payload, keep=1)
    state = tmp_path / "state-3"
    run_state.replace_file(state, "optimizer.pt", lambda tmp: tmp.write_bytes(b"x" * 123))
    record = run_state.read_record(state)  # sizes checked: the new one is recorded
    assert record["files"]["optimizer.pt"] == 123 and record["step"] == 3
    assert not list(state.glob(".*.tmp"))
