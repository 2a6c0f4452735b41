"""Reweighted attention (eq. 6-7): backends agree and match an independent implementation."""

import math

import pytest
import torch

from truepose_core import attention
from truepose_core.attention import lowest_regions, region_scores, reweighted_attention

SIGMA, DELTA = 0.3, 0.6


def independent_reference(q, k, v, key_mask, sigma, delta, weighted=None):
    """Eq. 6-7 written out element by element, without the project's helpers.

    ``weighted`` (B, Nk) bool, when given, leaves the other keys at weight 1.
    """
    b, h, nq, d = q.shape
    nk = k.shape[2]
    out = torch.zeros(b, h, nq, v.shape[-1], dtype=torch.float64)
    probs = torch.zeros(b, h, nq, nk, dtype=torch.float64)
    for bi in range(b):
        for hi in range(h):
            a = (q[bi, hi].double() @ k[bi, hi].double().T) / math.sqrt(d)
            w = torch.empty_like(a)
            for j in range(nk):
                m = bool(key_mask[bi, j])
                col = a[:, j]
                if weighted is not None and not bool(weighted[bi, j]):
                    w[:, j] = 1.0
                elif m:
                    w[:, j] = torch.where(col > 0, 1 + delta, delta)
                else:
                    w[:, j] = torch.where(col > 0, sigma, 1 + sigma)
            p = torch.softmax(a * w, dim=-1)
            probs[bi, hi] = p
            out[bi, hi] = p @ v[bi, hi].double()
    return out, probs


def random_inputs(b=2, h=3, nq=37, nk=29, d=8, seed=0, mask="random"):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, nq, d, generator=g)
    k = torch.randn(b, h, nk, d, generator=g)
    v = torch.randn(b, h, nk, d, generator=g)
    if mask == "all":
        m = torch.ones(b, nk, dtype=torch.bool)
    elif mask == "none":
        m = torch.zeros(b, nk, dtype=torch.bool)
    else:
        m = torch.rand(b, nk, generator=g) > 0.5
    return q, k, v, m


@pytest.mark.parametrize("mask", ["random", "all", "none"])
@pytest.mark.parametrize("shape", [(2, 3, 37, 29), (1, 8, 5, 131), (3, 1, 64, 64)])
def test_backends_match_independent_reference(mask, shape):
    b, h, nq, nk = shape
    q, k, v, m = random_inputs(b, h, nq, nk, mask=mask)
    ref_out, ref_probs = independent_reference(q, k, v, m, SIGMA, DELTA)
    for backend in ("naive", "chunked"):
        out, probs, received = reweighted_attention(
            q, k, v, m, backend=backend, chunk=7, return_probs=True, return_key_attention=True
        )
        torch.testing.assert_close(out.double(), ref_out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(probs.double(), ref_probs, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            received.double(), ref_probs.mean(dim=(1, 2)), atol=1e-6, rtol=1e-5
        )


def test_chunk_size_does_not_change_result():
    q, k, v, m = random_inputs(nq=100, nk=50)
    outs = [
        reweighted_attention(q, k, v, m, backend="chunked", chunk=c) for c in (1, 13, 100, 4096)
    ]
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], atol=1e-6, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention backend needs CUDA")
def test_flex_matches_naive_on_cuda():
    q, k, v, m = (t.cuda() for t in random_inputs(nq=128, nk=128, d=16))
    flex = reweighted_attention(q, k, v, m, backend="flex")
    naive = reweighted_attention(q, k, v, m, backend="naive")
    torch.testing.assert_close(flex, naive, atol=1e-5, rtol=1e-5)


def test_raising_delta_moves_mass_toward_masked_keys():
    q, k, v, m = random_inputs(b=1, h=2, nq=40, nk=40, seed=3)
    masses = []
    for delta in (0.0, 0.6, 2.0, 5.0):
        _, probs = reweighted_attention(q, k, v, m, delta=delta, return_probs=True, backend="naive")
        masses.append(float((probs * m[:, None, None, :]).sum(-1).mean()))
    assert masses == sorted(masses) and masses[-1] > masses[0] + 0.1


def test_no_reweight_is_plain_attention():
    q, k, v, m = random_inputs()
    out = reweighted_attention(q, k, v, m, reweight=False, backend="chunked", chunk=5)
    plain = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, plain, atol=1e-5, rtol=1e-5)


def test_bad_mask_shape_is_named():
    q, k, v, m = random_inputs()
    with pytest.raises(ValueError, match="key_mask"):
        reweighted_attention(q, k, v, m[:, :-1])


def test_region_scores_mark_absent_labels():
    probs = torch.rand(1, 2, 4, 6)
    probs = probs / probs.sum(-1, keepdim=True)
    labels = torch.tensor([[0, 0, 1, 1, 3, 3]])
    scores, present = region_scores(probs, labels, num_labels=5)
    received = probs.mean(dim=(1, 2))[0]
    assert present.tolist() == [[True, True, False, True, False]]
    assert torch.isnan(scores[0, 2]) and torch.isnan(scores[0, 4])
    torch.testing.assert_close(scores[0, 1], received[2:4].mean())
    # The per-key form gives the same scores as the full probabilities.
    scores2, _ = region_scores(probs.mean(dim=(1, 2)), labels, 5)
    torch.testing.assert_close(scores2, scores, equal_nan=True)


def test_lowest_regions_skip_background_and_pad():
    scores = torch.tensor(
        [[0.0, 0.5, math.nan, 0.1, 0.9], [0.0, math.nan, math.nan, math.nan, 0.2]]
    )
    present = ~torch.isnan(scores)
    labels, valid = lowest_regions(scores, present, k=2)
    assert labels[0].tolist() == [3, 1] and valid[0].tolist() == [True, True]
    assert labels[1, 0].item() == 4 and valid[1].tolist() == [True, False]
    labels, valid = lowest_regions(scores[:, :1], present[:, :1], k=2)
    assert not valid.any()


def test_lowest_regions_prefers_labels_the_target_selects():
    scores = torch.tensor([[0.0, 0.1, 0.2, 0.3, 0.4]])
    present = torch.ones(1, 5, dtype=torch.bool)
    preferred = torch.tensor([[False, False, True, False, True]])
    labels, valid = lowest_regions(scores, present, 2, preferred=preferred)
    assert labels.tolist() == [[2, 4]] and valid.all()
    # Fewer than K preferred: fill up from the other present labels, lowest first.
    labels, _ = lowest_regions(scores, present, 2, preferred=torch.tensor([[0, 0, 0, 1, 0]]).bool())
    assert labels.tolist() == [[3, 1]]


def test_key_attention_can_come_from_the_unweighted_logits():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 6, 4) for _ in range(3))
    mask = torch.tensor([[1, 1, 0, 0, 1, 0], [0, 0, 0, 1, 1, 1]]).bool()
    plain = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1).mean(dim=(1, 2))
    for backend in ("naive", "chunked"):
        out, got = reweighted_attention(
            q,
            k,
            v,
            mask,
            return_key_attention=True,
            backend=backend,
            chunk=4,
            key_attention_unweighted=True,
        )
        torch.testing.assert_close(got, plain)
        ref = reweighted_attention(q, k, v, mask, backend="naive")
        torch.testing.assert_close(out, ref)
        _, weighted = reweighted_attention(
            q, k, v, mask, return_key_attention=True, backend=backend, chunk=4
        )
        assert not torch.allclose(weighted, plain)


def _weighted_layouts(b, nk, g):
    """Keys eq. 6 leaves at weight 1: reference mode's prefix, scattered, and per row."""
    prefix = torch.zeros(b, nk, dtype=torch.bool)
    prefix[:, nk // 3 :] = True
    scattered = (torch.rand(nk, generator=g) > 0.5).expand(b, nk).clone()
    per_row = scattered.clone()
    per_row[0, ~scattered[0]] = True  # row 0 weights every key: no longer common to all rows
    per_row[:, 0] = False
    return {"prefix": prefix, "scattered": scattered, "per_row": per_row}


@pytest.mark.parametrize("layout", ["prefix", "scattered", "per_row"])
def test_keys_at_weight_one_take_the_fused_path_exactly(layout):
    q, k, v, m = random_inputs(b=2, h=3, nq=45, nk=38, seed=5)
    weighted = _weighted_layouts(2, 38, torch.Generator().manual_seed(6))[layout]
    expected, _ = independent_reference(q, k, v, m, 0.2, 0.9, weighted)
    # The fused split (what the chunked backend runs here) and the plain chunked loop.
    split = attention._split_unweighted(q, k, v, m, 0.2, 0.9, 7, weighted)
    public = reweighted_attention(
        q, k, v, m, sigma=0.2, delta=0.9, backend="chunked", chunk=7, weighted_keys=weighted
    )
    loop, _, _, _ = attention._chunked(q, k, v, m, 0.2, 0.9, True, False, 7, False, weighted)
    for out in (split, public, loop):
        torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)


def test_log_sum_exp_of_both_parts_is_exact():
    q, k, v, m = random_inputs(b=2, h=2, nq=30, nk=25, seed=7)
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    for fused in (True, False):
        out, lse = attention._plain_with_lse(q, k, v, 4, fused=fused)
        torch.testing.assert_close(out, torch.softmax(logits, -1) @ v, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lse, torch.logsumexp(logits, -1), atol=1e-5, rtol=1e-5)
    weights = attention.mask_weights(logits, m[:, None, None, :], SIGMA, DELTA)
    _, _, _, lse = attention._chunked(
        q, k, v, m, SIGMA, DELTA, True, False, 4, False, None, False, True
    )
    torch.testing.assert_close(lse, torch.logsumexp(logits * weights, -1), atol=1e-5, rtol=1e-5)


def test_chunked_gradients_match_naive():
    """Training backpropagates through the chunked backend: its in-place eq. 6 must not."""
    q, k, v, m = random_inputs(b=2, h=2, nq=20, nk=17, seed=8)
    grads = []
    for backend in ("naive", "chunked"):
        leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
        out = reweighted_attention(*leaves, m, backend=backend, chunk=6)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append([t.grad for t in leaves])
    for naive, chunked in zip(*grads, strict=True):
        torch.testing.assert_close(chunked, naive, atol=1e-5, rtol=1e-5)


def test_unweighted_key_attention_flag_alone_changes_nothing():
    """``key_attention_unweighted`` without ``return_key_attention`` is a no-op, not an error."""
    q, k, v, m = random_inputs(seed=9)
    for backend in ("naive", "chunked"):
        out = reweighted_attention(q, k, v, m, backend=backend, key_attention_unweighted=True)
        torch.testing.assert_close(out, reweighted_attention(q, k, v, m, backend=backend))
