"""Pose nodes: keypoints from ControlNet preprocessors, OpenPose JSON or DeepFashion rows.

Each node gives a ``TRUEPOSE_POSE`` (one ``Pose`` per frame, OpenPose 18-point order, x/y in
pixels of the frame) and a skeleton preview ``IMAGE``. Parsing and drawing live in
``truepose_core.keypoints``; these classes only translate ComfyUI values.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch
from comfy_api.latest import io, ui

from ..truepose_core import keypoints
from ..truepose_core.errors import PoseError
from ..truepose_core.fit import fit_pose
from ..truepose_core.images import MAX_SIDE
from ..truepose_core.keypoints import DEEPFASHION_HEIGHT, DEEPFASHION_WIDTH, LARGEST_PERSON
from .errors import node_errors
from .types import PoseKeypointSocket, PoseSocket

CATEGORY = "TruePose/pose"
NO_FILE = "(none)"
JSON_EXTENSIONS = (".json",)

POSE_OUTPUT_TOOLTIP = (
    "One pose per frame: 18 OpenPose keypoints, x/y in pixels of the frame, confidence 0..1 "
    "(0 = missing)."
)
PREVIEW_OUTPUT_TOOLTIP = (
    "Skeletons drawn on black, one image per pose, at the first pose's frame size; other "
    "people of a frame are drawn in dim gray under the chosen one."
)


def person_inputs() -> list[io.Input]:
    """The ``person_index`` and ``coordinates`` inputs of the nodes that read people."""
    return [
        io.Int.Input(
            "person_index",
            default=LARGEST_PERSON,
            min=LARGEST_PERSON,
            max=1000,
            optional=True,
            tooltip=(
                "Which person of each frame (0 = first listed); -1 = the largest person "
                "(widest box around their visible joints). The preview shows the chosen "
                "person in colour, the others in gray."
            ),
        ),
        io.Combo.Input(
            "coordinates",
            options=list(keypoints.COORDINATES),
            default="auto",
            optional=True,
            tooltip=(
                "Units of x/y. auto: pixels unless the whole frame lies in 0..1 (give or "
                "take 0.5); 0..1 frames with canvas_width/canvas_height are read the way "
                "comfyui_controlnet_aux's OpenPose writes them (0..1 of the canvas padded "
                "to a multiple of 64)."
            ),
        ),
    ]


def chosen_output(people_per_frame: list[list[keypoints.Pose]], person_index: int, what: str):
    """The chosen pose of each frame and a preview that shows the choice."""
    poses, frames = [], []
    width = height = None
    for f, people in enumerate(people_per_frame):
        index = keypoints.choose_person(people, int(person_index), f"{what} frame {f}")
        poses.append(people[index])
        if width is None:
            width, height = people[index].width, people[index].height
        frames.append(keypoints.render_people(people, index, width, height))
    preview = torch.from_numpy(np.stack(frames)).float().div(255.0)
    return io.NodeOutput(poses, preview, ui=ui.PreviewImage(preview))


def render_previews(poses: list[keypoints.Pose]) -> torch.Tensor:
    """Skeleton images of ``poses`` as an IMAGE batch: float32 (batch, h, w, 3) in 0..1."""
    if not poses:
        raise PoseError("no poses to draw: the input held no frame; expected at least one")
    width, height = int(poses[0].width), int(poses[0].height)
    frames = [keypoints.render_skeleton(pose, width=width, height=height) for pose in poses]
    return torch.from_numpy(np.stack(frames)).float().div(255.0)


def _pose_output(poses: list[keypoints.Pose]) -> io.NodeOutput:
    """The poses, their skeleton IMAGE, and the same skeletons shown on the node itself."""
    previews = render_previews(poses)
    return io.NodeOutput(list(poses), previews, ui=ui.PreviewImage(previews))


def _size_or_none(value: int) -> int | None:
    return int(value) if value and value > 0 else None


def _pose_outputs() -> list[io.Output]:
    return [
        PoseSocket.Output(display_name="pose", tooltip=POSE_OUTPUT_TOOLTIP),
        io.Image.Output(display_name="preview", tooltip=PREVIEW_OUTPUT_TOOLTIP),
    ]


class PoseFromKeypoint(io.ComfyNode):
    """``POSE_KEYPOINT`` (comfyui_controlnet_aux's OpenPose/DWPose output) to TruePose poses."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_PoseFromKeypoint",
            display_name="TruePose Pose from Pose Detector (DWPose / OpenPose)",
            category=CATEGORY,
            description=(
                "Reads the POSE_KEYPOINT output of the OpenPose or DWPose preprocessor "
                "(comfyui_controlnet_aux) and keeps one person of each frame: the largest, "
                "or person_index."
            ),
            inputs=[
                PoseKeypointSocket.Input(
                    "pose_keypoint",
                    tooltip=(
                        "List of frames, each with canvas_width, canvas_height (pixels) and "
                        "people[].pose_keypoints_2d as x, y, confidence triples; x/y either "
                        "0..1 of the canvas (OpenPose) or pixels (DWPose), detected per frame."
                    ),
                ),
                *person_inputs(),
            ],
            outputs=_pose_outputs(),
        )

    @classmethod
    def execute(
        cls, pose_keypoint, person_index: int = LARGEST_PERSON, coordinates: str = "auto"
    ) -> io.NodeOutput:
        with node_errors():
            people = keypoints.parse_pose_keypoint_people(pose_keypoint, coordinates)
            return chosen_output(people, person_index, "POSE_KEYPOINT")


def json_files_in_input() -> list[str]:
    """The .json files directly in ComfyUI's input folder (one directory read, like Load
    Image's list: the node list is built often, so no walk through subfolders)."""
    import folder_paths

    root = folder_paths.get_input_directory()
    if not os.path.isdir(root):
        return []
    with os.scandir(root) as entries:
        return sorted(
            e.name for e in entries if e.is_file() and e.name.lower().endswith(JSON_EXTENSIONS)
        )


def input_file_digest(name: str) -> str:
    """SHA-256 of the input folder's file ``name``, or a marker when it cannot be read, so
    that a pose file edited on disk runs the node again instead of giving a cached pose."""
    import folder_paths

    root = os.path.realpath(folder_paths.get_input_directory())
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root or not os.path.isfile(path):
        return f"missing:{name}"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_input_json(name: str) -> object:
    """Parse the JSON file ``name`` of the input folder; the name must stay inside it."""
    import folder_paths

    root = os.path.realpath(folder_paths.get_input_directory())
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root or not os.path.isfile(path):
        raise PoseError(
            f"OpenPose JSON file {name!r}: not found in the input folder {root}; expected a "
            ".json file there (refresh the node's list after adding one)"
        )
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return parse_json_text(text, source=f"OpenPose JSON file {name!r}")


def parse_json_text(text: str, source: str = "OpenPose JSON text") -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise PoseError(
            f"{source}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
            'expected OpenPose output such as {"people": [{"pose_keypoints_2d": [...]}]}'
        ) from err


class PoseFromOpenPoseJSON(io.ComfyNode):
    """OpenPose JSON text, or a .json file of the input folder, to TruePose poses."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_PoseFromOpenPoseJSON",
            display_name="TruePose Pose from OpenPose JSON",
            category=CATEGORY,
            description=(
                "Reads OpenPose JSON pasted as text or from a .json file in ComfyUI's input "
                "folder: one frame object, or a list of frames as saved from POSE_KEYPOINT. "
                "Keeps one person of each frame: the largest, or person_index, and shows the "
                "skeleton on the node. A file edited on disk is read again on the next run."
            ),
            inputs=[
                io.String.Input(
                    "json_text",
                    multiline=True,
                    default="",
                    tooltip=(
                        'OpenPose JSON: {"people": [{"pose_keypoints_2d": [x, y, c, ...]}]}, '
                        "optionally with canvas_width/canvas_height in pixels. x/y units follow "
                        "the coordinates option. Leave empty to use file."
                    ),
                ),
                io.Combo.Input(
                    "file",
                    options=[NO_FILE, *json_files_in_input()],
                    default=NO_FILE,
                    tooltip=(
                        "A .json file directly in ComfyUI's input folder (press R to refresh "
                        "the list after adding one), read instead of json_text. "
                        f"{NO_FILE} uses json_text."
                    ),
                ),
                io.Int.Input(
                    "width",
                    default=0,
                    min=0,
                    max=MAX_SIDE,
                    tooltip=(
                        "Frame width in pixels; 0 takes canvas_width from the JSON. Needed when "
                        "the JSON has no canvas size."
                    ),
                ),
                io.Int.Input(
                    "height",
                    default=0,
                    min=0,
                    max=MAX_SIDE,
                    tooltip=(
                        "Frame height in pixels; 0 takes canvas_height from the JSON. Needed "
                        "when the JSON has no canvas size."
                    ),
                ),
                *person_inputs(),
            ],
            outputs=_pose_outputs(),
        )

    @classmethod
    def fingerprint_inputs(cls, json_text: str = "", file: str = NO_FILE, **_) -> str:
        """The file's contents count, not only its name (ComfyUI's IS_CHANGED)."""
        if not file or file == NO_FILE:
            return ""
        return input_file_digest(file)

    @classmethod
    def execute(
        cls,
        json_text: str,
        file: str,
        width: int,
        height: int,
        person_index: int = LARGEST_PERSON,
        coordinates: str = "auto",
    ) -> io.NodeOutput:
        with node_errors():
            has_text = bool(json_text.strip())
            has_file = bool(file) and file != NO_FILE
            if has_text and has_file:
                raise PoseError(
                    f"OpenPose JSON: both json_text and file {file!r} are given; expected one "
                    f"of them (clear json_text, or set file to {NO_FILE})"
                )
            if has_file:
                data = read_input_json(file)
            elif has_text:
                data = parse_json_text(json_text)
            else:
                raise PoseError(
                    "OpenPose JSON: json_text is empty and no file is selected; expected "
                    "OpenPose JSON text or a .json file from the input folder"
                )
            width, height = _size_or_none(width), _size_or_none(height)
            if isinstance(data, list):
                # A saved POSE_KEYPOINT: every frame carries its own canvas.
                if width is not None or height is not None:
                    raise PoseError(
                        f"OpenPose JSON: a list of {len(data)} frames carries canvas_width/"
                        f"canvas_height per frame, but width {width} / height {height} were "
                        "set; expected width and height 0 for a list of frames"
                    )
                people = keypoints.parse_pose_keypoint_people(data, coordinates)
                return chosen_output(people, person_index, "OpenPose JSON")
            people = keypoints.parse_openpose_json(data, width, height, coordinates)
            return chosen_output([people], person_index, "OpenPose JSON")


class PoseFromDeepFashion(io.ComfyNode):
    """One DeepFashion keypoint row (the CSV of the pose-transfer split) to a TruePose pose."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_PoseFromDeepFashion",
            display_name="TruePose Pose from DeepFashion keypoints",
            category=CATEGORY,
            description=(
                "Reads the keypoints_y and keypoints_x columns of DeepFashion's "
                "fasion-resize-annotation CSV (18 OpenPose points in a 176x256 frame)."
            ),
            inputs=[
                io.String.Input(
                    "keypoints_y",
                    default="",
                    tooltip=(
                        "18 row coordinates in pixels of the 256-pixel-high frame, e.g. "
                        "[23, 45, ...]; -1 marks a missing point."
                    ),
                ),
                io.String.Input(
                    "keypoints_x",
                    default="",
                    tooltip=(
                        "18 column coordinates in pixels of the 176-pixel-wide frame, e.g. "
                        "[88, 90, ...]; -1 marks a missing point."
                    ),
                ),
                io.Int.Input(
                    "width",
                    default=DEEPFASHION_WIDTH,
                    min=1,
                    max=MAX_SIDE,
                    optional=True,
                    tooltip=(
                        "Target frame width in pixels; the 176x256 frame is fitted into "
                        "width x height (letterbox: aspect kept, centred). 176 keeps it."
                    ),
                ),
                io.Int.Input(
                    "height",
                    default=DEEPFASHION_HEIGHT,
                    min=1,
                    max=MAX_SIDE,
                    optional=True,
                    tooltip=(
                        "Target frame height in pixels; the 176x256 frame is fitted into "
                        "width x height (letterbox: aspect kept, centred). 256 keeps it."
                    ),
                ),
            ],
            outputs=_pose_outputs(),
        )

    @classmethod
    def execute(
        cls,
        keypoints_y: str,
        keypoints_x: str,
        width: int = DEEPFASHION_WIDTH,
        height: int = DEEPFASHION_HEIGHT,
    ) -> io.NodeOutput:
        with node_errors():
            pose = keypoints.parse_deepfashion_row(keypoints_y, keypoints_x)
            keypoints.require_visible([pose], "DeepFashion keypoints")
            return _pose_output([fit_pose(pose, int(width), int(height))])


class PoseBatch(io.ComfyNode):
    """Several TRUEPOSE_POSE values joined into one, in input order."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_PoseBatch",
            display_name="TruePose Combine Poses",
            category=CATEGORY,
            description="Joins poses into one batch: poses_1 first, then poses_2, ...",
            inputs=[
                PoseSocket.Input("poses_1", tooltip="First poses (pixels of their own frames)."),
                PoseSocket.Input("poses_2", tooltip="Poses appended after poses_1."),
                PoseSocket.Input(
                    "poses_3", optional=True, tooltip="Optional poses appended after poses_2."
                ),
                PoseSocket.Input(
                    "poses_4", optional=True, tooltip="Optional poses appended after poses_3."
                ),
            ],
            outputs=_pose_outputs(),
        )

    @classmethod
    def execute(cls, poses_1, poses_2, poses_3=None, poses_4=None) -> io.NodeOutput:
        with node_errors():
            joined = [p for group in (poses_1, poses_2, poses_3, poses_4) if group for p in group]
            return _pose_output(joined)


NODES: list[type[io.ComfyNode]] = [
    PoseFromKeypoint,
    PoseFromOpenPoseJSON,
    PoseFromDeepFashion,
    PoseBatch,
]
