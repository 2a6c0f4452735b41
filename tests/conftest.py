"""Fixtures for the ComfyUI node tests; see ``comfy_harness.py`` for what they give.

Tests marked ``comfyui`` need a real ComfyUI (``$COMFYUI_PATH``, else /opt/ComfyUI); tests
marked ``browser`` also need Debian's chromium + chromium-driver and pip selenium. Without
them those tests are skipped with one reason, printed in the report header too.
"""

from __future__ import annotations

import socket

import pytest
from comfy_harness import (
    COMFYUI_MISSING,
    ComfyLibrary,
    ComfyServer,
    browser_missing_reason,
    find_browser,
    find_comfyui,
)

COMFYUI = find_comfyui()
BROWSER = find_browser()
_LOOPBACK = ("127.", "::1", "localhost")


def _guarded_connect(original):
    """Refuse every connection that does not stay on this machine."""

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and not host.startswith(_LOOPBACK)
            and sock.family != socket.AF_UNIX
        ):
            raise ConnectionRefusedError(f"network access is blocked in tests (tried {address!r})")
        return original(sock, address)

    return connect


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """The whole suite runs offline: any code path that tries to download fails loudly."""
    original = socket.socket.connect
    socket.socket.connect = _guarded_connect(original)
    try:
        yield
    finally:
        socket.socket.connect = original


def pytest_report_header(config):
    lines = [f"ComfyUI: {COMFYUI}" if COMFYUI else COMFYUI_MISSING.upper()]
    if COMFYUI:
        lines.append(f"browser: {BROWSER[0]}" if BROWSER else browser_missing_reason())
    return lines


def pytest_collection_modifyitems(config, items):
    skip_comfy = pytest.mark.skip(reason=COMFYUI_MISSING)
    skip_browser = pytest.mark.skip(reason=browser_missing_reason())
    for item in items:
        if COMFYUI is None and item.get_closest_marker("comfyui"):
            item.add_marker(skip_comfy)
        elif BROWSER is None and item.get_closest_marker("browser"):
            item.add_marker(skip_browser)


@pytest.fixture(scope="session")
def comfy(tmp_path_factory) -> ComfyLibrary:
    """ComfyUI imported into the test process (``--cpu``) with the pack loaded."""
    if COMFYUI is None:
        pytest.skip(COMFYUI_MISSING)
    return ComfyLibrary.start(COMFYUI, tmp_path_factory.mktemp("comfy_library"))


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    """A ComfyUI server on a free loopback port, started on first use, stopped at the end."""
    if COMFYUI is None:
        pytest.skip(COMFYUI_MISSING)
    server = ComfyServer(COMFYUI, tmp_path_factory.mktemp("comfy_server")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def checkpoint(comfy):
    """The tiny TruePose checkpoint, written once into the library's models/truepose."""
    from tests.tiny_models import TINY_CHECKPOINT, save_tiny_checkpoint

    path = comfy.models_dir / "truepose" / TINY_CHECKPOINT
    if not path.exists():
        save_tiny_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def loaded(comfy, checkpoint):
    """(MODEL, TRUEPOSE, VAE) from the loader node."""
    return comfy.node_class("TruePose_LoadTruePose").execute(checkpoint.name).result
