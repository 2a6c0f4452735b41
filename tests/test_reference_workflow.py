"""The reference-mode workflow on a real ComfyUI server, run end to end with small files.

The graph is the shipped template (its API twin,
``scripts/templates/api/truepose-reference-sd15-openpose.api.json``); the test swaps in a
small source image and random SCHP weights, makes the picture small and takes 2 steps.
Checkpoint and ControlNet are the small SD1.5-layout files of ``tests/sd15_tiny.py`` under
the real files' names.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from comfy_harness import REPO_ROOT, load_workflow_in_browser
from PIL import Image

pytestmark = pytest.mark.comfyui

NAME = "truepose-reference-sd15-openpose"
API = REPO_ROOT / "scripts" / "templates" / "api" / f"{NAME}.api.json"
UI = REPO_ROOT / "example_workflows" / f"{NAME}.json"
SOURCE = "truepose_reference_mode_source.png"
TEMPLATE_SOURCE = "truepose_source.png"
TEMPLATE_SCHP = "exp-schp-201908261155-lip.pth"
SCHP = "random-lip-reference.safetensors"


@pytest.fixture(scope="module")
def server(comfy, comfy_server, tmp_path_factory):
    """The session's server with the small SD1.5 files, random SCHP weights and a source.

    ``comfy`` (ComfyUI imported into this process) builds the small files with ComfyUI's
    own model classes.
    """
    import sd15_tiny
    from safetensors.torch import save_file

    from truepose_core.schp import build_schp

    sd15_tiny.install(tmp_path_factory, comfy_server.base / "models")
    torch.manual_seed(0)
    state = {k: v.half().contiguous() for k, v in build_schp(20).state_dict().items()}
    (comfy_server.base / "models" / "schp").mkdir(parents=True, exist_ok=True)
    save_file(state, str(comfy_server.base / "models" / "schp" / SCHP))
    torch.save({"state_dict": state}, comfy_server.base / "models" / "schp" / TEMPLATE_SCHP)
    # Sides that are not multiples of 8: the template's ImageScale brings any photo in.
    pixels = np.random.default_rng(0).integers(0, 255, (83, 61, 3), dtype=np.uint8)
    for name in (SOURCE, TEMPLATE_SOURCE):  # the run's image, and the one the template names
        Image.fromarray(pixels).save(comfy_server.base / "input" / name)
    return comfy_server


def _by_type(prompt: dict, class_type: str) -> list[dict]:
    return [node for node in prompt.values() if node["class_type"] == class_type]


def test_workflow_uses_stock_nodes_and_the_files_artists_have():
    prompt = json.loads(API.read_text())
    types = {node["class_type"] for node in prompt.values()}
    assert {"CheckpointLoaderSimple", "CLIPTextEncode", "ControlNetApplyAdvanced"} <= types
    assert {"KSampler", "TruePose_ReferencePatch", "TruePose_HumanParse"} <= types
    # Any photo comes in: scaled to the picture's size before parsing and the patch.
    (scale,) = _by_type(prompt, "ImageScale")
    (latent,) = _by_type(prompt, "EmptyLatentImage")
    assert (scale["inputs"]["width"], scale["inputs"]["height"]) == (
        latent["inputs"]["width"],
        latent["inputs"]["height"],
    )
    scale_id = next(k for k, v in prompt.items() if v is scale)
    (patch,) = _by_type(prompt, "TruePose_ReferencePatch")
    (parse,) = _by_type(prompt, "TruePose_HumanParse")
    assert patch["inputs"]["source_image"][0] == parse["inputs"]["image"][0] == scale_id
    assert _by_type(prompt, "ControlNetLoader")[0]["inputs"]["control_net_name"] == (
        "control_v11p_sd15_openpose.pth"
    )
    assert _by_type(prompt, "TruePose_HumanParse")[0]["inputs"]["schp_model"] == (
        "exp-schp-201908261155-lip.pth"
    )
    assert not any(t.startswith("TruePose_Load") for t in types)  # no TruePose weights


def test_workflow_runs_end_to_end_on_the_server(server):
    prompt = json.loads(API.read_text())
    _by_type(prompt, "LoadImage")[0]["inputs"]["image"] = SOURCE
    _by_type(prompt, "TruePose_HumanParse")[0]["inputs"]["schp_model"] = SCHP
    for node in _by_type(prompt, "EmptyLatentImage") + _by_type(
        prompt, "TruePose_PoseToControlNetImage"
    ):
        node["inputs"]["width"], node["inputs"]["height"] = 48, 64
    scale = _by_type(prompt, "ImageScale")[0]["inputs"]
    scale["width"], scale["height"] = 64, 96  # the patch's smallest source side is 64
    _by_type(prompt, "KSampler")[0]["inputs"]["steps"] = 2
    entry = server.run_prompt(prompt, timeout=600)
    assert entry["status"]["status_str"] == "success", entry["status"]
    saved = [
        image
        for output in entry["outputs"].values()
        for image in output.get("images", [])
        if image.get("type") == "output"
    ]
    assert saved
    path = server.base / "output" / saved[0]["subfolder"] / saved[0]["filename"]
    assert Image.open(path).size == (48, 64)


@pytest.mark.browser
def test_workflow_loads_in_the_browser(server):
    """(Its screenshot and thumbnail come from ``tests/test_workflows.py``, as every
    template's do.)"""
    errors, _png = load_workflow_in_browser(server.url, json.loads(UI.read_text()))
    assert errors == [], errors
