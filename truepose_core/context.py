"""The TargetNet's cross-attention context: the source's CLIP embedding as a few tokens."""

from __future__ import annotations

import torch
from torch import nn


class ContextProjection(nn.Module):
    """IP-Adapter style: one linear map to ``tokens x context_dim`` and a LayerNorm.

    The unconditional context is all zeros (METHOD.md), built by :func:`null_context`.
    """

    def __init__(self, clip_dim: int, context_dim: int, tokens: int):
        super().__init__()
        self.tokens, self.context_dim = tokens, context_dim
        self.proj = nn.Linear(clip_dim, tokens * context_dim)
        self.norm = nn.LayerNorm(context_dim)

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """(B, clip_dim) -> (B, tokens, context_dim)."""
        x = self.proj(image_embeds).view(-1, self.tokens, self.context_dim)
        return self.norm(x)


def null_context(batch: int, tokens: int, dim: int, like: torch.Tensor) -> torch.Tensor:
    """The unconditional context: zeros of the conditional context's shape."""
    return like.new_zeros(batch, tokens, dim)
