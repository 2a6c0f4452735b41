"""Test harness for the ComfyUI side of the pack: a real ComfyUI, in-process or as a server.

Three ways to meet ComfyUI, from cheapest to dearest:

- :class:`ComfyLibrary` imports ComfyUI into the test process ("library mode"), loads the pack
  with ComfyUI's own ``nodes.load_custom_node`` and runs whole prompts with
  ``execution.validate_prompt`` + ``execution.PromptExecutor``.
- :class:`ComfyServer` starts ``main.py --cpu`` on a free loopback port with the pack in its
  ``custom_nodes``, and talks HTTP to it (``/prompt``, ``/history``, ``/object_info``).
- :func:`load_workflow_in_browser` opens the real frontend of such a server in headless
  Chromium and loads a UI-format workflow the way a person's "Open" does.

The pack cannot be imported by its package name: ComfyUI imports it under its folder path,
and its node classes and ``truepose_core`` are reached through :meth:`ComfyLibrary.node_class`
and :meth:`ComfyLibrary.pack_module`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PACK_NAME = "comfyui-truepose"
DEFAULT_COMFYUI_PATH = Path("/opt/ComfyUI")
COMFYUI_MISSING = "ComfyUI not found: set COMFYUI_PATH to a ComfyUI checkout to run the node tests"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver",)
LOOPBACK = "127.0.0.1"
#: Stock extra-node files that need packages the pack's environment does not install
#: (torchaudio); the server logs them as IMPORT FAILED too.
OPTIONAL_EXTRAS = frozenset({"nodes_audio.py", "nodes_audio_encoder.py"})


def find_comfyui() -> Path | None:
    """``$COMFYUI_PATH``, else /opt/ComfyUI when it exists; None when neither is a ComfyUI."""
    configured = os.environ.get("COMFYUI_PATH")
    path = Path(configured) if configured else DEFAULT_COMFYUI_PATH
    if (path / "main.py").is_file() and (path / "comfy").is_dir():
        return path.resolve()
    return None


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) from the system, or None when either is missing."""
    chromium = next((p for p in CHROMIUM_CANDIDATES if os.access(p, os.X_OK)), None)
    driver = next((p for p in CHROMEDRIVER_CANDIDATES if os.access(p, os.X_OK)), None)
    if chromium is None or driver is None:
        return None
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None
    return chromium, driver


def browser_missing_reason() -> str:
    return (
        "headless Chromium not available: install Debian's chromium and chromium-driver and "
        "pip selenium (see .ci/comfyui-deps.sh) to run the browser tests"
    )


def make_base_directory(base: Path, pack_dir: Path = REPO_ROOT) -> Path:
    """A ComfyUI ``--base-directory``: custom_nodes/ with the pack linked in, models/, input/.

    Returns the pack's path inside custom_nodes (the path ComfyUI imports it under).
    """
    for sub in ("custom_nodes", "models/schp", "models/truepose", "input", "output", "temp"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    # A returning user: no first-run template browser over the canvas; and an offline one:
    # no release check against api.comfy.org (it fails, and logs a console error, at random).
    settings.write_text(
        json.dumps(
            {
                "Comfy.TutorialCompleted": True,
                "Comfy.Notification.ShowVersionUpdates": False,
                # Screenshots show every node in full detail, with no minimap over them.
                "LiteGraph.Canvas.MinFontSizeForLOD": 0,
                "Comfy.Minimap.Visible": False,
            }
        )
    )
    link = base / "custom_nodes" / PACK_NAME
    if not link.exists():
        link.symlink_to(pack_dir, target_is_directory=True)
    return link


# ---------------------------------------------------------------------------------------------
# Library mode


class StubServer:
    """What ``execution.PromptExecutor`` needs of ``server.PromptServer``: messages go to a list."""

    def __init__(self) -> None:
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.messages: list[tuple[str, Any]] = []

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        self.messages.append((event, data))

    def queue_updated(self) -> None:
        pass


@dataclass
class PromptRun:
    """The result of one prompt run in-process."""

    prompt_id: str
    success: bool
    #: (event, data) as the executor recorded them for /history (execution_start, ...).
    messages: list[tuple[str, dict]]
    #: UI outputs per node id, as /history has them.
    ui_outputs: dict[str, Any]
    #: Raw node outputs per node id (a list per output socket), from the executor's cache.
    node_outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def error(self) -> dict | None:
        """The ``execution_error`` payload, or None."""
        for event, data in self.messages:
            if event == "execution_error":
                return data
        return None


class PromptValidationError(AssertionError):
    """``execution.validate_prompt`` refused the prompt; ``details`` holds its answer."""

    def __init__(self, error: Any, node_errors: Any) -> None:
        super().__init__(f"prompt invalid: {error}; node errors: {node_errors}")
        self.error = error
        self.node_errors = node_errors


class ComfyLibrary:
    """ComfyUI imported into this process, with the pack loaded from ``base/custom_nodes``.

    Only one per process: ComfyUI's modules are global. Build it with :meth:`start`.
    """

    def __init__(self, comfyui: Path, base: Path, pack_path: Path, pack_module_name: str) -> None:
        self.comfyui = comfyui
        self.base = base
        self.pack_path = pack_path
        self.pack_module_name = pack_module_name

    @classmethod
    def start(cls, comfyui: Path, base: Path, pytorch_attention: bool = False) -> ComfyLibrary:
        """Import ComfyUI with ``--cpu`` and ``--base-directory base`` and load the pack.

        ``pytorch_attention`` adds ``--use-pytorch-cross-attention`` (PyTorch's SDPA instead of
        ComfyUI's sub-quadratic attention, its CPU default).
        """
        pack_path = make_base_directory(base)
        # ComfyUI's top-level ``nodes`` module and the pack's ``nodes`` package share a name:
        # ComfyUI must come first on sys.path.
        if str(comfyui) in sys.path:
            sys.path.remove(str(comfyui))
        sys.path.insert(0, str(comfyui))
        loaded = sys.modules.get("nodes")
        if loaded is not None and Path(getattr(loaded, "__file__", "")).parent != comfyui:
            raise RuntimeError(f"a module 'nodes' other than ComfyUI's is imported: {loaded}")

        from comfy.cli_args import args

        # Before folder_paths and comfy.model_management read them at import.
        args.cpu = True
        args.base_directory = str(base)
        args.use_pytorch_cross_attention = pytorch_attention
        import comfy.model_management  # noqa: F401
        import folder_paths

        if Path(folder_paths.base_path) != base.resolve() and Path(folder_paths.base_path) != base:
            raise RuntimeError(
                f"folder_paths was imported before the harness set the base directory "
                f"({folder_paths.base_path}); import ComfyUI only through the harness"
            )
        # ComfyUI's ``nodes`` puts ``comfy/`` first on sys.path, after which ``import utils``
        # finds ``comfy/utils.py`` instead of ComfyUI's ``utils`` package, and stock extras
        # that need ``utils.install_util`` (RepeatImageBatch's nodes_images.py) fail to
        # import. main.py imports the package before ``nodes``; so does the harness.
        import utils.extra_config  # noqa: F401
        import utils.install_util  # noqa: F401

        import nodes

        failed = asyncio.run(nodes.init_builtin_extra_nodes())
        missing = [name for name in failed if name not in OPTIONAL_EXTRAS]
        if missing:
            raise RuntimeError(f"ComfyUI could not import its stock extra nodes {missing}")
        ok = asyncio.run(nodes.load_custom_node(str(pack_path)))
        if not ok:
            raise RuntimeError(f"ComfyUI failed to load the pack from {pack_path}; see the log")
        return cls(comfyui, base, pack_path, str(pack_path).replace(".", "_x_"))

    # -- the pack --------------------------------------------------------------------------

    def node_class(self, node_id: str) -> Any:
        """The registered node class of ``node_id`` (KeyError when not registered)."""
        import nodes

        return nodes.NODE_CLASS_MAPPINGS[node_id]

    def node_ids(self) -> list[str]:
        import nodes

        return sorted(nodes.NODE_CLASS_MAPPINGS)

    def pack_module(self, relative: str = "") -> Any:
        """A module of the pack as ComfyUI imported it, e.g. ``"truepose_core.keypoints"``."""
        import importlib

        name = self.pack_module_name + ("." + relative if relative else "")
        return importlib.import_module(name)

    @property
    def models_dir(self) -> Path:
        return self.base / "models"

    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    # -- prompts ---------------------------------------------------------------------------

    def validate(self, prompt: dict) -> list[str]:
        """Validate an API-format prompt; returns the output node ids to execute."""
        import execution

        valid, error, outputs, node_errors = asyncio.run(
            execution.validate_prompt(str(uuid.uuid4()), prompt, None)
        )
        if not valid:
            raise PromptValidationError(error, node_errors)
        return list(outputs)

    def executor(self) -> Any:
        """A ``PromptExecutor`` whose caches outlive one prompt, as the server's does.

        Pass it to :meth:`run_prompt` for prompts queued one after the other: nodes whose
        inputs did not change are taken from the cache (the loader's MODEL, for one).
        """
        import execution

        return execution.PromptExecutor(StubServer(), cache_type=False)

    def run_prompt(self, prompt: dict, executor: Any = None) -> PromptRun:
        """Validate and execute an API-format prompt in this process.

        Without ``executor`` every run starts with empty caches; with one from
        :meth:`executor`, runs share its caches like consecutive prompts on a server.
        """
        import execution

        outputs = self.validate(prompt)
        if executor is None:
            executor = execution.PromptExecutor(StubServer(), cache_type=False)
        prompt_id = str(uuid.uuid4())
        executor.execute(prompt, prompt_id, {}, outputs)
        node_outputs = {}
        for node_id in prompt:
            cached = executor.caches.outputs.get(node_id)
            if cached is not None:
                node_outputs[node_id] = getattr(cached, "outputs", cached)
        return PromptRun(
            prompt_id=prompt_id,
            success=executor.success,
            messages=list(executor.status_messages),
            ui_outputs=dict(executor.history_result.get("outputs", {})),
            node_outputs=node_outputs,
        )


# ---------------------------------------------------------------------------------------------
# Server mode


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class ServerError(AssertionError):
    pass


class ComfyServer:
    """``python main.py --cpu`` on a loopback port, with the pack in its custom_nodes."""

    def __init__(
        self, comfyui: Path, base: Path, port: int | None = None, python: str | None = None
    ) -> None:
        self.comfyui = comfyui
        self.python = python or sys.executable  # e.g. a fresh venv's, to test an install
        self.base = base
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log_path = base / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> ComfyServer:
        make_base_directory(self.base)
        command = [
            self.python,
            "main.py",
            "--cpu",
            "--listen",
            LOOPBACK,
            "--port",
            str(self.port),
            "--base-directory",
            str(self.base),
            "--disable-auto-launch",
        ]
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=self.comfyui, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"ComfyUI exited with code {self.process.returncode} during start:\n"
                    + self.log_tail()
                )
            try:
                self.get_json("/system_stats", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.5)
        else:
            self.stop()
            raise ServerError(f"ComfyUI did not answer within {timeout:.0f} s:\n" + self.log_tail())
        failed = self.import_failures()
        if failed:
            self.stop()
            raise ServerError("ComfyUI could not import the pack:\n" + "\n".join(failed))
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def import_failures(self) -> list[str]:
        """Log lines that say the pack failed to import (ComfyUI still starts then)."""
        out = []
        for line in self.log_text().splitlines():
            if PACK_NAME in line and ("IMPORT FAILED" in line or "Cannot import" in line):
                out.append(line)
        if out:
            out.append(self.log_tail())
        return out

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)

    # -- HTTP ------------------------------------------------------------------------------

    def request(self, path: str, data: Any = None, timeout: float = 30.0) -> bytes:
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(
            self.url + path,
            data=body,
            headers={"Content-Type": "application/json"} if body is not None else {},
            method="POST" if body is not None else "GET",
        )
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.read()

    def get_json(self, path: str, timeout: float = 30.0) -> Any:
        return json.loads(self.request(path, timeout=timeout))

    def object_info(self, node_id: str | None = None) -> dict:
        """``GET /object_info`` (all nodes) or ``/object_info/<node_id>`` (that node's entry)."""
        if node_id is None:
            return self.get_json("/object_info")
        return self.get_json(f"/object_info/{node_id}").get(node_id, {})

    def post_prompt(self, prompt: dict, client_id: str | None = None) -> str:
        """Queue an API-format prompt; returns its prompt_id. Raises ServerError when refused."""
        payload: dict[str, Any] = {"prompt": prompt}
        if client_id:
            payload["client_id"] = client_id
        try:
            answer = json.loads(self.request("/prompt", payload))
        except urllib.error.HTTPError as err:
            raise ServerError(f"POST /prompt refused ({err.code}): {err.read().decode()}") from err
        return answer["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        return self.get_json(f"/history/{prompt_id}").get(prompt_id)

    def wait_history(self, prompt_id: str, timeout: float = 120.0) -> dict:
        """Poll ``/history/<id>`` until the prompt finished; returns its history entry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)
            if entry is not None and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if status.get("completed") or status.get("status_str") == "error":
                    return entry
            time.sleep(0.25)
        raise ServerError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")

    def run_prompt(self, prompt: dict, timeout: float = 120.0) -> dict:
        return self.wait_history(self.post_prompt(prompt), timeout=timeout)

    def interrupt(self) -> None:
        self.request("/interrupt", {})


def history_messages(entry: dict, event: str) -> list[dict]:
    """The payloads of ``event`` in a /history entry's status messages."""
    return [data for name, data in entry.get("status", {}).get("messages", []) if name == event]


# ---------------------------------------------------------------------------------------------
# Browser


_LOAD_WORKFLOW_JS = r"""
const [workflow, done] = arguments;
(async () => {
  const app = window.comfyAPI.app.app;
  const errors = [];
  const dialogText = () => [...document.querySelectorAll('.p-dialog')]
      .map((d) => d.innerText.trim()).filter((t) => t);
  const before = new Set(dialogText());
  try {
    await app.loadGraphData(workflow, true, true, 'test-workflow');
  } catch (err) {
    errors.push('loadGraphData threw: ' + err);
  }
  await new Promise((r) => setTimeout(r, 800));
  const byId = new Map((workflow.nodes || []).map((n) => [String(n.id), n]));
  for (const node of app.graph.nodes) {
    const source = byId.get(String(node.id));
    const type = source ? source.type : node.type;
    if (node.has_errors || node.last_serialization) {
      errors.push(`missing node type ${type} (node ${node.id})`);
      continue;
    }
    for (const w of node.widgets || []) {
      if (w.type === 'combo') {
        let values = w.options && w.options.values;
        if (typeof values === 'function') values = values();
        if (Array.isArray(values) && !values.includes(w.value)) {
          errors.push(`node ${node.id} (${type}) widget ${w.name}: value ` +
              `${JSON.stringify(w.value)} is not among its options ${JSON.stringify(values)}`);
        }
      } else if (w.type === 'number' && w.options) {
        const { min, max } = w.options;
        if ((min !== undefined && w.value < min) || (max !== undefined && w.value > max)) {
          errors.push(`node ${node.id} (${type}) widget ${w.name}: value ${w.value} is outside ` +
              `${min}..${max}`);
        }
      }
    }
    if (source && Array.isArray(source.widgets_values)) {
      const loaded = (node.serialize().widgets_values) || [];
      if (JSON.stringify(loaded) !== JSON.stringify(source.widgets_values)) {
        errors.push(`node ${node.id} (${type}) widget values changed on load: ` +
            `${JSON.stringify(source.widgets_values)} -> ${JSON.stringify(loaded)}`);
      }
    }
  }
  for (const text of dialogText()) {
    if (!before.has(text)) errors.push('dialog: ' + text.replace(/\s+/g, ' ').slice(0, 500));
  }
  done({ errors, nodeCount: app.graph.nodes.length });
})().catch((err) => done({ errors: ['script failed: ' + err], nodeCount: -1 }));
"""

_APP_READY_JS = r"""
const app = window.comfyAPI && window.comfyAPI.app && window.comfyAPI.app.app;
const graph = window.LiteGraph || (window.comfyAPI && window.comfyAPI.litegraph
    && window.comfyAPI.litegraph.LiteGraph);
// Node definitions arrive after the app shell: wait until the stock ones are registered.
const registered = !!(graph && graph.registered_node_types
    && graph.registered_node_types['PreviewImage']);
return !!(app && app.graph && app.canvas && app.vueAppReady && registered);
"""


def load_workflow_in_browser(
    server_url: str,
    workflow_json: dict | str,
    timeout: float = 120.0,
    window: tuple[int, int] = (1400, 900),
) -> tuple[list[str], bytes]:
    """Open the frontend at ``server_url`` in headless Chromium and load a UI workflow.

    Returns ``(errors, screenshot_png)``. ``errors`` lists what a person would be told or
    would meet: node types the frontend does not know (its missing-nodes check), combo
    values not among the options, numbers outside their range, widget values that changed
    on load (renamed or reordered widgets), dialogs that opened, and console errors logged
    while loading. Raises RuntimeError when Chromium is absent (check :func:`find_browser`).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    found = find_browser()
    if found is None:
        raise RuntimeError(browser_missing_reason())
    chromium, chromedriver = found
    if not server_url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise ValueError(f"{server_url}: only loopback servers are opened")
    workflow = json.loads(workflow_json) if isinstance(workflow_json, str) else workflow_json

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={window[0]},{window[1]}",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        driver.set_script_timeout(timeout)
        driver.get(server_url + "/")
        WebDriverWait(driver, timeout).until(lambda d: d.execute_script(_APP_READY_JS))
        time.sleep(1.0)
        driver.get_log("browser")  # drop what the start-up logged
        result = driver.execute_async_script(_LOAD_WORKFLOW_JS, workflow)
        errors = list(result["errors"])
        for entry in driver.get_log("browser"):
            if entry.get("level") == "SEVERE":
                errors.append("console: " + entry.get("message", ""))
        png = driver.get_screenshot_as_png()
    finally:
        driver.quit()
    return errors, png


def chromium_version() -> str | None:
    found = find_browser()
    if found is None:
        return None
    out = subprocess.run([found[0], "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip() or None
