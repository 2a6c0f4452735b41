"""Runs killed with SIGKILL at random moments resume to the very result of uninterrupted ones.

``kill_and_resume.py`` trains a tiny model with a save at every step and kills it up to 15
times within its time budget (many kills land inside a save), then generates images as two
shards and kills those up to 6 times; seeds are fixed. Here the results are compared bit for
bit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent


def _tensors_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _optimizer_equal(a: Path, b: Path) -> bool:
    sa = torch.load(a, weights_only=True)["state"]
    sb = torch.load(b, weights_only=True)["state"]
    return sa.keys() == sb.keys() and all(_tensors_equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
def test_killed_training_and_generation_resume_bit_for_bit(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tests.kill_and_resume", str(tmp_path), "--seed", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,  # about a minute on two idle cores; generous for a loaded machine
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    print(summary)
    assert summary["train_kills"] >= 3 and summary["generate_kills"] >= 3, summary

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    a = load_file(str(straight / "final.safetensors"))
    b = load_file(str(killed / "final.safetensors"))
    assert _tensors_equal(a, b)
    last = max(int(p.name.split("-")[1]) for p in straight.glob("state-*"))
    state_a, state_b = straight / f"state-{last}", killed / f"state-{last}"
    assert _tensors_equal(
        load_file(str(state_a / "model.safetensors")),
        load_file(str(state_b / "model.safetensors")),
    )
    assert _optimizer_equal(state_a / "optimizer.pt", state_b / "optimizer.pt")

    def losses(run: Path) -> list[str]:
        return [line.rsplit(",", 2)[0] for line in (run / "loss.csv").read_text().splitlines()]

    assert losses(straight) == losses(killed)  # step and loss of every step, no half line

    images = sorted(p.name for p in (tmp_path / "gen-straight").iterdir())
    assert len(images) == 8
    assert sorted(p.name for p in (tmp_path / "gen-killed").iterdir()) == images  # no temp
    for name in images:
        produced = (tmp_path / "gen-killed" / name).read_bytes()
        assert produced == (tmp_path / "gen-straight" / name).read_bytes(), name
        Image.open(tmp_path / "gen-killed" / name).load()
    assert not list(killed.glob(".*")), "temporary files were left behind"
