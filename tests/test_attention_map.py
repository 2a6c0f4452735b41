"""The attention map over the source (what TruePose_AttentionMap shows), and its colours."""

from __future__ import annotations

import pytest
import torch
from tiny_models import person_parsing, randomize_zero_layers, standing_pose, tiny_pipeline
from torch.nn import functional as F

from truepose_core.attention_map import attention_map, attention_overlay
from truepose_core.errors import BatchError
from truepose_core.fit import fit_pose
from truepose_core.parsing import get_label_set, selection_mask, token_mask
from truepose_core.preview import heat_colours
from truepose_core.unet_layers import level_sizes

H, W = 128, 88


@pytest.fixture(scope="module")
def encoded():
    pipe = tiny_pipeline()
    randomize_zero_layers(pipe.model)
    images = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(0))
    return pipe.model, pipe.encode_source(images, person_parsing(1, H, W))


def _layer_density(model, encoding, layer, pose, sigma, delta):
    """One layer's received attention as a density over the image, computed by hand."""
    size = level_sizes(encoding.latent_hw, 1 + max(la.level for la in model.layers))[layer.level]
    label_set = get_label_set(model.config.label_set)
    mask = selection_mask(encoding.parsing, [fit_pose(pose, W, H)], label_set)
    src = model.fusion[layer.name].hpfa.encode_source(
        encoding.features[layer.name],
        token_mask(mask, size),
        return_key_attention=True,
        key_attention_unweighted=False,
        sigma=sigma,
        delta=delta,
    )
    received = src.key_attention.float()
    received = received / received.mean()
    return F.interpolate(received.view(1, 1, *size), size=(H, W), mode="bilinear")[0, 0]


def test_attention_map_is_the_scaled_mean_of_layer_densities(encoded):
    model, encoding = encoded
    pose = standing_pose()
    heat = attention_map(model, model.config, encoding, [pose, pose], 0.3, 0.6)
    assert heat.shape == (2, H, W) and torch.equal(heat[0], heat[1])
    layers = [la for la in model.layers if model.fusion[la.name].hpfa is not None]
    assert len(layers) > 1
    mean = sum(_layer_density(model, encoding, la, pose, 0.3, 0.6) for la in layers) / len(layers)
    expected = (mean - mean.min()) / (mean.max() - mean.min())
    torch.testing.assert_close(heat[0], expected, atol=1e-5, rtol=0)
    assert float(heat.min()) == 0.0 and float(heat.max()) == 1.0
    # The mask weights reach the map: other sigma/delta, another map.
    other = attention_map(model, model.config, encoding, [pose], 0.9, 0.1)
    assert not torch.allclose(other[0], heat[0], atol=1e-3)


def test_attention_map_without_hpfa_is_refused(encoded):
    model, encoding = encoded
    saved = {la.name: model.fusion[la.name].hpfa for la in model.layers}
    try:
        for la in model.layers:
            model.fusion[la.name].hpfa = None
        with pytest.raises(BatchError, match="ckpt: the checkpoint has no HPFA layers"):
            attention_map(model, model.config, encoding, [standing_pose()], 0.3, 0.6, "ckpt")
    finally:
        for name, hpfa in saved.items():
            model.fusion[name].hpfa = hpfa


def test_heat_colours_black_red_yellow_white():
    values = torch.tensor([[[0.0, 1 / 3, 2 / 3, 1.0, 2.0, -1.0]]])
    expected = torch.tensor(
        [[[[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1], [0, 0, 0]]]],
        dtype=torch.float32,
    )
    torch.testing.assert_close(heat_colours(values), expected, atol=1e-6, rtol=0)
    half = heat_colours(torch.tensor([[[0.5]]]))[0, 0, 0]
    torch.testing.assert_close(half, torch.tensor([1.0, 0.5, 0.0]))


def test_attention_overlay_blends_and_checks_size():
    pose = standing_pose()
    image = torch.full((1, H, W, 3), 0.5)
    heat = torch.zeros(2, H, W)
    heat[1] = 1.0
    overlay = attention_overlay(image, heat, [pose, pose], opacity=0.25)
    assert overlay.shape == (2, H, W, 3)
    # A corner far from the skeleton: the photo blended with black (0) or white (1).
    torch.testing.assert_close(overlay[0, 0, 0], torch.full((3,), 0.375))
    torch.testing.assert_close(overlay[1, 0, 0], torch.full((3,), 0.625))
    assert not torch.equal(overlay[0], torch.full((H, W, 3), 0.375))  # the skeleton is drawn
    with pytest.raises(BatchError, match="source_image 44x64 differs from the encoded source"):
        attention_overlay(torch.zeros(1, 64, 44, 3), heat, [pose, pose], 0.5)
