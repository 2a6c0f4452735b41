"""The workflow templates as files: in sync with their builder, listed once, laid out for people.

These need no ComfyUI. ``tests/test_workflows.py`` checks the same files against a running
ComfyUI and its frontend.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "example_workflows"
BUILDER = REPO / "scripts" / "templates" / "build_templates.py"
API = BUILDER.parent / "api"
#: Folders of a pack that ComfyUI's template browser lists (app/custom_node_manager.py).
SCANNED = ("example_workflows", "example", "examples", "workflow", "workflows")
GROUPS = ("1 Source person", "2 Target pose", "3 Generate")
#: Widgets that name a model file, and the folder the file lives in.
MODEL_WIDGETS = {
    "TruePose_LoadTruePose": "truepose",
    "TruePose_HumanParse": "schp",
    "VAELoader": "vae",
    "CLIPVisionLoader": "clip_vision",
    "CheckpointLoaderSimple": "checkpoints",
    "ControlNetLoader": "controlnet",
}
#: Files the pack ships itself (truepose_core/assets): nothing to fetch.
SHIPPED = {p.name for p in (REPO / "truepose_core" / "assets").glob("*.safetensors")}


def _builder():
    spec = importlib.util.spec_from_file_location("build_templates", BUILDER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def _templates() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


def test_committed_templates_are_what_the_builder_writes(tmp_path):
    written = _builder().render(tmp_path / "ui", tmp_path / "api")
    got = {p.parent.name + "/" + p.name for p in written}
    want = {"ui/" + p.name for p in _templates()} | {"api/" + p.name for p in API.glob("*.json")}
    assert got == want, "run python scripts/templates/build_templates.py"
    for path in written:
        committed = (EXAMPLES if path.parent.name == "ui" else API) / path.name
        assert path.read_text() == committed.read_text(), f"{committed.name} is stale"


def test_templates_are_listed_once_each_with_a_thumbnail():
    assert _templates(), "no templates"
    scanned = [REPO / name for name in SCANNED if (REPO / name).exists()]
    assert scanned == [EXAMPLES], f"only example_workflows may be scanned, found {scanned}"
    for path in EXAMPLES.iterdir():
        assert path.suffix in (".json", ".jpg"), f"{path.name}: not a template or thumbnail"
        assert not path.name.endswith(".api.json"), f"{path.name}: API files do not open"
    for path in _templates():
        thumbnail = path.with_suffix(".jpg")
        assert thumbnail.is_file(), f"{path.name} has no thumbnail {thumbnail.name}"
        assert thumbnail.read_bytes()[:3] == b"\xff\xd8\xff", f"{thumbnail.name} is not a JPEG"


@pytest.mark.parametrize("path", _templates(), ids=lambda p: p.stem)
def test_template_has_titled_groups_around_its_nodes(path):
    workflow = json.loads(path.read_text())
    titles = [g["title"] for g in workflow["groups"]]
    assert titles[:3] == list(GROUPS)
    nodes = [n for n in workflow["nodes"] if n["type"] != "Note"]
    for node in nodes:
        x, y = node["pos"]
        w, h = node["size"]
        inside = [
            g["title"]
            for g in workflow["groups"]
            if g["bounding"][0] <= x
            and g["bounding"][1] <= y - 30  # the node's title bar is above pos
            and x + w <= g["bounding"][0] + g["bounding"][2]
            and y + h <= g["bounding"][1] + g["bounding"][3]
        ]
        assert len(inside) == 1, f"{path.name} node {node['id']} {node['type']} in {inside}"
    boxes = [g["bounding"] for g in workflow["groups"]]
    for a, b in itertools.combinations(boxes, 2):
        apart = a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0]
        apart = apart or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]
        assert apart, f"{path.name}: groups {a} and {b} overlap"


@pytest.mark.parametrize("path", _templates(), ids=lambda p: p.stem)
def test_template_note_names_every_file_it_needs(path):
    workflow = json.loads(path.read_text())
    notes = [n for n in workflow["nodes"] if n["type"] == "Note"]
    assert len(notes) == 1
    text = notes[0]["widgets_values"][0]
    listed = {(m["directory"], m["name"]): m for m in workflow.get("models", [])}
    for node in workflow["nodes"]:
        folder = MODEL_WIDGETS.get(node["type"])
        if folder is None:
            continue
        name = node["widgets_values"][0]
        assert name in text, f"{path.name}: the note does not mention {name}"
        if name in SHIPPED:
            continue
        assert (folder, name) in listed, f"{path.name}: no models entry for {folder}/{name}"
        assert f"models/{folder}" in text, f"{path.name}: the note does not say where {name} goes"
        assert listed[(folder, name)]["url"].startswith("https://")
    for node in workflow["nodes"]:
        if node["type"] == "LoadImage":
            assert "ComfyUI/input" in text


def _socket_points(workflow: dict) -> tuple[dict, dict]:
    """Approximate canvas positions of output and input slots (LiteGraph's 20-unit rows)."""
    outputs, inputs = {}, {}
    for node in workflow["nodes"]:
        x, y = node["pos"]
        for slot, _ in enumerate(node.get("outputs", [])):
            outputs[(node["id"], slot)] = (x + node["size"][0], y + 14 + 20 * slot)
        for slot, _ in enumerate(node.get("inputs", [])):
            inputs[(node["id"], slot)] = (x, y + 14 + 20 * slot)
    return outputs, inputs


def _group_of(workflow: dict, node: dict) -> int | None:
    x, y = node["pos"]
    for index, group in enumerate(workflow["groups"]):
        left, top, width, height = group["bounding"]
        if left <= x < left + width and top <= y < top + height:
            return index
    return None


def _passes_through(start, end, box, steps: int = 200) -> bool:
    """Whether the straight segment start-end enters the rectangle ``box`` (x, y, w, h)."""
    left, top, width, height = box
    for i in range(steps + 1):
        x = start[0] + (end[0] - start[0]) * i / steps
        y = start[1] + (end[1] - start[1]) * i / steps
        if left < x < left + width and top < y < top + height:
            return True
    return False


@pytest.mark.parametrize("path", _templates(), ids=lambda p: p.stem)
def test_template_links_run_left_to_right_without_crossing(path):
    workflow = json.loads(path.read_text())
    outputs, inputs = _socket_points(workflow)
    x = {node["id"]: node["pos"][0] for node in workflow["nodes"]}
    segments = []
    for link_id, origin, out_slot, target, in_slot, _type in workflow["links"]:
        # Down one column is fine; back to an earlier column is not.
        assert x[origin] <= x[target], f"{path.name} link {link_id} runs right to left"
        start, end = outputs[(origin, out_slot)], inputs[(target, in_slot)]
        segments.append((link_id, origin, target, start, end))
    # A link stays within its own groups: it never runs through a third one.
    by_id = {node["id"]: node for node in workflow["nodes"]}
    for link_id, origin, target, start, end in segments:
        own = {_group_of(workflow, by_id[origin]), _group_of(workflow, by_id[target])}
        for index, group in enumerate(workflow["groups"]):
            if index not in own and _passes_through(start, end, group["bounding"]):
                raise AssertionError(
                    f"{path.name}: link {link_id} ({by_id[origin]['type']} -> "
                    f"{by_id[target]['type']}) runs through group {group['title']!r}"
                )
