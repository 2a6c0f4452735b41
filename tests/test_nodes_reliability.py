"""Bad inputs and repeated runs through the nodes, inside a real ComfyUI.

The core checks live in test_reliability.py, test_images.py, test_checkpoint.py and friends;
here the same inputs arrive as ComfyUI values and must come back as a readable node error
(``truepose.<ErrorClass>`` with the core's one-line message) or as the documented correction
(RGBA composited on white, one channel repeated to RGB).
"""

from __future__ import annotations

import ast
import contextlib
import gc
import json
from pathlib import Path

import psutil
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.tiny_models import (
    STANDING_X,
    STANDING_Y,
    TINY_CHECKPOINT,
    person_parsing,
)

CHECKPOINT = TINY_CHECKPOINT

pytestmark = pytest.mark.comfyui

H, W = 128, 88
NODES_DIR = Path(__file__).resolve().parent.parent / "nodes"
NO_JOINTS = str([-1] * 18)


def _node_error(comfy):
    return comfy.pack_module("nodes.errors").TruePoseNodeError


@contextlib.contextmanager
def _raises(comfy, kind: str, match: str):
    """pytest.raises for the node-facing twin of the core error ``kind``."""
    with pytest.raises(_node_error(comfy), match=match) as caught:
        yield caught
    error = caught.value
    assert type(error).__name__ == kind, f"{type(error).__name__}: {error}"
    assert type(error).__module__ == "truepose"
    assert "\n" not in str(error)


def _image(batch=1, h=H, w=W, channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, h, w, channels, generator=g)


def _parsing(comfy, labels=None, label_set="lip"):
    types = comfy.pack_module("nodes.types")
    return types.ParsingBatch(
        labels=person_parsing(1, H, W) if labels is None else labels, label_set=label_set
    )


def _pose(comfy, ys=STANDING_Y):
    return comfy.pack_module("truepose_core.keypoints").parse_deepfashion_row(ys, STANDING_X)


def _encode(comfy, loaded, image, parsing):
    _model, truepose, vae = loaded
    node = comfy.node_class("TruePose_SourceNetEncode")
    return node.execute(truepose, vae, image, parsing).result[0]


@pytest.fixture(scope="module")
def source(comfy, loaded):
    return _encode(comfy, loaded, _image(), _parsing(comfy))


# ---------------------------------------------------------------------------------------------
# Images


def test_rgba_and_gray_sources_follow_the_image_policy(comfy, loaded, source):
    rgb = _image()
    alpha = torch.full((1, H, W, 1), 0.5)
    composited = rgb * alpha + (1 - alpha)  # RGBA is composited on white
    from_rgba = _encode(comfy, loaded, torch.cat([rgb, alpha], dim=-1), _parsing(comfy))
    want = _encode(comfy, loaded, composited, _parsing(comfy))
    for name, feats in want.features.items():
        torch.testing.assert_close(from_rgba.features[name], feats)
    assert not torch.allclose(from_rgba.image_embeds, source.image_embeds)

    gray = rgb[..., :1]
    from_gray = _encode(comfy, loaded, gray, _parsing(comfy))
    want = _encode(comfy, loaded, gray.expand(1, H, W, 3).contiguous(), _parsing(comfy))
    torch.testing.assert_close(from_gray.image_embeds, want.image_embeds)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1, 56, 48), "48x56 .* too small; each side needs at least 64 px.*TruePose Fit Inputs"),
        ((1, 8200, 64), "64x8200 .* too large; each side must be at most 8192 px.*Fit Inputs"),
        ((1, 100, 70), "70x100 .* not a multiple of 8. Fit the image, its parsing and the target"),
    ],
)
def test_source_sizes_outside_the_policy_are_refused(comfy, loaded, shape, match):
    _b, h, w = shape
    parsing = _parsing(comfy, person_parsing(1, h, w))
    with _raises(comfy, "ImageError", "source image: " + match):
        _encode(comfy, loaded, _image(h=h, w=w), parsing)


def test_source_values_outside_0_1_are_refused(comfy, loaded):
    image = _image()
    image[0, 3, 4, 1] = float("nan")
    with _raises(comfy, "ImageError", "source image: contains NaN"):
        _encode(comfy, loaded, image, _parsing(comfy))


def test_source_images_and_parsing_maps_must_pair_up(comfy, loaded):
    with _raises(comfy, "BatchError", "1 parsing maps for 2 source images"):
        _encode(comfy, loaded, _image(batch=2), _parsing(comfy))


def test_human_parse_checks_the_image_before_loading(comfy):
    node = comfy.node_class("TruePose_HumanParse")
    with _raises(comfy, "ImageError", "HumanParse image: 8x40 .* too small.*at least 16 px"):
        node.execute(_image(h=40, w=8), "no-such-model.pth")
    # Any size from 16 px passes the image check (and meets the missing model next).
    with _raises(comfy, "CheckpointError", "no-such-model.pth"):
        node.execute(_image(h=4100, w=17), "no-such-model.pth")
    with _raises(comfy, "ImageError", "HumanParse image: float values must lie in"):
        node.execute(_image() * 3, "no-such-model.pth")


def test_parsing_from_image_takes_one_channel_and_rgba(comfy):
    node = comfy.node_class("TruePose_ParsingFromImage")
    labels = person_parsing(1, H, W)
    gray = labels.float().div(255.0)[..., None]  # (1, H, W, 1): class indices as gray
    assert torch.equal(node.execute(gray, "lip", "auto").result[0].labels, labels)
    rgba = torch.cat([gray.expand(1, H, W, 3), torch.zeros(1, H, W, 1)], dim=-1)
    assert torch.equal(node.execute(rgba, "lip", "label indices").result[0].labels, labels)
    with _raises(comfy, "ParsingError", "no person found"):
        node.execute(torch.zeros(1, H, W, 1), "lip", "auto")


# ---------------------------------------------------------------------------------------------
# Parsing maps at SourceNetEncode


def _with_label_42():
    labels = person_parsing(1, H, W)
    labels[0, 0, 0] = 42
    return labels


@pytest.mark.parametrize(
    ("labels", "label_set", "kind", "match"),
    [
        (torch.zeros(1, H, W, dtype=torch.long), "lip", "ParsingError", "no person found"),
        (_with_label_42(), "lip", "ParsingError", "labels 42 are outside the LIP range 0..19"),
        (person_parsing(1, 120, W), "lip", "ParsingError", "size 120x88 .* differs"),
        (person_parsing(1, H, W), "atr", "ParsingError", "label set 'atr'"),
        (person_parsing(1, H, W)[0], "lip", "ParsingError", r"\(batch, height, width\)"),
    ],
    ids=["background-only", "label-42", "other-size", "other-label-set", "no-batch-axis"],
)
def test_unusable_parsing_is_refused(comfy, loaded, labels, label_set, kind, match):
    with _raises(comfy, kind, match):
        _encode(comfy, loaded, _image(), _parsing(comfy, labels, label_set))


# ---------------------------------------------------------------------------------------------
# Poses


def test_pose_without_visible_joints_is_refused_by_patch_and_attention_map(comfy, loaded, source):
    model, truepose, _vae = loaded
    nothing = [_pose(comfy, NO_JOINTS)]
    patch = comfy.node_class("TruePose_HPFAPatchModel")
    with _raises(comfy, "PoseError", "target pose: no visible joint"):
        patch.execute(model, truepose, source, nothing, 0.3, 0.6, 1.0)
    with _raises(comfy, "PoseError", "target pose 1: no visible joint"):
        patch.execute(model, truepose, source, [_pose(comfy), *nothing], 0.3, 0.6, 1.0)
    with _raises(comfy, "PoseError", "target pose: no pose arrived"):
        patch.execute(model, truepose, source, [], 0.3, 0.6, 1.0)
    attention = comfy.node_class("TruePose_AttentionMap")
    with _raises(comfy, "PoseError", "target pose: no visible joint"):
        attention.execute(truepose, source, nothing, _image(), 0.3, 0.6, 0.6)


_KEYPOINTS_54 = [10.0, 20.0, 1.0] * 18


@pytest.mark.parametrize(
    ("node_id", "args", "match"),
    [
        ("TruePose_PoseFromOpenPoseJSON", ("{people: []", "(none)", 64, 64), "not valid JSON"),
        (
            "TruePose_PoseFromOpenPoseJSON",
            (json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 10}]}), "(none)", 64, 64),
            "has 10 values; expected 54",
        ),
        (
            "TruePose_PoseFromOpenPoseJSON",
            ('{"people": [{"pose_keypoints_2d": [NaN, 1, 1' + ", 1" * 51 + "]}]}", "(none)", 9, 9),
            "joint nose has non-finite coordinates",
        ),
        (
            "TruePose_PoseFromKeypoint",
            ([{"canvas_width": 64, "canvas_height": 64, "people": []}],),
            "'people' is empty",
        ),
        ("TruePose_PoseFromKeypoint", ([],), "the list of frames is empty"),
        (
            "TruePose_PoseFromKeypoint",
            (
                [
                    {
                        "canvas_width": 0,
                        "canvas_height": 64,
                        "people": [{"pose_keypoints_2d": _KEYPOINTS_54}],
                    }
                ],
            ),
            "frame 0: canvas width must be a positive integer, got 0",
        ),
        ("TruePose_PoseFromDeepFashion", ("[1, 2, 3]", STANDING_X), "expected 18 values"),
        ("TruePose_PoseFromDeepFashion", ("not json", STANDING_X), "not a JSON list"),
        (
            "TruePose_PoseFromDeepFashion",
            (STANDING_Y.replace("40,", "NaN,", 1), STANDING_X),
            "expected a finite number",
        ),
    ],
    ids=[
        "json-not-json",
        "json-10-values",
        "json-nan",
        "keypoint-no-people",
        "keypoint-no-frames",
        "keypoint-zero-canvas",
        "deepfashion-3-values",
        "deepfashion-not-json",
        "deepfashion-nan",
    ],
)
def test_bad_pose_input_reads_well(comfy, node_id, args, match):
    with _raises(comfy, "PoseError", match):
        comfy.node_class(node_id).execute(*args)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def _write_variant(comfy, checkpoint, name, change_tensors=None, change_metadata=None):
    tensors = load_file(str(checkpoint))
    with safe_open(str(checkpoint), framework="pt") as f:
        metadata = dict(f.metadata())
    if change_tensors:
        tensors = change_tensors(tensors)
    if change_metadata:
        metadata = change_metadata(metadata)
    save_file(tensors, str(comfy.models_dir / "truepose" / name), metadata=metadata)
    return name


def _drop(prefix):
    return lambda tensors: {k: v for k, v in tensors.items() if not k.startswith(prefix)}


def _set(key, value):
    return lambda metadata: {**metadata, key: value}


def test_broken_checkpoints_name_the_file(comfy, checkpoint):
    load = comfy.node_class("TruePose_LoadTruePose")
    truncated = comfy.models_dir / "truepose" / "truncated.safetensors"
    data = checkpoint.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    sd_unet = comfy.models_dir / "truepose" / "sd-unet.safetensors"
    save_file(
        {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3)}, str(sd_unet)
    )
    first_layer = next(
        k.split(".")[1] for k in load_file(str(checkpoint)) if k.startswith("fusion.")
    )
    cases = [
        (truncated.name, "not a readable safetensors file"),
        (sd_unet.name, "metadata format is None, expected 'truepose-v1'"),
        (
            _write_variant(
                comfy, checkpoint, "no-fusion.safetensors", _drop(f"fusion.{first_layer}.")
            ),
            f"missing keys \\['fusion.{first_layer}.",
        ),
        (
            _write_variant(comfy, checkpoint, "no-unet.safetensors", _drop("source_unet.conv_in.")),
            r"missing keys \['source_unet.conv_in.bias', 'source_unet.conv_in.weight'\]",
        ),
        (
            _write_variant(
                comfy, checkpoint, "bad-config.safetensors", None, _set("truepose_config", "{}x")
            ),
            "metadata 'truepose_config' is not valid JSON",
        ),
        (
            _write_variant(
                comfy,
                checkpoint,
                "unknown-key.safetensors",
                None,
                lambda m: {
                    **m,
                    "truepose_config": json.dumps(
                        {**json.loads(m["truepose_config"]), "no_such_setting": 1}
                    ),
                },
            ),
            "invalid truepose_config metadata: .*no_such_setting",
        ),
    ]
    for name, match in cases:
        with _raises(comfy, "CheckpointError", match) as caught:
            load.execute(name)
        assert name in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/passwd", "..\\..\\secret.safetensors", "a/../../b.pt"]
)
def test_model_names_outside_the_model_folders_are_refused(comfy, name):
    with _raises(comfy, "CheckpointError", "not a file name inside the truepose model folders"):
        comfy.node_class("TruePose_LoadTruePose").execute(name)
    with _raises(comfy, "CheckpointError", "not a file name inside the schp model folders"):
        comfy.node_class("TruePose_HumanParse").execute(_image(), name)


def test_loader_builds_no_diffusers_unet(comfy, checkpoint, loaded):
    core = comfy.pack_module("truepose_core.checkpoint")
    light = core.load_truepose(checkpoint, build_unets=False)
    assert light.model.target_unet is None and light.model.source_unet is None
    full = core.load_truepose(checkpoint)
    assert light.unet_config == dict(full.unet_config)
    for which in ("target_unet", "source_unet"):
        want = getattr(full.model, which).state_dict()
        got = light.unet_states[which]
        assert set(got) == set(want)
        assert all(torch.equal(got[k], want[k]) for k in want)
    for name, value in full.model.state_dict().items():
        if not name.startswith(("target_unet.", "source_unet.")):
            assert torch.equal(light.model.state_dict()[name], value), name
    _model, truepose, _vae = loaded
    assert truepose.model.target_unet is None and truepose.model.source_unet is None


# ---------------------------------------------------------------------------------------------
# Whole prompts, one after the other


def _graph(index: int, seed: int, checkpoint: str = CHECKPOINT, steps: int = 2) -> dict:
    return {
        "1": {"class_type": "TruePose_LoadTruePose", "inputs": {"checkpoint": checkpoint}},
        "2": {
            "class_type": "TruePose_SynthFashionSample",
            "inputs": {"index": index, "data_seed": 0, "height": H, "width": W},
        },
        "3": {
            "class_type": "TruePose_SourceNetEncode",
            "inputs": {
                "truepose": ["1", 1],
                "vae": ["1", 2],
                "source_image": ["2", 0],
                "source_parsing": ["2", 1],
            },
        },
        "4": {
            "class_type": "TruePose_HPFAPatchModel",
            "inputs": {
                "model": ["1", 0],
                "truepose": ["1", 1],
                "source": ["3", 0],
                "target_pose": ["2", 2],
                "sigma": 0.3,
                "delta": 0.6,
                "strength": 1.0,
            },
        },
        "5": {
            "class_type": "TruePose_TrueSampler",
            "inputs": {
                "model": ["4", 0],
                "truepose": ["1", 1],
                "source": ["3", 0],
                "seed": seed,
                "steps": steps,
                "cfg": 3.5,
                "sampler_name": "ddim",
                "scheduler": "ddim_uniform",
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }


def _run_image(comfy, prompt, executor=None) -> torch.Tensor:
    run = comfy.run_prompt(prompt, executor=executor)
    assert run.success, run.error
    return run.node_outputs["6"][0][0].clone()


def test_sources_queued_in_sequence_never_mix(comfy, checkpoint):
    alone = _run_image(comfy, _graph(index=1, seed=7))  # fresh caches: source 1 only
    queue = comfy.executor()  # caches kept between prompts, as on the server
    first = _run_image(comfy, _graph(index=0, seed=7), queue)
    second = _run_image(comfy, _graph(index=1, seed=7), queue)
    assert torch.equal(second, alone)
    assert not torch.equal(first, second)
    other_seed = _run_image(comfy, _graph(index=1, seed=8), queue)
    assert not torch.equal(other_seed, alone)
    assert torch.equal(_run_image(comfy, _graph(index=1, seed=7), queue), alone)


def test_error_prompt_names_the_error_class(comfy, checkpoint):
    run = comfy.run_prompt(_graph(index=0, seed=0, checkpoint="../../etc/passwd"))
    assert not run.success
    assert run.error["node_type"] == "TruePose_LoadTruePose"
    assert run.error["exception_type"] == "truepose.CheckpointError"
    assert "not a file name inside the truepose model folders" in run.error["exception_message"]


def test_saved_prompt_with_the_old_sampler_size_inputs_runs_at_the_source_size(comfy, checkpoint):
    """The sampler lost ``width``/``height``; an API prompt saved with them still runs."""
    prompt = _graph(index=0, seed=0)
    prompt["5"]["inputs"].update(width=2 * W, height=2 * H)
    run = comfy.run_prompt(prompt)
    assert run.success, run.error
    assert run.node_outputs["5"][0][0]["samples"].shape[-2:] == (H // 8, W // 8)
    assert run.node_outputs["6"][0][0].shape == (1, H, W, 3)


def test_memory_does_not_grow_over_repeated_runs(comfy, checkpoint):
    process = psutil.Process()
    queue = comfy.executor()

    def rss_after(runs):
        for i in runs:
            _run_image(comfy, _graph(index=i % 3, seed=i, steps=1), queue)
        gc.collect()
        return process.memory_info().rss

    warm = rss_after(range(5))
    grown = (rss_after(range(5, 20)) - warm) / 2**20
    assert grown < 30, f"RSS grew by {grown:.1f} MiB between run 5 and run 20"


# ---------------------------------------------------------------------------------------------
# Every node reports TruePose errors through node_errors()


def _execute_bodies():
    for path in sorted(NODES_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            for fn in cls.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "execute":
                    yield f"{path.name}:{cls.name}", fn


def test_every_execute_runs_inside_node_errors(comfy):
    found = dict(_execute_bodies())
    registered = {cls.__name__ for cls in comfy.pack_module("nodes").NODE_LIST}
    assert registered <= {key.split(":")[1] for key in found}
    for where, fn in found.items():
        body = [s for s in fn.body if not isinstance(s, ast.Expr)]  # skip a docstring
        assert len(body) == 1 and isinstance(body[0], ast.With), where
        call = body[0].items[0].context_expr
        assert isinstance(call, ast.Call) and getattr(call.func, "id", "") == "node_errors", where
