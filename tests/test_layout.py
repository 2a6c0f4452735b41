"""Project rules that code review alone would miss."""

import ast
import socket
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOST_MODULES = {
    "comfy",
    "comfy_api",
    "comfy_extras",
    "folder_paths",
    "nodes",
    "server",
    "execution",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_comfyui():
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & HOST_MODULES)
        for path in (ROOT / "truepose_core").rglob("*.py")
        if _imports(path) & HOST_MODULES
    }
    assert not offenders, f"truepose_core must stay host-agnostic: {offenders}"


def test_core_never_uses_unsafe_torch_load():
    for path in (ROOT / "truepose_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "load":
                owner = getattr(node.func.value, "id", "")
                if owner == "torch":
                    kw = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
                    assert kw.get("weights_only") is True, (
                        f"{path}:{node.lineno} torch.load without weights_only=True"
                    )


def test_network_is_blocked_during_tests():
    with pytest.raises(ConnectionRefusedError, match="network access is blocked"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)
    with pytest.raises(OSError):
        urllib.request.urlopen("http://93.184.216.34/", timeout=1)


def test_package_data_and_licence_present():
    assert (
        (ROOT / "LICENSE").read_text().startswith("                    GNU GENERAL PUBLIC LICENSE")
    )
    assert (ROOT / "truepose_core" / "data" / "__init__.py").is_file()
    lines = (ROOT / "requirements.txt").read_text().lower().splitlines()
    names = [line.split(">")[0].split("=")[0].strip() for line in lines if not line.startswith("#")]
    assert not {"torch", "torchvision", "torchaudio"} & set(names)
