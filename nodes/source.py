"""Encode the source person once: SourceNet features F' and CLIP region embeddings."""

from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

from ..truepose_core.domain import domain_note
from ..truepose_core.errors import BatchError, CheckpointError, ParsingError
from ..truepose_core.fusion import SourceEncoding
from ..truepose_core.images import check_size, to_rgb_float
from ..truepose_core.parsing import get_label_set, validate_parsing
from .errors import node_errors
from .handle import region_encoder
from .sourcenet import source_features
from .types import ParsingBatch, ParsingSocket, SourceSocket, TruePoseSocket

CATEGORY = "TruePose/sampling"


def check_source_image(image: torch.Tensor, parsing: ParsingBatch, label_set: str) -> torch.Tensor:
    """The source image as RGB float in 0..1, once it and its parsing pass the input policy.

    Channels, values and sizes follow the image policy (``truepose_core.images``): sizes
    must be multiples of 8 (no silent crop or resize): ComfyUI's VAE would centre-crop to
    multiples of 8, which would shift the image against its parsing map; TruePose refuses
    instead and names TruePose Fit Inputs, which fits image, parsing and pose together.
    The parsing map must have one map per image, the image's size, labels
    of the checkpoint's label set and at least one person pixel.
    """
    image = to_rgb_float(image, "source image")
    b, h, w = image.shape[0], image.shape[1], image.shape[2]
    check_size(h, w, "source image")
    if parsing is None:
        raise ParsingError(
            "source parsing: nothing arrived; connect Human Parse (or Parsing from Image), "
            "and its parsing through TruePose Fit Inputs when the image was fitted"
        )
    if parsing.label_set != label_set:
        raise ParsingError(
            f"source parsing: label set {parsing.label_set!r}, but the checkpoint was trained "
            f"with {label_set!r}; use an SCHP model of the {label_set.upper()} label set"
        )
    labels = parsing.labels
    if labels.dim() != 3:
        raise ParsingError(
            f"source parsing: expected class indices of shape (batch, height, width), got "
            f"{tuple(labels.shape)}"
        )
    if labels.shape[0] != b:
        raise BatchError(
            f"source parsing: {labels.shape[0]} parsing maps for {b} source images; expected "
            "one parsing map per source image (parse the same image batch)"
        )
    validate_parsing(labels, get_label_set(label_set), (h, w))
    return image


#: Attribute of a TRUEPOSE handle that remembers the console notes already shown for it.
NOTES_SHOWN = "truepose_notes_shown"


def note_domain_once(handle, height: int, width: int) -> None:
    """Log the domain note (``truepose_core.domain``) the first time a handle gets an input
    far from its training domain; never refuses the input."""
    note = domain_note(handle.config, height, width)
    if note is None:
        return
    shown = handle.__dict__.setdefault(NOTES_SHOWN, set())
    if "domain" not in shown:
        shown.add("domain")
        logging.getLogger("truepose").warning(note)


@torch.no_grad()
def encode_source(handle, vae, image: torch.Tensor, parsing: ParsingBatch, clip_vision):
    """The ComfyUI twin of ``TruePoseModel.encode_source`` (same SourceEncoding fields)."""
    import comfy.model_management as mm
    import comfy.utils

    image = check_source_image(image, parsing, handle.config.label_set)
    note_domain_once(handle, image.shape[1], image.shape[2])
    progress = comfy.utils.ProgressBar(3)
    latents = vae.encode(image)
    if handle.source is not None:  # variants without a SourceNet use only the latent size
        latents = handle.source.get_model_object("process_latent_in")(latents)
    progress.update(1)
    mm.throw_exception_if_processing_interrupted()

    encoder = region_encoder(handle, clip_vision)
    device = next(encoder.parameters()).device
    images = image.movedim(-1, 1).to(device)
    labels = parsing.labels.to(device)
    regions = encoder(images, labels, get_label_set(parsing.label_set))
    if regions.image_embeds.shape[-1] != handle.config.clip_dim:
        raise CheckpointError(
            f"clip_vision: embeddings of width {regions.image_embeds.shape[-1]}, but the "
            f"checkpoint expects {handle.config.clip_dim} ({handle.config.clip_model}); load "
            "the CLIP vision model the checkpoint was trained with"
        )
    progress.update(1)
    mm.throw_exception_if_processing_interrupted()

    module_device = handle.load_modules()
    embeds = regions.image_embeds.to(module_device, handle.dtype)
    context = handle.model.source_context(embeds)
    features = source_features(handle, latents, context)
    progress.update(1)
    out = mm.intermediate_device()
    return SourceEncoding(
        features=features,
        latent_hw=tuple(latents.shape[-2:]),
        parsing=parsing.labels.to(out),
        region_embeds=regions.region_embeds.float().to(out),
        region_present=regions.region_present.to(out),
        image_embeds=regions.image_embeds.float().to(out),
        label_set=parsing.label_set,
    )


class SourceNetEncode(io.ComfyNode):
    """Runs the SourceNet once on the source latent and embeds the parsing regions with CLIP."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_SourceNetEncode",
            display_name="TruePose Source Person",
            category=CATEGORY,
            description=(
                "Reads the person to copy, once: VAE latent, SourceNet features at timestep 0 "
                "for every fused layer, and CLIP embeddings of the whole image and of each "
                "parsing region. Reused by every pose and every sampling step."
            ),
            inputs=[
                TruePoseSocket.Input("truepose", tooltip="From Load TruePose Checkpoint."),
                io.Vae.Input(
                    "vae",
                    tooltip=(
                        "SD1.5 VAE (Load VAE), or the checkpoint's own VAE output for models "
                        "that embed one."
                    ),
                ),
                io.Image.Input(
                    "source_image",
                    tooltip=(
                        "Source person, RGB 0..1 (RGBA is composited on white, grayscale "
                        "repeated); width and height in pixels multiples of 8, 64..8192 (use "
                        "TruePose Fit Inputs for any photo; the trained size works best)."
                    ),
                ),
                ParsingSocket.Input(
                    "source_parsing",
                    tooltip=(
                        "Human parsing of source_image: one class index per pixel, same "
                        "height x width, in the checkpoint's label set (LIP for the paper)."
                    ),
                ),
                io.ClipVision.Input(
                    "clip_vision",
                    optional=True,
                    tooltip=(
                        "CLIP image encoder for full-size checkpoints (Load CLIP Vision, "
                        "ViT-H-14, 1024-d embeds); leave empty for checkpoints that embed one."
                    ),
                ),
            ],
            outputs=[
                SourceSocket.Output(
                    display_name="source",
                    tooltip="SourceNet features, parsing and CLIP region embeddings.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, truepose, vae, source_image, source_parsing, clip_vision=None
    ) -> io.NodeOutput:
        with node_errors():
            return io.NodeOutput(
                encode_source(truepose, vae, source_image, source_parsing, clip_vision)
            )


NODES: list[type[io.ComfyNode]] = [SourceNetEncode]
