"""The example workflows against a real ComfyUI server: validation, a full run, the browser."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from comfy_harness import REPO_ROOT, load_workflow_in_browser
from PIL import Image

pytestmark = pytest.mark.comfyui

WORKFLOWS = REPO_ROOT / "workflows"
API_FILES = sorted(WORKFLOWS.glob("*.api.json"))
UI_FILES = sorted(p for p in WORKFLOWS.glob("*.json") if not p.name.endswith(".api.json"))
DEMO = "truepose-synthfashion-demo"
SMALL_MODEL = "truepose-synthfashion-small.safetensors"
#: Set TRUEPOSE_DOCS_DIR=docs to refresh the README's screenshot and output image (the
#: workflow then runs with its own 35 steps instead of 4).
DOCS_DIR = os.environ.get("TRUEPOSE_DOCS_DIR", "")
PACK_SMALL_MODEL = REPO_ROOT / "truepose_core" / "assets" / SMALL_MODEL
# Files the full-size graphs name: listed by the server, never loaded by these tests.
PLACEHOLDER_MODELS = {
    "truepose": "truepose-sd15-deepfashion-512x352.safetensors",
    "vae": "vae-ft-mse-840000-ema-pruned.safetensors",
    "clip_vision": "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
    "schp": "exp-schp-201908261155-lip.pth",
    "checkpoints": "v1-5-pruned-emaonly.safetensors",
    "controlnet": "control_v11p_sd15_openpose.pth",
}
INPUT_IMAGES = ("truepose_source.png", "truepose_reference.png")


@pytest.fixture(scope="module")
def server(comfy_server):
    """The session's server with every file the workflows name."""
    from tests.tiny_models import save_tiny_checkpoint

    models = comfy_server.base / "models"
    if not PACK_SMALL_MODEL.exists():
        # Until the trained small model ships: a tiny checkpoint of the same kind and name.
        target = models / "truepose" / SMALL_MODEL
        if not target.exists():
            save_tiny_checkpoint(target)
    for folder, name in PLACEHOLDER_MODELS.items():
        (models / folder).mkdir(parents=True, exist_ok=True)
        (models / folder / name).touch()
    rng = np.random.default_rng(0)
    for name in INPUT_IMAGES:
        pixels = rng.integers(0, 255, (512, 352, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(comfy_server.base / "input" / name)
    return comfy_server


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_workflow_has_both_formats():
    assert len(API_FILES) == len(UI_FILES) == 5
    for ui in UI_FILES:
        assert (WORKFLOWS / f"{ui.stem}.api.json").exists()
        assert (REPO_ROOT / "example_workflows" / ui.name).read_text() == ui.read_text()


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


def test_synthfashion_workflow_runs_end_to_end(server):
    prompt = _load(WORKFLOWS / f"{DEMO}.api.json")
    for node in prompt.values():
        if node["class_type"] == "TruePose_TrueSampler" and not DOCS_DIR:
            node["inputs"]["steps"] = 4  # keep the CPU run short; the graph is unchanged
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
    if DOCS_DIR:  # refresh the README's picture of the workflow's output
        Path(DOCS_DIR).mkdir(exist_ok=True)
        (Path(DOCS_DIR) / "demo-workflow-output.png").write_bytes(path.read_bytes())


@pytest.mark.browser
@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_ui_workflow_loads_in_the_browser(server, path):
    errors, png = load_workflow_in_browser(server.url, _load(path))
    assert errors == [], errors
    if path.stem == DEMO and DOCS_DIR:  # refresh the README's screenshot
        Path(DOCS_DIR).mkdir(exist_ok=True)
        (Path(DOCS_DIR) / "demo-workflow.png").write_bytes(png)
