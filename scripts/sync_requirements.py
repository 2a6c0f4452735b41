"""Write requirements.txt from pyproject.toml's ``[project] dependencies``, the one source.

ComfyUI-Manager installs a pack with ``pip install -r requirements.txt``; the Registry and
``pip install .`` read pyproject.toml. Run ``python scripts/sync_requirements.py`` after
changing the dependencies; ``tests/test_packaging.py`` fails while the two disagree.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEADER = (
    "# Written by scripts/sync_requirements.py from pyproject.toml [project] dependencies: edit\n"
    "# those and rerun it. ComfyUI-Manager installs these into ComfyUI's own environment, which\n"
    "# already has torch and torchvision, so neither is listed.\n"
)


def dependencies(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    with pyproject.open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def requirements_text(pyproject: Path = REPO / "pyproject.toml") -> str:
    return HEADER + "".join(f"{line}\n" for line in dependencies(pyproject))


def main() -> int:
    target = REPO / "requirements.txt"
    target.write_text(requirements_text())
    print(f"wrote {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
