"""Fusion variants behind one interface, per-run settings as arguments, the pose-only model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.tiny_models import (
    legs_only_pose,
    person_parsing,
    randomize_zero_layers,
    standing_pose,
    tiny_pipeline,
)
from truepose_core.checkpoint import load_truepose, save_truepose
from truepose_core.config import FUSION_MODES, SamplingConfig
from truepose_core.fusion import FusionLayer, FusionSettings
from truepose_core.pipeline import TruePosePipeline
from truepose_core.presets import tiny_truepose_config, tiny_vae_config
from truepose_core.train import TrainConfig, train
from truepose_core.variants import VARIANTS, PoseOnlyFusion

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "truepose_core" / "assets" / "truepose-synthfashion-small.safetensors"
H, W = 128, 88


def _images(seed=0, batch=1):
    return torch.rand(batch, 3, H, W, generator=torch.Generator().manual_seed(seed))


def _noise(pipe, state, conditional, seed=3):
    """The TargetNet's prediction for one row per entry of ``conditional``, all pair 0."""
    g = torch.Generator().manual_seed(seed)
    n = len(conditional)
    latents = torch.randn(1, 4, H // 8, W // 8, generator=g).repeat(n, 1, 1, 1)
    t = torch.full((n,), 400.0)
    rows = torch.zeros(n, dtype=torch.long)
    with torch.no_grad():
        return pipe.model.predict_noise(latents, t, state, rows, torch.tensor(conditional))


def _trained_pipe(**config):
    pipe = tiny_pipeline(**config)
    randomize_zero_layers(pipe.model)
    return pipe


# ---------------------------------------------------------------------------------------------
# One interface


def test_every_fusion_mode_has_one_variant_class():
    assert set(VARIANTS) == set(FUSION_MODES)
    layer = tiny_pipeline().model.layers[0]
    for mode, cls in VARIANTS.items():
        built = FusionLayer(layer, tiny_truepose_config(fusion_mode=mode))
        assert type(built) is cls and built.mode == mode


@pytest.mark.parametrize("mode", ["hpfa", "concat", "clip_only"])
def test_strength_blends_in_the_core_for_every_fusing_variant(mode):
    """0 = the TargetNet without fusion, 1 = the method, between = neither (concat too)."""
    pipe = _trained_pipe(fusion_mode=mode)
    encoding = pipe.encode_source(_images(), person_parsing())

    def eps(strength):
        settings = FusionSettings(strength=strength)
        state = pipe.prepare(encoding, [standing_pose()], (H, W), fusion=settings)
        return _noise(pipe, state, [True])

    full, half, off = eps(1.0), eps(0.5), eps(0.0)
    state = pipe.prepare(encoding, [standing_pose()], (H, W))
    no_fusion = _noise(pipe, dataclasses.replace(state, layers={}), [True])
    torch.testing.assert_close(off, no_fusion, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(half, full, atol=1e-5)
    assert not torch.allclose(half, off, atol=1e-5)


def test_sigma_delta_and_k_are_arguments_and_leave_the_modules_unchanged():
    pipe = _trained_pipe()
    encoding = pipe.encode_source(_images(), person_parsing())
    fusion = pipe.model.fusion
    before = {name: (f.hpfa.sigma, f.hpfa.delta, f.caa.regions) for name, f in fusion.items()}
    settings = FusionSettings(sigma=0.05, delta=1.0, caa_regions=1)
    changed = pipe.prepare(encoding, [standing_pose()], (H, W), fusion=settings)
    after = {name: (f.hpfa.sigma, f.hpfa.delta, f.caa.regions) for name, f in fusion.items()}
    assert after == before
    # The same numbers as a model whose checkpoint config holds them.
    twin = tiny_pipeline(sigma=0.05, delta=1.0, caa_regions=1)
    twin.model.load_state_dict(pipe.model.state_dict())
    twin.vae, twin.clip = pipe.vae, pipe.clip
    expected = twin.prepare(
        twin.encode_source(_images(), person_parsing()), [standing_pose()], (H, W)
    )
    torch.testing.assert_close(_noise(pipe, changed, [True]), _noise(twin, expected, [True]))
    default = pipe.prepare(encoding, [standing_pose()], (H, W))
    assert not torch.allclose(_noise(pipe, changed, [True]), _noise(pipe, default, [True]))
    for name, src in changed.layers.items():
        assert src.caa.labels.shape[1] == 1, name


def test_fusion_settings_refuse_negative_values():
    from truepose_core.errors import ConfigError

    with pytest.raises(ConfigError, match="sigma"):
        FusionSettings(sigma=-1.0)


# ---------------------------------------------------------------------------------------------
# Checkpoint format


def test_a_checkpoint_written_before_the_variant_classes_loads_key_for_key():
    """The shipped checkpoint predates this layout: every key loads, none is left over."""
    with safe_open(str(SHIPPED), framework="pt") as f:
        file_keys = set(f.keys())
    for build_unets in (True, False):
        loaded = load_truepose(SHIPPED, build_unets=build_unets)
        keys = {
            f"{p}.{k}"
            for p in ("fusion", "pose_encoder", "context_proj")
            for k in getattr(loaded.model, p).state_dict()
        }
        keys |= {f"vae.{k}" for k in loaded.vae.state_dict()}
        keys |= {f"clip.{k}" for k in loaded.clip.state_dict()}
        if build_unets:
            keys |= {
                f"{p}.{k}"
                for p in ("target_unet", "source_unet")
                for k in getattr(loaded.model, p).state_dict()
            }
        else:
            keys |= {f"{p}.{k}" for p, s in loaded.unet_states.items() for k in s}
        assert keys == file_keys, (sorted(keys - file_keys)[:5], sorted(file_keys - keys)[:5])


@pytest.mark.parametrize("mode", sorted(FUSION_MODES))
def test_every_variant_saves_and_loads_to_the_same_prediction(tmp_path, mode):
    pipe = _trained_pipe(fusion_mode=mode)
    path = save_truepose(tmp_path / f"{mode}.safetensors", pipe.model)
    loaded = load_truepose(path)
    prefixes = {k.split(".")[0] for k in load_file(str(path))}
    with_source = VARIANTS[mode].uses_source_net
    assert ("source_unet" in prefixes) == with_source
    assert ("context_proj" in prefixes) == VARIANTS[mode].uses_source_context
    again = TruePosePipeline(loaded.model, pipe.vae, pipe.clip)
    encoding = pipe.encode_source(_images(), person_parsing())
    a = _noise(pipe, pipe.prepare(encoding, [standing_pose()], (H, W)), [True, False])
    encoding = again.encode_source(_images(), person_parsing())
    b = _noise(again, again.prepare(encoding, [standing_pose()], (H, W)), [True, False])
    torch.testing.assert_close(a, b, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------
# Pose only


def test_pose_only_has_no_sourcenet_no_context_and_no_fused_layer():
    pipe = _trained_pipe(fusion_mode="pose_only")
    model = pipe.model
    assert model.source_unet is None and model.context_proj is None
    assert all(isinstance(f, PoseOnlyFusion) for f in model.fusion.values())
    assert not any(k.startswith("fusion.") for k in model.state_dict())
    encoding = pipe.encode_source(_images(), person_parsing())
    assert encoding.features == {}
    state = pipe.prepare(encoding, [standing_pose(), legs_only_pose()], (H, W))
    assert state.layers == {} and not state.context.any()
    # The source changes nothing: conditional and unconditional rows agree exactly.
    cond, uncond = _noise(pipe, state, [True, False])
    torch.testing.assert_close(cond, uncond, atol=0, rtol=0)


def test_pose_only_differs_from_the_full_model_and_follows_the_pose():
    full = _trained_pipe()
    pose_only = _trained_pipe(fusion_mode="pose_only")
    enc_full = full.encode_source(_images(), person_parsing())
    enc_pose = pose_only.encode_source(_images(), person_parsing())
    poses = [standing_pose(), legs_only_pose()]
    state_full = full.prepare(enc_full, poses, (H, W))
    state_pose = pose_only.prepare(enc_pose, poses, (H, W))
    a = _noise(full, state_full, [True])
    b = _noise(pose_only, state_pose, [True])
    assert not torch.allclose(a, b, atol=1e-4)
    # With the same TargetNet and PoseEncoder weights, only the source side tells them apart.
    shared = {k: v for k, v in full.model.state_dict().items() if k in pose_only.model.state_dict()}
    pose_only.model.load_state_dict(shared)
    torch.testing.assert_close(
        _noise(pose_only, state_pose := pose_only.prepare(enc_pose, poses, (H, W)), [True]),
        _noise(full, state_full, [False]),
        atol=1e-5,
        rtol=1e-5,
    )
    second = state_pose.index(torch.tensor([1]))
    assert not torch.allclose(
        _noise(pose_only, state_pose, [True]), _noise(pose_only, second, [True])
    )


@pytest.fixture(scope="module")
def vae_file(tmp_path_factory):
    torch.manual_seed(0)
    vae = AutoencoderKL.from_config(tiny_vae_config())
    path = tmp_path_factory.mktemp("vae") / "vae.safetensors"
    save_file(vae.state_dict(), str(path), metadata={"vae_config": json.dumps(tiny_vae_config())})
    return path


def test_pose_only_trains_saves_loads_and_samples_without_a_sourcenet(tmp_path, vae_file):
    cfg = TrainConfig.from_dict(
        dict(
            output_dir=str(tmp_path / "run"),
            vae=str(vae_file),
            batch_size=2,
            train_pairs=2,
            lr=2e-3,
            log_every=1,
            save_every=0,
            max_steps=2,
            model={"resolution": [64, 40], "fusion_mode": "pose_only"},
        )
    )
    final = train(cfg, progress=False)
    assert not any(k.startswith(("source_unet.", "context_proj.")) for k in load_file(str(final)))
    pipe = TruePosePipeline.from_checkpoint(final)
    assert pipe.model.source_unet is None and pipe.config.fusion_mode == "pose_only"
    images = pipe(_images(), person_parsing(), [standing_pose()], SamplingConfig(steps=2))
    assert images.shape == (1, 3, H, W) and torch.isfinite(images).all()
