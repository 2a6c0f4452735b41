"""Import a file of ``scripts/`` (not a package) as a module, for tests of its helpers."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def script_module(name: str) -> ModuleType:
    """``scripts/<name>.py``, executed as module ``name`` (its ``main`` does not run)."""
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
