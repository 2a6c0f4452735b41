"""The ComfyUI runtime by job, under the one name the node modules import it by.

Each job has its own module; this one only gathers their public names, so that
``from . import runtime`` in the node modules (and ``nodes.runtime`` in bench/) keeps working:

- :mod:`.comfy_unet`: the checkpoint's diffusers UNets as ComfyUI's SD1.5 UNet;
- :mod:`.handle`: the ``TRUEPOSE`` value and how a checkpoint file becomes one;
- :mod:`.adapters`: the embedded VAE and CLIP tower behind ComfyUI's interfaces;
- :mod:`.sourcenet`: the SourceNet's features F' and the source context;
- :mod:`.fusion_patch`: the per-run state and the patch on a MODEL clone.
"""

from __future__ import annotations

from .adapters import ComfyClipVisual, EmbeddedVAE, MissingVAE, ModuleHolder, module_patcher
from .comfy_unet import (
    COMFY_GROUP_NORM_GROUPS,
    build_comfy_unet,
    comfy_unet_config,
    layer_key,
    model_dtype,
)
from .fusion_patch import (
    ADDITIONAL_MODELS_KEY,
    CAA_KEY,
    PATCH_KEY,
    FusionPatch,
    check_target_poses,
    find_caa_settings,
    find_patch,
    patch_model,
    prepare_state,
)
from .handle import TruePoseHandle, handle_from_loaded, load_handle, region_encoder
from .sourcenet import source_context, source_features

__all__ = [
    "ADDITIONAL_MODELS_KEY",
    "CAA_KEY",
    "COMFY_GROUP_NORM_GROUPS",
    "PATCH_KEY",
    "ComfyClipVisual",
    "EmbeddedVAE",
    "FusionPatch",
    "MissingVAE",
    "ModuleHolder",
    "TruePoseHandle",
    "build_comfy_unet",
    "check_target_poses",
    "comfy_unet_config",
    "find_caa_settings",
    "find_patch",
    "handle_from_loaded",
    "layer_key",
    "load_handle",
    "model_dtype",
    "module_patcher",
    "patch_model",
    "prepare_state",
    "region_encoder",
    "source_context",
    "source_features",
]
