"""One fusion layer against the paper's equations, computed by hand.

Every weight is random and non-zero (O_h and O_c included), so a wrong step changes the
output: K_h/V_h from F' instead of H', sigma and delta swapped, M ignored, CAA scored on the
reweighted attention, CAA picking the most-attended regions, CAA queries from F instead of
Ftilde. The reference below is written from docs/METHOD.md, not from the module's code, and
it is compared with the public entry points ``FusionLayer.precompute`` + ``apply``.
"""

from __future__ import annotations

import math

import pytest
import torch

from truepose_core.config import TruePoseConfig
from truepose_core.fusion import FusionLayer, SourceEncoding
from truepose_core.unet_layers import AttentionLayer

C, HEADS, CLIP_DIM, NUM_LABELS = 16, 2, 12, 20
GRID = (4, 6)
N = GRID[0] * GRID[1]
SIGMA, DELTA, K = 0.2, 0.7, 2
# LIP labels: 0 Background, 2 Hair, 5 Upper-clothes, 9 Pants, 13 Face, 14 Left-arm, 18 shoe.
LABEL_ROWS = (
    (0, 2, 2, 2, 13, 0),
    (0, 13, 13, 13, 13, 0),
    (14, 5, 5, 5, 5, 14),
    (0, 9, 9, 18, 18, 0),
)


def _labels() -> torch.Tensor:
    one = torch.tensor(LABEL_ROWS).flatten()
    return torch.stack([one, one])  # (2, N): both pairs share the source layout


def _masks(labels: torch.Tensor) -> torch.Tensor:
    """Pair 0: a full-body pose minus the head (M selects arms, shirt, pants, shoes);
    pair 1: a legs-only pose (M selects pants only), so K = 2 needs a fill-up label."""
    pair0 = torch.isin(labels[0], torch.tensor([5, 9, 14, 18]))
    pair1 = torch.isin(labels[1], torch.tensor([9]))
    pair1[0] = True  # a background token in M changes the weights but selects no label
    return torch.stack([pair0, pair1])


def _randomize(layer: torch.nn.Module, seed: int) -> None:
    """Random, non-zero weights everywhere, the zero-initialised output projections too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() > 1 else 0.2))


def _layer(seed: int, **changes) -> FusionLayer:
    config = TruePoseConfig(sigma=SIGMA, delta=DELTA, caa_regions=K, clip_dim=CLIP_DIM, **changes)
    layer = FusionLayer(AttentionLayer("input_1_0", "unused", 0, C, HEADS), config)
    _randomize(layer, seed)
    # Double precision on both sides: the 1e-5 tolerance then measures the math, not rounding.
    return layer.double().eval()


def _inputs(seed: int):
    g = torch.Generator().manual_seed(1000 + seed)
    source = torch.randn(2, N, C, generator=g, dtype=torch.float64)  # F'
    hidden = torch.randn(2, N, C, generator=g, dtype=torch.float64)  # F
    regions = torch.randn(1, NUM_LABELS, CLIP_DIM, generator=g, dtype=torch.float64)
    labels = _labels()
    encoding = SourceEncoding(
        features={"input_1_0": source[:1]},
        latent_hw=GRID,
        parsing=torch.zeros(1, 32, 48, dtype=torch.long),
        region_embeds=regions,
        region_present=torch.ones(1, NUM_LABELS, dtype=torch.bool),
        image_embeds=torch.zeros(1, CLIP_DIM, dtype=torch.float64),
    )
    return source, hidden, labels, _masks(labels), encoding


# ---------------------------------------------------------------------------------------------
# The paper, by hand


def _linear(x, weight, bias=None):
    out = x @ weight.T
    return out if bias is None else out + bias


def _heads(x):
    b, n, c = x.shape
    return x.reshape(b, n, HEADS, c // HEADS).permute(0, 2, 1, 3)


def _merge(x):
    b, h, n, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, n, h * d)


def _attend(q, k, v):
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v


def _eq6_weights(logits, key_mask):
    """M' of eq. 6, written out case by case."""
    inside = key_mask[:, None, None, :].expand_as(logits)
    positive = logits > 0
    w = torch.empty_like(logits)
    w[positive & inside] = 1 + DELTA
    w[~positive & inside] = DELTA
    w[positive & ~inside] = SIGMA
    w[~positive & ~inside] = 1 + SIGMA
    return w


def _region_scores(attention, labels):
    """Per label: mean over its key tokens of the attention they receive (heads, queries)."""
    received = attention.mean(dim=(1, 2))  # (B, Nk)
    scores = []
    for row in range(labels.shape[0]):
        per_label = {}
        for label in labels[row].unique().tolist():
            if label != 0:
                per_label[label] = float(received[row][labels[row] == label].mean())
        scores.append(per_label)
    return scores


def _pick(scores, preferred, lowest=True):
    """K labels: preferred ones first, by score; others fill up."""
    first = sorted((s, lab) for lab, s in scores.items() if lab in preferred)
    rest = sorted((s, lab) for lab, s in scores.items() if lab not in preferred)
    if not lowest:
        first, rest = first[::-1], rest[::-1]
    return [lab for _, lab in (first + rest)[:K]]


def reference(layer, source, hidden, labels, key_mask, regions, *, rule="paper"):
    """Fhat of METHOD.md for each pair; ``rule`` picks CAA's regions (paper or a wrong one)."""
    hp, caa = layer.hpfa, layer.caa
    # HPFA step 2: A' = Q'K'^T / sqrt(d) on the SourceNet features F'.
    q_s = _heads(_linear(source, hp.source_q.weight))
    k_s = _heads(_linear(source, hp.source_k.weight))
    v_s = _heads(_linear(source, hp.source_v.weight))
    logits = q_s @ k_s.transpose(-1, -2) / math.sqrt(C // HEADS)
    # Eq. 6-7: H' = softmax(A' * M') V'.
    reweighted = torch.softmax(logits * _eq6_weights(logits, key_mask), dim=-1)
    h_prime = _merge(reweighted @ v_s)
    # Eq. 8: Ftilde = F + O_h(softmax(Q K_h^T / sqrt(d)) V_h), K_h, V_h from H'.
    k_h = _heads(_linear(h_prime, hp.to_k.weight))
    v_h = _heads(_linear(h_prime, hp.to_v.weight))
    q = _heads(_linear(hidden, hp.to_q.weight))
    f_tilde = hidden + _linear(_merge(_attend(q, k_h, v_h)), hp.to_out.weight, hp.to_out.bias)
    # CAA steps 1-2: scores on softmax(A') (unweighted), lowest K among labels M selects.
    plain = torch.softmax(logits, dim=-1)
    chosen = []
    for row, scores in enumerate(_region_scores(plain, labels)):
        selected = set(labels[row][key_mask[row]].tolist())
        if rule == "paper":
            chosen.append(_pick(scores, selected))
        elif rule == "highest":
            chosen.append(_pick(scores, selected, lowest=False))
        elif rule == "reweighted":  # the earlier version: eq. 6 weights, no preference
            chosen.append(_pick(_region_scores(reweighted, labels)[row], set()))
        elif rule == "reweighted_preferred":  # eq. 6 weights, with the preference
            chosen.append(_pick(_region_scores(reweighted, labels)[row], selected))
        elif rule == "no_preference":
            chosen.append(_pick(scores, set()))
        else:
            raise ValueError(rule)
    # CAA step 3: Fhat = Ftilde + O_c(softmax(Qt K_c^T / sqrt(d)) V_c), Qt from Ftilde.
    tokens = torch.stack([regions[0, c] for c in chosen])  # (B, K, clip_dim)
    k_c = _heads(_linear(tokens, caa.to_k.weight))
    v_c = _heads(_linear(tokens, caa.to_v.weight))
    q_t = _heads(_linear(f_tilde, caa.to_q.weight))
    f_hat = f_tilde + _linear(_merge(_attend(q_t, k_c, v_c)), caa.to_out.weight, caa.to_out.bias)
    return f_hat, chosen


# ---------------------------------------------------------------------------------------------
# The module against it

#: Weight seed whose CAA choice differs under every wrong rule (asserted below).
SEED = 42


def _module(layer, source, hidden, labels, key_mask, encoding):
    rows = torch.zeros(2, dtype=torch.long)  # both pairs use source 0
    with torch.no_grad():
        state = layer.precompute(source, key_mask, labels, encoding, rows)
        return layer.apply(hidden, state)


@pytest.mark.parametrize("backend", ["naive", "chunked"])
def test_fusion_layer_matches_the_paper_by_hand(backend):
    layer = _layer(SEED, attention_backend=backend, attention_chunk=5)
    source, hidden, labels, key_mask, encoding = _inputs(SEED)
    source = source[:1].expand(2, -1, -1)  # one source, two target poses
    assert key_mask.any() and not key_mask.all()  # M takes both values
    with torch.no_grad():
        want, _ = reference(layer, source, hidden, labels, key_mask, encoding.region_embeds)
    query, kv = _module(layer, source, hidden, labels, key_mask, encoding)
    torch.testing.assert_close(query, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(kv, want, atol=1e-5, rtol=1e-5)


def test_caa_choice_depends_on_the_scores_and_follows_the_paper():
    """The case is not degenerate: every wrong rule picks other regions, so other outputs."""
    layer = _layer(SEED)
    source, hidden, labels, key_mask, encoding = _inputs(SEED)
    source = source[:1].expand(2, -1, -1)
    regions = encoding.region_embeds
    with torch.no_grad():
        want, chosen = reference(layer, source, hidden, labels, key_mask, regions)
        # Pair 0's pose selects four labels: CAA takes the two least attended of them.
        assert set(chosen[0]) == {14, 18}
        # Pair 1's pose selects one label only: the second region is a fill-up.
        assert 9 in chosen[1] and len(set(chosen[1])) == K
        for rule in ("highest", "reweighted", "reweighted_preferred", "no_preference"):
            other, other_chosen = reference(
                layer, source, hidden, labels, key_mask, regions, rule=rule
            )
            assert set(other_chosen[0]) != set(chosen[0]), rule
            assert not torch.allclose(other[0], want[0], atol=1e-4), rule
        # The earlier rule (scores after eq. 6, no preference) picked the head, which the
        # pose does not show: Hair and Face.
        _, old = reference(layer, source, hidden, labels, key_mask, regions, rule="reweighted")
        assert set(old[0]) == {2, 13}
    query, _ = _module(layer, source, hidden, labels, key_mask, encoding)
    torch.testing.assert_close(query, want, atol=1e-5, rtol=1e-5)


def test_selection_mask_and_mask_weights_matter():
    """M takes both values, so replacing it by all ones changes Fhat."""
    layer = _layer(SEED)
    source, hidden, labels, key_mask, encoding = _inputs(SEED)
    source = source[:1].expand(2, -1, -1)
    want, _ = _module(layer, source, hidden, labels, key_mask, encoding)
    everything, _ = _module(layer, source, hidden, labels, torch.ones_like(key_mask), encoding)
    assert not torch.allclose(everything, want, atol=1e-4)
