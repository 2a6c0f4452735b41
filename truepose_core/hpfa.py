"""Human-parsing-guided fusion attention (HPFA), METHOD.md "HPFA" steps 2-5.

The module splits its work along what changes: :meth:`HPFA.encode_source` depends only on
the source features and the target pose's selection mask, so it runs once per
(source, pose); :meth:`HPFA.fuse` runs at every denoising step on the TargetNet's hidden state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .attention import reweighted_attention
from .heads import merge_heads, split_heads, zero_linear


@dataclass
class HPFASource:
    """Everything HPFA needs from the source for one layer; independent of the timestep."""

    key: torch.Tensor  # (B, heads, Nk, D): W_Kh H'
    value: torch.Tensor  # (B, heads, Nk, D): W_Vh H'
    key_attention: torch.Tensor | None = None  # (B, Nk): attention each key gets in softmax(A')
    key_valid: torch.Tensor | None = None  # (B, Nk) bool; None: every key is valid

    def index(self, rows: torch.Tensor) -> HPFASource:
        def pick(t):
            return None if t is None else t[rows]

        return HPFASource(
            self.key[rows], self.value[rows], pick(self.key_attention), pick(self.key_valid)
        )


class HPFA(nn.Module):
    """Reweighted source self-attention (eq. 6-7) and the fusion cross-attention (eq. 8)."""

    def __init__(self, dim: int, heads: int, *, sigma: float, delta: float, reweight: bool = True):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.sigma, self.delta, self.reweight = sigma, delta, reweight
        # Eq. 6-7 on SourceNet features F'.
        self.source_q = nn.Linear(dim, dim, bias=False)
        self.source_k = nn.Linear(dim, dim, bias=False)
        self.source_v = nn.Linear(dim, dim, bias=False)
        # Eq. 8: queries from TargetNet features F, keys and values from H'.
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = zero_linear(dim, dim)

    @torch.no_grad()
    def init_from_attention(self, source_attn: nn.Module, target_attn: nn.Module) -> None:
        """W_Q', W_K', W_V' start from the SourceNet layer; W_Q, W_Kh, W_Vh from the TargetNet's."""
        for mine, theirs in (
            (self.source_q, source_attn.to_q),
            (self.source_k, source_attn.to_k),
            (self.source_v, source_attn.to_v),
            (self.to_q, target_attn.to_q),
            (self.to_k, target_attn.to_k),
            (self.to_v, target_attn.to_v),
        ):
            mine.weight.copy_(theirs.weight)

    def source_attention(
        self,
        source: torch.Tensor,
        key_mask: torch.Tensor,
        *,
        backend: str = "auto",
        chunk: int = 0,
        return_key_attention: bool = False,
        key_attention_unweighted: bool = True,
        sigma: float | None = None,
        delta: float | None = None,
    ):
        """H' = softmax(A' * M') V' (eq. 7) for source features (B, N, C) -> (B, N, C).

        The per-key attention comes from softmax(A') by default, what CAA scores (METHOD.md
        "CAA" step 1); ``key_attention_unweighted=False`` gives eq. 7's reweighted one.
        ``sigma``/``delta`` override eq. 6's weights for this call (None: the module's own,
        from the checkpoint's config); the module itself is never changed.
        """
        q = split_heads(self.source_q(source), self.heads)
        k = split_heads(self.source_k(source), self.heads)
        v = split_heads(self.source_v(source), self.heads)
        result = reweighted_attention(
            q,
            k,
            v,
            key_mask,
            sigma=self.sigma if sigma is None else float(sigma),
            delta=self.delta if delta is None else float(delta),
            reweight=self.reweight,
            return_key_attention=return_key_attention,
            key_attention_unweighted=key_attention_unweighted,
            backend=backend,
            chunk=chunk,
        )
        if return_key_attention:
            out, received = result
            return merge_heads(out), received
        return merge_heads(result), None

    def encode_tokens(self, tokens: torch.Tensor, valid: torch.Tensor | None = None) -> HPFASource:
        """K_h and V_h from ready-made tokens (B, N, C) instead of H' (ablation B1)."""
        return HPFASource(
            split_heads(self.to_k(tokens), self.heads),
            split_heads(self.to_v(tokens), self.heads),
            None,
            valid,
        )

    def encode_source(
        self,
        source: torch.Tensor,
        key_mask: torch.Tensor,
        *,
        backend: str = "auto",
        chunk: int = 0,
        return_key_attention: bool = False,
        key_attention_unweighted: bool = True,
        sigma: float | None = None,
        delta: float | None = None,
    ) -> HPFASource:
        """Precompute K_h and V_h of eq. 8 (once per source and target pose)."""
        hidden, received = self.source_attention(
            source,
            key_mask,
            backend=backend,
            chunk=chunk,
            return_key_attention=return_key_attention,
            key_attention_unweighted=key_attention_unweighted,
            sigma=sigma,
            delta=delta,
        )
        return HPFASource(
            split_heads(self.to_k(hidden), self.heads),
            split_heads(self.to_v(hidden), self.heads),
            received,
        )

    def fuse(self, hidden: torch.Tensor, source: HPFASource) -> torch.Tensor:
        """Ftilde = F + O_h(softmax(Q K_h^T / sqrt(d)) V_h) (eq. 8); hidden (B, N, C)."""
        q = split_heads(self.to_q(hidden), self.heads)  # (B, heads, Nq, D)
        mask = None if source.key_valid is None else source.key_valid[:, None, None, :]
        out = F.scaled_dot_product_attention(q, source.key, source.value, attn_mask=mask)
        return hidden + self.to_out(merge_heads(out))
