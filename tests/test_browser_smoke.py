"""UI-format workflows opened in the real ComfyUI frontend, in headless Chromium."""

from __future__ import annotations

import json
import os

import pytest
from comfy_harness import load_workflow_in_browser

pytestmark = [pytest.mark.comfyui, pytest.mark.browser]

DF_Y = "[30, 58, 58, 98, 134, 57, 99, 136, 140, 196, 240, 139, 195, 241, 25, 25, 29, -1]"
DF_X = "[88, 88, 66, 60, 58, 110, 116, 118, 74, 72, 70, 102, 104, 106, 84, 93, 78, -1]"


def _workflow(pose_type: str = "TruePose_PoseFromDeepFashion") -> dict:
    """A pose node feeding a PreviewImage, as the frontend saves it."""
    return {
        "last_node_id": 2,
        "last_link_id": 1,
        "nodes": [
            {
                "id": 1,
                "type": pose_type,
                "pos": [100, 100],
                "size": [400, 200],
                "flags": {},
                "order": 0,
                "mode": 0,
                "inputs": [],
                "outputs": [
                    {"name": "pose", "type": "TRUEPOSE_POSE", "links": None},
                    {"name": "preview", "type": "IMAGE", "links": [1]},
                ],
                "properties": {"Node name for S&R": pose_type},
                "widgets_values": [DF_Y, DF_X, 176, 256],
            },
            {
                "id": 2,
                "type": "PreviewImage",
                "pos": [600, 100],
                "size": [300, 300],
                "flags": {},
                "order": 1,
                "mode": 0,
                "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
                "outputs": [],
                "properties": {"Node name for S&R": "PreviewImage"},
                "widgets_values": [],
            },
        ],
        "links": [[1, 1, 1, 2, 0, "IMAGE"]],
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


def _keep(png: bytes, name: str) -> None:
    folder = os.environ.get("TRUEPOSE_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(png)


def test_pose_workflow_loads_without_errors(comfy_server):
    errors, png = load_workflow_in_browser(comfy_server.url, _workflow())
    _keep(png, "pose_workflow.png")
    assert errors == []
    assert png.startswith(b"\x89PNG")


def test_unknown_node_type_is_reported(comfy_server):
    errors, png = load_workflow_in_browser(comfy_server.url, _workflow("TruePose_NoSuchNode"))
    _keep(png, "unknown_node.png")
    assert any("missing node type TruePose_NoSuchNode" in e for e in errors), errors


def test_combo_value_not_in_options_is_reported(comfy_server):
    workflow = _workflow()
    workflow["nodes"][0] = {
        "id": 1,
        "type": "TruePose_ParsingFromImage",
        "pos": [100, 100],
        "size": [400, 200],
        "flags": {},
        "order": 0,
        "mode": 0,
        "inputs": [{"name": "parsing_image", "type": "IMAGE", "link": None}],
        "outputs": [
            {"name": "parsing", "type": "TRUEPOSE_PARSING", "links": None},
            {"name": "preview", "type": "IMAGE", "links": [1]},
            {"name": "person_mask", "type": "MASK", "links": None},
        ],
        "properties": {},
        "widgets_values": ["pascal", "auto"],
    }
    errors, _png = load_workflow_in_browser(comfy_server.url, workflow)
    assert any("widget label_set" in e and "pascal" in e for e in errors), errors


def _sampler_workflow(widgets_values: list) -> dict:
    """A lone TruePose Sampler, as the frontend saves it."""
    return {
        "last_node_id": 1,
        "last_link_id": 0,
        "nodes": [
            {
                "id": 1,
                "type": "TruePose_TrueSampler",
                "pos": [100, 100],
                "size": [310, 288],
                "flags": {},
                "order": 0,
                "mode": 0,
                "inputs": [
                    {"name": "model", "type": "MODEL", "link": None},
                    {"name": "truepose", "type": "TRUEPOSE", "link": None},
                    {"name": "source", "type": "TRUEPOSE_SOURCE", "link": None},
                ],
                "outputs": [{"name": "LATENT", "type": "LATENT", "links": None}],
                "properties": {"Node name for S&R": "TruePose_TrueSampler"},
                "widgets_values": widgets_values,
            }
        ],
        "links": [],
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


def test_a_sampler_saved_with_width_and_height_keeps_its_other_values(comfy_server):
    """The sampler lost width/height; a workflow saved with them loads its values in place.

    The templates' browser test loads today's list of values unchanged.
    """
    values = [7, "fixed", 20, 4.5, "euler", "normal", 0.75, 3]  # the values the sampler has today
    old = [*values[:7], 176, 256, values[7]]
    errors, _png = load_workflow_in_browser(comfy_server.url, _sampler_workflow(old))
    compact = {"separators": (",", ":")}
    assert errors == [
        "node 1 (TruePose_TrueSampler) widget values changed on load: "
        f"{json.dumps(old, **compact)} -> {json.dumps(values, **compact)}"
    ]
