"""The trainer: it learns, it resumes exactly, and it drops conditions at the configured rate."""

import csv
import dataclasses
import json
import logging
import math

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file, save_file

from tests.tiny_models import randomize_zero_layers
from truepose_core.checkpoint import load_truepose
from truepose_core.errors import ConfigError
from truepose_core.presets import tiny_vae_config
from truepose_core.train import TrainConfig, batch_indices, step_generator, step_randomness, train


@pytest.fixture(scope="module")
def vae_file(tmp_path_factory):
    torch.manual_seed(0)
    vae = AutoencoderKL.from_config(tiny_vae_config())
    path = tmp_path_factory.mktemp("vae") / "vae.safetensors"
    save_file(vae.state_dict(), str(path), metadata={"vae_config": json.dumps(tiny_vae_config())})
    return path


def _config(tmp_path, vae_file, **changes):
    base = dict(
        output_dir=str(tmp_path / "run"),
        vae=str(vae_file),
        batch_size=2,
        train_pairs=2,
        lr=2e-3,
        log_every=1,
        save_every=0,
        model={"resolution": [64, 40]},
    )
    base.update(changes)
    return TrainConfig.from_dict(base)


def _losses(run_dir):
    with (run_dir / "loss.csv").open() as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_overfits_one_batch(tmp_path, vae_file):
    cfg = _config(
        tmp_path, vae_file, max_steps=40, model={"resolution": [64, 40], "condition_drop": 0.0}
    )
    final = train(cfg, progress=False)
    losses = _losses(tmp_path / "run")
    assert len(losses) == 40
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.6 * first, (first, last)
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0
    loaded = load_truepose(final)
    assert loaded.vae is not None and loaded.clip is not None
    assert loaded.config.resolution == (64, 40)


DECAY = {"lr_decay_start": 1, "lr_decay_steps": 2, "lr_final_scale": 0.1}


@pytest.mark.parametrize(
    "decay", [{}, DECAY, {"self_pair_fraction": 0.5}], ids=["constant-lr", "lr-decay", "self-pairs"]
)
def test_resume_takes_the_same_next_step(tmp_path, vae_file, decay):
    straight = _config(tmp_path / "a", vae_file, max_steps=4, train_pairs=6, **decay)
    train(straight, progress=False)
    first_half = _config(
        tmp_path / "b", vae_file, max_steps=2, train_pairs=6, save_every=2, **decay
    )
    train(first_half, progress=False)
    second_half = _config(
        tmp_path / "b", vae_file, max_steps=4, train_pairs=6, save_every=2, **decay
    )
    train(second_half, progress=False)
    a = load_file(str(tmp_path / "a" / "run" / "state-4" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "run" / "state-4" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(tmp_path / "a" / "run") == _losses(tmp_path / "b" / "run")


def test_condition_drop_rate_is_near_thirty_percent():
    kept = []
    for step in range(400):
        _, _, keep = step_randomness(
            step_generator(0, step, 0), torch.Size([8, 4, 2, 2]), 1000, 0.3
        )
        kept.append(keep)
    dropped = 1 - torch.cat(kept).float().mean().item()
    assert abs(dropped - 0.3) < 0.03


def test_batches_are_a_pure_function_of_the_step():
    a = batch_indices(100, 4, 0, 37, rank=0, world=2)
    b = batch_indices(100, 4, 0, 37, rank=1, world=2)
    assert a == batch_indices(100, 4, 0, 37, 0, 2) and not set(a) & set(b)


def test_unknown_train_keys_raise(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"learning_rate": 1}))
    with pytest.raises(ConfigError, match="unknown keys \\['learning_rate'\\]"):
        TrainConfig.from_file(path)


def test_resume_skips_an_incomplete_state_and_a_damaged_one_is_one_line(
    tmp_path, vae_file, caplog, capsys
):
    from truepose_core.cli import main

    cfg = _config(tmp_path, vae_file, max_steps=3, save_every=1)
    config = tmp_path / "train.json"
    config.write_text(json.dumps(dataclasses.asdict(cfg)))
    assert main(["train", "--config", str(config)]) == 0
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("state-*")) == ["state-2", "state-3"]
    # What a kill inside a save did before saves were atomic (the state-24).
    broken = run / "state-4"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes((run / "state-3" / "model.safetensors").read_bytes())
    (broken / "optimizer.pt").write_bytes((run / "state-3" / "optimizer.pt").read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="truepose"):
        assert main(["train", "--config", str(config)]) == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"skipping {broken}: incomplete (no trainer.json; its save was interrupted)"
    ]
    assert len(_losses(run)) == 3
    # A complete state damaged afterwards (a full disk): one line naming file and fallback.
    optimizer = run / "state-3" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    capsys.readouterr()
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert f"{optimizer}: 100 bytes" in err and "resume from state-2" in err


def test_a_tiny_run_beats_copying_the_source_on_its_training_pair(tmp_path):
    """Trainer, checkpoint, sampler and VAE together: 800 steps on one pair must generate that
    pair's target with a better SSIM than the trivial baseline of returning the source
    unchanged. (PSNR lags at this budget: the background colour, which copying gets exactly
    right, is learned last.)"""
    from truepose_core.config import SamplingConfig
    from truepose_core.data.batch import pair_batch
    from truepose_core.data.synthfashion import SynthFashion
    from truepose_core.metrics import image_metrics
    from truepose_core.patch_vae import PatchVAE
    from truepose_core.pipeline import TruePosePipeline

    size = (64, 64)
    fit = SynthFashion(size=size, length=16, seed=5, split="train")
    images = torch.stack([fit[i][k] for i in range(16) for k in ("source_image", "target_image")])
    vae_config = {"in_channels": 3, "latent_channels": 4, "factor": 8, "vae_kind": "patch"}
    vae = PatchVAE.from_config(vae_config).fit(images)
    vae_path = tmp_path / "vae.safetensors"
    save_file(
        {k: v.contiguous() for k, v in vae.state_dict().items()},
        str(vae_path),
        metadata={"vae_config": json.dumps(vae_config)},
    )
    cfg = TrainConfig.from_dict(
        dict(
            output_dir=str(tmp_path / "run"),
            vae=str(vae_path),
            batch_size=1,
            train_pairs=1,
            lr=1e-3,
            epochs=1000,
            max_steps=800,
            log_every=50,
            save_every=0,
            unet={"latent_channels": 4},
            model={"resolution": list(size), "condition_drop": 0.0},
        )
    )
    pipe = TruePosePipeline.from_checkpoint(train(cfg, progress=False))
    batch = pair_batch([SynthFashion(size=size, length=1, seed=0, split="train")[0]])
    settings = SamplingConfig(steps=10, cfg_scale=1.0)  # no condition was ever dropped
    generated = pipe(batch["sources"], batch["parsing"], batch["poses"], settings)
    truth = batch["targets"].permute(0, 2, 3, 1)
    model = image_metrics(generated.permute(0, 2, 3, 1), truth)
    copy = image_metrics(batch["sources"].permute(0, 2, 3, 1), truth)
    assert model["ssim"] > copy["ssim"], (model, copy)


def test_fusion_lr_scale_gives_the_fusion_modules_their_own_group(tmp_path, vae_file):
    from truepose_core.train import build_model, parameter_groups

    cfg = _config(tmp_path, vae_file)
    model = build_model(cfg)
    (one,) = parameter_groups(model, cfg)
    assert len(one["params"]) == len(list(model.parameters()))
    scaled = dataclasses.replace(cfg, fusion_lr_scale=5.0)
    rest, fusion = parameter_groups(model, scaled)
    assert fusion["lr"] == pytest.approx(5 * cfg.lr) and "lr" not in rest
    assert {id(p) for p in fusion["params"]} == {id(p) for p in model.fusion.parameters()}
    everything = [id(p) for p in rest["params"] + fusion["params"]]
    assert sorted(everything) == sorted(id(p) for p in model.parameters())


def test_split_optimizer_state_keeps_each_parameters_moments(tmp_path, vae_file):
    from truepose_core.train import build_model, parameter_groups, split_optimizer_state

    cfg = _config(tmp_path, vae_file)
    model = build_model(cfg)
    old = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(0)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g)
    old.step()
    scaled = dataclasses.replace(cfg, fusion_lr_scale=5.0)
    new = torch.optim.AdamW(parameter_groups(model, scaled), lr=cfg.lr)
    new.load_state_dict(split_optimizer_state(old.state_dict(), model, scaled))
    assert [group["lr"] for group in new.param_groups] == [cfg.lr, 5 * cfg.lr]
    for p in model.parameters():
        torch.testing.assert_close(new.state[p]["exp_avg"], old.state[p]["exp_avg"])
        torch.testing.assert_close(new.state[p]["exp_avg_sq"], old.state[p]["exp_avg_sq"])
    with pytest.raises(ConfigError, match="groups"):
        split_optimizer_state(new.state_dict(), model, scaled)


def test_noise_offset_adds_one_constant_per_image_and_channel(tmp_path, vae_file):
    from truepose_core.train import training_randomness

    shape = torch.Size([64, 8, 16, 11])
    plain_cfg = _config(tmp_path, vae_file)
    offset_cfg = dataclasses.replace(plain_cfg, noise_offset=0.25)
    plain = training_randomness(plain_cfg, 7, shape, 1000, 0.3)
    offset = training_randomness(offset_cfg, 7, shape, 1000, 0.3)
    again = training_randomness(offset_cfg, 7, shape, 1000, 0.3)
    for a, b in zip(offset, again, strict=True):  # a pure function of the step
        assert torch.equal(a, b)
    assert torch.equal(plain[1], offset[1]) and torch.equal(plain[2], offset[2])
    added = offset[0] - plain[0]
    torch.testing.assert_close(added, added[..., :1, :1].expand_as(added))  # constant over h, w
    assert 0.2 < float(added[..., 0, 0].std()) < 0.3
    assert not torch.equal(added[:, 0], added[:, 1])  # its own value per channel
    assert torch.equal(plain[0], training_randomness(plain_cfg, 7, shape, 1000, 0.3)[0])


def test_offset_grids_add_coarse_smooth_noise(tmp_path, vae_file):
    from truepose_core.train import training_randomness

    shape = torch.Size([64, 8, 16, 11])
    cfg = dataclasses.replace(_config(tmp_path, vae_file), noise_offset=0.25)
    plain = training_randomness(cfg, 3, shape, 1000, 0.3)[0]
    grids = dataclasses.replace(cfg, noise_offset_grids=(1, 4))
    added = training_randomness(grids, 3, shape, 1000, 0.3)[0] - plain
    assert torch.equal(training_randomness(grids, 3, shape, 1000, 0.3)[0] - plain, added)
    # Not one constant: it varies over the latent, but smoothly (coarse cells, not pixels).
    spatial = added - added.mean((2, 3), keepdim=True)
    assert float(spatial.std()) > 0.05
    step = (added[..., 1:, :] - added[..., :-1, :]).abs().mean()
    assert float(step) < 0.5 * float(spatial.abs().mean())  # white noise: about 1.1


def test_lr_decay_is_a_cosine_from_its_start_to_the_final_scale():
    from truepose_core.train import learning_rates, lr_factor

    cfg = TrainConfig(lr=1e-3, lr_decay_start=100, lr_decay_steps=200, lr_final_scale=0.1)
    factors = [lr_factor(cfg, s) for s in (0, 100, 150, 200, 300, 5000)]
    expected = [1.0, 1.0, 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2, 0.55, 0.1, 0.1]
    assert factors == pytest.approx(expected)
    assert lr_factor(TrainConfig(), 10**6) == 1.0
    scaled = dataclasses.replace(cfg, fusion_lr_scale=3.0)
    assert learning_rates(scaled, 200) == pytest.approx([0.55e-3, 1.65e-3])


def test_training_steps_use_the_decayed_lr(tmp_path, vae_file):
    """Each update's lr is in loss.csv, and the saved optimizer state ends at the final lr."""
    cfg = _config(tmp_path, vae_file, max_steps=4, save_every=4, fusion_lr_scale=3.0, **DECAY)
    train(cfg, progress=False)
    with (tmp_path / "run" / "loss.csv").open() as f:
        logged = [float(r["lr"]) for r in csv.DictReader(f)]
    assert logged == pytest.approx([2e-3, 2e-3, 1.1e-3, 2e-4])
    state = tmp_path / "run" / "state-4" / "optimizer.pt"
    groups = torch.load(state, weights_only=True)["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([2e-4, 6e-4])


def _fake_batch(b=8):
    g = torch.Generator().manual_seed(0)
    batch = {}
    for side in ("source", "target"):
        batch[f"{side}_image"] = torch.rand(b, 3, 8, 6, generator=g)
        batch[f"{side}_parsing"] = torch.randint(0, 20, (b, 8, 6), generator=g)
        batch[f"{side}_keypoints"] = torch.rand(b, 18, 3, generator=g)
    batch["target_skeleton"] = torch.rand(b, 3, 8, 6, generator=g)
    return batch


def test_self_pairs_give_a_fraction_of_rows_their_own_target_as_source():
    from truepose_core.train import with_self_pairs

    batch = _fake_batch()
    assert with_self_pairs(batch, TrainConfig(), 5) is batch
    every = with_self_pairs(batch, TrainConfig(self_pair_fraction=1.0), 5)
    for side in ("image", "parsing", "keypoints"):
        assert torch.equal(every[f"source_{side}"], batch[f"target_{side}"])
        assert torch.equal(every[f"target_{side}"], batch[f"target_{side}"])
    assert torch.equal(every["target_skeleton"], batch["target_skeleton"])
    half = TrainConfig(self_pair_fraction=0.5)
    chosen = []
    for step in range(200):
        out = with_self_pairs(batch, half, step)
        assert torch.equal(out["source_image"], with_self_pairs(batch, half, step)["source_image"])
        rows = [torch.equal(out["source_image"][i], batch["target_image"][i]) for i in range(8)]
        others = [torch.equal(out["source_image"][i], batch["source_image"][i]) for i in range(8)]
        assert [not r for r in rows] == others  # each row is wholly one or the other
        for i in range(8):  # parsing and keypoints follow the image
            assert torch.equal(
                out["source_parsing"][i],
                batch["target_parsing" if rows[i] else "source_parsing"][i],
            )
            assert torch.equal(
                out["source_keypoints"][i],
                batch["target_keypoints" if rows[i] else "source_keypoints"][i],
            )
        chosen += rows
    assert abs(sum(chosen) / len(chosen) - 0.5) < 0.05


def test_training_uses_the_self_pairs(tmp_path, vae_file):
    """One step with every row a self pair trains on other inputs than one without."""
    weights = []
    for fraction in (0.0, 1.0):
        cfg = _config(
            tmp_path / str(fraction),
            vae_file,
            max_steps=1,
            save_every=1,
            self_pair_fraction=fraction,
        )
        train(cfg, progress=False)
        weights.append(
            load_file(str(tmp_path / str(fraction) / "run" / "state-1" / "model.safetensors"))
        )
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_bad_offset_and_fusion_lr_settings_are_refused():
    for bad in (
        {"self_pair_fraction": -0.1},
        {"self_pair_fraction": 1.5},
        {"lr_decay_steps": -1},
        {"lr_final_scale": 1.5},
        {"fusion_lr_scale": 0.0},
        {"noise_offset": -0.1},
        {"noise_offset_grids": [0]},
        {"noise_offset_grids": []},
    ):
        with pytest.raises(ConfigError, match="train config"):
            TrainConfig.from_dict(bad)


def test_split_script_lets_a_run_continue_with_a_fusion_lr(tmp_path, vae_file):
    """scripts/split_optimizer_groups.py on a real state; the run then resumes from it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    cfg = _config(tmp_path, vae_file, max_steps=2, save_every=2)
    train(cfg, progress=False)
    scaled = dataclasses.replace(cfg, fusion_lr_scale=3.0, max_steps=3)
    config_file = tmp_path / "scaled.json"
    config_file.write_text(json.dumps(dataclasses.asdict(scaled)))
    state = tmp_path / "run" / "state-2"
    script = repo / "scripts" / "split_optimizer_groups.py"
    env = {**os.environ, "PYTHONPATH": str(repo)}
    args = [sys.executable, str(script), "--config", str(config_file), "--state", str(state)]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    groups = torch.load(state / "optimizer.pt", weights_only=True)["param_groups"]
    assert [g["lr"] for g in groups] == [cfg.lr, 3 * cfg.lr]
    train(scaled, progress=False)  # resumes at step 2 with two groups
    assert len(_losses(tmp_path / "run")) == 3


def test_rescale_script_scales_one_layers_eq8_logits_and_the_run_resumes(tmp_path, vae_file):
    """scripts/rescale_fusion_attention.py: W_Q and W_Kh of one layer x sqrt(factor), in the
    raw weights and the EMA shadow; nothing else moves, and the run resumes from the state."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from truepose_core.train import build_model

    repo = Path(__file__).resolve().parent.parent
    cfg = _config(tmp_path, vae_file, max_steps=2, save_every=2, ema_decay=0.9)
    train(cfg, progress=False)
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps(dataclasses.asdict(dataclasses.replace(cfg, max_steps=3))))
    state = tmp_path / "run" / "state-2"
    before = load_file(str(state / "model.safetensors"))
    ema_before = torch.load(state / "ema.pt", weights_only=True)["shadow_params"]
    layer = next(k.split(".")[1] for k in before if k.endswith("hpfa.to_k.weight"))
    script = repo / "scripts" / "rescale_fusion_attention.py"
    env = {**os.environ, "PYTHONPATH": str(repo)}
    args = [sys.executable, str(script), "--config", str(config_file), "--state", str(state)]
    done = subprocess.run(
        [*args, "--layer", f"{layer}=4"], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    after = load_file(str(state / "model.safetensors"))
    ema_after = torch.load(state / "ema.pt", weights_only=True)["shadow_params"]
    names = [n for n, _ in build_model(cfg).named_parameters()]
    scaled = {f"fusion.{layer}.hpfa.to_q.weight", f"fusion.{layer}.hpfa.to_k.weight"}
    for i, name in enumerate(names):
        factor = 2.0 if name in scaled else 1.0
        torch.testing.assert_close(after[name], before[name] * factor, msg=name)
        torch.testing.assert_close(ema_after[i], ema_before[i] * factor, msg=name)
    bad = subprocess.run(
        [*args, "--layer", "no_such_layer=4"], capture_output=True, text=True, env=env, timeout=300
    )
    assert bad.returncode != 0 and "no_such_layer" in bad.stderr
    train(dataclasses.replace(cfg, max_steps=3), progress=False)  # resumes at step 2
    assert len(_losses(tmp_path / "run")) == 3


def test_a_training_step_reaches_every_trainable_module_and_no_frozen_one(tmp_path, vae_file):
    """METHOD.md Training: the TargetNet, the SourceNet, each fusion projection, the
    PoseEncoder and the context projection get gradients; the VAE and CLIP get none.

    The zero-initialised outputs (O_h, O_c, the PoseEncoder's last conv) get random weights
    first: at zero they stop every gradient upstream of them.
    """
    from truepose_core.clip_regions import ClipRegionEncoder
    from truepose_core.parsing import get_label_set
    from truepose_core.sampling import training_scheduler
    from truepose_core.train import (
        TrainingStep,
        build_clip,
        build_dataset,
        build_model,
        collate,
        load_vae,
        training_loss,
    )

    cfg = _config(tmp_path, vae_file, model={"resolution": [64, 40], "condition_drop": 0.0})
    model = build_model(cfg)
    randomize_zero_layers(model)
    config = model.config
    vae = load_vae(cfg.vae).eval().requires_grad_(False)
    clip = ClipRegionEncoder(build_clip(cfg, config), config.clip_image_size)
    dataset = build_dataset(cfg, config)
    batch = collate([dataset[i] for i in range(2)])
    loss = training_loss(
        TrainingStep(model),
        batch,
        vae,
        clip,
        training_scheduler(config),
        config,
        get_label_set(config.label_set),
        cfg,
        0,
        "cpu",
    )
    loss.backward()

    def reached(prefix: str) -> bool:
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(prefix)]
        assert grads, f"no parameters under {prefix}"
        return any(g is not None and bool(g.abs().sum() > 0) for g in grads)

    groups = ["target_unet.", "source_unet.", "pose_encoder.", "context_proj."]
    assert model.fusion, "the tiny model fuses no layer"
    for layer, fusion in model.fusion.items():
        for module in ("hpfa", "caa"):
            for proj, _ in getattr(fusion, module).named_children():
                groups.append(f"fusion.{layer}.{module}.{proj}.")
    missed = [g for g in groups if not reached(g)]
    assert not missed, f"no gradient reaches {missed}"
    frozen = list(vae.parameters()) + list(clip.parameters())
    assert all(p.grad is None for p in frozen)


def test_state_from_checkpoint_starts_a_run_from_a_released_file(tmp_path, vae_file):
    """scripts/state_from_checkpoint.py: the state holds the checkpoint's (EMA) weights, no
    AdamW moments and the checkpoint's step; the written VAE loads as the embedded one; the
    run continues from it; a config of another model or a folder with a state is refused."""
    from script_modules import script_module

    from truepose_core.train import load_vae

    script = script_module("state_from_checkpoint")
    cfg = _config(tmp_path, vae_file, max_steps=2, ema_decay=0.9)
    final = train(cfg, progress=False)
    loaded = load_truepose(final)
    follow = dataclasses.replace(
        cfg, output_dir=str(tmp_path / "next"), vae=str(tmp_path / "vae.safetensors"), max_steps=3
    )
    config_file = tmp_path / "next.json"
    config_file.write_text(json.dumps(dataclasses.asdict(follow)))
    args = ["--checkpoint", str(final), "--config", str(config_file)]
    assert script.main([*args, "--vae-out", follow.vae]) == 0
    state = tmp_path / "next" / "state-2"
    weights = load_file(str(state / "model.safetensors"))
    for name, value in loaded.model.state_dict().items():
        torch.testing.assert_close(weights[name], value, msg=name)
    assert torch.load(state / "optimizer.pt", weights_only=True)["state"] == {}
    ema = torch.load(state / "ema.pt", weights_only=True)["shadow_params"]
    torch.testing.assert_close(ema[0], next(iter(loaded.model.parameters())))
    vae = load_vae(follow.vae)
    for name, value in loaded.vae.state_dict().items():
        torch.testing.assert_close(vae.state_dict()[name], value, msg=name)
    train(follow, progress=False)  # resumes at the checkpoint's step 2
    rows = (tmp_path / "next" / "loss.csv").read_text().splitlines()
    assert rows[1].startswith("3,")  # the first step logged is the checkpoint's step 2 + 1
    with pytest.raises(SystemExit, match="holds a state already"):
        script.main(args)
    other = dataclasses.replace(
        follow, output_dir=str(tmp_path / "other"), model={"resolution": [64, 48]}
    )
    config_file.write_text(json.dumps(dataclasses.asdict(other)))
    with pytest.raises(SystemExit, match="resolution"):
        script.main(args)
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())
