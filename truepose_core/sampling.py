"""The reference sampler: DDIM with classifier-free guidance, paper eq. 11.

``eps = eps(z, t, {}) + w * (eps(z, t, C) - eps(z, t, {}))``; the unconditional branch runs
without source fusion, CLIP alignment or source context, while the pose stays on. At
``w == 1`` the unconditional branch is skipped entirely. An optional mask gives the paper's
style-transfer application (section 5.4): outside the mask every step's latent is replaced
by the reference latent noised to that step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler

from .config import SamplingConfig, TruePoseConfig
from .errors import BatchError
from .fusion import FusionState

#: Stable Diffusion 1.5's noise schedule; diffusers' DDIM with "leading" spacing and offset 1.
SD15_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "prediction_type": "epsilon",
}


def scheduler_config(config: TruePoseConfig | None = None) -> dict:
    """SD1.5's scheduler settings with the model's own ``beta_end`` (SD1.5's without a model)."""
    if config is None:
        return dict(SD15_SCHEDULER)
    return {**SD15_SCHEDULER, "beta_end": config.beta_end}


def make_scheduler(config: TruePoseConfig | None = None) -> DDIMScheduler:
    return DDIMScheduler(**scheduler_config(config))


def training_scheduler(config: TruePoseConfig | None = None):
    """The DDPM noise schedule training adds noise with: the same betas as the sampler's."""
    from diffusers import DDPMScheduler

    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
    settings = scheduler_config(config)
    return DDPMScheduler(**{k: settings[k] for k in keys})


def ddim_alphas(steps: int, config: TruePoseConfig | None = None) -> torch.Tensor:
    """alphas_cumprod at each DDIM step of :func:`sample`, then at the point the last step lands.

    SD1.5's 35 steps visit timesteps 953, 925, ..., 1; the last step lands on
    ``final_alpha_cumprod``, which is timestep 0's (``set_alpha_to_one`` is False), not a
    clean latent. Other hosts build the same schedule from these ``steps + 1`` values.
    """
    scheduler = make_scheduler(config)
    scheduler.set_timesteps(steps)
    alphas = scheduler.alphas_cumprod[scheduler.timesteps.long()]
    return torch.cat([alphas, scheduler.final_alpha_cumprod.reshape(1)]).double()


@dataclass
class StyleTransfer:
    """Keep ``reference`` latents (scaled) outside ``mask`` (B, 1, h, w), 1 = generate."""

    reference: torch.Tensor
    mask: torch.Tensor


def guided_noise(
    model,
    latents: torch.Tensor,
    t: torch.Tensor,
    state: FusionState,
    cfg_scale: float,
) -> torch.Tensor:
    """Eq. 11 for a batch whose row i is pair i of ``state``."""
    b = latents.shape[0]
    rows = torch.arange(b, device=latents.device)
    timesteps = t.expand(b) if t.dim() == 0 else t
    if cfg_scale == 1.0:
        ones = torch.ones(b, dtype=torch.bool, device=latents.device)
        return model.predict_noise(latents, timesteps, state, rows, ones)
    conditional = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)])
    eps = model.predict_noise(
        torch.cat([latents, latents]),
        torch.cat([timesteps, timesteps]),
        state,
        torch.cat([rows, rows]),
        conditional.to(latents.device),
    )
    uncond, cond = eps.chunk(2)
    return uncond + cfg_scale * (cond - uncond)


def pair_noise(seeds: Sequence[int], channels: int, latent_hw: tuple[int, int]) -> torch.Tensor:
    """Initial latent noise, row i drawn from ``seeds[i]`` alone, as a one-row sample would.

    With it, B pairs denoised in one batch start from the same noise as B single-pair runs
    with ``SamplingConfig(seed=seeds[i])``, so a result depends on its pair, not on the batch.
    """
    rows = [
        torch.randn(
            (1, channels, *latent_hw),
            generator=torch.Generator("cpu").manual_seed(seed),
            dtype=torch.float32,
        )
        for seed in seeds
    ]
    return torch.cat(rows)


@torch.no_grad()
def sample(
    model,
    state: FusionState,
    latent_hw: tuple[int, int],
    settings: SamplingConfig = SamplingConfig(),
    *,
    style: StyleTransfer | None = None,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Denoise ``state.batch`` latents of size ``latent_hw``; returns scaled latents.

    ``noise`` (B, C, h, w), e.g. from :func:`pair_noise`, replaces the initial draw from
    ``settings.seed``; DDIM with ``eta == 0`` draws nothing else.
    """
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    scheduler = make_scheduler(model.config)
    scheduler.set_timesteps(settings.steps, device=device)
    if generator is None:
        generator = torch.Generator("cpu").manual_seed(settings.seed)
    b = state.batch
    channels = model.target_unet.config.in_channels
    if noise is None:
        noise = torch.randn((b, channels, *latent_hw), generator=generator, dtype=torch.float32)
    elif tuple(noise.shape) != (b, channels, *latent_hw):
        raise BatchError(
            f"noise has shape {tuple(noise.shape)}, expected {(b, channels, *latent_hw)}"
        )
    latents = (noise * scheduler.init_noise_sigma).to(device=device, dtype=dtype)
    ref_noise = None
    if style is not None:
        ref_noise = torch.randn(latents.shape, generator=generator).to(device=device, dtype=dtype)
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        if style is not None:
            noised = scheduler.add_noise(style.reference.to(dtype), ref_noise, t.reshape(1))
            latents = style.mask * latents + (1 - style.mask) * noised
        eps = guided_noise(model, latents, t.to(device), state, settings.cfg_scale)
        latents = scheduler.step(eps, t, latents, eta=settings.eta, generator=generator).prev_sample
        if callback is not None:
            callback(i, len(timesteps), latents)
    if style is not None:
        latents = style.mask * latents + (1 - style.mask) * style.reference.to(dtype)
    return latents
