"""Names, places and spatial sizes of a UNet's self-attention layers.

Layers are named ``{block}_{id}_{index}`` in ComfyUI's numbering (``input_1_0`` is SD1.5's
``down_blocks.0.attentions.0.transformer_blocks.0``), because that is the key ComfyUI's
attention patches receive. This module maps those names to diffusers modules and to the
token grid of each layer, for any SD1.5-layout UNet, tiny ones included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class AttentionLayer:
    """One self-attention layer: its name, diffusers path, UNet level and width."""

    name: str
    module_path: str  # e.g. "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
    level: int  # 0 = full latent resolution
    channels: int
    heads: int


def _per_level(value: Any, levels: int) -> list[int]:
    if isinstance(value, int):
        return [value] * levels
    return [int(v) for v in value]


def _heads(cfg: Mapping[str, Any], channels: int, level: int, levels: int) -> int:
    # diffusers' SD1.5 configs store the number of HEADS under ``attention_head_dim``
    # (a legacy name) unless ``num_attention_heads`` is set.
    heads = cfg.get("num_attention_heads") or cfg.get("attention_head_dim", 8)
    heads = _per_level(heads, levels)[level]
    if channels % heads:
        raise ConfigError(
            f"UNet config: {channels} channels at level {level} not divisible by {heads} heads"
        )
    return heads


def unet_attention_layers(unet_config: Mapping[str, Any]) -> list[AttentionLayer]:
    """All self-attention layers of a diffusers ``UNet2DConditionModel`` config, in order."""
    down_types: Sequence[str] = unet_config["down_block_types"]
    up_types: Sequence[str] = unet_config["up_block_types"]
    channels: Sequence[int] = unet_config["block_out_channels"]
    levels = len(channels)
    per_block = _per_level(unet_config.get("layers_per_block", 2), levels)
    depth = _per_level(unet_config.get("transformer_layers_per_block", 1), levels)
    layers: list[AttentionLayer] = []

    block_id = 1
    for level, kind in enumerate(down_types):
        for j in range(per_block[level]):
            if "CrossAttn" in kind:
                for t in range(depth[level]):
                    layers.append(
                        AttentionLayer(
                            f"input_{block_id}_{t}",
                            f"down_blocks.{level}.attentions.{j}.transformer_blocks.{t}.attn1",
                            level,
                            channels[level],
                            _heads(unet_config, channels[level], level, levels),
                        )
                    )
            block_id += 1
        if level < levels - 1:
            block_id += 1  # the downsampler is an input block of its own

    mid = unet_config.get("mid_block_type", "UNetMidBlock2DCrossAttn")
    if mid and "CrossAttn" in mid:
        for t in range(depth[-1]):
            layers.append(
                AttentionLayer(
                    f"middle_0_{t}",
                    f"mid_block.attentions.0.transformer_blocks.{t}.attn1",
                    levels - 1,
                    channels[-1],
                    _heads(unet_config, channels[-1], levels - 1, levels),
                )
            )

    rev_per_block = list(reversed(per_block))
    rev_depth = _per_level(
        unet_config.get("reverse_transformer_layers_per_block") or list(reversed(depth)), levels
    )
    block_id = 0
    for i, kind in enumerate(up_types):
        level = levels - 1 - i
        for j in range(rev_per_block[i] + 1):
            if "CrossAttn" in kind:
                for t in range(rev_depth[i]):
                    layers.append(
                        AttentionLayer(
                            f"output_{block_id}_{t}",
                            f"up_blocks.{i}.attentions.{j}.transformer_blocks.{t}.attn1",
                            level,
                            channels[level],
                            _heads(unet_config, channels[level], level, levels),
                        )
                    )
            block_id += 1
    return layers


def select_layers(
    available: Sequence[AttentionLayer], names: Sequence[str]
) -> list[AttentionLayer]:
    """The layers named in a config (all of them for an empty selection), in UNet order."""
    if not names:
        return list(available)
    by_name = {layer.name: layer for layer in available}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(
            f"TruePoseConfig.layers: {unknown} are not self-attention layers of this UNet; "
            f"it has {sorted(by_name)}"
        )
    wanted = set(names)
    return [layer for layer in available if layer.name in wanted]


def level_sizes(latent_hw: tuple[int, int], levels: int) -> list[tuple[int, int]]:
    """Token grid of each UNet level: stride-2, padding-1 convs give ceil(n / 2) per level."""
    h, w = latent_hw
    sizes = []
    for _ in range(levels):
        sizes.append((h, w))
        h, w = (h + 1) // 2, (w + 1) // 2
    return sizes
