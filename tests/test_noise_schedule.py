"""A model's noise schedule (``beta_end``) reaches training, the sampler and its checkpoint."""

import pytest
import torch
from diffusers import DDIMScheduler

from tests.tiny_models import (
    legs_only_pose,
    person_parsing,
    randomize_zero_layers,
    save_tiny_checkpoint,
    standing_pose,
)
from truepose_core.checkpoint import load_truepose
from truepose_core.config import SamplingConfig, TruePoseConfig
from truepose_core.errors import ConfigError
from truepose_core.sampling import (
    SD15_SCHEDULER,
    ddim_alphas,
    guided_noise,
    make_scheduler,
    sample,
    training_scheduler,
)

LATE = 0.025  # beta_end of the 8-channel SynthFashion run


def test_default_schedule_is_sd15s():
    assert TruePoseConfig().beta_end == SD15_SCHEDULER["beta_end"] == 0.012
    sd = DDIMScheduler(**SD15_SCHEDULER)
    for scheduler in (make_scheduler(), make_scheduler(TruePoseConfig()), training_scheduler()):
        torch.testing.assert_close(scheduler.alphas_cumprod, sd.alphas_cumprod)


def test_beta_end_sets_training_and_sampling_alike():
    config = TruePoseConfig(beta_end=LATE)
    by_hand = DDIMScheduler(**{**SD15_SCHEDULER, "beta_end": LATE}).alphas_cumprod
    torch.testing.assert_close(training_scheduler(config).alphas_cumprod, by_hand)
    torch.testing.assert_close(make_scheduler(config).alphas_cumprod, by_hand)
    # The first of the 35 DDIM steps keeps almost nothing of the image (SD1.5: 8e-3).
    assert float(ddim_alphas(35, config)[0]) < 2e-4 < 7e-3 < float(ddim_alphas(35)[0])


def test_beta_end_out_of_range_is_refused():
    for bad in (0.0, 0.0008, 0.6):
        with pytest.raises(ConfigError, match="beta_end"):
            TruePoseConfig(beta_end=bad)


def test_checkpoint_keeps_its_schedule_and_old_files_read_sd15s(tmp_path):
    save_tiny_checkpoint(tmp_path / "late.safetensors", beta_end=LATE)
    assert load_truepose(tmp_path / "late.safetensors").config.beta_end == LATE
    old = TruePoseConfig().to_dict()
    del old["beta_end"]  # written before the field existed
    assert TruePoseConfig.from_dict(old).beta_end == 0.012


def test_sampler_denoises_with_the_models_schedule():
    """``sample`` equals a DDIM loop over diffusers' scheduler built with the model's betas."""
    from tests.tiny_models import tiny_pipeline

    pipe = tiny_pipeline(beta_end=LATE)
    randomize_zero_layers(pipe.model)
    images = torch.rand(1, 3, 128, 88, generator=torch.Generator().manual_seed(0))
    encoding = pipe.encode_source(images, person_parsing(1))
    state = pipe.prepare(encoding, [standing_pose(), legs_only_pose()], (128, 88))
    settings = SamplingConfig(steps=4, cfg_scale=2.0, seed=3)
    noise = torch.randn(2, 4, 16, 11, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = sample(pipe.model, state, (16, 11), settings, noise=noise)
        scheduler = DDIMScheduler(**{**SD15_SCHEDULER, "beta_end": LATE})
        scheduler.set_timesteps(4)
        want = noise.clone()
        for t in scheduler.timesteps:
            eps = guided_noise(pipe.model, want, t, state, 2.0)
            want = scheduler.step(eps, t, want).prev_sample
        sd15 = DDIMScheduler(**SD15_SCHEDULER)
        sd15.set_timesteps(4)
        other = noise.clone()
        for t in sd15.timesteps:
            other = sd15.step(guided_noise(pipe.model, other, t, state, 2.0), t, other).prev_sample
    torch.testing.assert_close(got, want)
    assert float((got - other).abs().max()) > 1e-2
