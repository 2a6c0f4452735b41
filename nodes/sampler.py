"""Sample with a TruePose-patched MODEL: eq. 11 guidance through ComfyUI's own samplers."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..truepose_core.config import SamplingConfig, TruePoseConfig
from ..truepose_core.errors import BatchError, ConfigError, ImageError
from ..truepose_core.sampling import ddim_alphas
from . import runtime
from .errors import node_errors
from .types import SourceSocket, TruePoseSocket

CATEGORY = "TruePose/sampling"
#: The paper's schedule (the diffusers path's SD1.5 DDIM); every stock scheduler stays a choice.
PAPER_SCHEDULER = "truepose_ddim"


def _sampler_names() -> list[str]:
    import comfy.samplers

    return list(comfy.samplers.KSampler.SAMPLERS)


def _scheduler_names() -> list[str]:
    import comfy.samplers

    return [PAPER_SCHEDULER, *comfy.samplers.KSampler.SCHEDULERS]


def paper_sigmas(steps: int, denoise: float, config: TruePoseConfig | None = None) -> torch.Tensor:
    """ComfyUI sigmas of the diffusers path's DDIM: sigma = sqrt((1 - a) / a) per step.

    They end at timestep 0's sigma, where DDIM's last step lands, not at 0. With ``denoise``
    below 1 the last ``steps`` steps of a ``steps / denoise`` schedule run, as ComfyUI does.
    ``config`` gives the model's noise schedule (SD1.5's without one).
    """
    if denoise <= 0:
        return torch.zeros(0)
    total = steps if denoise > 0.9999 else int(steps / denoise)
    alphas = ddim_alphas(total, config)[-(steps + 1) :]
    return ((1 - alphas) / alphas).sqrt().float()


def paper_sampler(sampler_name: str, sigmas: torch.Tensor):
    """ComfyUI's sampler, returning the last latent the way DDIM does.

    ComfyUI's latent x = x0 + sigma * eps is DDIM's z / sqrt(a), so the result is divided by
    sqrt(1 + sigma_last^2) = 1 / sqrt(a): exactly the diffusers path's final latent.
    """
    import comfy.samplers

    base = comfy.samplers.sampler_object(sampler_name)
    if not isinstance(base, comfy.samplers.KSAMPLER):
        return base
    scale = float(1 / (1 + sigmas[-1].double() ** 2).sqrt())

    def function(model, x, sigmas, *args, **kwargs):
        return base.sampler_function(model, x, sigmas, *args, **kwargs) * scale

    return comfy.samplers.KSAMPLER(function, base.extra_options, base.inpaint_options)


def empty_latent(model, encoding, patch, batch: int):
    """Zeros on the encoded source's latent grid; one row per pose pair when ``batch`` is 0.

    The output size is always the source's: the pose and the fusion are prepared on the
    source's latent grid, so another size comes from TruePose Fit Inputs before TruePose
    Source Person, never from the sampler.
    """
    h, w = encoding.latent_hw
    if batch == 0:
        batch = patch.pairs if patch is not None else encoding.batch
    channels = model.get_model_object("latent_format").latent_channels
    return {"samples": torch.zeros(batch, channels, h, w)}


def check_latent_size(handle, encoding, latent) -> None:
    """Refuse a start latent of another size than the source's before anything loads."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if samples is None or tuple(samples.shape[-2:]) == tuple(encoding.latent_hw):
        return
    f = handle.config.latent_factor
    got = f"{samples.shape[-1] * f}x{samples.shape[-2] * f}"
    want = f"{encoding.latent_hw[1] * f}x{encoding.latent_hw[0] * f}"
    raise ImageError(
        f"latent: {got} pixels, but the encoded source is {want}; encode a reference of the "
        f"source's size (TruePose Fit Inputs with width x height {want}, then VAE Encode)"
    )


def source_conditioning(handle, encoding, batch: int):
    """(positive, negative) CONDITIONING of eq. 11: the source's context, and zeros."""
    context = runtime.source_context(handle, encoding, batch)
    return [[context, {}]], [[torch.zeros_like(context), {}]]


@torch.no_grad()
def true_sample(
    model,
    handle,
    encoding,
    latent,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    denoise: float,
):
    """Eq. 11 with ComfyUI's samplers: positive = source context, negative = zeros.

    The patch on ``model`` fuses the source into the positive rows only, so the negative
    branch is the TargetNet with the pose and nothing of the source. A latent
    ``noise_mask`` keeps the input latent outside the mask at every step (the paper's
    style-transfer application); the output keeps the input latent's other keys.
    """
    import comfy.model_management as mm
    import comfy.sample
    import comfy.sampler_helpers
    import comfy.samplers
    import comfy.utils
    import latent_preview

    if sampler_name not in comfy.samplers.KSampler.SAMPLERS:
        raise ConfigError(f"sampler_name {sampler_name!r}: not one of ComfyUI's samplers")
    if scheduler != PAPER_SCHEDULER and scheduler not in comfy.samplers.KSampler.SCHEDULERS:
        raise ConfigError(f"scheduler {scheduler!r}: not one of ComfyUI's schedulers")
    latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    batch = latent_image.shape[0]
    patch = runtime.find_patch(model)
    if patch is not None and patch.pairs not in (1, batch):
        raise BatchError(
            f"latent batch {batch} does not fit the {patch.pairs} (source, pose) pairs of the "
            "TruePose patch; use a latent batch of 1 or of the number of target poses"
        )
    positive, negative = source_conditioning(handle, encoding, batch)
    noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    preview = latent_preview.prepare_callback(model, steps)

    def callback(step, x0, x, total_steps):
        mm.throw_exception_if_processing_interrupted()
        preview(step, x0, x, total_steps)

    if scheduler == PAPER_SCHEDULER:
        sigmas = paper_sigmas(steps, denoise, handle.config)
        if len(sigmas) < 2:
            samples = latent_image.clone()
        else:
            if denoise > 0.9999:
                # DDIM starts from unit-variance noise as z_T: x_T = z_T / sqrt(a_T).
                noise = noise * float((1 + sigmas[0].double() ** 2).sqrt() / sigmas[0])
            samples = comfy.sample.sample_custom(
                model,
                noise,
                cfg,
                paper_sampler(sampler_name, sigmas),
                sigmas,
                positive,
                negative,
                latent_image,
                noise_mask=latent.get("noise_mask"),
                callback=callback,
                disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
                seed=seed,
            )
            if latent.get("noise_mask") is not None:
                # As the diffusers path's style transfer: outside the mask, the input latent.
                mask = comfy.sampler_helpers.prepare_mask(
                    latent["noise_mask"], samples.shape, samples.device
                )
                samples = samples * mask + latent_image.to(samples) * (1 - mask)
    else:
        samples = comfy.sample.sample(
            model,
            noise,
            steps,
            cfg,
            sampler_name,
            scheduler,
            positive,
            negative,
            latent_image,
            denoise=denoise,
            noise_mask=latent.get("noise_mask"),
            callback=callback,
            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
            seed=seed,
        )
    out = dict(latent)
    out["samples"] = samples
    return out


class TrueSampler(io.ComfyNode):
    """Generates the target person: DDIM with classifier-free guidance, paper eq. 11."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_TrueSampler",
            display_name="TruePose Sampler",
            category=CATEGORY,
            description=(
                "Denoises with the TruePose-patched MODEL. Positive conditioning is the source "
                "image's projected CLIP embedding, negative is zeros (no text prompt). Defaults "
                "follow the paper: 35 DDIM steps, guidance 3.5. A LATENT with a noise mask "
                "keeps the input latent outside the mask (style transfer)."
            ),
            inputs=[
                io.Model.Input("model", tooltip="MODEL from TruePose Pose Transfer (patch model)."),
                TruePoseSocket.Input("truepose", tooltip="From Load TruePose Checkpoint."),
                SourceSocket.Input("source", tooltip="From TruePose Source Person."),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip=(
                        "Which random start the image grows from (an integer): the same seed "
                        "gives the same image, another seed a variation [noise seed]."
                    ),
                ),
                io.Int.Input(
                    "steps",
                    default=SamplingConfig.steps,
                    min=1,
                    max=1000,
                    tooltip=(
                        "How many times the image is refined (a count): more is slower and "
                        "cleaner, fewer leaves noise [denoising steps; paper 35]."
                    ),
                ),
                io.Float.Input(
                    "cfg",
                    default=SamplingConfig.cfg_scale,
                    min=0.0,
                    max=30.0,
                    step=0.1,
                    round=0.01,
                    tooltip=(
                        "How hard the image is pushed toward the source person (unitless): "
                        "higher copies more closely but can look harsh, 1 = no push (faster) "
                        "[guidance scale w, eq. 11; paper 3.5]."
                    ),
                ),
                io.Combo.Input(
                    "sampler_name",
                    options=_sampler_names(),
                    default="ddim",
                    tooltip="ComfyUI sampler; ddim with truepose_ddim is the paper's DDIM.",
                ),
                io.Combo.Input(
                    "scheduler",
                    options=_scheduler_names(),
                    default=PAPER_SCHEDULER,
                    tooltip=(
                        "truepose_ddim: the paper's schedule, SD1.5 DDIM as in diffusers "
                        "('leading' spacing, offset 1: 35 steps from t=953 to t=1); the "
                        "others are ComfyUI's stock schedulers (ddim_uniform takes 36 steps "
                        "from t=981)."
                    ),
                ),
                io.Float.Input(
                    "denoise",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip=(
                        "How much of the start image is repainted (0..1): 1 = everything, from "
                        "pure noise; lower keeps more of a given latent [denoise]."
                    ),
                ),
                io.Latent.Input(
                    "latent",
                    optional=True,
                    tooltip=(
                        "Optional start latent at the source's size (unscaled, e.g. VAE Encode of "
                        "a reference, with Set Latent Noise Mask for style transfer); else zeros "
                        "of the source's size. The output is always the source's size: for "
                        "another one, use TruePose Fit Inputs before Source Person."
                    ),
                ),
                io.Int.Input(
                    "batch_size",
                    default=0,
                    min=0,
                    max=4096,
                    optional=True,
                    tooltip="Images to generate; 0 = one per target pose of the patch.",
                ),
            ],
            outputs=[io.Latent.Output(display_name="LATENT", tooltip="Unscaled latents.")],
        )

    @classmethod
    def execute(
        cls,
        model,
        truepose,
        source,
        seed,
        steps,
        cfg,
        sampler_name,
        scheduler,
        denoise,
        latent=None,
        batch_size=0,
    ) -> io.NodeOutput:
        with node_errors():
            if latent is None:
                patch = runtime.find_patch(model)
                latent = empty_latent(model, source, patch, batch_size)
            check_latent_size(truepose, source, latent)
            out = true_sample(
                model, truepose, source, latent, seed, steps, cfg, sampler_name, scheduler, denoise
            )
            return io.NodeOutput(out)


class SourceConditioning(io.ComfyNode):
    """Eq. 11's conditioning as CONDITIONING, for ComfyUI's own samplers."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TruePose_SourceConditioning",
            display_name="TruePose Source Conditioning (for KSampler)",
            category=CATEGORY,
            description=(
                "Positive = the source image's projected CLIP embedding, negative = zeros: the "
                "conditioning TruePose Sampler uses, for KSampler, SamplerCustomAdvanced + "
                "CFGGuider and other stock samplers. Use it with the MODEL from TruePose HPFA "
                "Patch Model; with the same settings KSampler gives TruePose Sampler's result."
            ),
            inputs=[
                TruePoseSocket.Input("truepose", tooltip="From Load TruePose Checkpoint."),
                SourceSocket.Input("source", tooltip="From TruePose Source Person."),
                io.Int.Input(
                    "batch_size",
                    default=1,
                    min=1,
                    max=4096,
                    tooltip=(
                        "Rows of conditioning (count): 1 for one source, or the number of "
                        "sources when each has its own pose."
                    ),
                ),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="The source context."),
                io.Conditioning.Output(display_name="negative", tooltip="Zeros (no source)."),
            ],
        )

    @classmethod
    def execute(cls, truepose, source, batch_size=1) -> io.NodeOutput:
        with node_errors():
            positive, negative = source_conditioning(truepose, source, batch_size)
            return io.NodeOutput(positive, negative)


NODES: list[type[io.ComfyNode]] = [TrueSampler, SourceConditioning]
