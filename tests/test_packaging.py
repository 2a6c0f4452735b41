"""Registry metadata and the install ComfyUI-Manager does.

The metadata checks need nothing; the install test needs a ComfyUI checkout and git. It
clones the pack into a fresh ``custom_nodes``, runs ``pip install -r requirements.txt`` in a
new virtual environment that sees this interpreter's packages (so the host's torch is used and
nothing is downloaded: pip runs with ``--no-index``), and starts ComfyUI's server from that
environment.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from comfy_harness import PACK_NAME, REPO_ROOT, ComfyServer, find_comfyui

tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml (tomllib)")

HOST_PACKAGES = ("torch", "torchvision", "torchaudio")


def _pyproject() -> dict:
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _sync_module():
    path = REPO_ROOT / "scripts" / "sync_requirements.py"
    spec = importlib.util.spec_from_file_location("sync_requirements", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return Requirement(requirement).name.lower().replace("_", "-")


def test_requirements_txt_is_written_from_pyproject():
    written = _sync_module().requirements_text()
    assert (REPO_ROOT / "requirements.txt").read_text() == written, (
        "requirements.txt disagrees with pyproject.toml: run python scripts/sync_requirements.py"
    )
    listed = [line for line in written.splitlines() if line and not line.startswith("#")]
    assert listed == _pyproject()["project"]["dependencies"]


def test_no_host_package_is_a_dependency():
    """ComfyUI-Manager must never replace ComfyUI's own torch build."""
    names = {_name(r) for r in _pyproject()["project"]["dependencies"]}
    assert not names & set(HOST_PACKAGES)


def test_registry_metadata_names_the_comfyui_it_needs():
    from packaging.specifiers import SpecifierSet

    comfy = _pyproject()["tool"]["comfy"]
    for key in ("PublisherId", "DisplayName", "Icon", "requires-comfyui"):
        assert comfy.get(key), f"[tool.comfy] {key} is missing"
    required = SpecifierSet(comfy["requires-comfyui"])
    assert "0.3.63" not in required  # older hosts cannot load a V3-only pack
    comfyui = find_comfyui()
    if comfyui is not None:  # the host the tests run against must qualify
        namespace: dict = {}
        exec((comfyui / "comfyui_version.py").read_text(), namespace)
        assert namespace["__version__"] in required


# ---------------------------------------------------------------------------------------------
# The install ComfyUI-Manager does


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)


def _clone_as_manager_would(target: Path) -> None:
    """``git clone`` of this repository, with the working tree's tracked files laid over it
    (so uncommitted edits are tested too, and untracked files are not shipped)."""
    done = _run(["git", "clone", "--quiet", str(REPO_ROOT), str(target)])
    if done.returncode != 0:
        pytest.skip(f"git clone of the repository failed: {done.stderr.strip()[:200]}")
    tracked = _run(["git", "ls-files", "-z"], cwd=REPO_ROOT).stdout.split("\0")
    for name in filter(None, tracked):
        source, copy = REPO_ROOT / name, target / name
        if source.is_file():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
        elif copy.exists():
            copy.unlink()


@pytest.mark.comfyui
def test_manager_style_install_starts_the_server(tmp_path):
    comfyui = find_comfyui()
    if shutil.which("git") is None:
        pytest.skip("git not found: the install test clones the pack as ComfyUI-Manager does")
    base = tmp_path / "comfy"
    pack = base / "custom_nodes" / PACK_NAME
    pack.parent.mkdir(parents=True)
    _clone_as_manager_would(pack)
    assert not (pack / "workflows").exists() and (pack / "example_workflows").is_dir()

    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv])
    if made.returncode != 0:
        pytest.skip(f"python -m venv failed: {made.stderr.strip()[:200]}")
    python = venv / "bin" / "python"
    installed = _run(
        [python, "-m", "pip", "install", "--no-index", "-r", pack / "requirements.txt"],
        cwd=pack,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    own = Path(site.stdout.strip())
    assert own.is_relative_to(venv)
    assert not [p for p in own.iterdir() if p.name.split("-")[0] in HOST_PACKAGES], (
        "pip put a copy of torch into the environment"
    )

    server = ComfyServer(comfyui, base, python=str(python)).start(timeout=600)
    try:
        registered = server.object_info()
        assert "TruePose_LoadTruePose" in registered
        assert registered["TruePose_HPFAPatchModel"]["display_name"].startswith("TruePose ")
        templates = server.get_json("/workflow_templates")[PACK_NAME]
        assert sorted(templates) == sorted(
            p.stem for p in (pack / "example_workflows").glob("*.json")
        )
    finally:
        server.stop()
