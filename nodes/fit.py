"""Make a real photo, its parsing and its target poses agree in size, and map results back.

The geometry (transform, resampling, keypoint mapping) lives in ``truepose_core.fit``;
these classes only translate ComfyUI values.
"""

from __future__ import annotations

from comfy_api.latest import io

from ..truepose_core import fit
from ..truepose_core.errors import ConfigError
from ..truepose_core.images import MAX_SIDE, MIN_SIDE, MULTIPLE, to_rgb_float
from ..truepose_core.keypoints import require_visible
from ..truepose_core.preview import overlay_skeletons
from . import runtime
from .errors import node_errors
from .types import FitSocket, ParsingBatch, ParsingSocket, PoseSocket, TruePoseSocket

CATEGORY = "TruePose/inputs"


def target_size(handle, image_hw: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """(width, height) to fit into: the widgets, else the checkpoint's training size, else
    the image's own size rounded down to a multiple of 8."""
    if width and height:
        if min(width, height) < MIN_SIDE or width % MULTIPLE or height % MULTIPLE:
            raise ConfigError(
                f"TruePose Fit Inputs: width x height {width}x{height}; set both to at least "
                f"{MIN_SIDE} px and multiples of {MULTIPLE} (or 0 for the training size)"
            )
        return int(width), int(height)
    if width or height:
        raise ConfigError(
            f"TruePose Fit Inputs: width {width} and height {height}; set both (pixels, "
            "multiples of 8) or leave both 0 for the checkpoint's training size"
        )
    if handle is not None:
        h, w = handle.config.resolution
        return int(w), int(h)
    h, w = image_hw
    return max(MIN_SIDE, w - w % MULTIPLE), max(MIN_SIDE, h - h % MULTIPLE)


class FitInputs(io.ComfyNode):
    """Scale a photo, its parsing and its poses to one size with one transform."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_FitInputs",
            display_name="TruePose Fit Inputs",
            category=CATEGORY,
            description=(
                "Brings a photo of any size and aspect to the size the model works at. The "
                "image is resampled smoothly, the parsing with nearest neighbour and the "
                "keypoints with the same transform, so they keep lining up. Target poses "
                "drawn on another canvas are fitted from their own canvas by the same rule "
                "(letterbox: aspect kept, centred). Connect transform to TruePose Unfit "
                "Image to put the result back on the original photo."
            ),
            inputs=[
                io.Image.Input(
                    "image",
                    tooltip="The source photo, RGB 0..1, any size (RGBA is composited on white).",
                ),
                ParsingSocket.Input(
                    "parsing",
                    optional=True,
                    tooltip="Human parsing of image (same size); resized with nearest neighbour.",
                ),
                PoseSocket.Input(
                    "target_pose",
                    optional=True,
                    tooltip=(
                        "Target pose(s), x/y in pixels of their own frame (this photo's or "
                        "another's); each is fitted from its frame into width x height."
                    ),
                ),
                TruePoseSocket.Input(
                    "truepose",
                    optional=True,
                    tooltip="Checkpoint whose training size is the default (width/height 0).",
                ),
                io.Combo.Input(
                    "mode",
                    options=list(fit.FIT_MODES),
                    default=fit.DEFAULT_FIT_MODE,
                    tooltip=(
                        "letterbox: keep the aspect, fit inside, pad with white (parsing: "
                        "background). crop: keep the aspect, fill, cut the overflow. stretch: "
                        "scale each axis on its own (bodies get wider or thinner)."
                    ),
                ),
                io.Int.Input(
                    "width",
                    default=0,
                    min=0,
                    max=MAX_SIDE,
                    step=MULTIPLE,
                    tooltip=(
                        "Output width in pixels (multiple of 8); 0 with height 0 = the "
                        "checkpoint's training size (or the photo's size rounded to 8)."
                    ),
                ),
                io.Int.Input(
                    "height",
                    default=0,
                    min=0,
                    max=MAX_SIDE,
                    step=MULTIPLE,
                    tooltip=(
                        "Output height in pixels (multiple of 8); 0 with width 0 = the "
                        "checkpoint's training size (or the photo's size rounded to 8)."
                    ),
                ),
                io.Float.Input(
                    "pose_scale",
                    default=1.0,
                    min=0.1,
                    max=10.0,
                    step=0.05,
                    optional=True,
                    tooltip="Scales each target person about their own centre; 1 = as fitted.",
                ),
                io.Float.Input(
                    "pose_offset_x",
                    default=0.0,
                    min=-1.0,
                    max=1.0,
                    step=0.01,
                    optional=True,
                    tooltip="Moves the fitted target person right, in fractions of the width.",
                ),
                io.Float.Input(
                    "pose_offset_y",
                    default=0.0,
                    min=-1.0,
                    max=1.0,
                    step=0.01,
                    optional=True,
                    tooltip="Moves the fitted target person down, in fractions of the height.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The fitted photo, RGB 0..1."),
                ParsingSocket.Output(
                    display_name="parsing", tooltip="The fitted parsing (None if not given)."
                ),
                PoseSocket.Output(
                    display_name="target_pose",
                    tooltip="Poses in pixels of the fitted frame (None if not given).",
                ),
                FitSocket.Output(
                    display_name="transform",
                    tooltip="How the photo was fitted; for TruePose Unfit Image.",
                ),
                io.Image.Output(
                    display_name="preview",
                    tooltip="Each fitted skeleton over the fitted photo: what the model gets.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        image,
        mode,
        width,
        height,
        parsing=None,
        target_pose=None,
        truepose=None,
        pose_scale=1.0,
        pose_offset_x=0.0,
        pose_offset_y=0.0,
    ) -> io.NodeOutput:
        with node_errors():
            rgb = to_rgb_float(image, "TruePose Fit Inputs image")
            tw, th = target_size(truepose, tuple(rgb.shape[1:3]), width, height)
            transform = fit.fit_transform(rgb.shape[2], rgb.shape[1], tw, th, mode)
            fitted = fit.fit_image(rgb, transform)
            fitted_parsing = None
            if parsing is not None:
                labels = fit.fit_labels(parsing.labels, transform)
                fitted_parsing = ParsingBatch(labels=labels, label_set=parsing.label_set)
            poses = None
            if target_pose is not None:
                poses = [
                    fit.adjust_pose(
                        fit.fit_pose(p, tw, th, mode), pose_scale, pose_offset_x, pose_offset_y
                    )
                    for p in runtime.check_target_poses(target_pose)
                ]
                require_visible(poses, "fitted target pose")
                preview = overlay_skeletons(
                    fitted if len(fitted) in (1, len(poses)) else fitted[:1], poses
                )
            else:
                preview = fitted
            return io.NodeOutput(fitted, fitted_parsing, poses, transform, preview)


class UnfitImage(io.ComfyNode):
    """Put an image made at the fitted size back on the original photo's size and framing."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_UnfitImage",
            display_name="TruePose Unfit Image",
            category=CATEGORY,
            description=(
                "The inverse of TruePose Fit Inputs: removes the letterbox padding and scales "
                "the generated image back to the original photo's size. Where crop cut the "
                "photo off, the original shows through (connect original_image)."
            ),
            inputs=[
                io.Image.Input("image", tooltip="Generated image at the fitted size, RGB 0..1."),
                FitSocket.Input("transform", tooltip="From TruePose Fit Inputs."),
                io.Image.Input(
                    "original_image",
                    optional=True,
                    tooltip="The photo that was fitted; fills what crop cut off (else white).",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="image", tooltip="At the original photo's size and framing."
                )
            ],
        )

    @classmethod
    def execute(cls, image, transform, original_image=None) -> io.NodeOutput:
        with node_errors():
            rgb = to_rgb_float(image, "TruePose Unfit Image image")
            original = None
            if original_image is not None:
                original = to_rgb_float(original_image, "TruePose Unfit Image original_image")
            return io.NodeOutput(fit.unfit_image(rgb, transform, original))


NODES: list[type[io.ComfyNode]] = [FitInputs, UnfitImage]
