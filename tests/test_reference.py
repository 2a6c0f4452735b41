"""Reference mode's math: eq. 6 on the source keys only, checked against hand-written code."""

from __future__ import annotations

import math

import pytest
import torch

from tests.tiny_models import LEGS_ONLY_Y, STANDING_X, STANDING_Y, person_parsing
from truepose_core.attention import reweighted_attention
from truepose_core.errors import BatchError, ConfigError
from truepose_core.keypoints import parse_deepfashion_row
from truepose_core.parsing import LIP
from truepose_core.reference import (
    ReferenceConfig,
    blend,
    pair_rows,
    reference_attention,
    source_key_mask,
    source_selection,
)

HEADS = 4


def _inputs(seed=0, b=2, n=12, ns=10, c=32):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, n, c, generator=g)
    k = torch.randn(b, n + ns, c, generator=g)
    v = torch.randn(b, n + ns, c, generator=g)
    mask = torch.rand(b, ns, generator=g) > 0.5
    return q, k, v, mask


def _split(x):
    b, n, c = x.shape
    return x.view(b, n, HEADS, c // HEADS).transpose(1, 2)


def _hand_written(q, k, v, mask, sigma, delta, reweight):
    """softmax over [F, F'] with eq. 6 written out on the source logits only."""
    n = q.shape[1]
    qh, kh, vh = _split(q), _split(k), _split(v)
    logits = qh @ kh.transpose(-1, -2) / math.sqrt(qh.shape[-1])  # (B, H, N, N + Ns)
    if reweight:
        own, src = logits[..., :n], logits[..., n:]
        inside = mask[:, None, None, :]
        w_in = torch.where(src > 0, 1 + delta, delta)
        w_out = torch.where(src > 0, sigma, 1 + sigma)
        src = src * torch.where(inside, w_in, w_out)
        logits = torch.cat([own, src], dim=-1)
    out = torch.softmax(logits, dim=-1) @ vh
    return out.transpose(1, 2).reshape(q.shape)


@pytest.mark.parametrize("backend", ["naive", "chunked"])
def test_reweighting_off_is_plain_reference_attention(backend):
    q, k, v, mask = _inputs()
    out = reference_attention(q, k, v, mask, HEADS, reweight=False, backend=backend)
    expected = _hand_written(q, k, v, mask, 0.3, 0.6, reweight=False)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["naive", "chunked"])
def test_eq6_reweights_only_the_source_keys(backend):
    q, k, v, mask = _inputs(seed=1)
    out = reference_attention(q, k, v, mask, HEADS, sigma=0.2, delta=0.9, backend=backend)
    expected = _hand_written(q, k, v, mask, 0.2, 0.9, reweight=True)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # Reweighting the target's own keys too would be a different function.
    n = q.shape[1]
    everything = reweighted_attention(
        _split(q),
        _split(k),
        _split(v),
        torch.cat([torch.zeros(2, n, dtype=torch.bool), mask], 1),
        sigma=0.2,
        delta=0.9,
        backend=backend,
    )
    assert not torch.allclose(everything.transpose(1, 2).reshape(q.shape), out, atol=1e-4)


def test_weighted_keys_all_or_none():
    q, k, v, _ = _inputs(seed=2)
    qh, kh, vh = _split(q), _split(k), _split(v)
    mask = torch.rand(2, kh.shape[2], generator=torch.Generator().manual_seed(3)) > 0.5
    for backend in ("naive", "chunked"):
        full = reweighted_attention(qh, kh, vh, mask, backend=backend)
        every = torch.ones_like(mask)
        same = reweighted_attention(qh, kh, vh, mask, backend=backend, weighted_keys=every)
        torch.testing.assert_close(same, full)
        plain = reweighted_attention(qh, kh, vh, mask, backend=backend, reweight=False)
        none = reweighted_attention(
            qh, kh, vh, mask, backend=backend, weighted_keys=torch.zeros_like(mask)
        )
        torch.testing.assert_close(none, plain, rtol=1e-5, atol=1e-6)


def test_weighted_keys_shape_is_checked():
    q, k, v, mask = _inputs()
    with pytest.raises(ValueError, match="weighted_keys"):
        reweighted_attention(
            _split(q),
            _split(k),
            _split(v),
            torch.zeros(2, k.shape[1], dtype=torch.bool),
            weighted_keys=torch.ones(2, 3, dtype=torch.bool),
        )


def test_key_value_token_count_is_checked():
    q, k, v, mask = _inputs()
    with pytest.raises(BatchError, match="target \\+ source"):
        reference_attention(q, k[:, :-1], v[:, :-1], mask, HEADS)


def test_blend_ends():
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.equal(blend(a, b, 0.0), a)
    assert torch.equal(blend(a, b, 1.0), b)
    torch.testing.assert_close(blend(a, b, 0.25), a + 0.25 * (b - a))


def test_selection_follows_the_pose():
    parsing = person_parsing(height=128, width=88)
    standing = parse_deepfashion_row(STANDING_Y, STANDING_X)
    legs = parse_deepfashion_row(LEGS_ONLY_Y, STANDING_X)
    selection = source_selection(parsing, [standing, legs], LIP)
    assert selection.shape == (2, 128, 88)
    face = LIP.labels.index("Face")
    assert bool(selection[0][parsing[0] == face].all())
    assert not bool(selection[1][parsing[0] == face].any())
    tokens = source_key_mask(selection, (16, 11))
    assert tokens.shape == (2, 16 * 11) and tokens[0].sum() > tokens[1].sum()


def test_pair_rows():
    assert pair_rows(4, 2, 1, torch.device("cpu")).tolist() == [0, 0, 0, 0]
    assert pair_rows(4, 2, 2, torch.device("cpu")).tolist() == [0, 1, 0, 1]
    with pytest.raises(BatchError, match="latent batch 2"):
        pair_rows(4, 2, 3, torch.device("cpu"))


def test_config_is_checked():
    with pytest.raises(ConfigError, match="source_mode"):
        ReferenceConfig(source_mode="later")
    with pytest.raises(ConfigError, match="start/end"):
        ReferenceConfig(start_percent=0.8, end_percent=0.2)
