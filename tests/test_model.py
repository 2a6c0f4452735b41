"""The diffusers path: identity at initialisation, conditional-only fusion, batching, sampler."""

import pytest
import torch

from tests.tiny_models import (
    legs_only_pose,
    person_parsing,
    randomize_zero_layers,
    standing_pose,
    tiny_pipeline,
)
from truepose_core.config import SamplingConfig
from truepose_core.errors import BatchError
from truepose_core.sampling import guided_noise, pair_noise, sample
from truepose_core.unet_layers import unet_attention_layers


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def _state(pipe, poses, images=None):
    images = (
        torch.rand(1, 3, 128, 88, generator=torch.Generator().manual_seed(0))
        if images is None
        else images
    )
    encoding = pipe.encode_source(images, person_parsing(images.shape[0]))
    return encoding, pipe.prepare(encoding, poses, (128, 88))


def _noisy(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, 16, 11, generator=g), torch.full((batch,), 500.0)


def test_layers_of_tiny_unet_match_unet_modules(pipe):
    layers = unet_attention_layers(pipe.model.target_unet.config)
    modules = dict(pipe.model.target_unet.named_modules())
    assert [layer.name for layer in layers] == [
        "input_1_0",
        "middle_0_0",
        "output_2_0",
        "output_3_0",
    ]
    assert all(layer.module_path in modules for layer in layers)


def test_fresh_model_predicts_exactly_its_targetnet(pipe):
    _, state = _state(pipe, [standing_pose(), legs_only_pose()])
    latents, t = _noisy(4)
    rows = torch.tensor([0, 1, 0, 1])
    conditional = torch.tensor([True, True, False, False])
    with torch.no_grad():
        eps = pipe.model.predict_noise(latents, t, state, rows, conditional)
        context = state.context[rows] * conditional[:, None, None]
        plain = pipe.model.plain_noise(latents, t, context)
    assert torch.equal(eps, plain)


def test_trained_fusion_changes_only_conditional_rows():
    pipe = tiny_pipeline()
    randomize_zero_layers(pipe.model)
    _, state = _state(pipe, [standing_pose()])
    latents, t = _noisy(2)
    rows = torch.tensor([0, 0])
    with torch.no_grad():
        mixed = pipe.model.predict_noise(latents, t, state, rows, torch.tensor([True, False]))
        uncond = pipe.model.predict_noise(latents, t, state, rows, torch.tensor([False, False]))
        cond = pipe.model.predict_noise(latents, t, state, rows, torch.tensor([True, True]))
    torch.testing.assert_close(mixed[1], uncond[1], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(mixed[0], cond[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(cond[0], uncond[0], atol=1e-4)


def test_one_source_many_poses_encodes_once_and_matches_separate_runs():
    pipe = tiny_pipeline()
    randomize_zero_layers(pipe.model)
    calls = []
    handle = pipe.model.source_unet.register_forward_hook(lambda *a: calls.append(1))
    poses = [standing_pose(), legs_only_pose(), standing_pose()]
    _, state = _state(pipe, poses)
    handle.remove()
    assert len(calls) == 1 and state.batch == 3
    _, single = _state(pipe, [legs_only_pose()])
    latents, t = _noisy(1)
    with torch.no_grad():
        a = guided_noise(pipe.model, latents, t[0], state.index(torch.tensor([1])), 3.5)
        b = guided_noise(pipe.model, latents, t[0], single, 3.5)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_mismatched_source_and_pose_batches_are_refused():
    pipe = tiny_pipeline()
    images = torch.rand(2, 3, 128, 88)
    encoding = pipe.encode_source(images, person_parsing(2))
    with pytest.raises(BatchError, match="2 source images and 3 target poses"):
        pipe.prepare(encoding, [standing_pose()] * 3, (128, 88))


def test_sampler_is_deterministic_for_a_seed(pipe):
    _, state = _state(pipe, [standing_pose()])
    settings = SamplingConfig(steps=3, seed=7)
    a = sample(pipe.model, state, (16, 11), settings)
    b = sample(pipe.model, state, (16, 11), settings)
    c = sample(pipe.model, state, (16, 11), SamplingConfig(steps=3, seed=8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_cfg_one_runs_no_unconditional_branch(pipe):
    _, state = _state(pipe, [standing_pose()])
    seen = []
    original = pipe.model.predict_noise

    def spy(latents, t, st, rows, conditional):
        seen.append(conditional.clone())
        return original(latents, t, st, rows, conditional)

    pipe.model.predict_noise = spy
    try:
        sample(pipe.model, state, (16, 11), SamplingConfig(steps=2, cfg_scale=1.0))
        assert all(bool(c.all()) for c in seen) and len(seen) == 2
        seen.clear()
        sample(pipe.model, state, (16, 11), SamplingConfig(steps=2, cfg_scale=3.5))
        assert all(int((~c).sum()) == 1 for c in seen)
    finally:
        del pipe.model.predict_noise


def test_batched_sampling_with_pair_noise_equals_one_pair_at_a_time(pipe):
    randomize_zero_layers(pipe.model)
    _, state = _state(pipe, [standing_pose(), legs_only_pose()])
    settings = SamplingConfig(steps=2, cfg_scale=3.5)
    seeds = [11, 7]
    batched = sample(pipe.model, state, (16, 11), settings, noise=pair_noise(seeds, 4, (16, 11)))
    for row, seed in enumerate(seeds):
        one = state.index(torch.tensor([row]))
        alone = sample(pipe.model, one, (16, 11), SamplingConfig(steps=2, cfg_scale=3.5, seed=seed))
        assert torch.allclose(batched[row : row + 1], alone, atol=1e-5)
    assert not torch.allclose(batched[0], batched[1])
    with pytest.raises(BatchError, match="noise has shape"):
        sample(pipe.model, state, (16, 11), settings, noise=pair_noise(seeds[:1], 4, (16, 11)))
