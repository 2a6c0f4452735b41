"""Human-parsing nodes: SCHP on an IMAGE batch, or a parsing map made elsewhere.

Both give a ``TRUEPOSE_PARSING`` (:class:`~.types.ParsingBatch`: class indices per pixel plus
the label set's name). The network and the label tables live in ``truepose_core.schp`` and
``truepose_core.parsing``; these classes only translate ComfyUI values and place the model.
"""

from __future__ import annotations

import numpy as np
import torch
from comfy_api.latest import io, ui

from ..truepose_core import parsing, schp
from ..truepose_core.errors import ParsingError
from ..truepose_core.images import check_parser_size, to_rgb_float
from .errors import node_errors
from .model_folders import SCHP_FOLDER, resolve_model_path
from .types import ParsingBatch, ParsingSocket

CATEGORY = "TruePose/parsing"
LABEL_SETS = parsing.LABEL_SET_NAMES
ENCODINGS = parsing.PARSING_IMAGE_ENCODINGS
#: Rough activation memory of one SCHP forward pass per network input pixel, in bytes
#: (ResNet-101 features at strides 4..16 plus the decoder), used to make room on the device.
_ACTIVATION_BYTES_PER_INPUT_PIXEL = 4 * 1024


def schp_model_files() -> list[str]:
    import folder_paths

    return folder_paths.get_filename_list(SCHP_FOLDER)


def resolve_schp_path(name: str) -> str:
    """Full path of ``name`` in ``models/schp``."""
    return resolve_model_path(
        SCHP_FOLDER, name, "SCHP model", "an SCHP checkpoint such as exp-schp-201908261155-lip.pth"
    )


def parse_images(parser: schp.SCHPParser, images: torch.Tensor) -> torch.Tensor:
    """Run ``parser`` through ComfyUI's model management; int64 (batch, h, w) on the CPU."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.utils

    patcher = comfy.model_patcher.ModelPatcher(
        parser, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )
    in_h, in_w = parser.input_size
    mm.load_models_gpu(
        [patcher],
        memory_required=in_h * in_w * _ACTIVATION_BYTES_PER_INPUT_PIXEL,
        force_full_load=True,
    )
    progress = comfy.utils.ProgressBar(images.shape[0])
    labels = []
    for image in images.split(1):
        mm.throw_exception_if_processing_interrupted()
        labels.append(parser.parse(image).to("cpu"))
        progress.update(1)
    return torch.cat(labels)


def colorized(batch: ParsingBatch) -> torch.Tensor:
    """IMAGE batch of the label maps in the label set's palette: float32 (b, h, w, 3)."""
    label_set = parsing.get_label_set(batch.label_set)
    frames = [parsing.colorize(labels.numpy(), label_set) for labels in batch.labels]
    return torch.from_numpy(np.stack(frames)).float().div(255.0)


def person_mask(batch: ParsingBatch) -> torch.Tensor:
    """MASK batch: 1.0 where the label is not background (0), else 0.0."""
    return (batch.labels != 0).float()


def _parsing_output(batch: ParsingBatch) -> io.NodeOutput:
    """Parsing, its colour preview and person mask; the preview is also shown on the node."""
    preview = colorized(batch)
    return io.NodeOutput(batch, preview, person_mask(batch), ui=ui.PreviewImage(preview))


def _parsing_outputs() -> list[io.Output]:
    return [
        ParsingSocket.Output(
            display_name="parsing",
            tooltip="Class index per pixel (0 = background) and the label set name (lip/atr).",
        ),
        io.Image.Output(display_name="preview", tooltip="Labels in the label set's colours."),
        io.Mask.Output(display_name="person_mask", tooltip="1 on any non-background label."),
    ]


class HumanParse(io.ComfyNode):
    """SCHP human parsing of an image batch."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_HumanParse",
            display_name="TruePose Human Parse (body parts)",
            category=CATEGORY,
            description=(
                "Labels every pixel with a body part or garment class using Self-Correction "
                "Human Parsing; the label set (LIP 20 classes, ATR 18) follows the checkpoint."
            ),
            inputs=[
                io.Image.Input(
                    "image",
                    tooltip=(
                        "Person images, RGB 0..1 (RGBA is composited on white, grayscale "
                        "repeated), any size from 16 pixels a side that fits in memory."
                    ),
                ),
                io.Combo.Input(
                    "schp_model",
                    options=schp_model_files(),
                    tooltip=(
                        "SCHP checkpoint (.pth or .safetensors) in models/schp; LIP "
                        "(exp-schp-201908261155-lip.pth) is the label set TruePose expects."
                    ),
                ),
            ],
            outputs=_parsing_outputs(),
        )

    @classmethod
    def execute(cls, image: torch.Tensor, schp_model: str) -> io.NodeOutput:
        with node_errors():
            import comfy.model_management as mm

            image = to_rgb_float(image, "HumanParse image")
            check_parser_size(image.shape[1], image.shape[2], "HumanParse image")
            path = resolve_schp_path(schp_model)
            parser = schp.load_schp(path, device=mm.unet_offload_device())
            labels = parse_images(parser, image)
            batch = ParsingBatch(labels=labels, label_set=parser.label_set)
            return _parsing_output(batch)


class ParsingFromImage(io.ComfyNode):
    """A parsing map made elsewhere (SCHP's PNG output, an index image) to TRUEPOSE_PARSING."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_ParsingFromImage",
            display_name="TruePose Body Parts from Image",
            category=CATEGORY,
            description=(
                "Reads a human-parsing map loaded as an image: colours of the LIP/ATR palette "
                "(SCHP's PNG output) or gray levels equal to class indices."
            ),
            inputs=[
                io.Image.Input(
                    "parsing_image",
                    tooltip=(
                        "Parsing map as an IMAGE (0..1 RGB, read as 0..255): palette colours "
                        "or class index gray levels (0 = background)."
                    ),
                ),
                io.Combo.Input(
                    "label_set",
                    options=list(LABEL_SETS),
                    default="lip",
                    tooltip="Label set of the map: lip (20 classes) or atr (18 classes).",
                ),
                io.Combo.Input(
                    "encoding",
                    options=list(ENCODINGS),
                    default="auto",
                    tooltip=(
                        "auto: gray images whose values are below the class count are indices, "
                        "anything else palette colours."
                    ),
                ),
            ],
            outputs=_parsing_outputs(),
        )

    @classmethod
    def execute(cls, parsing_image: torch.Tensor, label_set: str, encoding: str) -> io.NodeOutput:
        with node_errors():
            if label_set not in LABEL_SETS:
                raise ParsingError(
                    f"label_set {label_set!r}: expected one of {', '.join(LABEL_SETS)}"
                )
            if encoding not in ENCODINGS:
                raise ParsingError(f"encoding {encoding!r}: expected one of {', '.join(ENCODINGS)}")
            labels = parsing.decode_parsing_images(parsing_image, label_set, encoding)
            batch = ParsingBatch(labels=labels, label_set=label_set)
            return _parsing_output(batch)


NODES: list[type[io.ComfyNode]] = [HumanParse, ParsingFromImage]
