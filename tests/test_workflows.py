"""The workflow templates against a real ComfyUI server: validation, full runs, the browser.

``TRUEPOSE_DOCS_DIR=docs`` refreshes the README's pictures and the templates' thumbnails:
each template's screenshot (``docs/workflow-<name>.png``, and a small JPEG beside the
template in ``example_workflows/``, which the template browser shows) and the image the demo
makes with its own 35 steps (``docs/demo-workflow-output.png``).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from comfy_harness import REPO_ROOT, load_workflow_in_browser
from PIL import Image

from tests.tiny_models import save_tiny_checkpoint

pytestmark = pytest.mark.comfyui

EXAMPLES = REPO_ROOT / "example_workflows"
API = REPO_ROOT / "scripts" / "templates" / "api"
API_FILES = sorted(API.glob("*.api.json"))
UI_FILES = sorted(EXAMPLES.glob("*.json"))
DEMO = "truepose-synthfashion-demo"
SMALL_MODEL = "truepose-synthfashion-small.safetensors"
SCHP_LIP = "exp-schp-201908261155-lip.pth"
#: Set TRUEPOSE_DOCS_DIR=docs to refresh the README's pictures and the thumbnails (the demo
#: then runs with its own 35 steps instead of 4).
DOCS_DIR = os.environ.get("TRUEPOSE_DOCS_DIR", "")
PACK_SMALL_MODEL = REPO_ROOT / "truepose_core" / "assets" / SMALL_MODEL
INPUT_IMAGES = ("truepose_source.png",)
THUMBNAIL_SIZE = (700, 450)
#: The browser window of the README's screenshots: a common 1920x1080 screen.
SCREEN = (1920, 1080)


@pytest.fixture(scope="module")
def server(comfy, comfy_server, tmp_path_factory):
    """The session's server with every file the workflows name.

    ``comfy`` (ComfyUI imported into this process) builds the small SD1.5-layout checkpoint
    and ControlNet that stand in for the reference template's files.
    """
    import sd15_tiny

    models = comfy_server.base / "models"
    sd15_tiny.install(tmp_path_factory, models)
    if not PACK_SMALL_MODEL.exists():
        # Until the trained small model ships: a tiny checkpoint of the same kind and name.
        target = models / "truepose" / SMALL_MODEL
        if not target.exists():
            save_tiny_checkpoint(target)
    schp = models / "schp" / SCHP_LIP
    if not schp.exists():  # the official file's format and size, with random weights
        import torch

        from truepose_core.schp import build_schp

        torch.manual_seed(0)
        state = {k: v.half() for k, v in build_schp(20).state_dict().items()}
        schp.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": state}, schp)
    rng = np.random.default_rng(0)
    for name in INPUT_IMAGES:
        pixels = rng.integers(0, 255, (512, 352, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(comfy_server.base / "input" / name)
    return comfy_server


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_template_has_an_api_twin():
    assert UI_FILES and len(API_FILES) == len(UI_FILES)
    for ui in UI_FILES:
        assert (API / f"{ui.stem}.api.json").exists()


def test_server_lists_each_template_once(server):
    listed = server.get_json("/workflow_templates")
    assert sorted(listed.get("comfyui-truepose", [])) == sorted(p.stem for p in UI_FILES)


def _input_spec(info: dict, name: str):
    for section in ("required", "optional"):
        spec = info["input"].get(section, {}).get(name)
        if spec is not None:
            return spec
    return None


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.name)
def test_api_workflow_validates_against_object_info(server, path):
    prompt = _load(path)
    object_info = server.object_info()
    for node_id, node in prompt.items():
        info = object_info.get(node["class_type"])
        assert info is not None, f"{path.name} node {node_id}: unknown {node['class_type']}"
        for required in info["input"].get("required", {}):
            assert required in node["inputs"], f"{path.name} node {node_id}: no {required}"
        for name, value in node["inputs"].items():
            spec = _input_spec(info, name)
            assert spec is not None, f"{path.name} node {node_id}: unknown input {name}"
            kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
            if isinstance(value, list):  # a link: [origin id, output slot]
                origin = prompt[value[0]]
                outputs = object_info[origin["class_type"]]["output"]
                assert outputs[value[1]] == kind, f"{path.name} node {node_id}.{name}"
            elif isinstance(kind, list) or kind == "COMBO":
                choices = kind if isinstance(kind, list) else options.get("options", [])
                assert value in choices, f"{path.name} node {node_id}.{name}: {value!r}"
            elif kind in ("INT", "FLOAT"):
                assert options.get("min", value) <= value <= options.get("max", value)


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.name)
def test_template_runs_end_to_end(server, path):
    """Every template runs as shipped (the SCHP weights are random, the photo is noise)."""
    prompt = _load(path)
    demo = path.name == f"{DEMO}.api.json"
    for node in prompt.values():
        if node["class_type"] == "TruePose_TrueSampler" and not (demo and DOCS_DIR):
            node["inputs"]["steps"] = 4  # keep the CPU run short; the graph is unchanged
        if node["class_type"] == "KSampler":  # the reference template, with small files
            node["inputs"]["steps"] = 2
        if node["class_type"] in ("EmptyLatentImage", "TruePose_PoseToControlNetImage"):
            node["inputs"]["width"], node["inputs"]["height"] = 88, 128
    entry = server.run_prompt(prompt, timeout=600)
    status = entry["status"]
    assert status["status_str"] == "success", status
    saved = [
        image
        for output in entry["outputs"].values()
        for image in output.get("images", [])
        if image.get("type") == "output"
    ]
    assert saved and saved[0]["filename"].endswith(".png")
    path = server.base / "output" / saved[0]["subfolder"] / saved[0]["filename"]
    assert Image.open(path).size == (88, 128)
    shown = {
        prompt[node_id]["class_type"]
        for node_id, output in entry["outputs"].items()
        if output.get("images")
    }
    for node_type in ("TruePose_HumanParse", "TruePose_PoseFromOpenPoseJSON"):
        if any(node["class_type"] == node_type for node in prompt.values()):
            assert node_type in shown, f"{node_type} shows no preview on the node"
    if demo and DOCS_DIR:  # refresh the README's picture of the workflow's output
        Path(DOCS_DIR).mkdir(exist_ok=True)
        (Path(DOCS_DIR) / "demo-workflow-output.png").write_bytes(path.read_bytes())


def _write_pictures(stem: str, png: bytes) -> None:
    """The README's screenshot of a template, and its thumbnail beside the template."""
    Path(DOCS_DIR).mkdir(exist_ok=True)
    (Path(DOCS_DIR) / f"workflow-{stem}.png").write_bytes(png)
    thumbnail = Image.open(io.BytesIO(png)).convert("RGB")
    thumbnail.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
    thumbnail.save(EXAMPLES / f"{stem}.jpg", quality=85, optimize=True)


@pytest.mark.browser
@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_ui_workflow_loads_in_the_browser(server, path):
    errors, png = load_workflow_in_browser(server.url, _load(path), window=SCREEN)
    assert errors == [], errors
    if DOCS_DIR:
        _write_pictures(path.stem, png)


@pytest.mark.browser
def test_missing_model_files_are_offered_by_the_frontend(server):
    """The templates' ``models`` entries reach the frontend's missing-models dialog."""
    workflow = next(w for w in map(_load, UI_FILES) if w.get("models"))
    wanted = dict(workflow["models"][0], name="not-downloaded-" + workflow["models"][0]["name"])
    workflow["models"] = [wanted]
    errors, _png = load_workflow_in_browser(server.url, workflow)
    dialogs = [e for e in errors if e.startswith("dialog: ")]
    assert any(wanted["name"] in e and wanted["directory"] in e for e in dialogs), errors
