"""TruePose Reference (no training) against the real ComfyUI, with stock SD1.5 nodes.

A small SD1.5-layout checkpoint and ControlNet (``tests/sd15_tiny.py``) go through ComfyUI's
own loaders; the stock KSampler, CLIP Text Encode and Apply ControlNet run with the patch.
"""

from __future__ import annotations

import pytest
import torch
from sd15_tiny import CHECKPOINT, CONTROLNET

pytestmark = pytest.mark.comfyui

STANDING_Y = "[40, 70, 70, 110, 150, 70, 110, 150, 160, 210, 250, 160, 210, 250, 36, 36, 40, 40]"
STANDING_X = "[88, 88, 60, 55, 50, 116, 121, 126, 70, 70, 70, 106, 106, 106, 80, 96, 74, 102]"
H, W = 64, 48  # generated image, pixels
SOURCE_H, SOURCE_W = 80, 64


@pytest.fixture(scope="module")
def sd15(comfy, tmp_path_factory):
    """(MODEL, CLIP, VAE, CONTROL_NET) from ComfyUI's stock loaders."""
    import sd15_tiny

    sd15_tiny.install(tmp_path_factory, comfy.models_dir)
    model, clip, vae = comfy.node_class("CheckpointLoaderSimple")().load_checkpoint(CHECKPOINT)
    (control,) = comfy.node_class("ControlNetLoader")().load_controlnet(CONTROLNET)
    return model, clip, vae, control


def _source(comfy):
    g = torch.Generator().manual_seed(5)
    image = torch.rand(1, SOURCE_H, SOURCE_W, 3, generator=g)
    parsing = torch.zeros(1, SOURCE_H, SOURCE_W, dtype=torch.long)
    parsing[:, 4:14, 24:40] = 13  # face
    parsing[:, 14:48, 16:48] = 5  # upper clothes
    parsing[:, 48:76, 20:44] = 9  # pants
    batch = comfy.pack_module("nodes.types").ParsingBatch(parsing, "lip")
    return image, batch


def _pose(comfy, legs_only=False):
    y = STANDING_Y
    if legs_only:
        y = "[-1, -1, -1, -1, -1, -1, -1, -1, 160, 210, 250, 160, 210, 250, -1, -1, -1, -1]"
    node = comfy.node_class("TruePose_PoseFromDeepFashion")
    return node.execute(y, STANDING_X, W, H).result[0]


def _patched(comfy, sd15, **changes):
    model, _clip, vae, _control = sd15
    image, parsing = _source(comfy)
    settings = {
        "source_mode": "cached",
        "sigma": 0.3,
        "delta": 0.6,
        "strength": 1.0,
        "start_percent": 0.0,
        "end_percent": 1.0,
        "reweight": True,
    }
    settings.update(changes)
    node = comfy.node_class("TruePose_ReferencePatch")
    return node.execute(model, vae, image, parsing, _pose(comfy), **settings).result[0]


def _conditioning(comfy, sd15, control=False):
    _model, clip, vae, control_net = sd15
    encode = comfy.node_class("CLIPTextEncode")()
    (positive,) = encode.encode(clip, "a person in a striped shirt")
    (negative,) = encode.encode(clip, "blurry")
    if control:
        pose_image = comfy.node_class("TruePose_PoseToControlNetImage")
        (image,) = pose_image.execute(_pose(comfy), W, H).result
        apply = comfy.node_class("ControlNetApplyAdvanced")()
        positive, negative = apply.apply_controlnet(
            positive, negative, control_net, image, 1.0, 0.0, 1.0, vae=vae
        )
    return positive, negative


@pytest.fixture(scope="module")
def prompts(comfy, sd15):
    """Stock CLIP Text Encode conditioning: ``plain``, and ``control`` through Apply ControlNet
    with the target pose's skeleton."""
    return {"plain": _conditioning(comfy, sd15), "control": _conditioning(comfy, sd15, True)}


def _sample(comfy, model, conditioning, steps=2, seed=7):
    import nodes

    positive, negative = conditioning
    latent = {"samples": torch.zeros(1, 4, H // 8, W // 8)}
    (out,) = nodes.common_ksampler(
        model, seed, steps, 5.0, "euler", "normal", positive, negative, latent
    )
    return out["samples"]


@pytest.fixture(scope="module")
def plain(comfy, sd15, prompts):
    """The unpatched MODEL's KSampler latents for each prompt."""
    return {name: _sample(comfy, sd15[0], cond) for name, cond in prompts.items()}


def test_comfyui_detects_the_files_as_sd15_and_controlnet(comfy, sd15):
    import comfy.controlnet
    import comfy.supported_models

    model, clip, vae, control = sd15
    assert isinstance(model.model.model_config, comfy.supported_models.SD15)
    assert clip is not None and vae is not None
    assert isinstance(control, comfy.controlnet.ControlNet)


def test_patch_reaches_every_self_attention_layer(comfy, sd15):
    import sd15_tiny

    patched = _patched(comfy, sd15)
    replace = patched.model_options["transformer_options"]["patches_replace"]["attn1"]
    assert sorted(replace) == sorted(sd15_tiny.SELF_ATTENTION)
    assert sd15[0].model_options.get("transformer_options", {}).get("patches_replace") is None


def test_strength_zero_is_the_input_model_exactly(comfy, sd15, prompts, plain):
    off = _sample(comfy, _patched(comfy, sd15, strength=0.0), prompts["plain"])
    assert torch.equal(plain["plain"], off)


def test_outside_its_schedule_the_patch_changes_nothing(comfy, sd15, prompts, plain):
    # Hooks installed, never active: the replace must compute the layer exactly as before.
    idle = _patched(comfy, sd15, start_percent=1.0, end_percent=1.0)
    assert torch.equal(plain["control"], _sample(comfy, idle, prompts["control"]))


@pytest.fixture(scope="module")
def by_mode(comfy, sd15, prompts):
    """KSampler latents of the patched MODEL in both source modes, with the ControlNet."""
    return {
        mode: _sample(comfy, _patched(comfy, sd15, source_mode=mode), prompts["control"])
        for mode in ("cached", "noised")
    }


@pytest.mark.parametrize("mode", ["cached", "noised"])
def test_reference_changes_the_image_with_ksampler_prompt_and_controlnet(
    comfy, sd15, prompts, plain, by_mode, mode
):
    out = by_mode[mode]
    assert torch.isfinite(out).all()
    assert (out - plain["control"]).abs().max() > 1e-3
    patched = _patched(comfy, sd15, source_mode=mode)
    # The ControlNet still acts on the patched model.
    assert (out - _sample(comfy, patched, prompts["plain"])).abs().max() > 1e-3


def test_same_inputs_give_the_same_image(comfy, sd15, prompts, by_mode):
    patched = _patched(comfy, sd15, source_mode="noised")
    assert torch.equal(by_mode["noised"], _sample(comfy, patched, prompts["control"]))


def test_modes_and_reweighting_differ(comfy, sd15, prompts, by_mode):
    assert (by_mode["cached"] - by_mode["noised"]).abs().max() > 1e-4
    plain_reference = _sample(comfy, _patched(comfy, sd15, reweight=False), prompts["control"])
    assert (by_mode["cached"] - plain_reference).abs().max() > 1e-4


def _hand_written_reference(comfy, model, vae):
    """Plain reference attention written by hand: F' appended to each layer's keys/values.

    F' is recorded from the same UNet on the clean source latent at timestep 0 with the
    positive prompt, through ComfyUI's public hooks only; ComfyUI's own attention then runs
    over [F, F'].
    """
    import comfy.model_management as mm

    image, _parsing = _source(comfy)
    latent = model.get_model_object("process_latent_in")(vae.encode(image)).float()
    recorded: dict = {}

    def record(n, context_attn1, value_attn1, extra_options):
        block = extra_options["block"]
        recorded[(block[0], block[1], extra_options.get("block_index", 0))] = n.detach()
        return n, context_attn1, value_attn1

    def append(n, context_attn1, value_attn1, extra_options):
        block = extra_options["block"]
        source = recorded[(block[0], block[1], extra_options.get("block_index", 0))]
        source = source.to(n.dtype).expand(n.shape[0], -1, -1)
        return n, torch.cat([context_attn1, source], 1), torch.cat([value_attn1, source], 1)

    def wrapper(executor, x, t, c_concat, c_crossattn, control, options, **kwargs):
        recorder = model.clone()
        recorder.set_model_attn1_patch(record)
        record_options = dict(recorder.model_options["transformer_options"])
        chunks = list(options["cond_or_uncond"])
        row = chunks.index(0) * (x.shape[0] // len(chunks))
        executor.class_obj.diffusion_model(
            latent.to(x.device, x.dtype),
            torch.zeros(1),
            context=c_crossattn[row : row + 1],
            control=None,
            transformer_options=record_options,
        )
        return executor(x, t, c_concat, c_crossattn, control, options, **kwargs)

    import comfy.patcher_extension

    hand = model.clone()
    hand.set_model_attn1_patch(append)
    hand.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "hand", wrapper)
    mm.load_models_gpu([hand])
    return hand


def test_reweighting_off_equals_hand_written_reference_attention(comfy, sd15, prompts, plain):
    model, _clip, vae, _control = sd15
    ours = _sample(comfy, _patched(comfy, sd15, reweight=False), prompts["plain"])
    hand = _sample(comfy, _hand_written_reference(comfy, model, vae), prompts["plain"])
    torch.testing.assert_close(ours, hand, rtol=1e-4, atol=1e-4)
    assert (hand - plain["plain"]).abs().max() > 1e-3  # the comparison can fail


def test_one_source_only_and_errors_read_well(comfy, sd15):
    model, _clip, vae, _control = sd15
    image, parsing = _source(comfy)
    node = comfy.node_class("TruePose_ReferencePatch")
    settings = dict(
        source_mode="cached",
        sigma=0.3,
        delta=0.6,
        strength=1.0,
        start_percent=0.0,
        end_percent=1.0,
        reweight=True,
    )
    two = torch.cat([image, image])
    with pytest.raises(Exception, match="one parsing map per source image"):
        node.execute(model, vae, two, parsing, _pose(comfy), **settings)
    with pytest.raises(Exception, match="start/end percent"):
        node.execute(
            model,
            vae,
            image,
            parsing,
            _pose(comfy),
            **{**settings, "start_percent": 0.9, "end_percent": 0.1},
        )


def test_pose_image_node_draws_at_the_chosen_size(comfy):
    keypoints = comfy.pack_module("truepose_core.keypoints")
    pose = _pose(comfy)
    node = comfy.node_class("TruePose_PoseToControlNetImage")
    (image,) = node.execute(pose, 352, 512).result
    assert image.shape == (1, 512, 352, 3) and image.dtype == torch.float32
    expected = keypoints.render_skeleton(pose[0], 352, 512)
    assert torch.equal(image[0], torch.from_numpy(expected).float() / 255)
    (own,) = node.execute(pose, 0, 0).result
    assert own.shape == (1, H, W, 3)
