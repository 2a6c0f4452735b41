"""One TargetNet layer's fusion (HPFA then CAA) and the per-(source, pose) state it uses.

Both hosts call the same two functions: :func:`build_layer_sources` once per (source, target
pose), and :func:`apply_to_rows` at every step on the rows that carry the condition. The
diffusers attention processor and the ComfyUI ``attn1_patch`` are thin adapters around them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .caa import CAA, CAASource
from .config import TruePoseConfig
from .hpfa import HPFA, HPFASource
from .parsing import token_labels, token_mask
from .unet_layers import AttentionLayer, level_sizes


@dataclass
class LayerSource:
    """What one layer's fusion needs from the source, for a batch of (source, pose) pairs."""

    hpfa: HPFASource | None = None
    caa: CAASource | None = None
    reference: torch.Tensor | None = None  # (B, N, C): raw F' for concatenation fusion

    def index(self, rows: torch.Tensor) -> LayerSource:
        return LayerSource(
            None if self.hpfa is None else self.hpfa.index(rows),
            None if self.caa is None else self.caa.index(rows),
            None if self.reference is None else self.reference[rows],
        )


@dataclass
class SourceEncoding:
    """The source side, computed once per source image (independent of pose and step).

    ``features`` maps layer names to the SourceNet hidden states F' (B, N, C) entering each
    self-attention; ``region_embeds`` holds one CLIP embedding per parsing label (B, L, E),
    ``region_present`` which of them exist, ``image_embeds`` the whole image's (B, E).
    """

    features: dict[str, torch.Tensor]
    latent_hw: tuple[int, int]
    parsing: torch.Tensor  # (B, H, W) long, image resolution
    region_embeds: torch.Tensor  # (B, L, E)
    region_present: torch.Tensor  # (B, L) bool
    image_embeds: torch.Tensor  # (B, E)
    label_set: str = "lip"

    @property
    def batch(self) -> int:
        return self.parsing.shape[0]


@dataclass
class FusionState:
    """Everything that depends only on (source, target pose): reused by every step."""

    layers: dict[str, LayerSource]
    pose_features: torch.Tensor | None  # (B, C0, h, w): PoseEncoder output
    context: torch.Tensor  # (B, T, context_dim): the conditional cross-attention context
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return self.context.shape[0]

    def index(self, rows: torch.Tensor) -> FusionState:
        return FusionState(
            {name: src.index(rows) for name, src in self.layers.items()},
            None if self.pose_features is None else self.pose_features[rows],
            self.context[rows],
            {k: v[rows] for k, v in self.extras.items()},
        )


class ClipTokenMLP(nn.Module):
    """Ablation B1: CLIP region embeddings mapped by a stacked MLP to a layer's width."""

    def __init__(self, clip_dim: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(clip_dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)


class FusionLayer(nn.Module):
    """HPFA + CAA for one TargetNet self-attention layer (or an ablation's replacement)."""

    def __init__(self, layer: AttentionLayer, config: TruePoseConfig):
        super().__init__()
        self.name, self.mode = layer.name, config.fusion_mode
        self.backend, self.chunk = config.attention_backend, config.attention_chunk
        dim, heads = layer.channels, layer.heads
        self.hpfa = None
        self.caa = None
        self.clip_mlp = None
        if self.mode in ("hpfa", "clip_only"):
            self.hpfa = HPFA(
                dim, heads, sigma=config.sigma, delta=config.delta, reweight=config.hpfa_reweight
            )
        if self.mode == "clip_only":
            self.clip_mlp = ClipTokenMLP(config.clip_dim, dim)
        if self.mode == "hpfa" and config.use_caa and config.caa_regions > 0:
            self.caa = CAA(dim, heads, config.clip_dim, config.caa_regions)

    def precompute(
        self,
        features: torch.Tensor,
        key_mask: torch.Tensor,
        labels: torch.Tensor,
        encoding: SourceEncoding,
        rows: torch.Tensor,
    ) -> LayerSource:
        """Source-side work of this layer for pairs whose source rows are ``rows``."""
        if self.mode == "concat":
            return LayerSource(reference=features)
        if self.mode == "clip_only":
            tokens = self.clip_mlp(encoding.region_embeds[rows])
            return LayerSource(hpfa=self.hpfa.encode_tokens(tokens, encoding.region_present[rows]))
        hpfa = self.hpfa.encode_source(
            features,
            key_mask,
            backend=self.backend,
            chunk=self.chunk,
            return_key_attention=self.caa is not None,
        )
        caa = None
        if self.caa is not None:
            caa = self.caa.encode_regions(
                encoding.region_embeds[rows], hpfa.key_attention, labels, key_mask
            )
        return LayerSource(hpfa=hpfa, caa=caa)

    def apply(self, hidden: torch.Tensor, source: LayerSource) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (query input, key/value input) of the TargetNet's self-attention.

        HPFA/CAA replace F by Fhat for both; concatenation fusion keeps the queries and
        attends over [F, F'] (reference attention).
        """
        if self.mode == "concat":
            return hidden, torch.cat([hidden, source.reference.to(hidden.dtype)], dim=1)
        out = self.hpfa.fuse(hidden, source.hpfa)
        if self.caa is not None and source.caa is not None:
            out = self.caa.fuse(out, source.caa)
        return out, out


def build_layer_sources(
    fusion: Mapping[str, FusionLayer],
    layers: Sequence[AttentionLayer],
    encoding: SourceEncoding,
    selection_masks: torch.Tensor,
    source_rows: torch.Tensor,
    num_labels: int,
) -> dict[str, LayerSource]:
    """Per-layer precompute for pairs (source_rows[i], pose i).

    ``selection_masks`` (P, H, W) are the target-pose selections M on the source parsing at
    image resolution; ``source_rows`` (P,) picks each pair's source in ``encoding``. One
    source with many poses encodes the source once and indexes it here.
    """
    levels = 1 + max(layer.level for layer in layers)
    sizes = level_sizes(encoding.latent_hw, levels)
    parsing = encoding.parsing[source_rows]
    out: dict[str, LayerSource] = {}
    cache: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
    for layer in layers:
        size = sizes[layer.level]
        if size not in cache:
            cache[size] = (
                token_mask(selection_masks, size),
                token_labels(parsing, size, num_labels),
            )
        key_mask, labels = cache[size]
        feats = encoding.features[layer.name][source_rows]
        if feats.shape[1] != size[0] * size[1]:
            raise ValueError(
                f"layer {layer.name}: source features have {feats.shape[1]} tokens, expected "
                f"{size[0]}x{size[1]} for latent {encoding.latent_hw}"
            )
        device = feats.device
        out[layer.name] = fusion[layer.name].precompute(
            feats, key_mask.to(device), labels.to(device), encoding, source_rows
        )
    return out


def apply_to_rows(
    layer: FusionLayer,
    hidden: torch.Tensor,
    source: LayerSource,
    conditional: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse only the rows of ``hidden`` (B, N, C) where ``conditional`` (B,) is True.

    ``source`` holds exactly one entry per conditional row, in order. Unconditional rows are
    neither changed nor computed. Returns (query input, key/value input) for the layer's
    self-attention; for concatenation fusion the unconditional rows attend over [F, F],
    which gives exactly plain self-attention (duplicated keys leave the softmax average as
    it is).
    """
    if not bool(conditional.any()):
        return hidden, hidden
    if bool(conditional.all()):
        return layer.apply(hidden, source)
    idx = conditional.nonzero(as_tuple=True)[0]
    q_rows, kv_rows = layer.apply(hidden[idx], source)
    query = hidden.index_copy(0, idx, q_rows.to(hidden.dtype))
    if kv_rows is q_rows:
        return query, query
    kv = torch.cat([hidden, hidden], dim=1).index_copy(0, idx, kv_rows.to(hidden.dtype))
    return query, kv
