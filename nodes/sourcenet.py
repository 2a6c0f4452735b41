"""The source side inside ComfyUI: the SourceNet's features F' and the source context.

:func:`source_features` runs the SourceNet (a ComfyUI model) once at timestep 0 and captures
each fused layer's self-attention input through an ``attn1_patch`` on a clone; the core's
:class:`~truepose_core.fusion.SourceEncoding` carries them to the patch.
"""

from __future__ import annotations

import torch

from ..truepose_core.errors import CheckpointError
from ..truepose_core.fusion import SourceEncoding
from ..truepose_core.model import default_source_rows
from .comfy_unet import layer_key, model_dtype
from .handle import TruePoseHandle


@torch.no_grad()
def source_features(
    handle: TruePoseHandle, latents: torch.Tensor, context: torch.Tensor
) -> dict[str, torch.Tensor]:
    """F' per fused layer: the SourceNet's norm1 outputs, at timestep 0 on scaled latents.

    ``context`` is the SourceNet's cross-attention context
    (:meth:`~truepose_core.model.TruePoseModel.source_context`). Variants without a SourceNet
    get no features.
    """
    import comfy.model_management as mm

    if handle.source is None:
        return {}
    wanted = {layer.name for layer in handle.layers}
    captured: dict[str, torch.Tensor] = {}

    def record(n, context_attn1, value_attn1, extra_options):
        name = layer_key(extra_options)
        if name in wanted:
            captured[name] = n.detach().float().to(mm.intermediate_device())
        return n, context_attn1, value_attn1

    patcher = handle.source.clone()
    patcher.set_model_attn1_patch(record)
    mm.load_models_gpu([patcher])
    device, dtype = patcher.load_device, model_dtype(patcher)
    transformer_options = dict(patcher.model_options.get("transformer_options", {}))
    timesteps = torch.zeros(latents.shape[0], device=device)
    patcher.model.diffusion_model(
        latents.to(device, dtype),
        timesteps,
        context=context.to(device, dtype),
        transformer_options=transformer_options,
    )
    missing = sorted(wanted - set(captured))
    if missing:
        raise CheckpointError(f"{handle.name}: the SourceNet has no self-attention at {missing}")
    return captured


@torch.no_grad()
def source_context(handle: TruePoseHandle, encoding: SourceEncoding, batch: int) -> torch.Tensor:
    """Conditional cross-attention context (batch, T, D): the projected whole-image CLIP
    (zeros for variants without a source context)."""
    import comfy.model_management as mm

    device = handle.load_modules()
    rows = default_source_rows(encoding.batch, batch, None, device)
    embeds = encoding.image_embeds.to(device)[rows].to(handle.dtype)
    return handle.model.source_context(embeds).float().to(mm.intermediate_device())
