"""The TruePose checkpoint: one ``.safetensors`` file, prefixed keys, config in the metadata.

Keys: ``target_unet.`` and ``source_unet.`` (diffusers names), ``fusion.<layer>.``,
``pose_encoder.``, ``context_proj.`` (a variant without a SourceNet or source context, such
as "pose_only", has no ``source_unet.`` or ``context_proj.`` keys); a self-contained small
model also embeds ``vae.`` (a diffusers ``AutoencoderKL`` or a :class:`~.patch_vae.PatchVAE`)
and ``clip.`` (an open_clip image tower). Metadata holds ``format``, ``truepose_config``,
``unet_config`` and, when embedded, ``vae_config``.
Loading is strict: every missing, unexpected or mis-shaped key is reported with the file.
Pickles are never executed: ``.safetensors`` or ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from .atomic import atomic_file
from .config import TruePoseConfig
from .errors import CheckpointError, ConfigError
from .weights import check_state, load_strict, read_metadata, read_tensors

FORMAT = "truepose-v1"
PREFIXES = ("target_unet.", "source_unet.", "fusion.", "pose_encoder.", "context_proj.")
EMBEDDED_PREFIXES = ("vae.", "clip.")

#: diffusers config of the Stable Diffusion 1.5 UNet, so no download is needed to build it.
SD15_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": [
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (safetensors or weights-only torch), see :mod:`.weights`."""
    return read_tensors(path)


def _json_field(path: Path, metadata: Mapping[str, str], name: str) -> dict[str, Any]:
    if name not in metadata:
        raise CheckpointError(f"{path}: metadata has no {name!r}; is this a TruePose checkpoint?")
    try:
        value = json.loads(metadata[name])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata {name!r} is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: metadata {name!r} must be a JSON object")
    return value


def _model_parts(model: nn.Module) -> list[tuple[str, nn.Module | None]]:
    """(key prefix, module) of each trainable part, in the order of :data:`PREFIXES`."""
    return [(prefix, getattr(model, prefix[:-1])) for prefix in PREFIXES]


def _unet_config(unet: nn.Module) -> dict[str, Any]:
    return {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}


def save_truepose(
    path: str | Path,
    model: nn.Module,
    *,
    vae: nn.Module | None = None,
    clip: nn.Module | None = None,
    metadata: Mapping[str, str] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model`` (a TruePoseModel) and optional embedded VAE/CLIP to one file.

    ``dtype`` (e.g. ``torch.float16``) stores floating-point tensors in that precision to
    halve the file; loading casts them back to the model's own dtype.
    """
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in (*_model_parts(model), ("vae.", vae), ("clip.", clip)):
        if module is None:
            continue
        for name, value in module.state_dict().items():
            value = value.detach().cpu()
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            tensors[prefix + name] = value.contiguous()
    meta = {
        "format": FORMAT,
        "truepose_config": model.config.to_json(),
        "unet_config": json.dumps(_unet_config(model.target_unet), sort_keys=True),
    }
    if vae is not None:
        meta["vae_config"] = json.dumps(_unet_config(vae), sort_keys=True)
    meta.update(metadata or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


@dataclass
class LoadedTruePose:
    """A loaded checkpoint: the model and whatever else the file embeds.

    Loaded with ``build_unets=False``, ``model.target_unet`` and ``model.source_unet`` are
    None and ``unet_states`` holds their checked diffusers state dicts under
    ``"target_unet"`` and (for variants with a SourceNet) ``"source_unet"``, for a host that
    builds its own UNets.
    """

    model: nn.Module
    config: TruePoseConfig
    path: Path
    vae: nn.Module | None = None
    clip: nn.Module | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: The UNets' diffusers config, defaults filled in.
    unet_config: dict[str, Any] = field(default_factory=dict)
    unet_states: dict[str, dict[str, torch.Tensor]] | None = None


def _load_into(path: Path, what: str, module: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    load_strict(module, state, str(path), prefix=what)


def load_truepose(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    build_unets: bool = True,
) -> LoadedTruePose:
    """Build the model from the file's own configs and load every tensor strictly.

    ``build_unets=False`` skips building the two diffusers UNets (a host with its own UNet
    class, like ComfyUI, would throw them away): their keys and shapes are still checked
    strictly against the config, and their tensors come back as
    :attr:`LoadedTruePose.unet_states`, on the CPU as stored.
    """
    from diffusers import UNet2DConditionModel

    from .clip_regions import build_clip_vision
    from .model import TruePoseModel
    from .patch_vae import vae_from_config
    from .variants import variant_class

    path = Path(path)
    metadata = read_metadata(path)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: metadata format is {metadata.get('format')!r}, expected {FORMAT!r}; "
            "this is not a TruePose checkpoint (an SD UNet or VAE goes to ComfyUI's own loaders)"
        )
    try:
        config = TruePoseConfig.from_dict(_json_field(path, metadata, "truepose_config"))
    except ConfigError as exc:
        raise CheckpointError(f"{path}: invalid truepose_config metadata: {exc}") from exc
    unet_cfg = _json_field(path, metadata, "unet_config")
    latent_channels = 4
    if "vae_config" in metadata:
        latent_channels = int(_json_field(path, metadata, "vae_config").get("latent_channels", 4))
    check_sd15_family(path, unet_cfg, latent_channels)
    state = read_state_dict(path)
    try:
        # Without real UNets, shape-only ("meta") ones give the layer layout and key shapes.
        with contextlib.nullcontext() if build_unets else torch.device("meta"):
            target = UNet2DConditionModel.from_config(unet_cfg)
            source = None
            if variant_class(config.fusion_mode).uses_source_net:
                source = UNet2DConditionModel.from_config(unet_cfg)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: unet_config cannot build a UNet ({exc})") from exc
    model = TruePoseModel(config, target, source)
    full_unet_config = _unet_config(target)  # with diffusers' defaults filled in
    parts: dict[str, dict[str, torch.Tensor]] = {p: {} for p in PREFIXES + EMBEDDED_PREFIXES}
    stray = []
    for key, value in state.items():
        prefix = next((p for p in parts if key.startswith(p)), None)
        if prefix is None:
            stray.append(key)
        else:
            parts[prefix][key[len(prefix) :]] = value
    for prefix, module in _model_parts(model):
        if module is None:  # a part this variant does not have
            stray += [prefix + k for k in parts[prefix]]
    if stray:
        check_state(str(path), {}, {k: state[k] for k in stray})
    unet_states = None
    if not build_unets:
        unet_states = {}
        for prefix in ("target_unet.", "source_unet."):
            module = getattr(model, prefix[:-1])
            if module is None:
                continue
            check_state(str(path), module.state_dict(), parts[prefix], prefix=prefix)
            unet_states[prefix[:-1]] = parts[prefix]
        model.target_unet = None
        model.source_unet = None
    for prefix, module in _model_parts(model):
        if module is not None:
            _load_into(path, prefix, module, parts[prefix])
    vae = clip = None
    if parts["vae."]:
        vae = vae_from_config(_json_field(path, metadata, "vae_config"))
        _load_into(path, "vae.", vae, parts["vae."])
        vae = vae.eval().requires_grad_(False)
    if parts["clip."]:
        clip = build_clip_vision(config)
        _load_into(path, "clip.", clip, parts["clip."])
        clip = clip.eval().requires_grad_(False)
    for module in (model, vae, clip):
        if module is not None:
            module.to(device) if dtype is None else module.to(device=device, dtype=dtype)
    return LoadedTruePose(
        model.eval(), config, path, vae, clip, metadata, full_unet_config, unet_states
    )


def check_sd15_family(
    path: Path | str, unet_config: Mapping[str, Any], latent_channels: int = 4
) -> None:
    """Refuse SD2 / SDXL / other UNets where an SD1.5-layout UNet is expected.

    ``latent_channels`` is SD's 4 unless the checkpoint embeds a VAE with another layout
    (the SynthFashion model's PatchVAE); the UNet must read and write exactly that many.
    """
    if unet_config.get("addition_embed_type") or unet_config.get("class_embed_type"):
        raise CheckpointError(
            f"{path}: the UNet has extra embeddings ({unet_config.get('addition_embed_type')}); "
            "that is an SDXL-style UNet, TruePose needs an SD1.5-layout UNet"
        )
    if unet_config.get("use_linear_projection"):
        raise CheckpointError(
            f"{path}: the UNet uses linear attention projections (SD2-style); "
            "TruePose needs an SD1.5-layout UNet"
        )
    channels = (unet_config.get("in_channels", 4), unet_config.get("out_channels", 4))
    if channels != (latent_channels, latent_channels):
        what = "SD1.5" if latent_channels == 4 else "the embedded VAE's latent channels"
        raise CheckpointError(
            f"{path}: UNet has {channels[0]} input / {channels[1]} output channels, expected "
            f"{latent_channels} ({what})"
        )


def unet_from_sd15(path: str | Path, unet_config: Mapping[str, Any] | None = None):
    """An SD1.5 UNet from a diffusers folder or a single-file (LDM) checkpoint, offline."""
    from diffusers import UNet2DConditionModel

    path = Path(path)
    if path.is_dir():
        folder = path / "unet" if (path / "unet").is_dir() else path
        try:
            unet = UNet2DConditionModel.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a diffusers UNet folder ({exc})") from exc
        check_sd15_family(path, unet.config)
        return unet
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    state = read_state_dict(path)
    sdxl_key = "model.diffusion_model.label_emb.0.0.weight"
    if sdxl_key in state or any(k.startswith("conditioner.") for k in state):
        raise CheckpointError(f"{path}: this is an SDXL checkpoint; TruePose needs SD1.5 weights")
    k_key = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    if k_key not in state:
        raise CheckpointError(f"{path}: no SD UNet found (key {k_key!r} is missing)")
    if state[k_key].shape[1] != 768:
        raise CheckpointError(
            f"{path}: the UNet's context width is {state[k_key].shape[1]} (SD2 uses 1024); "
            "TruePose needs SD1.5 weights (768)"
        )
    config = dict(unet_config or SD15_UNET_CONFIG)
    unet = UNet2DConditionModel.from_config(config)
    converted = convert_ldm_unet_checkpoint(state, unet.config)
    _load_into(path, "unet.", unet, converted)
    return unet
