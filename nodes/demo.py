"""A SynthFashion test pair as node outputs, so the demo workflow needs no input files."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..truepose_core.data.batch import pair_batch
from ..truepose_core.data.synthfashion import SynthFashion
from .errors import node_errors
from .pose import render_previews
from .types import ParsingBatch, ParsingSocket, PoseSocket

CATEGORY = "TruePose/demo"


def _image(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in 0..1 -> IMAGE (B, H, W, 3)."""
    return images.float().clamp(0, 1).movedim(1, -1)


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
            batch = pair_batch([data[index]])
            parsing = ParsingBatch(labels=batch["parsing"].long(), label_set="lip")
            return io.NodeOutput(
                _image(batch["sources"]),
                parsing,
                batch["poses"],
                _image(batch["targets"]),
                render_previews(batch["poses"]),
            )


NODES: list[type[io.ComfyNode]] = [SynthFashionSample]
