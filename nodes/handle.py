"""The value on a ``TRUEPOSE`` socket, and how a checkpoint file becomes one.

:func:`load_handle` reads a checkpoint without building its diffusers UNets: the TargetNet
becomes the ComfyUI MODEL, the SourceNet (for variants that have one) a ComfyUI model on the
handle, and the rest of the TruePose model (fusion, PoseEncoder, context projection) a
ModelPatcher, so ComfyUI's model management moves and offloads all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..truepose_core.checkpoint import LoadedTruePose, load_truepose
from ..truepose_core.clip_regions import ClipRegionEncoder
from ..truepose_core.config import TruePoseConfig
from ..truepose_core.errors import CheckpointError, DependencyError
from ..truepose_core.model import TruePoseModel
from ..truepose_core.unet_layers import AttentionLayer
from .adapters import ComfyClipVisual, EmbeddedVAE, MissingVAE, module_patcher
from .comfy_unet import build_comfy_unet


@dataclass(eq=False)
class TruePoseHandle:
    """The value on a ``TRUEPOSE`` socket (read-only once built).

    ``model`` is the checkpoint's :class:`TruePoseModel` with its UNets removed (they live
    on as ComfyUI models): ``fusion``, ``pose_encoder``, ``context_proj``, ``layers``,
    ``config``; ``modules`` is its ModelPatcher. ``source`` is the SourceNet as a ComfyUI
    model (None for variants without one); ``clip`` the embedded open_clip tower (None for
    full-size checkpoints). Nothing writes to it after loading: per-run settings travel as
    arguments.
    """

    name: str
    config: TruePoseConfig
    model: TruePoseModel
    modules: Any  # comfy.model_patcher.ModelPatcher around ``model``
    source: Any | None  # comfy.model_patcher.ModelPatcher: the SourceNet (None: no SourceNet)
    clip: ClipRegionEncoder | None
    clip_patcher: Any | None

    @property
    def layers(self) -> list[AttentionLayer]:
        return list(self.model.layers)

    def load_modules(self, *extra) -> torch.device:
        """Put the TruePose modules (and ``extra`` patchers) on ComfyUI's compute device."""
        import comfy.model_management as mm

        mm.load_models_gpu([self.modules, *extra])
        return self.device

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


def load_handle(path: str, name: str) -> tuple[Any, TruePoseHandle, Any]:
    """(TargetNet MODEL, TRUEPOSE, VAE) of a TruePose checkpoint file."""
    # The diffusers UNets are never built: their weights go straight into ComfyUI's UNets.
    return handle_from_loaded(load_truepose(path, build_unets=False), name)


def handle_from_loaded(loaded: LoadedTruePose, name: str) -> tuple[Any, TruePoseHandle, Any]:
    """(TargetNet MODEL, TRUEPOSE, VAE) of a checkpoint loaded with ``build_unets=False``.

    ``loaded.unet_states`` holds the two UNets' diffusers state dicts; they are consumed
    (popped) as ComfyUI's UNets take them over. A :class:`LoadedTruePose` built in memory
    with the same fields (e.g. random weights for a benchmark) works as well as one read
    from a file.
    """
    import comfy.model_management as mm

    if loaded.unet_states is None:
        raise CheckpointError(
            f"{name}: no UNet state dicts to hand to ComfyUI (load with build_unets=False)"
        )
    model: TruePoseModel = loaded.model
    states = loaded.unet_states
    scale = loaded.config.latent_scale
    latent_rgb = None
    if loaded.vae is not None and hasattr(loaded.vae, "latent_rgb"):
        latent_rgb = loaded.vae.latent_rgb()
    beta_end = loaded.config.beta_end
    target = build_comfy_unet(
        loaded.unet_config,
        states.pop("target_unet"),
        scale,
        f"{name} (TargetNet)",
        latent_rgb,
        beta_end=beta_end,
    )
    source = None
    if "source_unet" in states:
        source = build_comfy_unet(
            loaded.unet_config,
            states.pop("source_unet"),
            scale,
            f"{name} (SourceNet)",
            beta_end=beta_end,
        )
    # What remains of the TruePose model is fusion, PoseEncoder and context projection.
    load_device, offload = mm.get_torch_device(), mm.unet_offload_device()
    modules = module_patcher(model.eval().requires_grad_(False), load_device, offload)
    clip = clip_patcher = None
    if loaded.clip is not None:
        clip = ClipRegionEncoder(loaded.clip, loaded.config.clip_image_size).eval()
        clip_patcher = module_patcher(
            clip, mm.text_encoder_device(), mm.text_encoder_offload_device()
        )
    handle = TruePoseHandle(name, loaded.config, model, modules, source, clip, clip_patcher)
    vae = EmbeddedVAE(loaded.vae) if loaded.vae is not None else MissingVAE(name)
    return target, handle, vae


def region_encoder(handle: TruePoseHandle, clip_vision) -> ClipRegionEncoder:
    """The CLIP region encoder: ComfyUI's CLIP_VISION when given, else the embedded tower."""
    if clip_vision is not None:
        size = int(getattr(clip_vision, "image_size", handle.config.clip_image_size))
        return ClipRegionEncoder(ComfyClipVisual(clip_vision), size)
    if handle.clip is None:
        raise DependencyError(
            f"{handle.name}: this checkpoint embeds no CLIP image encoder; connect a Load CLIP "
            f"Vision node with {handle.config.clip_model} (e.g. CLIP-ViT-H-14-laion2B-s32B-"
            "b79K.safetensors in models/clip_vision) to clip_vision"
        )
    import comfy.model_management as mm

    mm.load_models_gpu([handle.clip_patcher])
    return handle.clip
