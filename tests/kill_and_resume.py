"""Fault injection: kill ``truepose train`` and ``truepose generate`` with SIGKILL, resume.

Run by ``test_fault_injection.py`` as ``python -m tests.kill_and_resume WORK``. The heavy
imports happen once here; each run is then a forked child that executes the real command
(``cli.main``) and is killed at a seeded random moment, so a kill costs a fraction of a
second rather than a fresh interpreter's start. Writes the same work uninterrupted, for
comparison, and prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

import torch

from truepose_core.cli import main as cli_main
from truepose_core.generate import generate_pairs

#: Imported once before any fork, so a child starts at once; no torch computation happens
#: in this parent process.
PRELOAD = (
    "matplotlib.pyplot",
    "accelerate",
    "diffusers",
    "safetensors.torch",
    "tqdm.auto",
    "truepose_core.checkpoint",
    "truepose_core.data.batch",
    "truepose_core.data.synthfashion",
    "truepose_core.pipeline",
    "truepose_core.presets",
    "truepose_core.sampling",
    "truepose_core.train",
)

TRAIN_STEPS = 20
GENERATE_PAIRS = 8
WORLD = 2  # generate runs as two concurrent shards, as under accelerate launch


def _fork(work) -> int:
    pid = os.fork()
    if pid == 0:  # the child: do the work, never return into the parent's code
        os.dup2(2, 1)  # the parent's stdout carries only the summary
        code = 1
        try:
            code = work() or 0  # the command's exit status
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def _wait(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child {pid} failed with status {status}")


def _make_vae(path: Path) -> None:
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    from truepose_core.presets import tiny_vae_config

    torch.manual_seed(0)
    vae = AutoencoderKL.from_config(tiny_vae_config())
    meta = {"vae_config": json.dumps(tiny_vae_config())}
    save_file(vae.state_dict(), str(path), metadata=meta)


def _train_config(work: Path, name: str) -> Path:
    cfg = {
        "output_dir": str(work / name),
        "vae": str(work / "vae.safetensors"),
        "batch_size": 2,
        "train_pairs": 6,
        "lr": 2e-3,
        "log_every": 1,
        "save_every": 1,
        "max_steps": TRAIN_STEPS,
        "model": {"resolution": [64, 64]},
    }
    path = work / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return path


def _train(config: Path):
    return lambda: cli_main(["train", "--config", str(config)])


def _generate(checkpoint: Path, out: Path, rank: int):
    def work():
        generate_pairs(
            checkpoint, "synthfashion", "", out, limit=GENERATE_PAIRS, batch_size=2, steps=2,
            rank_world=(rank, WORLD),
        )  # fmt: skip

    return work


def _kill_rounds(start, watch: Path, kills: int, until: float, least: int) -> tuple[int, int]:
    """Kill runs at random moments until ``kills`` kills landed or, after ``least`` of them,
    the clock passed ``until``.

    ``start()`` forks the processes of one run and returns (pids, victims, wait): ``wait()``
    sleeps until the moment of the kill, then the victims still alive get SIGKILL and the
    others run to their end. Returns the kills and how many of them left a temporary file
    in ``watch`` (a kill inside a write).
    """
    done = inside_writes = 0
    for _round in range(4 * kills):  # a round whose processes all ended first kills nothing
        if done >= kills or (done >= least and time.monotonic() > until):
            break
        pids, victims, wait = start()
        wait()
        hit = False
        for pid in victims:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                hit = True
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        done += hit
        inside_writes += hit and any(watch.rglob(".*.tmp"))
    return done, inside_writes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-kills", type=int, default=15)
    parser.add_argument("--generate-kills", type=int, default=6)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds for the kills")
    parser.add_argument("--least", type=int, default=3, help="kills of each command, always")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    for name in PRELOAD:
        importlib.import_module(name)
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    started = time.monotonic()
    _wait(_fork(lambda: _make_vae(work / "vae.safetensors")))

    # The uninterrupted runs first; they also tell how long a step and a shard take here.
    _wait(_fork(_train(_train_config(work, "straight"))))
    rows = (work / "straight" / "loss.csv").read_text().split()[1:]
    step_s = float(rows[-1].split(",")[3]) / len(rows)
    checkpoint = work / "straight" / "final.safetensors"
    shard_s = time.monotonic()
    for rank in range(WORLD):
        _wait(_fork(_generate(checkpoint, work / "gen-straight", rank)))
    shard_s = (time.monotonic() - shard_s) / WORLD

    killed = _train_config(work, "killed")
    log = work / "killed" / "loss.csv"

    def start_train():
        before = _inode(log)
        pid = _fork(_train(killed))

        def wait() -> None:
            if rng.random() < 0.2:  # now and then while it starts and loads the state
                time.sleep(rng.uniform(0.0, 1.0))
                return
            # Otherwise once it trains (loss.csv is rewritten just before the first step),
            # anywhere in the next step and a half: a step, a state save or a checkpoint write.
            while _inode(log) == before and _alive(pid):
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 1.5 * step_s))

        return [pid], [pid], wait

    until = time.monotonic() + args.budget * 3 / 4
    train_kills, train_inside = _kill_rounds(
        start_train, work / "killed", args.train_kills, until, args.least
    )
    _wait(_fork(_train(killed)))  # resume to the end

    def start_generate():
        pids = [_fork(_generate(checkpoint, work / "gen-killed", r)) for r in range(WORLD)]
        victims = [p for p in pids if rng.random() < 0.75] or pids[:1]
        return pids, victims, lambda: time.sleep(rng.uniform(0.1, 1.2) * shard_s)

    until = time.monotonic() + args.budget / 4
    generate_kills, generate_inside = _kill_rounds(
        start_generate, work / "gen-killed", args.generate_kills, until, args.least
    )
    for pid in start_generate()[0]:  # resume to the end
        _wait(pid)
    summary = {
        "train_kills": train_kills,
        "train_kills_inside_a_write": train_inside,
        "generate_kills": generate_kills,
        "generate_kills_inside_a_write": generate_inside,
        "step_seconds": round(step_s, 2),
        "shard_seconds": round(shard_s, 2),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary))


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _alive(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False


if __name__ == "__main__":
    main()
