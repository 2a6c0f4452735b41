"""Writes that a kill at any moment cannot leave half done.

A file or folder is written under a hidden temporary name beside its final place, flushed to
disk, and made visible with one ``os.replace``: a reader sees the old version or the new one,
never a mixture. The temporary name is derived from the final one, so a rerun overwrites what
a killed run left behind; each final path must have one writer at a time (``generate`` shards
by pair, the trainer saves from its main process only).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def temp_path(path: Path) -> Path:
    """The hidden name ``path`` is written under; never matched by ``*.png`` or ``state-*``."""
    return path.with_name(f".{path.name}.tmp")


def fsync_file(path: Path) -> None:
    """Flush a written file to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` survive a power cut (a no-op where unsupported)."""
    with contextlib.suppress(OSError):
        fsync_file(folder)


def remove(path: Path) -> None:
    """Delete a file or a folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


#: What killed writes leave: ours (``temp_path``, ``.old`` swaps) and safetensors' own
#: ``save_file``, which writes a ``.tmpXXXXXX`` file beside its target and renames it.
TEMPORARY_PATTERNS = (".*.tmp", ".*.old", ".tmp*")


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete what killed writes left in ``folder``; only while nothing else writes there."""
    if not folder.is_dir():
        return []
    found = sorted({p for pattern in TEMPORARY_PATTERNS for p in folder.glob(pattern)})
    for path in found:
        remove(path)
    return found


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one rename.

    The temporary name does not end in ``path``'s suffix, so pass the format explicitly
    (``Image.save(tmp, format="PNG")``). On an exception the temporary file is removed.
    """
    path = Path(path)
    tmp = temp_path(path)
    remove(tmp)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise
    fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes ``path`` in one rename.

    Every file in it is flushed before the rename. An existing ``path`` is moved aside first
    and deleted after, so a kill in between leaves the older folders, never a partial one.
    """
    path = Path(path)
    tmp = temp_path(path)
    remove(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                fsync_file(f)
        fsync_dir(tmp)
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            remove(old)
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise
    fsync_dir(path.parent)
    remove(old)


def append_line(path: str | Path, line: str) -> None:
    """Append one line with a single ``write``: a kill leaves the whole line or none of it.

    (A power cut can still cut the last line short; :func:`complete_lines` drops it.)
    """
    data = (line.rstrip("\n") + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def complete_lines(path: str | Path) -> list[str]:
    """The lines of a text file that end in a newline; a cut-off last line is left out."""
    text = Path(path).read_text(errors="replace")
    lines = text.split("\n")
    return lines[:-1]  # the part after the last newline is empty or incomplete


def is_complete_image(path: str | Path) -> bool:
    """Whether ``path`` is an image file that decodes to its end (a resume check)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()  # checks every chunk's checksum up to the end marker
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError):
        return False
    return True
