"""The ComfyUI nodes run the paper's method with their default settings.

- TruePose Sampler's defaults walk the diffusers path's 35 DDIM timesteps, and a whole node
  graph gives ``TruePosePipeline``'s final latent for the same checkpoint, inputs and seed.
- The SourceNet runs at timestep 0 and the negative branch gets zeros, as on diffusers.
- sigma, delta and CAA's K come from the checkpoint unless the node sets them.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL

from tests.tiny_models import (
    LEGS_ONLY_Y,
    STANDING_X,
    person_parsing,
    randomize_zero_layers,
    save_tiny_checkpoint,
    tiny_model,
)
from truepose_core.checkpoint import save_truepose
from truepose_core.clip_regions import build_clip_vision
from truepose_core.config import SamplingConfig, TruePoseConfig
from truepose_core.pipeline import TruePosePipeline
from truepose_core.presets import tiny_vae_config
from truepose_core.sampling import make_scheduler

pytestmark = pytest.mark.comfyui

H, W = 128, 88


def _defaults(comfy, node_id: str) -> dict:
    """The node's default widget values, as the UI fills them in."""
    spec = comfy.node_class(node_id).INPUT_TYPES()
    out = {}
    for group in ("required", "optional"):
        for name, value in spec.get(group, {}).items():
            if len(value) > 1 and isinstance(value[1], dict) and "default" in value[1]:
                out[name] = value[1]["default"]
    return out


def _options(value) -> list:
    """A combo's choices, in either of ComfyUI's INPUT_TYPES forms."""
    return value[0] if isinstance(value[0], list) else value[1]["options"]


def _tooltip(comfy, node_id: str, name: str) -> str:
    spec = comfy.node_class(node_id).INPUT_TYPES()
    merged = {**spec.get("required", {}), **spec.get("optional", {})}
    return merged[name][1].get("tooltip", "")


# ---------------------------------------------------------------------------------------------
# The sampler


def _graph(checkpoint: str, comfy, seed: int, **sampler) -> dict:
    """SynthFashion pair -> SourceNet -> HPFA patch -> TruePose Sampler, all node defaults."""
    patch = {k: v for k, v in _defaults(comfy, "TruePose_HPFAPatchModel").items()}
    settings = _defaults(comfy, "TruePose_TrueSampler")
    settings = {k: v for k, v in settings.items() if k != "batch_size"}
    settings.update(seed=seed, **sampler)
    return {
        "1": {"class_type": "TruePose_LoadTruePose", "inputs": {"checkpoint": checkpoint}},
        "2": {
            "class_type": "TruePose_SynthFashionSample",
            "inputs": {"index": 2, "data_seed": 0, "height": H, "width": W},
        },
        "3": {
            "class_type": "TruePose_SourceNetEncode",
            "inputs": {
                "truepose": ["1", 1],
                "vae": ["1", 2],
                "source_image": ["2", 0],
                "source_parsing": ["2", 1],
            },
        },
        "4": {
            "class_type": "TruePose_HPFAPatchModel",
            "inputs": {
                "model": ["1", 0],
                "truepose": ["1", 1],
                "source": ["3", 0],
                "target_pose": ["2", 2],
                **patch,
            },
        },
        "5": {
            "class_type": "TruePose_TrueSampler",
            "inputs": {"model": ["4", 0], "truepose": ["1", 1], "source": ["3", 0], **settings},
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }


def test_sampler_defaults_are_the_papers_ddim_and_stock_choices_stay(comfy):
    defaults = _defaults(comfy, "TruePose_TrueSampler")
    assert defaults["steps"] == 35 and defaults["cfg"] == 3.5
    assert defaults["sampler_name"] == "ddim"
    spec = comfy.node_class("TruePose_TrueSampler").INPUT_TYPES()["required"]
    import comfy.samplers as stock

    assert set(stock.KSampler.SCHEDULERS) <= set(_options(spec["scheduler"]))
    assert set(stock.KSampler.SAMPLERS) <= set(_options(spec["sampler_name"]))


def _timesteps_of_a_run(comfy, loaded, source, **sampler):
    """The integer timesteps at which ComfyUI calls the patched UNet, once per step."""
    model, truepose, _vae = loaded
    keypoints = comfy.pack_module("truepose_core.keypoints")
    poses = [keypoints.parse_deepfashion_row(LEGS_ONLY_Y, STANDING_X)]
    patch_defaults = _defaults(comfy, "TruePose_HPFAPatchModel")
    patched = (
        comfy.node_class("TruePose_HPFAPatchModel")
        .execute(model, truepose, source, poses, **patch_defaults)
        .result[0]
    )
    seen = []

    def wrapper(apply_model, args):
        seen.append(float(args["timestep"].flatten()[0]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    spy = patched.clone()
    spy.set_model_unet_function_wrapper(wrapper)  # called with ComfyUI's sigma
    settings = _defaults(comfy, "TruePose_TrueSampler")
    settings.update(sampler)
    out = comfy.node_class("TruePose_TrueSampler").execute(spy, truepose, source, **settings)
    timesteps = spy.get_model_object("model_sampling").timestep(torch.tensor(seen))
    return [float(t) for t in timesteps], out.result[0]


@pytest.fixture(scope="module")
def source(comfy, loaded):
    _model, truepose, vae = loaded
    keypoints = comfy.pack_module("nodes.types")
    parsing = keypoints.ParsingBatch(labels=person_parsing(1, H, W), label_set="lip")
    image = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(0))
    node = comfy.node_class("TruePose_SourceNetEncode")
    return node.execute(truepose, vae, image, parsing).result[0]


def test_default_schedule_walks_the_diffusers_timesteps(comfy, loaded, source):
    scheduler = make_scheduler()
    scheduler.set_timesteps(35)
    want = [float(t) for t in scheduler.timesteps]
    assert len(want) == 35 and want[0] == 953 and want[-1] == 1
    seen, _ = _timesteps_of_a_run(comfy, loaded, source)
    assert seen == want
    # ComfyUI's own ddim_uniform stays available; it is another schedule (36 steps from 981).
    stock, _ = _timesteps_of_a_run(comfy, loaded, source, scheduler="ddim_uniform")
    assert stock != want


def test_default_schedule_keeps_the_reference_outside_the_noise_mask(comfy, loaded, source):
    """Style transfer (paper 5.4) with the default schedule: outside the mask, the input."""
    reference = torch.randn(1, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(9))
    mask = torch.zeros(1, 1, H // 8, W // 8)
    mask[..., : H // 16, :] = 1.0  # generate the top half only
    _, out = _timesteps_of_a_run(
        comfy, loaded, source, steps=3, latent={"samples": reference, "noise_mask": mask}
    )
    torch.testing.assert_close(out["samples"][..., H // 16 :, :], reference[..., H // 16 :, :])
    assert not torch.allclose(out["samples"][..., : H // 16, :], reference[..., : H // 16, :])


@pytest.fixture(scope="module")
def late_checkpoint(comfy):
    """A tiny checkpoint whose noise schedule ends at beta 0.025, not SD1.5's 0.012."""
    path = comfy.models_dir / "truepose" / "tiny-beta-end-0025.safetensors"
    if not path.exists():
        save_tiny_checkpoint(path, beta_end=0.025)
    return path


def test_loaded_model_samples_on_the_checkpoints_noise_schedule(comfy, late_checkpoint):
    """Every ComfyUI scheduler reads model_sampling: it must hold the checkpoint's betas."""
    model = comfy.node_class("TruePose_LoadTruePose").execute(late_checkpoint.name).result[0]
    alphas = make_scheduler(TruePoseConfig(beta_end=0.025)).alphas_cumprod
    sigmas = model.get_model_object("model_sampling").sigmas.double()
    torch.testing.assert_close(sigmas, ((1 - alphas) / alphas).sqrt().double(), rtol=1e-4, atol=0)
    sd15 = make_scheduler().alphas_cumprod
    assert float(sigmas[-1]) > 2 * float(((1 - sd15[-1]) / sd15[-1]).sqrt())


@pytest.mark.parametrize("which", ["checkpoint", "late_checkpoint"])
def test_node_graph_gives_the_pipelines_final_latent(comfy, which, request):
    """Also for a checkpoint with its own noise schedule (the paper schedule follows it)."""
    checkpoint = request.getfixturevalue(which)
    seed = 11
    run = comfy.run_prompt(_graph(checkpoint.name, comfy, seed))
    assert run.success, run.error
    got = run.node_outputs["5"][0][0]["samples"]
    image, parsing, poses = (run.node_outputs["2"][i][0] for i in range(3))

    pipe = TruePosePipeline.from_checkpoint(checkpoint)
    latents = []
    with torch.no_grad():
        pipe(
            image.permute(0, 3, 1, 2),
            parsing.labels,
            poses,
            SamplingConfig(steps=35, cfg_scale=3.5, seed=seed),
            callback=lambda i, n, x: latents.append(x.clone()),
        )
    assert len(latents) == 35
    want = latents[-1]
    got = got * pipe.config.latent_scale  # ComfyUI's LATENT is unscaled
    assert float(want.abs().max()) > 0.1
    torch.testing.assert_close(got, want, atol=1e-3, rtol=0)


# ---------------------------------------------------------------------------------------------
# SourceNet and the negative branch


def test_sourcenet_encode_runs_at_timestep_zero(comfy, checkpoint, loaded, source):
    """SourceNet Encode gives the features of the diffusers SourceNet at t = 0."""
    pipe = TruePosePipeline.from_checkpoint(checkpoint)
    image = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        encoding = pipe.encode_source(image.permute(0, 3, 1, 2), person_parsing(1, H, W))
    seen = []

    def hook(_module, args, kwargs):
        seen.append(kwargs.get("timestep", args[1] if len(args) > 1 else None))

    handle = pipe.model.source_unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            pipe.encode_source(image.permute(0, 3, 1, 2), person_parsing(1, H, W))
    finally:
        handle.remove()
    assert all(bool((torch.as_tensor(t) == 0).all()) for t in seen)
    for name, feats in encoding.features.items():
        torch.testing.assert_close(source.features[name], feats, atol=1e-5, rtol=1e-4)


def test_negative_conditioning_is_zeros(comfy, loaded, source):
    _model, truepose, _vae = loaded
    positive, negative = (
        comfy.node_class("TruePose_SourceConditioning").execute(truepose, source, 1).result
    )
    assert float(positive[0][0].abs().max()) > 0
    assert not negative[0][0].any()


# ---------------------------------------------------------------------------------------------
# The checkpoint's sigma, delta and K


@pytest.fixture(scope="module")
def other_checkpoint(comfy):
    """A tiny checkpoint trained with sigma 0.2, delta 0.5 and K = 1."""
    path = comfy.models_dir / "truepose" / "tiny-sigma02.safetensors"
    if not path.exists():
        model = tiny_model(0, sigma=0.2, delta=0.5, caa_regions=1)
        randomize_zero_layers(model)
        torch.manual_seed(0)
        vae = AutoencoderKL.from_config(tiny_vae_config()).eval()
        save_truepose(path, model, vae=vae, clip=build_clip_vision(model.config))
    return path


def test_mask_weight_and_k_defaults_read_from_the_checkpoint(comfy):
    for node_id in ("TruePose_HPFAPatchModel", "TruePose_AttentionMap"):
        for name in ("sigma", "delta"):
            assert "checkpoint" in _tooltip(comfy, node_id, name), (node_id, name)
    assert "checkpoint" in _tooltip(comfy, "TruePose_CAAPatch", "regions")


def test_checkpoint_sigma_is_used_unless_the_node_sets_it(comfy, other_checkpoint):
    model, truepose, vae = (
        comfy.node_class("TruePose_LoadTruePose").execute(other_checkpoint.name).result
    )
    assert (truepose.config.sigma, truepose.config.delta) == (0.2, 0.5)
    parsing = comfy.pack_module("nodes.types").ParsingBatch(
        labels=person_parsing(1, H, W), label_set="lip"
    )
    image = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(0))
    source = (
        comfy.node_class("TruePose_SourceNetEncode").execute(truepose, vae, image, parsing)
    ).result[0]
    keypoints = comfy.pack_module("truepose_core.keypoints")
    poses = [keypoints.parse_deepfashion_row(LEGS_ONLY_Y, STANDING_X)]
    patch_node = comfy.node_class("TruePose_HPFAPatchModel")
    caa_node = comfy.node_class("TruePose_CAAPatch")
    defaults = _defaults(comfy, "TruePose_HPFAPatchModel")
    sampler = _defaults(comfy, "TruePose_TrueSampler")
    sampler.update(steps=2, seed=1)

    def latent(base, **weights):
        settings = {**defaults, **weights}
        patched = patch_node.execute(base, truepose, source, poses, **settings).result[0]
        node = comfy.node_class("TruePose_TrueSampler")
        return node.execute(patched, truepose, source, **sampler).result[0]["samples"]

    by_default = latent(model)
    assert torch.equal(by_default, latent(model, sigma=0.2, delta=0.5))
    assert not torch.allclose(by_default, latent(model, sigma=0.3, delta=0.6), atol=1e-5)
    # CAA Settings with its default K keeps the checkpoint's K = 1.
    caa_defaults = _defaults(comfy, "TruePose_CAAPatch")
    with_caa_node = caa_node.execute(model, **caa_defaults).result[0]
    assert torch.equal(latent(with_caa_node), by_default)
    two = caa_node.execute(model, **{**caa_defaults, "regions": 2}).result[0]
    assert not torch.allclose(latent(two), by_default, atol=1e-5)
