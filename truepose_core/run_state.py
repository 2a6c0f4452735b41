"""Resumable training state: ``state-<step>`` folders that are complete or absent.

A state is written into a temporary folder and published with one rename (see
:mod:`.atomic`); its record, ``trainer.json``, is written last and holds the step and the size
of every file. Resume takes the newest complete state and says in one line when it skips an
incomplete one (left by an older version killed mid-save). A state damaged after it was
written (a full disk, a hand edit) raises :class:`CheckpointError` naming the file and the
state to fall back on.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .atomic import atomic_dir, atomic_file, remove, write_text
from .errors import CheckpointError

RECORD = "trainer.json"
#: States kept on disk after a save: the newest and one to fall back on if it is damaged.
DEFAULT_KEEP = 2
_NAME = re.compile(r"state-(\d+)")
_log = logging.getLogger("truepose")


def _states(folder: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every ``state-<step>`` folder, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _NAME.fullmatch(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def is_complete(state: Path) -> bool:
    """Whether the save of ``state`` finished: its record, written last, is there."""
    return (state / RECORD).is_file()


def latest_state(folder: str | Path, say: Callable[[str], None] | None = None) -> Path | None:
    """The newest complete state in ``folder``; each skipped incomplete one is told to ``say``."""
    say = say or _log.warning
    folder = Path(folder)
    for tmp in sorted(folder.glob(".state-*.tmp")) if folder.is_dir() else []:
        say(f"ignoring {tmp}: its save was interrupted")
    for _step, state in reversed(_states(folder)):
        if is_complete(state):
            return state
        say(f"skipping {state}: incomplete (no {RECORD}; its save was interrupted)")
    return None


def _previous(state: Path) -> Path | None:
    step = int(_NAME.fullmatch(state.name).group(1))
    older = [p for s, p in _states(state.parent) if s < step and is_complete(p)]
    return older[-1] if older else None


def damaged(state: Path, file: Path, problem: str) -> CheckpointError:
    """The error for a state that was complete when written and is not now."""
    previous = _previous(state)
    if previous is not None:
        fix = f"move {state.name} aside to resume from {previous.name}"
    else:
        fix = (
            f"no earlier state is kept; move {state.name} aside to start again from step 0 "
            f"(keep_states >= 2 keeps one to fall back on)"
        )
    return CheckpointError(f"{file}: {problem}; the state was damaged after it was saved: {fix}")


def read_record(state: Path) -> dict[str, Any]:
    """The record of a complete state, after checking every file still has its saved size."""
    path = state / RECORD
    try:
        record = json.loads(path.read_text())
        step = int(record["step"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise damaged(state, path, f"unreadable record ({exc})") from exc
    if f"state-{step}" != state.name:
        raise damaged(state, path, f"records step {step}, not the folder's")
    for name, size in record.get("files", {}).items():
        f = state / name
        found = f.stat().st_size if f.is_file() else None
        if found != size:
            what = "missing" if found is None else f"{found} bytes, saved as {size}"
            raise damaged(state, f, what)
    return record


def load_file(state: Path, name: str, load: Callable[[Path], Any]) -> Any:
    """``load(state / name)``, with any failure to read it turned into a CheckpointError."""
    path = state / name
    try:
        return load(path)
    except CheckpointError:
        raise
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
        raise damaged(state, path, f"cannot be read ({type(exc).__name__}: {exc})") from exc


def load_torch(state: Path, name: str) -> Any:
    """A state's ``torch.save`` file (optimizer, EMA, scheduler), on the CPU; tensors and
    plain containers only (``weights_only=True``: a pickle that carries code is refused)."""
    import torch

    return load_file(state, name, lambda p: torch.load(p, map_location="cpu", weights_only=True))


def load_weights(state: Path, name: str, module: Any) -> None:
    """Load the safetensors file ``state / name`` into ``module`` strictly."""
    from safetensors.torch import load_file as read

    weights = load_file(state, name, lambda p: read(str(p)))
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{state / name}: does not fit the model of this configuration ({first}); resume "
            "with the configuration it was saved with, or start over with --no-resume"
        ) from exc


def replace_file(state: Path, name: str, write: Callable[[Path], None]) -> None:
    """Replace one file of a complete state (``write(tmp)`` writes it) and update its record.

    Each is replaced in one rename; a kill between the two leaves a record that no longer
    matches, which :func:`read_record` reports as a damaged state rather than loading it.
    """
    record = read_record(state)
    with atomic_file(state / name) as tmp:
        write(tmp)
    record["files"][name] = (state / name).stat().st_size
    write_text(state / RECORD, json.dumps(record, sort_keys=True))


def save_state(
    folder: str | Path,
    step: int,
    write: Callable[[Path], None],
    keep: int = DEFAULT_KEEP,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Publish ``state-<step>`` atomically, then delete all but the newest ``keep`` states.

    ``write(tmp)`` writes the payload files into the temporary folder; the record follows.
    States of later steps (from an earlier run started over with ``--no-resume``) and
    incomplete ones are deleted too, but only after the new state is in place.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"state-{step}"
    with atomic_dir(final) as tmp:
        write(tmp)
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        record = {**(extra or {}), "step": step, "files": files}
        (tmp / RECORD).write_text(json.dumps(record, sort_keys=True))
    older = [p for s, p in _states(folder) if s < step and is_complete(p)]
    kept = older[-(keep - 1) :] if keep > 1 else []
    for _s, p in _states(folder):
        if p != final and p not in kept:
            remove(p)
    return final
