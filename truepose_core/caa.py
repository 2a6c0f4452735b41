"""CLIP-guided attention alignment (CAA), METHOD.md "CAA".

For each fused layer the K source regions that received the least attention under A' (the
unweighted source self-attention logits of HPFA step 2), preferring the regions the target
pose selects, are looked up in the source's CLIP region embeddings; the TargetNet features
then cross-attend to those K tokens. Which regions are chosen depends only on (source, pose),
so it is precomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .attention import lowest_regions, region_scores
from .heads import merge_heads, split_heads, zero_linear


@dataclass
class CAASource:
    """The K chosen region tokens of one layer, projected to keys and values."""

    key: torch.Tensor  # (B, heads, K, D)
    value: torch.Tensor  # (B, heads, K, D)
    valid: torch.Tensor  # (B, K) bool: False for padding when fewer than K regions exist
    labels: torch.Tensor  # (B, K) long: the chosen parsing labels

    def index(self, rows: torch.Tensor) -> CAASource:
        return CAASource(self.key[rows], self.value[rows], self.valid[rows], self.labels[rows])


def labels_in_mask(
    token_labels: torch.Tensor, key_mask: torch.Tensor, num_labels: int
) -> torch.Tensor:
    """(B, num_labels) bool: labels with at least one key token inside the selection M."""
    hits = torch.zeros(token_labels.shape[0], num_labels, device=token_labels.device)
    hits.scatter_add_(1, token_labels.long(), key_mask.to(hits.dtype))
    return hits > 0


def choose_regions(
    key_attention: torch.Tensor,
    token_labels: torch.Tensor,
    num_labels: int,
    k: int,
    key_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CAA steps 1-2: labels (B, K) of the K lowest-scored present regions, and validity.

    ``key_attention`` must come from softmax(A'), before eq. 6's weights (METHOD.md). With
    ``key_mask`` (B, Nk), labels the target pose selects come first; the others only fill up.
    """
    scores, present = region_scores(key_attention, token_labels, num_labels)
    preferred = None if key_mask is None else labels_in_mask(token_labels, key_mask, num_labels)
    return lowest_regions(scores, present, k, preferred=preferred)


class CAA(nn.Module):
    """Fhat = Ftilde + O_c(softmax(Qt K_c^T / sqrt(d)) V_c) with K_c, V_c from CLIP regions."""

    def __init__(self, dim: int, heads: int, clip_dim: int, regions: int):
        super().__init__()
        self.dim, self.heads, self.regions = dim, heads, regions
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(clip_dim, dim, bias=False)
        self.to_v = nn.Linear(clip_dim, dim, bias=False)
        self.to_out = zero_linear(dim, dim)

    def encode_regions(
        self,
        region_embeds: torch.Tensor,
        key_attention: torch.Tensor,
        token_labels: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        *,
        regions: int | None = None,
    ) -> CAASource:
        """Pick this layer's K regions and project their CLIP embeddings.

        region_embeds: (B, num_labels, clip_dim), one embedding per parsing label (rows of
        absent labels are ignored); key_attention (from softmax(A'), unweighted), token_labels
        and the selection ``key_mask``: (B, Nk) at this layer. ``regions`` overrides K for
        this call (None: the module's own, from the checkpoint's config).
        """
        num_labels = region_embeds.shape[1]
        k = self.regions if regions is None else int(regions)
        labels, valid = choose_regions(key_attention, token_labels, num_labels, k, key_mask)
        index = labels[..., None].expand(-1, -1, region_embeds.shape[-1])
        tokens = torch.gather(region_embeds, 1, index)  # (B, K, clip_dim)
        return CAASource(
            split_heads(self.to_k(tokens), self.heads),
            split_heads(self.to_v(tokens), self.heads),
            valid,
            labels,
        )

    def fuse(self, hidden: torch.Tensor, source: CAASource) -> torch.Tensor:
        """Add the alignment term; rows with no valid region are left unchanged."""
        if source.valid.shape[1] == 0:
            return hidden
        any_valid = source.valid.any(dim=1)  # (B,)
        # Rows without any region would softmax over nothing; give them one dummy key and
        # zero their contribution afterwards.
        mask = source.valid | ~any_valid[:, None]
        q = split_heads(self.to_q(hidden), self.heads)
        out = F.scaled_dot_product_attention(
            q, source.key, source.value, attn_mask=mask[:, None, None, :]
        )
        update = self.to_out(merge_heads(out)) * any_valid[:, None, None].to(hidden.dtype)
        return hidden + update
