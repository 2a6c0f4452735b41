"""The model nodes inside a real ComfyUI: loading, source encoding, the patch, the sampler.

The central test: for the same tiny checkpoint, inputs and timestep, the ComfyUI path
(LoadTruePose -> SourceNetEncode -> HPFAPatchModel -> ComfyUI's UNet with the patch) and the
diffusers path (``TruePoseModel.predict_noise``) give the same noise prediction, on
conditional and unconditional rows.
"""

from __future__ import annotations

import pytest
import torch

from tests.tiny_models import (
    LEGS_ONLY_Y,
    STANDING_X,
    STANDING_Y,
    TINY_CHECKPOINT,
    person_parsing,
)
from truepose_core.checkpoint import load_truepose
from truepose_core.clip_regions import ClipRegionEncoder
from truepose_core.keypoints import parse_deepfashion_row
from truepose_core.pipeline import TruePosePipeline

pytestmark = pytest.mark.comfyui

CHECKPOINT = TINY_CHECKPOINT
H, W = 128, 88
LEGS_Y = LEGS_ONLY_Y


def _image(seed=0, batch=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, H, W, 3, generator=g)


def _parsing(comfy, batch=1):
    types = comfy.pack_module("nodes.types")
    return types.ParsingBatch(labels=person_parsing(batch, H, W), label_set="lip")


def _poses(comfy, *rows):
    keypoints = comfy.pack_module("truepose_core.keypoints")
    return [keypoints.parse_deepfashion_row(y, STANDING_X) for y in rows]


@pytest.fixture(scope="module")
def source(comfy, loaded):
    _model, truepose, vae = loaded
    node = comfy.node_class("TruePose_SourceNetEncode")
    return node.execute(truepose, vae, _image(), _parsing(comfy)).result[0]


def _patched(comfy, loaded, source, poses, strength=1.0):
    model, truepose, _vae = loaded
    node = comfy.node_class("TruePose_HPFAPatchModel")
    return node.execute(model, truepose, source, poses, 0.3, 0.6, strength).result[0]


def _comfy_noise(patched, latents, t, context, cond_or_uncond):
    """The patched ComfyUI UNet called as the sampler calls it, minus sigma conversion."""
    import comfy.model_management as mm

    mm.load_models_gpu([patched])
    options = dict(patched.model_options["transformer_options"])
    options["cond_or_uncond"] = list(cond_or_uncond)
    with torch.no_grad():
        return patched.model.diffusion_model(
            latents, t, context=context, transformer_options=options
        )


def _reference(checkpoint, rows):
    """The diffusers path on the same file: pipeline pieces from the core."""
    poses = [parse_deepfashion_row(y, STANDING_X) for y in rows]
    loaded = load_truepose(checkpoint)
    clip = ClipRegionEncoder(loaded.clip, loaded.config.clip_image_size)
    pipe = TruePosePipeline(loaded.model, loaded.vae, clip)
    images = _image().permute(0, 3, 1, 2)
    encoding = pipe.encode_source(images, person_parsing(1, H, W))
    state = pipe.prepare(encoding, poses, (H, W))
    return pipe, encoding, state


# ---------------------------------------------------------------------------------------------
# Equivalence


def test_comfy_path_matches_diffusers_path(comfy, checkpoint, loaded, source):
    patched = _patched(comfy, loaded, source, _poses(comfy, STANDING_Y, LEGS_Y))
    pipe, encoding, state = _reference(checkpoint, [STANDING_Y, LEGS_Y])

    # The source side agrees first (same VAE, CLIP and SourceNet weights).
    for name, feats in encoding.features.items():
        torch.testing.assert_close(source.features[name], feats, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(source.image_embeds, encoding.image_embeds, atol=1e-5, rtol=1e-4)

    g = torch.Generator().manual_seed(3)
    latents = torch.randn(2, 4, H // 8, W // 8, generator=g)
    t = torch.full((4,), 500.0)
    for order in ([1, 0], [0, 1]):
        x = torch.cat([latents, latents])
        conditional = torch.tensor([c == 0 for c in order]).repeat_interleave(2)
        rows = torch.tensor([0, 1, 0, 1])
        context = state.context[rows] * conditional[:, None, None]
        got = _comfy_noise(patched, x, t, context, order)
        with torch.no_grad():
            want = pipe.model.predict_noise(x, t, state, rows, conditional)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    # Fusion matters on conditional rows, so the comparison above is not vacuous.
    with torch.no_grad():
        plain = pipe.model.predict_noise(x, t, state, rows, torch.zeros(4, dtype=torch.bool))
    assert not torch.allclose(want[conditional], plain[conditional], atol=1e-3)


def test_unconditional_rows_are_untouched_by_fusion(comfy, loaded, source):
    poses = _poses(comfy, STANDING_Y)
    full = _patched(comfy, loaded, source, poses, strength=1.0)
    none = _patched(comfy, loaded, source, poses, strength=0.0)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 4, H // 8, W // 8, generator=g).repeat(2, 1, 1, 1)
    t = torch.full((2,), 300.0)
    context = torch.zeros(2, 2, 64)
    a = _comfy_noise(full, x, t, context, [1, 0])
    b = _comfy_noise(none, x, t, context, [1, 0])
    torch.testing.assert_close(a[0], b[0], atol=0, rtol=0)  # uncond row: same with or without
    assert not torch.allclose(a[1], b[1], atol=1e-4)  # cond row: fusion changes it


def test_patching_leaves_the_input_model_unpatched(comfy, loaded, source):
    model = loaded[0]
    before = {k: list(v) for k, v in model.model_options.get("transformer_options", {}).items()}
    patched = _patched(comfy, loaded, source, _poses(comfy, STANDING_Y))
    assert "patches" in patched.model_options["transformer_options"]
    after = model.model_options.get("transformer_options", {})
    assert "patches" not in after and "truepose" not in after
    assert {k: list(v) for k, v in after.items()} == before
    assert patched.model is model.model  # a clone shares the weights


# ---------------------------------------------------------------------------------------------
# Errors


def _node_error(comfy):
    return comfy.pack_module("nodes.errors").TruePoseNodeError


def test_missing_checkpoint_reads_well(comfy, checkpoint):
    with pytest.raises(_node_error(comfy)) as caught:
        comfy.node_class("TruePose_LoadTruePose").execute("no-such-model.safetensors")
    assert type(caught.value).__name__ == "CheckpointError"
    assert "not found in the truepose model folders" in str(caught.value)


def test_foreign_checkpoint_is_refused(comfy, checkpoint):
    from safetensors.torch import save_file

    path = comfy.models_dir / "truepose" / "some-sd-unet.safetensors"
    save_file({"conv_in.weight": torch.zeros(4, 4, 3, 3)}, str(path))
    with pytest.raises(_node_error(comfy), match="not a TruePose checkpoint"):
        comfy.node_class("TruePose_LoadTruePose").execute(path.name)


def test_sources_and_poses_that_do_not_pair_up_are_refused(comfy, loaded):
    _model, truepose, vae = loaded
    two = comfy.node_class("TruePose_SourceNetEncode").execute(
        truepose, vae, _image(batch=2), _parsing(comfy, 2)
    )
    poses = _poses(comfy, STANDING_Y, LEGS_Y, STANDING_Y)
    with pytest.raises(_node_error(comfy), match="2 source images and 3 target poses"):
        _patched(comfy, loaded, two.result[0], poses)


def test_source_size_not_a_multiple_of_8_is_refused(comfy, loaded):
    _model, truepose, vae = loaded
    types = comfy.pack_module("nodes.types")
    image = torch.rand(1, 100, 70, 3)
    parsing = types.ParsingBatch(labels=person_parsing(1, 100, 70), label_set="lip")
    with pytest.raises(_node_error(comfy)) as caught:
        comfy.node_class("TruePose_SourceNetEncode").execute(truepose, vae, image, parsing)
    assert type(caught.value).__name__ == "ImageError"
    assert "70x100" in str(caught.value) and "multiple of 8" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Sampling


def _sample(comfy, loaded, source, patched, seed=0, steps=2, latent=None, cfg=3.5):
    node = comfy.node_class("TruePose_TrueSampler")
    _model, truepose, _vae = loaded
    out = node.execute(
        patched, truepose, source, seed, steps, cfg, "ddim", "ddim_uniform", 1.0, latent
    )
    return out.result[0]


def test_same_seed_gives_the_same_latent(comfy, loaded, source):
    patched = _patched(comfy, loaded, source, _poses(comfy, STANDING_Y, LEGS_Y))
    a = _sample(comfy, loaded, source, patched, seed=5)["samples"]
    b = _sample(comfy, loaded, source, patched, seed=5)["samples"]
    c = _sample(comfy, loaded, source, patched, seed=6)["samples"]
    assert a.shape == (2, 4, H // 8, W // 8)  # one image per target pose
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sampler_has_no_size_inputs_and_generates_at_the_source_size(comfy, loaded, source):
    spec = comfy.node_class("TruePose_TrueSampler").INPUT_TYPES()
    names = set(spec["required"]) | set(spec.get("optional", {}))
    assert not names & {"width", "height"}, names
    patched = _patched(comfy, loaded, source, _poses(comfy, STANDING_Y))
    assert _sample(comfy, loaded, source, patched)["samples"].shape == (1, 4, H // 8, W // 8)


@pytest.mark.parametrize(("w", "h"), [(2 * W, 2 * H), (40, 64), (W, H + 8)])
def test_a_latent_of_another_size_is_refused_before_the_unet_runs(comfy, loaded, source, w, h):
    patched = _patched(comfy, loaded, source, _poses(comfy, STANDING_Y)).clone()
    calls = []

    def wrapper(apply_model, args):
        calls.append(1)
        return apply_model(args["input"], args["timestep"], **args["c"])

    patched.set_model_unet_function_wrapper(wrapper)
    latent = {"samples": torch.zeros(1, 4, h // 8, w // 8)}
    with pytest.raises(_node_error(comfy)) as caught:
        _sample(comfy, loaded, source, patched, latent=latent)
    assert type(caught.value).__name__ == "ImageError"
    message = str(caught.value)
    assert message.startswith(f"latent: {w}x{h} pixels, but the encoded source is {W}x{H}")
    assert "TruePose Fit Inputs" in message and "VAE Encode" in message
    assert calls == []  # refused before sampling, not inside the UNet
    assert _sample(comfy, loaded, source, patched)["samples"].shape[-2:] == (H // 8, W // 8)
    assert calls  # the same wrapper sees a run of the right size


def test_noise_mask_keeps_the_reference_outside(comfy, loaded, source):
    patched = _patched(comfy, loaded, source, _poses(comfy, STANDING_Y))
    reference = torch.randn(1, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(9))
    mask = torch.zeros(1, 1, H // 8, W // 8)
    mask[..., : H // 16, :] = 1.0  # generate the top half only
    out = _sample(
        comfy, loaded, source, patched, latent={"samples": reference, "noise_mask": mask}
    )["samples"]
    torch.testing.assert_close(out[..., H // 16 :, :], reference[..., H // 16 :, :])
    assert not torch.allclose(out[..., : H // 16, :], reference[..., : H // 16, :])


def test_cancelled_run_leaves_no_state(comfy, loaded, source):
    import comfy.model_management as mm

    patched = _patched(comfy, loaded, source, _poses(comfy, STANDING_Y))
    fresh = _sample(comfy, loaded, source, patched, seed=1, steps=3)["samples"]
    calls = []

    def cancel_midway(n, context_attn1, value_attn1, extra_options):
        calls.append(1)
        if len(calls) == 5:  # a few layers into the second step
            mm.interrupt_current_processing(True)
        return n, context_attn1, value_attn1

    cancelling = patched.clone()
    cancelling.set_model_attn1_patch(cancel_midway)
    with pytest.raises(mm.InterruptProcessingException):
        _sample(comfy, loaded, source, cancelling, seed=1, steps=3)
    assert not mm.processing_interrupted()
    again = _sample(comfy, loaded, source, patched, seed=1, steps=3)["samples"]
    assert torch.equal(again, fresh)
    # A patch built after the cancel also matches.
    rebuilt = _patched(comfy, loaded, source, _poses(comfy, STANDING_Y))
    assert torch.equal(_sample(comfy, loaded, source, rebuilt, seed=1, steps=3)["samples"], fresh)


# ---------------------------------------------------------------------------------------------
# Inspection and demo nodes


def test_attention_map_and_metrics(comfy, loaded, source):
    _model, truepose, _vae = loaded
    overlay, heat = (
        comfy.node_class("TruePose_AttentionMap")
        .execute(truepose, source, _poses(comfy, STANDING_Y, LEGS_Y), _image(), 0.3, 0.6, 0.6)
        .result
    )
    assert overlay.shape == (2, H, W, 3) and heat.shape == (2, H, W)
    assert float(heat.min()) == 0.0 and float(heat.max()) == 1.0
    report, ssim, psnr = comfy.node_class("TruePose_Metrics").execute(_image(1), _image(1)).result
    assert ssim == pytest.approx(1.0) and "SSIM 1.0000" in report


def test_synthfashion_sample_node(comfy):
    source, parsing, poses, target, preview = (
        comfy.node_class("TruePose_SynthFashionSample").execute(3, 0, 128, 88).result
    )
    assert source.shape == target.shape == (1, 128, 88, 3)
    assert parsing.labels.shape == (1, 128, 88) and parsing.label_set == "lip"
    assert len(poses) == 1 and (poses[0].width, poses[0].height) == (88, 128)
    assert preview.shape == (1, 128, 88, 3)
    again = comfy.node_class("TruePose_SynthFashionSample").execute(3, 0, 128, 88).result
    assert torch.equal(again[0], source)


def test_stock_ksampler_with_source_conditioning_equals_true_sampler(comfy, loaded, source):
    model, truepose, _vae = loaded
    patched = _patched(comfy, loaded, source, _poses(comfy, STANDING_Y))
    positive, negative = (
        comfy.node_class("TruePose_SourceConditioning").execute(truepose, source, 1).result
    )
    latent = {"samples": torch.zeros(1, 4, H // 8, W // 8)}
    ksampler = comfy.node_class("KSampler")()
    (stock,) = ksampler.sample(
        patched, 3, 2, 3.5, "ddim", "ddim_uniform", positive, negative, latent, denoise=1.0
    )
    ours = _sample(comfy, loaded, source, patched, seed=3, latent=latent)
    assert torch.equal(stock["samples"], ours["samples"])
    plain = ksampler.sample(
        model, 3, 2, 3.5, "ddim", "ddim_uniform", positive, negative, latent, denoise=1.0
    )[0]
    assert not torch.equal(plain["samples"], ours["samples"])  # the patch does the work


def test_region_alignment_lives_on_the_patch_node(comfy, loaded, source):
    """The patch node's own CAA inputs work without a Region Alignment node, win over one
    placed before it, and a Region Alignment node after the patch says what to do."""
    model, truepose, _vae = loaded
    runtime = comfy.pack_module("nodes.runtime")
    errors = comfy.pack_module("nodes.errors")
    patch = comfy.node_class("TruePose_HPFAPatchModel")
    settings = comfy.node_class("TruePose_CAAPatch")
    poses = _poses(comfy, STANDING_Y)

    def caa_sizes(upstream, **inputs):
        """K per fused layer of the built patch (None where CAA is off)."""
        patched = patch.execute(upstream, truepose, source, poses, 0.3, 0.6, 1.0, **inputs)
        layers = runtime.find_patch(patched.result[0]).state.layers.values()
        return {None if layer.caa is None else int(layer.caa.labels.shape[1]) for layer in layers}

    assert None not in caa_sizes(model)  # default: on
    assert caa_sizes(model, region_alignment="off") == {None}
    assert caa_sizes(model, aligned_regions=1) == {1}
    assert caa_sizes(model, aligned_regions=3) == {3}
    switched_off = settings.execute(model, False, 2).result[0]
    assert caa_sizes(switched_off) == {None}  # the Region Alignment node still counts
    assert None not in caa_sizes(switched_off, region_alignment="on")
    assert caa_sizes(settings.execute(model, True, 1).result[0], aligned_regions=2) == {2}

    patched = patch.execute(model, truepose, source, poses, 0.3, 0.6, 1.0).result[0]
    with pytest.raises(errors.TruePoseNodeError, match="region_alignment"):
        settings.execute(patched, True, 2)


#: The knobs that change the generated image, per node: each tooltip says what turning it
#: does in plain words and gives the paper's term in brackets.
IMAGE_KNOBS = {
    "TruePose_HPFAPatchModel": (
        "sigma",
        "delta",
        "strength",
        "region_alignment",
        "aligned_regions",
    ),
    "TruePose_CAAPatch": ("enabled", "regions"),
    "TruePose_TrueSampler": ("seed", "steps", "cfg", "denoise"),
    "TruePose_AttentionMap": ("sigma", "delta"),
}
OLD_JARGON_NAMES = (
    "TruePose HPFA Patch Model",
    "TruePose CAA Settings",
    "TruePose SourceNet Encode",
)


def test_display_names_and_knob_tooltips_speak_plainly(comfy):
    import nodes

    names = {
        node_id: nodes.NODE_DISPLAY_NAME_MAPPINGS.get(node_id, node_id)
        for node_id in comfy.node_ids()
        if node_id.startswith("TruePose_")
    }
    assert not set(names.values()) & set(OLD_JARGON_NAMES)
    assert names["TruePose_HPFAPatchModel"] == "TruePose Pose Transfer (patch model)"
    assert names["TruePose_CAAPatch"] == "TruePose Region Alignment (CAA)"
    assert names["TruePose_SourceNetEncode"] == "TruePose Source Person"
    for node_id, knobs in IMAGE_KNOBS.items():
        inputs = {i.id: i for i in comfy.node_class(node_id).GET_SCHEMA().inputs}
        for knob in knobs:
            tip = inputs[knob].tooltip
            assert "[" in tip and tip.rstrip(".").endswith("]"), f"{node_id}.{knob}: {tip}"
            assert not tip.lower().startswith(("eq.", "eq ")), f"{node_id}.{knob}: {tip}"
