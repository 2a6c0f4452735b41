"""The fusion contract both hosts share: per-(source, pose) state and the per-layer interface.

Both hosts call the same functions: :func:`build_layer_sources` (through
``TruePoseModel.prepare``) once per (source, target pose), and :func:`apply_to_rows` at every
step on the rows that carry the condition. The diffusers attention processor and the ComfyUI
``attn1_patch`` are thin adapters around them and never ask which variant they run.

:class:`FusionLayer` is the interface; the variants (the method and its ablations) are its
subclasses in :mod:`truepose_core.variants`, one small class each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from .caa import CAASource
from .config import TruePoseConfig
from .errors import BatchError, ConfigError
from .hpfa import HPFASource
from .parsing import token_labels, token_mask
from .unet_layers import AttentionLayer, level_sizes


def _tensors_to(obj: Any, device, dtype=None) -> Any:
    """A copy of dataclass ``obj`` with its tensor fields moved (floating ones cast to dtype)."""
    if obj is None:
        return None
    changes = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, torch.Tensor):
            cast = dtype if dtype is not None and value.is_floating_point() else None
            changes[f.name] = value.to(device=device, dtype=cast)
    return dataclasses.replace(obj, **changes)


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

    def to(self, device, dtype=None) -> LayerSource:
        """A copy on ``device``; floating tensors cast to ``dtype`` when given."""
        ref = None if self.reference is None else self.reference.to(device=device, dtype=dtype)
        return LayerSource(
            _tensors_to(self.hpfa, device, dtype), _tensors_to(self.caa, device, dtype), ref
        )


@dataclass
class SourceEncoding:
    """The source side, computed once per source image (independent of pose and step).

    ``features`` maps layer names to the SourceNet hidden states F' (B, N, C) entering each
    self-attention (empty for variants without a SourceNet); ``region_embeds`` holds one
    CLIP embedding per parsing label (B, L, E), ``region_present`` which of them exist,
    ``image_embeds`` the whole image's (B, E).
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

    def to(self, device) -> SourceEncoding:
        """A copy with every tensor on ``device`` (dtypes kept)."""
        return dataclasses.replace(
            _tensors_to(self, device),
            features={k: v.to(device) for k, v in self.features.items()},
        )


@dataclass(frozen=True)
class FusionSettings:
    """Per-run knobs of the fusion, passed as arguments and never stored on the modules.

    ``sigma``/``delta`` (eq. 6) and ``caa_regions`` (K) default to the checkpoint's own
    values (None); ``use_caa=False`` runs without CAA; ``strength`` scales the fusion
    residual at every step: ``F + strength * (Fhat - F)`` (0 = TargetNet alone, 1 = the
    method; for concatenation fusion the reference tokens move from F to F').
    """

    sigma: float | None = None
    delta: float | None = None
    caa_regions: int | None = None
    use_caa: bool = True
    strength: float = 1.0

    def __post_init__(self) -> None:
        for name in ("sigma", "delta", "caa_regions"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"FusionSettings.{name}: must be >= 0, got {value}")


@dataclass
class FusionState:
    """Everything that depends only on (source, target pose): reused by every step."""

    layers: dict[str, LayerSource]
    pose_features: torch.Tensor | None  # (B, C0, h, w): PoseEncoder output
    context: torch.Tensor  # (B, T, context_dim): the conditional cross-attention context
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    #: Fusion strength applied at every step (:class:`FusionSettings`).
    strength: float = 1.0

    @property
    def batch(self) -> int:
        return self.context.shape[0]

    def index(self, rows: torch.Tensor) -> FusionState:
        return FusionState(
            {name: src.index(rows) for name, src in self.layers.items()},
            None if self.pose_features is None else self.pose_features[rows],
            self.context[rows],
            {k: v[rows] for k, v in self.extras.items()},
            self.strength,
        )

    def to(self, device, dtype=None) -> FusionState:
        """A copy on ``device``; floating tensors cast to ``dtype`` when given."""
        pose = self.pose_features
        return FusionState(
            {k: v.to(device, dtype) for k, v in self.layers.items()},
            None if pose is None else pose.to(device=device, dtype=dtype),
            self.context.to(device=device, dtype=dtype),
            {k: v.to(device) for k, v in self.extras.items()},
            self.strength,
        )


class FusionLayer(nn.Module):
    """One TargetNet self-attention layer's fusion: the interface every variant implements.

    A variant is a subclass with a ``mode`` (the ``TruePoseConfig.fusion_mode`` value) that
    builds its own modules in ``__init__`` and implements :meth:`precompute` (once per
    (source, pose)) and :meth:`fuse` (every step). Variants that extend the keys instead of
    replacing F override :meth:`apply` and :meth:`merge_rows`. The class attributes tell the
    model which other parts the variant needs. ``FusionLayer(layer, config)`` builds the
    variant ``config.fusion_mode`` names.
    """

    #: The ``TruePoseConfig.fusion_mode`` value of this variant.
    mode: ClassVar[str] = ""
    #: Whether the model has a SourceNet whose features F' this variant reads.
    uses_source_net: ClassVar[bool] = True
    #: Whether the conditional context is the projected source CLIP embedding (else zeros).
    uses_source_context: ClassVar[bool] = True

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls is FusionLayer and (args or kwargs):
            from .variants import variant_class

            config = kwargs["config"] if "config" in kwargs else args[1]
            cls = variant_class(config.fusion_mode)
        return super().__new__(cls)

    def __init__(self, layer: AttentionLayer, config: TruePoseConfig):
        super().__init__()
        self.name = layer.name
        self.backend, self.chunk = config.attention_backend, config.attention_chunk
        # The method's modules, where a variant has them (None otherwise): the checkpoint
        # keys are fusion.<layer>.hpfa.*, .caa.* and .clip_mlp.*.
        self.hpfa = None
        self.caa = None
        self.clip_mlp = None

    @torch.no_grad()
    def init_from_unets(self, source_attn: nn.Module | None, target_attn: nn.Module) -> None:
        """Start projections from the UNets' attention weights (default: nothing to copy)."""

    def precompute(
        self,
        features: torch.Tensor | None,
        key_mask: torch.Tensor,
        labels: torch.Tensor,
        encoding: SourceEncoding,
        rows: torch.Tensor,
        *,
        settings: FusionSettings | None = None,
    ) -> LayerSource | None:
        """Source-side work of this layer for pairs whose source rows are ``rows``.

        ``features`` (P, N, C) are F' of those rows, ``key_mask`` (P, N) the selection M and
        ``labels`` (P, N) the parsing label of each token at this layer. None: this layer
        does nothing for the variant, and no host calls :meth:`apply` on it.
        """
        raise NotImplementedError

    def fuse(self, hidden: torch.Tensor, source: LayerSource) -> torch.Tensor:
        """Fhat (B, N, C) at full strength, for variants that replace F by Fhat."""
        raise NotImplementedError

    def apply(
        self, hidden: torch.Tensor, source: LayerSource, *, strength: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (query input, key/value input) of the TargetNet's self-attention.

        Replacing variants give Fblend = F + strength * (Fhat - F) for both.
        """
        fused = self.fuse(hidden, source)
        if strength != 1:
            fused = hidden + strength * (fused - hidden)
        return fused, fused

    def merge_rows(
        self,
        hidden: torch.Tensor,
        idx: torch.Tensor,
        query_rows: torch.Tensor,
        kv_rows: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Put the fused rows ``idx`` back among the untouched rows of ``hidden`` (B, N, C)."""
        query = hidden.index_copy(0, idx, query_rows.to(hidden.dtype))
        return query, query


def build_layer_sources(
    fusion: Mapping[str, FusionLayer],
    layers: Sequence[AttentionLayer],
    encoding: SourceEncoding,
    selection_masks: torch.Tensor,
    source_rows: torch.Tensor,
    num_labels: int,
    settings: FusionSettings | None = None,
) -> dict[str, LayerSource]:
    """Per-layer precompute for pairs (source_rows[i], pose i).

    ``selection_masks`` (P, H, W) are the target-pose selections M on the source parsing at
    image resolution; ``source_rows`` (P,) picks each pair's source in ``encoding``. One
    source with many poses encodes the source once and indexes it here. Layers whose
    variant precomputes nothing are left out.
    """
    levels = 1 + max(layer.level for layer in layers)
    sizes = level_sizes(encoding.latent_hw, levels)
    parsing = encoding.parsing[source_rows]
    out: dict[str, LayerSource] = {}
    cache: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
    for layer in layers:
        variant = fusion[layer.name]
        size = sizes[layer.level]
        if size not in cache:
            cache[size] = (
                token_mask(selection_masks, size),
                token_labels(parsing, size, num_labels),
            )
        key_mask, labels = cache[size]
        feats = None
        if variant.uses_source_net:
            if layer.name not in encoding.features:
                raise BatchError(
                    f"layer {layer.name}: the source encoding holds no SourceNet features for "
                    "it; encode the source with the same checkpoint"
                )
            feats = encoding.features[layer.name][source_rows]
            if feats.shape[1] != size[0] * size[1]:
                raise ValueError(
                    f"layer {layer.name}: source features have {feats.shape[1]} tokens, "
                    f"expected {size[0]}x{size[1]} for latent {encoding.latent_hw}"
                )
        device = selection_masks.device if feats is None else feats.device
        source = variant.precompute(
            feats, key_mask.to(device), labels.to(device), encoding, source_rows, settings=settings
        )
        if source is not None:
            out[layer.name] = source
    return out


def apply_to_rows(
    layer: FusionLayer,
    hidden: torch.Tensor,
    source: LayerSource,
    conditional: torch.Tensor,
    strength: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse only the rows of ``hidden`` (B, N, C) where ``conditional`` (B,) is True.

    ``source`` holds exactly one entry per conditional row, in order. Unconditional rows are
    neither changed nor computed, and ``strength`` 0 leaves every row as it is. Returns
    (query input, key/value input) for the layer's self-attention; a host passes both to
    its attention as they are.
    """
    if strength == 0 or not bool(conditional.any()):
        return hidden, hidden
    if bool(conditional.all()):
        return layer.apply(hidden, source, strength=strength)
    idx = conditional.nonzero(as_tuple=True)[0]
    q_rows, kv_rows = layer.apply(hidden[idx], source, strength=strength)
    return layer.merge_rows(hidden, idx, q_rows, kv_rows)
