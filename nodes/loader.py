"""Load a TruePose checkpoint: the TargetNet as a ComfyUI MODEL, the rest as TRUEPOSE."""

from __future__ import annotations

from comfy_api.latest import io

from .errors import node_errors
from .handle import load_handle
from .model_folders import TRUEPOSE_FOLDER, resolve_model_path
from .types import TruePoseSocket

CATEGORY = "TruePose/loaders"


def truepose_files() -> list[str]:
    import folder_paths

    return folder_paths.get_filename_list(TRUEPOSE_FOLDER)


def resolve_truepose_path(name: str) -> str:
    """Full path of ``name`` in the truepose folders."""
    return resolve_model_path(
        TRUEPOSE_FOLDER, name, "TruePose checkpoint", "a TruePose .safetensors file"
    )


class LoadTruePose(io.ComfyNode):
    """A TruePose checkpoint: TargetNet, SourceNet, fusion modules, PoseEncoder, context."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_LoadTruePose",
            display_name="Load TruePose Checkpoint",
            category=CATEGORY,
            description=(
                "Loads a TruePose .safetensors checkpoint from models/truepose. MODEL is the "
                "TargetNet (an SD1.5-layout UNet) for the HPFA Patch and the sampler; TRUEPOSE "
                "holds the SourceNet and the TruePose modules; VAE is the checkpoint's own VAE "
                "when it embeds one (the small SynthFashion model), else use Load VAE."
            ),
            inputs=[
                io.Combo.Input(
                    "checkpoint",
                    options=truepose_files(),
                    tooltip=(
                        "TruePose checkpoint (.safetensors, format truepose-v1) in "
                        "models/truepose; the pack's own small model is listed too."
                    ),
                ),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The TargetNet as a ComfyUI model."),
                TruePoseSocket.Output(
                    display_name="TRUEPOSE",
                    tooltip="SourceNet, fusion modules, PoseEncoder, context projection, config.",
                ),
                io.Vae.Output(
                    display_name="VAE",
                    tooltip=(
                        "The embedded VAE (unscaled latents, like ComfyUI's); a checkpoint "
                        "without one gives a VAE that asks for Load VAE when used."
                    ),
                ),
            ],
        )

    @classmethod
    def execute(cls, checkpoint: str) -> io.NodeOutput:
        with node_errors():
            path = resolve_truepose_path(checkpoint)
            model, handle, vae = load_handle(path, checkpoint)
            return io.NodeOutput(model, handle, vae)


NODES: list[type[io.ComfyNode]] = [LoadTruePose]
