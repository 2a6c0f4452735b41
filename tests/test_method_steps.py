"""The method's steps outside one fusion layer, each against what METHOD.md says.

eq. 11 on known noise, condition dropout in training, the SourceNet's timestep, where the
PoseEncoder's output enters, the unconditional context, the selection mask M reaching the
layers, and which layers are fused. Zero-initialised outputs get random weights, so every
step shows in the outputs.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel

from tests.tiny_models import (
    legs_only_pose,
    person_parsing,
    randomize_zero_layers,
    tiny_pipeline,
)
from truepose_core.checkpoint import SD15_UNET_CONFIG
from truepose_core.config import TruePoseConfig
from truepose_core.model import TruePoseModel
from truepose_core.pairs import skeleton_batch
from truepose_core.parsing import get_label_set
from truepose_core.sampling import SD15_SCHEDULER, guided_noise
from truepose_core.train import TrainConfig, TrainingStep, collate, training_loss

H, W = 128, 88

#: SD1.5's 16 self-attention layers in ComfyUI's numbering (METHOD.md "Networks"): input
#: blocks 1, 2, 4, 5, 7, 8; the middle block; output blocks 3..11.
SD15_LAYERS = (
    *(f"input_{i}_0" for i in (1, 2, 4, 5, 7, 8)),
    "middle_0_0",
    *(f"output_{i}_0" for i in range(3, 12)),
)


@pytest.fixture(scope="module")
def pipe():
    pipe = tiny_pipeline()
    randomize_zero_layers(pipe.model)
    return pipe


def _images(batch=1, seed=0):
    return torch.rand(batch, 3, H, W, generator=torch.Generator().manual_seed(seed))


def _noisy(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, H // 8, W // 8, generator=g), torch.full((batch,), 400.0)


def _context_seen(unet):
    """Records the cross-attention context each call of ``unet`` receives."""
    seen = []

    def hook(_module, args, kwargs):
        seen.append(kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None))

    return seen, unet.register_forward_pre_hook(hook, with_kwargs=True)


# ---------------------------------------------------------------------------------------------
# Eq. 11


class _KnownNoise:
    """A model whose prediction is 2 + row on unconditional rows and 5 + 3 * row otherwise."""

    def predict_noise(self, latents, timesteps, state, rows, conditional):
        row = rows.float()[:, None, None, None]
        cond = conditional[:, None, None, None]
        return torch.where(cond, 5.0 + 3.0 * row, 2.0 + row).expand_as(latents).clone()


def test_eq11_guidance_on_known_noise():
    latents = torch.zeros(2, 4, 2, 2)
    for w in (3.5, 1.0, 0.0):
        eps = guided_noise(_KnownNoise(), latents, torch.tensor(500), None, w)
        for row in range(2):
            uncond, cond = 2.0 + row, 5.0 + 3.0 * row
            want = uncond + w * (cond - uncond)  # eps({}) + w (eps(C) - eps({}))
            torch.testing.assert_close(eps[row], torch.full_like(eps[row], want))


# ---------------------------------------------------------------------------------------------
# Training: condition dropout


def _training_inputs(pipe, batch):
    images = _images(batch, seed=1)
    parsing = person_parsing(batch)
    label_set = get_label_set(pipe.config.label_set)
    regions = pipe.clip(images, parsing, label_set)
    latents = pipe.encode_latents(images)
    pose = legs_only_pose()
    masks = torch.stack([torch.as_tensor(m) for m in _selection(parsing, pose, label_set)])
    skeletons = skeleton_batch([pose] * batch, H, W)
    return latents, regions, parsing, masks, skeletons


def _selection(parsing, pose, label_set):
    from truepose_core.parsing import selection_mask

    return selection_mask(parsing, pose, label_set)


def _with_pose(unet, pose):
    """A forward hook adding ``pose`` to conv_in's output: METHOD.md's PoseEncoder residual."""
    return unet.conv_in.register_forward_hook(lambda _m, _i, out: out + pose)


def test_dropped_training_row_gets_zero_context_no_fusion_and_keeps_its_pose(pipe):
    model = pipe.model
    latents, regions, parsing, masks, skeletons = _training_inputs(pipe, 2)
    noisy, t = _noisy(2, seed=2)
    noisy[1] = noisy[0]  # same input on both rows: only the dropout tells them apart
    keep = torch.tensor([True, False])
    step = TrainingStep(model).eval()
    with torch.no_grad():
        pred = step(latents, regions, parsing, masks, skeletons, noisy, t, keep)
        both = step(latents, regions, parsing, masks, skeletons, noisy, t, torch.ones(2).bool())
        pose = model.pose_encoder(skeletons)
        zero_context = torch.zeros(2, model.config.context_tokens, pipe.model.config.context_dim)
        handle = _with_pose(model.target_unet, pose)
        try:  # the TargetNet alone (no fusion, no CAA), zero context, with the pose
            dropped = model.target_unet(noisy, t, encoder_hidden_states=zero_context)[0]
        finally:
            handle.remove()
        no_pose = model.target_unet(noisy, t, encoder_hidden_states=zero_context)[0]
    torch.testing.assert_close(pred[1], dropped[1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(pred[1], no_pose[1], atol=1e-4)  # the pose stays
    torch.testing.assert_close(pred[0], both[0], atol=1e-5, rtol=1e-5)  # kept row: full
    assert not torch.allclose(pred[0], pred[1], atol=1e-4)


def test_trainer_drops_about_thirty_percent_of_rows(pipe):
    """``training_loss`` hands the runner rows to keep; over 30 steps about 30% are dropped."""
    from truepose_core.data.synthfashion import SynthFashion

    config = pipe.config.replace(resolution=(64, 40))
    data = SynthFashion(size=(64, 40), length=8, seed=0, split="train")
    batch = collate([data[i] for i in range(8)])
    scheduler = DDPMScheduler(
        **{k: SD15_SCHEDULER[k] for k in ("num_train_timesteps", "beta_start", "beta_end")},
        beta_schedule=SD15_SCHEDULER["beta_schedule"],
    )
    kept = []

    def runner(source_latents, regions, parsing, masks, skeletons, noisy, timesteps, keep):
        kept.append(keep.clone())
        return torch.zeros_like(noisy)

    label_set = get_label_set(config.label_set)
    cfg = TrainConfig(seed=0, batch_size=8)
    with torch.no_grad():
        for step in range(30):
            training_loss(
                runner,
                batch,
                pipe.vae,
                pipe.clip,
                scheduler,
                config,
                label_set,
                cfg,
                step,
                torch.device("cpu"),
            )
    dropped = 1 - torch.cat(kept).float().mean().item()
    assert 0.2 < dropped < 0.4, dropped
    assert config.condition_drop == pytest.approx(0.3)


# ---------------------------------------------------------------------------------------------
# SourceNet, PoseEncoder, unconditional context


def test_sourcenet_runs_at_timestep_zero(pipe):
    seen = []

    def hook(_module, args, kwargs):
        seen.append(torch.as_tensor(kwargs.get("timestep", args[1] if len(args) > 1 else None)))

    handle = pipe.model.source_unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        pipe.encode_source(_images(2), person_parsing(2))
    finally:
        handle.remove()
    assert len(seen) == 1 and seen[0].numel() in (1, 2)
    assert bool((seen[0] == 0).all()), seen[0]


def test_pose_encoder_output_is_added_after_conv_in(pipe):
    model = pipe.model
    encoding = pipe.encode_source(_images(), person_parsing())
    state = pipe.prepare(encoding, [legs_only_pose()], (H, W))
    latents, t = _noisy(2)
    seen = []
    first = model.target_unet.down_blocks[0]
    handle = first.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append(
            kwargs.get("hidden_states", args[0] if args else None)
        ),
        with_kwargs=True,
    )
    rows, conditional = torch.zeros(2, dtype=torch.long), torch.tensor([False, True])
    try:
        with torch.no_grad():
            model.predict_noise(latents, t, state, rows, conditional)
            conv = model.target_unet.conv_in(latents)
            pose = model.pose_encoder(skeleton_batch([legs_only_pose()], H, W))
    finally:
        handle.remove()
    assert float(pose.abs().max()) > 1e-3
    want = conv + pose
    torch.testing.assert_close(seen[0], want, atol=1e-5, rtol=1e-5)  # both rows: the pose


def test_unconditional_branch_gets_zero_context(pipe):
    encoding = pipe.encode_source(_images(), person_parsing())
    state = pipe.prepare(encoding, [legs_only_pose()], (H, W))
    latents, t = _noisy(1)
    seen, handle = _context_seen(pipe.model.target_unet)
    try:
        with torch.no_grad():
            guided_noise(pipe.model, latents, t[0], state, 3.5)
    finally:
        handle.remove()
    (context,) = seen
    assert context.shape[0] == 2
    assert float(state.context.abs().max()) > 0
    # eq. 11's two branches: one row with zeros, one with the source context.
    zero_rows = [i for i in range(2) if not context[i].any()]
    assert len(zero_rows) == 1
    torch.testing.assert_close(context[1 - zero_rows[0]], state.context[0])


# ---------------------------------------------------------------------------------------------
# The selection mask M reaches every layer


def test_selection_mask_of_the_target_pose_reaches_the_layers(pipe):
    """A legs-only pose selects Pants and the shoes (METHOD.md HPFA step 1), not the rest."""
    model = pipe.model
    parsing = person_parsing()
    encoding = pipe.encode_source(_images(), parsing)
    pose = legs_only_pose()
    state = pipe.prepare(encoding, [pose], (H, W))
    skeletons = skeleton_batch([pose], H, W)
    by_hand = torch.isin(parsing, torch.tensor([9, 18, 19]))  # Pants, Left-shoe, Right-shoe
    with torch.no_grad():
        hand = model.prepare(encoding, by_hand, skeletons)
        everything = model.prepare(encoding, torch.ones_like(by_hand), skeletons)
    latents, t = _noisy(1)
    rows, conditional = torch.zeros(1, dtype=torch.long), torch.ones(1, dtype=torch.bool)

    def eps(s):
        with torch.no_grad():
            return model.predict_noise(latents, t[:1], s, rows, conditional)

    torch.testing.assert_close(eps(state), eps(hand), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(eps(hand), eps(everything), atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Which layers


def test_all_sixteen_sd15_self_attention_layers_are_fused_by_default():
    config = TruePoseConfig()
    with torch.device("meta"):
        target = UNet2DConditionModel.from_config(SD15_UNET_CONFIG)
        source = UNet2DConditionModel.from_config(SD15_UNET_CONFIG)
        model = TruePoseModel(config, target, source)
    assert [layer.name for layer in model.layers] == list(SD15_LAYERS)
    assert len(SD15_LAYERS) == 16 and sorted(model.fusion) == sorted(SD15_LAYERS)
    attn1 = [n for n, m in target.named_modules() if n.endswith("attn1")]
    assert sorted(layer.module_path for layer in model.layers) == sorted(attn1)
    for layer in model.layers:
        fusion = model.fusion[layer.name]
        assert fusion.hpfa is not None and fusion.caa is not None
