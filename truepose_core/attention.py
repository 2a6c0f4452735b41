"""Parsing-reweighted self-attention (paper eq. 6-7) and the CAA region scores.

``reweighted_attention`` is the one implementation of the method's attention math; both the
diffusers path and the ComfyUI path call it. Three backends sit behind one dispatch:

- ``naive``: materialises the full (B, H, Nq, Nk) score matrix; the reference.
- ``chunked``: processes queries in chunks, so memory is O(chunk x Nk); the CPU default.
  When no output but the attention's is asked for, keys that keep weight 1 in every row
  (reference mode's target keys, or all keys with ``reweight=False``) go through PyTorch's
  fused attention instead, merged with the reweighted keys by log-sum-exp.
- ``flex``: ``torch.nn.attention.flex_attention`` with a ``score_mod``; the CUDA default.
"""

from __future__ import annotations

import math

import torch

from .errors import ConfigError

DEFAULT_SIGMA = 0.3
DEFAULT_DELTA = 0.6
#: Elements of one query chunk's score matrix (batch x heads x chunk x keys) in the chunked
#: backend when no chunk size is given: 4 Mi floats = 16 MiB per temporary in fp32.
CHUNK_ELEMENTS = 1 << 22
BACKENDS = ("naive", "chunked", "flex")


def mask_weights(
    scores: torch.Tensor,
    key_mask: torch.Tensor,
    sigma: float,
    delta: float,
    weighted_keys: torch.Tensor | None = None,
) -> torch.Tensor:
    """M' of eq. 6 for ``scores`` (..., Nk) given ``key_mask`` broadcastable to it.

    Positive scores on selected keys get ``1 + delta`` and negative ones ``delta``; outside the
    selection positive scores get ``sigma`` and negative ones ``1 + sigma``. Multiplying the
    scores by these weights pushes the softmax toward the selected keys. Keys where
    ``weighted_keys`` (broadcastable like ``key_mask``) is False keep the weight 1.
    """
    positive = scores > 0
    inside = torch.where(positive, 1.0 + delta, delta)
    outside = torch.where(positive, sigma, 1.0 + sigma)
    weights = torch.where(key_mask, inside, outside)
    if weighted_keys is not None:
        weights = torch.where(weighted_keys, weights, torch.ones_like(weights))
    return weights.to(scores.dtype)


def _check_inputs(query, key, value, key_mask, weighted_keys=None) -> None:
    if query.dim() != 4 or key.dim() != 4 or value.dim() != 4:
        raise ValueError(
            "reweighted_attention: query/key/value must be (batch, heads, tokens, dim), got "
            f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
        )
    b, _, nk, _ = key.shape
    if key_mask.shape != (b, nk):
        raise ValueError(
            f"reweighted_attention: key_mask must be (batch, keys) = {(b, nk)}, "
            f"got {tuple(key_mask.shape)}"
        )
    if weighted_keys is not None and weighted_keys.shape != (b, nk):
        raise ValueError(
            f"reweighted_attention: weighted_keys must be (batch, keys) = {(b, nk)}, "
            f"got {tuple(weighted_keys.shape)}"
        )


def _naive(
    query, key, value, key_mask, sigma, delta, reweight, want_probs, received_unweighted, weighted
):
    scale = 1.0 / math.sqrt(query.shape[-1])
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale  # (B, H, Nq, Nk): A'
    received = None
    if received_unweighted:
        received = torch.softmax(scores, dim=-1).mean(dim=(1, 2))
    if reweight:
        per_key = None if weighted is None else weighted[:, None, None, :]
        scores = scores * mask_weights(scores, key_mask[:, None, None, :], sigma, delta, per_key)
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs, value)  # (B, H, Nq, D)
    if received is None:
        received = probs.mean(dim=(1, 2))
    return out, (probs if want_probs else None), received


def _chunked(
    query,
    key,
    value,
    key_mask,
    sigma,
    delta,
    reweight,
    want_probs,
    chunk,
    received_unweighted,
    weighted,
    want_received=True,
    want_lse=False,
):
    scale = 1.0 / math.sqrt(query.shape[-1])
    b, h, nq, _ = query.shape
    nk = key.shape[2]
    # Head-split views of (B, N, C) tensors are strided; matmul would copy them every chunk.
    key, value = key.contiguous(), value.contiguous()
    out = query.new_empty(b, h, nq, value.shape[-1])
    received = query.new_zeros(b, nk, dtype=torch.float32) if want_received else None
    probs_all = query.new_empty(b, h, nq, nk) if want_probs else None
    lse = query.new_empty(b, h, nq, dtype=torch.float32) if want_lse else None
    key_t = key.transpose(-1, -2)
    # Eq. 6 as score * weight = offset * score + slope * max(score, 0), per key: inside the
    # mask (delta, +1), outside (1 + sigma, -1), unweighted keys (1, 0). Built in place to
    # keep few chunk-sized temporaries.
    inside = key_mask[:, None, None, :]
    offset = torch.where(inside, delta, 1.0 + sigma)
    slope = torch.where(inside, 1.0, -1.0)
    if weighted is not None:
        per_key = weighted[:, None, None, :]
        offset = torch.where(per_key, offset, 1.0)
        slope = torch.where(per_key, slope, 0.0)
    offset, slope = offset.to(query.dtype), slope.to(query.dtype)
    for start in range(0, nq, chunk):
        stop = min(start + chunk, nq)
        scores = torch.matmul(query[:, :, start:stop], key_t).mul_(scale)  # (B, H, c, Nk)
        if received is not None and received_unweighted:
            received += torch.softmax(scores, dim=-1).sum(dim=(1, 2), dtype=torch.float32)
        if reweight:
            positive = scores.clamp(min=0)
            if scores.requires_grad:  # autograd keeps clamp's input: no update in place
                scores = torch.addcmul(scores * offset, positive, slope)
            else:
                scores.mul_(offset).addcmul_(positive, slope)
            del positive
        probs = torch.softmax(scores, dim=-1)
        if lse is not None:
            # log sum exp(s) = s_j - log p_j for any key j; the largest score's p_j >= 1 / Nk.
            top = scores.amax(dim=-1).float() - probs.amax(dim=-1).float().log()
            lse[:, :, start:stop] = top
        del scores
        out[:, :, start:stop] = torch.matmul(probs, value)
        if received is not None and not received_unweighted:
            received += probs.sum(dim=(1, 2), dtype=torch.float32)
        if probs_all is not None:
            probs_all[:, :, start:stop] = probs
        del probs
    if received is not None:
        received = (received / (h * nq)).to(query.dtype)
    return out, probs_all, received, lse


def _plain_with_lse(query, key, value, chunk, fused=True):
    """Unweighted softmax attention and its per-query log-sum-exp ``(B, H, Nq)``.

    On the CPU this is PyTorch's fused flash-attention kernel, which returns the log-sum-exp
    alongside the output; elsewhere (or with ``fused=False``) the chunked loop, weights 1.
    """
    flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if fused and query.device.type == "cpu" and flash is not None:
        out, lse = flash(query, key, value, 0.0, False)
        return out, lse.float()
    b, nk = key.shape[0], key.shape[2]
    mask = torch.zeros(b, nk, dtype=torch.bool, device=query.device)
    out, _, _, lse = _chunked(
        query,
        key,
        value,
        mask,
        0.0,
        0.0,
        reweight=False,
        want_probs=False,
        chunk=chunk,
        received_unweighted=False,
        weighted=None,
        want_received=False,
        want_lse=True,
    )
    return out, lse


def _split_unweighted(query, key, value, key_mask, sigma, delta, chunk, weighted):
    """Eq. 6-7 when some keys keep weight 1 in every row (reference mode: the target's own).

    The softmax over all keys splits exactly into the unweighted keys, computed by fused
    plain attention, and the rest, computed by the chunked loop; the two partial outputs
    merge by their log-sum-exps: ``out = out_u * sigmoid(lse_u - lse_w) + out_w *
    sigmoid(lse_w - lse_u)``. Same result as :func:`_chunked`, to float rounding.
    """
    plain = ~weighted.any(dim=0)  # (Nk,): keys that no row reweights
    if bool(plain.all()):
        return torch.nn.functional.scaled_dot_product_attention(query, key, value)
    rest = ~plain
    out_u, lse_u = _plain_with_lse(query, key[:, :, plain], value[:, :, plain], chunk)
    out_w, _, _, lse_w = _chunked(
        query,
        key[:, :, rest],
        value[:, :, rest],
        key_mask[:, rest],
        sigma,
        delta,
        reweight=True,
        want_probs=False,
        chunk=chunk,
        received_unweighted=False,
        weighted=weighted[:, rest],
        want_received=False,
        want_lse=True,
    )
    share_u = torch.sigmoid(lse_u - lse_w)[..., None]  # (B, H, Nq, 1)
    out = out_w.float().lerp_(out_u.float(), share_u)
    return out.to(query.dtype)


def _flex(query, key, value, key_mask, sigma, delta, reweight, weighted):
    from torch.nn.attention.flex_attention import flex_attention

    if not reweight:
        return flex_attention(query, key, value)
    mask = key_mask
    per_key = torch.ones_like(key_mask) if weighted is None else weighted

    def score_mod(score, b, h, q_idx, kv_idx):
        inside = mask[b, kv_idx]
        positive = score > 0
        weight = torch.where(
            inside,
            torch.where(positive, 1.0 + delta, delta),
            torch.where(positive, sigma, 1.0 + sigma),
        )
        return torch.where(per_key[b, kv_idx], score * weight, score)

    return flex_attention(query, key, value, score_mod=score_mod)


def resolve_backend(backend: str, device: torch.device, need_probs: bool = False) -> str:
    """Pick a concrete backend: ``auto`` means flex on CUDA and chunked elsewhere.

    FlexAttention returns no probabilities, so a call that needs them falls back to chunked.
    """
    if backend == "auto":
        backend = "flex" if device.type == "cuda" and not need_probs else "chunked"
    if backend not in BACKENDS:
        raise ConfigError(f"attention backend: got {backend!r}, expected auto or one of {BACKENDS}")
    if backend == "flex" and need_probs:
        return "chunked"
    return backend


def reweighted_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_mask: torch.Tensor,
    *,
    sigma: float = DEFAULT_SIGMA,
    delta: float = DEFAULT_DELTA,
    return_probs: bool = False,
    return_key_attention: bool = False,
    reweight: bool = True,
    backend: str = "auto",
    chunk: int = 0,
    key_attention_unweighted: bool = False,
    weighted_keys: torch.Tensor | None = None,
):
    """``softmax((Q K^T / sqrt(d)) * M') V`` with M' from the key mask (paper eq. 6-7).

    Shapes: query ``(B, H, Nq, D)``, key/value ``(B, H, Nk, D)``, key_mask ``(B, Nk)`` bool.
    Returns the output ``(B, H, Nq, D)``; with ``return_probs`` also the probabilities
    ``(B, H, Nq, Nk)``; with ``return_key_attention`` also the attention each key receives,
    averaged over heads and queries, ``(B, Nk)``: all that CAA needs, at O(Nk) memory.
    ``key_attention_unweighted`` takes that per-key attention from ``softmax(A')``, the
    logits before eq. 6's weights (what CAA scores, METHOD.md "CAA" step 1), instead of from
    the reweighted softmax that produced the output.
    ``reweight=False`` sets every weight of eq. 6 to 1 (plain attention; an ablation).
    ``chunk`` is the chunked backend's query chunk; 0 sizes it so that one chunk's scores
    hold about :data:`CHUNK_ELEMENTS` values.
    ``weighted_keys`` ``(B, Nk)`` bool, when given, limits eq. 6 to those keys; the others
    keep weight 1 (reference mode: the target's own keys are not reweighted).
    """
    _check_inputs(query, key, value, key_mask, weighted_keys)
    key_mask = key_mask.to(device=query.device, dtype=torch.bool)
    if weighted_keys is not None:
        weighted_keys = weighted_keys.to(device=query.device, dtype=torch.bool)
    name = resolve_backend(backend, query.device, need_probs=return_probs or return_key_attention)
    if name == "naive":
        out, probs, received = _naive(
            query,
            key,
            value,
            key_mask,
            sigma,
            delta,
            reweight,
            return_probs,
            key_attention_unweighted,
            weighted_keys,
        )
    elif name == "chunked":
        if chunk <= 0:
            b, h, _, _ = query.shape
            chunk = CHUNK_ELEMENTS // max(1, b * h * key.shape[2])
        chunk = max(1, int(chunk))
        if not reweight:
            weighted_keys = torch.zeros_like(key_mask)  # every key keeps weight 1
        split = weighted_keys is not None and not (return_probs or return_key_attention)
        if split and not bool(weighted_keys.any(dim=0).all()):
            return _split_unweighted(
                query, key, value, key_mask, sigma, delta, chunk, weighted_keys
            )
        out, probs, received, _ = _chunked(
            query,
            key,
            value,
            key_mask,
            sigma,
            delta,
            reweight,
            return_probs,
            chunk,
            key_attention_unweighted,
            weighted_keys,
            return_key_attention,
        )
    else:
        out, probs, received = (
            _flex(query, key, value, key_mask, sigma, delta, reweight, weighted_keys),
            None,
            None,
        )
    extras = []
    if return_probs:
        extras.append(probs)
    if return_key_attention:
        extras.append(received)
    return (out, *extras) if extras else out


def region_scores(
    attention: torch.Tensor, labels: torch.Tensor, num_labels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean attention received by each label's key tokens (CAA step 1).

    ``attention`` is either the probabilities ``(B, H, Nq, Nk)`` or the per-key received
    attention ``(B, Nk)``; ``labels`` ``(B, Nk)`` holds each key token's parsing label.
    Returns ``scores (B, num_labels)`` and ``present (B, num_labels)`` bool: a label with no
    key token is absent and its score is NaN, never a misleading zero.
    """
    if attention.dim() == 4:
        attention = attention.float().mean(dim=(1, 2))
    if attention.shape != labels.shape:
        raise ValueError(
            f"region_scores: attention {tuple(attention.shape)} and labels "
            f"{tuple(labels.shape)} must both be (batch, keys)"
        )
    b = labels.shape[0]
    labels = labels.long()
    sums = attention.new_zeros(b, num_labels, dtype=torch.float32)
    counts = attention.new_zeros(b, num_labels, dtype=torch.float32)
    sums.scatter_add_(1, labels, attention.float())
    counts.scatter_add_(1, labels, torch.ones_like(attention, dtype=torch.float32))
    present = counts > 0
    scores = torch.where(present, sums / counts.clamp(min=1), torch.full_like(sums, math.nan))
    return scores, present


def lowest_regions(
    scores: torch.Tensor,
    present: torch.Tensor,
    k: int,
    background: int = 0,
    preferred: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` present, non-background labels with the lowest scores (CAA step 2).

    ``preferred`` (B, num_labels) bool, when given, ranks those labels (the ones the target
    pose selects) before all others; the rest only fill up when fewer than ``k`` are
    preferred. Returns ``labels (B, k)`` long and ``valid (B, k)`` bool; rows with fewer than
    ``k`` present labels have trailing invalid slots (label 0, valid False).
    """
    b, n = scores.shape
    eligible = present.clone()
    if 0 <= background < n:
        eligible[:, background] = False
    if k <= 0:
        empty = torch.zeros(b, 0, dtype=torch.long, device=scores.device)
        return empty, empty.bool()
    ranked = torch.where(eligible, scores, torch.full_like(scores, math.inf))
    if preferred is not None:
        # Two tiers: every preferred label ranks before every other one, by score within a tier.
        finite = torch.where(eligible, scores, torch.zeros_like(scores))
        spread = (finite.abs().amax(dim=1, keepdim=True) * 2 + 1).to(ranked.dtype)
        ranked = torch.where(preferred.to(torch.bool), ranked, ranked + spread)
    k_eff = min(k, n)
    values, labels = torch.topk(ranked, k_eff, dim=1, largest=False, sorted=True)
    valid = torch.isfinite(values)
    labels = torch.where(valid, labels, torch.zeros_like(labels))
    if k_eff < k:
        pad = k - k_eff
        labels = torch.cat([labels, labels.new_zeros(b, pad)], dim=1)
        valid = torch.cat([valid, valid.new_zeros(b, pad)], dim=1)
    return labels, valid
