"""A SynthFashion test pair as node outputs, so the demo workflow needs no input files."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..truepose_core.data.synthfashion import SynthFashion
from ..truepose_core.keypoints import Pose
from .errors import node_errors
from .pose import render_previews
from .types import ParsingBatch, ParsingSocket, PoseSocket

CATEGORY = "TruePose/demo"


def _image(chw: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [-1, 1] -> IMAGE (1, H, W, 3) in 0..1."""
    return ((chw.float() + 1) / 2).clamp(0, 1).movedim(0, -1)[None]


class SynthFashionSample(io.ComfyNode):
    """One pair of the procedural SynthFashion test split: source, parsing, target pose, truth."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_SynthFashionSample",
            display_name="TruePose SynthFashion Sample (demo person)",
            category=CATEGORY,
            description=(
                "Draws pair `index` of SynthFashion's test split: one synthetic person in two "
                "poses, with an exact LIP parsing map. The same index and data_seed always "
                "give the same pair; nothing is read from disk."
            ),
            inputs=[
                io.Int.Input(
                    "index", default=0, min=0, max=999_999, tooltip="Pair number (integer)."
                ),
                io.Int.Input(
                    "data_seed",
                    default=0,
                    min=0,
                    max=2**31 - 1,
                    tooltip="Data set seed (integer); the small model's test split uses 0.",
                ),
                io.Int.Input(
                    "height",
                    default=128,
                    min=16,
                    max=1024,
                    step=8,
                    tooltip="Image height in pixels (multiple of 8); the small model uses 128.",
                ),
                io.Int.Input(
                    "width",
                    default=88,
                    min=16,
                    max=1024,
                    step=8,
                    tooltip="Image width in pixels (multiple of 8); the small model uses 88.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="source_image", tooltip="Source person, RGB 0..1."),
                ParsingSocket.Output(
                    display_name="source_parsing", tooltip="Exact LIP parsing of the source."
                ),
                PoseSocket.Output(
                    display_name="target_pose",
                    tooltip="Target keypoints, x/y in pixels of the image, hidden joints 0.",
                ),
                io.Image.Output(
                    display_name="target_image", tooltip="Ground truth: the person in the pose."
                ),
                io.Image.Output(display_name="pose_preview", tooltip="Target skeleton."),
            ],
        )

    @classmethod
    def execute(cls, index, data_seed, height, width) -> io.NodeOutput:
        with node_errors():
            data = SynthFashion(
                size=(height, width), length=index + 1, seed=data_seed, split="test"
            )
            item = data[index]
            keypoints = item["target_keypoints"].numpy()
            pose = Pose(keypoints[:, :2], keypoints[:, 2], width=width, height=height)
            parsing = ParsingBatch(labels=item["source_parsing"][None].long(), label_set="lip")
            return io.NodeOutput(
                _image(item["source_image"]),
                parsing,
                [pose],
                _image(item["target_image"]),
                render_previews([pose]),
            )


NODES: list[type[io.ComfyNode]] = [SynthFashionSample]
