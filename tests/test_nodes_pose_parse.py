"""The pose and parsing nodes inside a real ComfyUI: in-process and over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from comfy_harness import history_messages

pytestmark = pytest.mark.comfyui

POSE_NODES = (
    "TruePose_PoseFromKeypoint",
    "TruePose_PoseFromOpenPoseJSON",
    "TruePose_PoseFromDeepFashion",
    "TruePose_PoseBatch",
)
PARSE_NODES = ("TruePose_HumanParse", "TruePose_ParsingFromImage")

# One row of DeepFashion's fasion-resize-annotation CSV layout (176x256 frame, -1 = missing).
DF_Y = "[30, 58, 58, 98, 134, 57, 99, 136, 140, 196, 240, 139, 195, 241, 25, 25, 29, -1]"
DF_X = "[88, 88, 66, 60, 58, 110, 116, 118, 74, 72, 70, 102, 104, 106, 84, 93, 78, -1]"


def _deepfashion_pose(comfy):
    keypoints = comfy.pack_module("truepose_core.keypoints")
    return keypoints.parse_deepfashion_row(DF_Y, DF_X)


# ---------------------------------------------------------------------------------------------
# Registration


def test_nodes_register_with_their_ids(comfy):
    registered = set(comfy.node_ids())
    for node_id in POSE_NODES + PARSE_NODES:
        assert node_id in registered
        schema = comfy.node_class(node_id).GET_SCHEMA()
        assert schema.node_id == node_id
        assert schema.category.startswith("TruePose/")
        for item in schema.inputs:
            assert item.tooltip, f"{node_id}.{item.id} has no tooltip"


def test_model_folders_registered_and_idempotent(comfy):
    import folder_paths

    register = comfy.pack_module("nodes.model_folders").register_model_folders
    for name in ("truepose", "schp"):
        paths, extensions = folder_paths.folder_names_and_paths[name]
        assert str(comfy.models_dir / name) in paths
        assert ".safetensors" in extensions
    before = {n: list(folder_paths.folder_names_and_paths[n][0]) for n in ("truepose", "schp")}
    register()
    after = {n: list(folder_paths.folder_names_and_paths[n][0]) for n in ("truepose", "schp")}
    assert before == after
    assert ".pkl" in folder_paths.supported_pt_extensions  # ComfyUI's shared set untouched


def test_model_folder_from_extra_paths_keeps_its_paths(comfy, tmp_path):
    import folder_paths

    saved = folder_paths.folder_names_and_paths.pop("schp")
    try:
        folder_paths.add_model_folder_path("schp", str(tmp_path))  # as extra_model_paths.yaml
        comfy.pack_module("nodes.model_folders").register_model_folders()
        paths, extensions = folder_paths.folder_names_and_paths["schp"]
        assert paths == [str(tmp_path), str(comfy.models_dir / "schp")]
        assert ".pth" in extensions
    finally:
        folder_paths.folder_names_and_paths["schp"] = saved


# ---------------------------------------------------------------------------------------------
# Pose nodes, called as ComfyUI calls them


def _check_shown_on_node(output, count):
    """The node's ``ui`` shows ``count`` preview PNGs saved in ComfyUI's temp folder."""
    import folder_paths

    shown = output.ui.as_dict()["images"]
    assert len(shown) == count
    for image in shown:
        assert image["type"] == "temp"
        path = Path(folder_paths.get_temp_directory()) / image["subfolder"] / image["filename"]
        assert path.is_file() and path.read_bytes().startswith(b"\x89PNG")


def _check_pose_output(output, count, width, height):
    poses, preview = output.result
    assert len(poses) == count
    assert preview.shape == (count, height, width, 3)
    assert preview.dtype == torch.float32
    assert float(preview.min()) >= 0.0 and float(preview.max()) <= 1.0
    assert float(preview.max()) > 0.5  # a skeleton was drawn
    _check_shown_on_node(output, count)
    return poses


def test_pose_from_keypoint_openpose_and_dwpose(comfy):
    keypoints = comfy.pack_module("truepose_core.keypoints")
    pose = _deepfashion_pose(comfy)
    node = comfy.node_class("TruePose_PoseFromKeypoint")
    # OpenPose preprocessor: 0..1 of the canvas; DWPose: pixels.
    frames = keypoints.pose_to_pose_keypoint([pose], normalized=True)
    frames += keypoints.pose_to_pose_keypoint([pose], normalized=False)
    poses = _check_pose_output(node.execute(frames), 2, 176, 256)
    for got in poses:
        np.testing.assert_allclose(got.xy, pose.xy, atol=1e-3)
        np.testing.assert_array_equal(got.confidence > 0, pose.confidence > 0)


def test_pose_from_openpose_json_text_and_file(comfy):
    keypoints = comfy.pack_module("truepose_core.keypoints")
    pose = _deepfashion_pose(comfy)
    node = comfy.node_class("TruePose_PoseFromOpenPoseJSON")
    # OpenPose's own files carry no canvas: the size comes from the widgets.
    document = {"people": [{"pose_keypoints_2d": keypoints._flat_keypoints(pose, False)}]}
    poses = _check_pose_output(node.execute(json.dumps(document), "(none)", 176, 256), 1, 176, 256)
    assert poses[0] == pose

    (comfy.input_dir / "one.json").write_text(json.dumps(keypoints.pose_to_openpose_json(pose)))
    poses = _check_pose_output(node.execute("", "one.json", 0, 0), 1, 176, 256)
    assert poses[0] == pose


def test_openpose_json_lists_only_json_files_of_the_input_folder(comfy):
    (comfy.input_dir / "listed.JSON").write_text("{}")
    (comfy.input_dir / "photo.png").write_bytes(b"not a pose")
    (comfy.input_dir / "deep" / "er").mkdir(parents=True, exist_ok=True)
    (comfy.input_dir / "deep" / "er" / "hidden.json").write_text("{}")
    listed = comfy.pack_module("nodes.pose").json_files_in_input()
    assert "listed.JSON" in listed
    assert all(name.lower().endswith(".json") and "/" not in name for name in listed)
    options = next(
        i.options
        for i in comfy.node_class("TruePose_PoseFromOpenPoseJSON").GET_SCHEMA().inputs
        if i.id == "file"
    )
    assert options[0] == "(none)" and "listed.JSON" in options and "photo.png" not in options


def test_openpose_json_file_edited_on_disk_runs_again(comfy):
    """fingerprint_inputs hashes the file, so ComfyUI's cache does not serve a stale pose."""
    keypoints = comfy.pack_module("truepose_core.keypoints")
    node = comfy.node_class("TruePose_PoseFromOpenPoseJSON")
    pose = _deepfashion_pose(comfy)
    path = comfy.input_dir / "edited.json"
    path.write_text(json.dumps(keypoints.pose_to_openpose_json(pose)))
    before = node.fingerprint_inputs(json_text="", file="edited.json", width=0, height=0)
    assert before == node.fingerprint_inputs(json_text="", file="edited.json", width=0, height=0)
    path.write_text(json.dumps(keypoints.pose_to_openpose_json(pose.resized(352, 512))))
    after = node.fingerprint_inputs(json_text="", file="edited.json", width=0, height=0)
    assert after != before
    assert node.fingerprint_inputs(json_text="{}", file="(none)", width=0, height=0) == ""


def test_pose_from_deepfashion_scales_to_target(comfy):
    node = comfy.node_class("TruePose_PoseFromDeepFashion")
    pose = _deepfashion_pose(comfy)
    same = _check_pose_output(node.execute(DF_Y, DF_X), 1, 176, 256)
    assert same[0] == pose
    scaled = _check_pose_output(node.execute(DF_Y, DF_X, 352, 512), 1, 352, 512)
    np.testing.assert_allclose(scaled[0].xy, pose.xy * 2, atol=1e-4)


def test_pose_batch_joins_in_order(comfy):
    node = comfy.node_class("TruePose_PoseBatch")
    a = _deepfashion_pose(comfy)
    b = a.resized(352, 512)
    poses = _check_pose_output(node.execute([a], [b, a]), 3, 176, 256)
    assert poses[0] == a and poses[1] == b and poses[2] == a


def test_bad_pose_keypoint_reads_well(comfy):
    node = comfy.node_class("TruePose_PoseFromKeypoint")
    errors = comfy.pack_module("nodes.errors")
    with pytest.raises(errors.TruePoseNodeError) as caught:
        node.execute([{"people": [], "canvas_width": 512, "canvas_height": 512}])
    assert type(caught.value).__name__ == "PoseError"
    assert type(caught.value).__module__ == "truepose"
    assert "'people' is empty" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_openpose_json_file_outside_input_is_refused(comfy):
    node = comfy.node_class("TruePose_PoseFromOpenPoseJSON")
    errors = comfy.pack_module("nodes.errors")
    with pytest.raises(errors.TruePoseNodeError, match="not found in the input folder"):
        node.execute("", "../custom_nodes/comfyui-truepose/pyproject.toml", 0, 0)


# ---------------------------------------------------------------------------------------------
# Whole prompts in-process


def _pose_prompt(keypoints_y=DF_Y, keypoints_x=DF_X):
    return {
        "1": {
            "class_type": "TruePose_PoseFromDeepFashion",
            "inputs": {"keypoints_y": keypoints_y, "keypoints_x": keypoints_x},
        },
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 1]}},
    }


def _json_prompt(text):
    return {
        "1": {
            "class_type": "TruePose_PoseFromOpenPoseJSON",
            "inputs": {"json_text": text, "file": "(none)", "width": 0, "height": 0},
        },
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 1]}},
    }


def test_pose_prompt_runs_in_process(comfy):
    run = comfy.run_prompt(_pose_prompt())
    assert run.success, run.error
    assert run.ui_outputs["2"]["images"]
    assert len(run.node_outputs["1"][0][0]) == 1  # one pose on the TRUEPOSE_POSE socket


def test_error_prompt_carries_our_message_in_process(comfy):
    run = comfy.run_prompt(_json_prompt('{"people": []}'))
    assert not run.success
    error = run.error
    assert error["node_type"] == "TruePose_PoseFromOpenPoseJSON"
    assert error["exception_type"] == "truepose.PoseError"
    assert error["exception_message"].strip() == (
        "OpenPose JSON: 'people' is empty; expected at least one detected person"
    )


# ---------------------------------------------------------------------------------------------
# Parsing nodes


@pytest.fixture(scope="module")
def random_schp(comfy):
    """A full-size LIP SCHP checkpoint with random weights, in models/schp (fp16 on disk)."""
    from safetensors.torch import save_file

    schp = comfy.pack_module("truepose_core.schp")
    torch.manual_seed(0)
    net = schp.build_schp(20)
    state = {k: v.half().contiguous() for k, v in net.state_dict().items()}
    name = "random-lip.safetensors"
    save_file(state, str(comfy.models_dir / "schp" / name))
    return name


def _person_image(height=96, width=64):
    image = torch.zeros(1, height, width, 3)
    image[:, height // 4 : height - 8, width // 3 : 2 * width // 3] = torch.tensor([0.8, 0.3, 0.2])
    return image


def test_human_parse_lists_and_runs_a_checkpoint(comfy, random_schp):
    node = comfy.node_class("TruePose_HumanParse")
    schema = node.GET_SCHEMA()
    combo = next(i for i in schema.inputs if i.id == "schp_model")
    assert random_schp in combo.options
    image = _person_image()
    batch, preview, mask = node.execute(torch.cat([image, image.flip(2)]), random_schp).result
    assert batch.label_set == "lip"
    assert batch.labels.shape == (2, 96, 64) and batch.labels.dtype == torch.int64
    assert int(batch.labels.min()) >= 0 and int(batch.labels.max()) < 20
    assert preview.shape == (2, 96, 64, 3)
    assert mask.shape == (2, 96, 64)
    torch.testing.assert_close(mask, (batch.labels != 0).float())
    _check_shown_on_node(node.execute(image, random_schp), 1)


def test_human_parse_unknown_model_reads_well(comfy):
    node = comfy.node_class("TruePose_HumanParse")
    errors = comfy.pack_module("nodes.errors")
    with pytest.raises(errors.TruePoseNodeError, match="put|not found in the schp model folders"):
        node.execute(_person_image(), "no-such-model.pth")


def test_parsing_from_image_palette_and_indices(comfy):
    parsing = comfy.pack_module("truepose_core.parsing")
    node = comfy.node_class("TruePose_ParsingFromImage")
    labels = torch.zeros(48, 32, dtype=torch.int64)
    labels[10:40, 8:24] = 5  # upper clothes
    labels[4:10, 12:20] = 13  # face
    colours = parsing.colorize(labels.numpy(), parsing.get_label_set("lip"))
    image = torch.from_numpy(colours).float().div(255.0)[None]
    batch, preview, mask = node.execute(image, "lip", "auto").result
    torch.testing.assert_close(batch.labels[0], labels)
    torch.testing.assert_close(preview, image)
    assert float(mask.sum()) == float((labels != 0).sum())
    _check_shown_on_node(node.execute(image, "lip", "auto"), 1)

    gray = labels.float().div(255.0)[None, :, :, None].expand(1, 48, 32, 3)
    batch, _, _ = node.execute(gray, "lip", "label indices").result
    torch.testing.assert_close(batch.labels[0], labels)


def test_human_parse_prompt_runs_in_process(comfy, random_schp):
    prompt = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0xC04020},
        },
        "2": {
            "class_type": "TruePose_HumanParse",
            "inputs": {"image": ["1", 0], "schp_model": random_schp},
        },
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 1]}},
    }
    run = comfy.run_prompt(prompt)
    assert run.success, run.error
    assert run.ui_outputs["3"]["images"]


# ---------------------------------------------------------------------------------------------
# Over HTTP


def test_object_info_lists_our_nodes_with_tooltips(comfy_server):
    info = comfy_server.object_info()
    for node_id in POSE_NODES + PARSE_NODES:
        assert node_id in info, f"{node_id} missing from /object_info"
        entry = info[node_id]
        assert entry["category"].startswith("TruePose/")
        for group in ("required", "optional"):
            for name, spec in entry["input"].get(group, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name}: no tooltip"
    outputs = info["TruePose_PoseFromKeypoint"]["output"]
    assert outputs == ["TRUEPOSE_POSE", "IMAGE"]
    assert info["TruePose_PoseFromKeypoint"]["input"]["required"]["pose_keypoint"][0] == (
        "POSE_KEYPOINT"
    )


def test_pose_prompt_runs_over_http(comfy_server):
    entry = comfy_server.run_prompt(_pose_prompt())
    assert entry["status"]["status_str"] == "success", entry["status"]
    images = entry["outputs"]["2"]["images"]
    assert images and images[0]["type"] == "temp"


def test_error_prompt_reports_execution_error_over_http(comfy_server):
    entry = comfy_server.run_prompt(_json_prompt('{"people": []}'))
    assert entry["status"]["status_str"] == "error"
    (error,) = history_messages(entry, "execution_error")
    assert error["node_type"] == "TruePose_PoseFromOpenPoseJSON"
    assert error["exception_type"] == "truepose.PoseError"
    assert error["exception_message"].strip() == (
        "OpenPose JSON: 'people' is empty; expected at least one detected person"
    )
