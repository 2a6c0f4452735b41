"""The checkpoint format: exact round trip and errors that name the file and the keys."""

import json
import pickle

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file, save_file

from tests.tiny_models import randomize_zero_layers, tiny_model
from truepose_core.checkpoint import load_truepose, read_state_dict, save_truepose, unet_from_sd15
from truepose_core.clip_regions import build_clip_vision
from truepose_core.config import TruePoseConfig
from truepose_core.errors import CheckpointError, ConfigError
from truepose_core.presets import build_tiny_unet, tiny_vae_config


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny_model()
    randomize_zero_layers(model)
    vae = AutoencoderKL.from_config(tiny_vae_config())
    clip = build_clip_vision(model.config)
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_truepose(path, model, vae=vae, clip=clip)
    return path, model, vae, clip


def _rewrite(src, dst, edit_tensors=None, edit_meta=None):
    from safetensors import safe_open

    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(src))
    if edit_tensors:
        edit_tensors(tensors)
    if edit_meta:
        edit_meta(meta)
    save_file(tensors, str(dst), metadata=meta)
    return dst


def test_round_trip_is_exact(saved):
    path, model, vae, clip = saved
    loaded = load_truepose(path)
    assert loaded.config == model.config
    for a, b in ((loaded.model, model), (loaded.vae, vae), (loaded.clip, clip)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_keys_are_prefixed(saved):
    keys = load_file(str(saved[0])).keys()
    prefixes = {k.split(".")[0] for k in keys}
    assert prefixes == {
        "target_unet",
        "source_unet",
        "fusion",
        "pose_encoder",
        "context_proj",
        "vae",
        "clip",
    }
    assert any(k.startswith("fusion.input_1_0.hpfa.to_out") for k in keys)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nothere.safetensors: no such file"):
        load_truepose(tmp_path / "nothere.safetensors")


def test_truncated_file_is_named(saved, tmp_path):
    data = saved[0].read_bytes()
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        load_truepose(bad)


def test_missing_fusion_keys_are_listed(saved, tmp_path):
    def drop(t):
        for k in [k for k in t if k.startswith("fusion.middle_0_0.caa.")]:
            del t[k]

    bad = _rewrite(saved[0], tmp_path / "missing.safetensors", drop)
    with pytest.raises(
        CheckpointError, match=r"missing.safetensors: 5 missing keys .*fusion\.middle_0_0\.caa"
    ):
        load_truepose(bad)


def test_unexpected_keys_are_listed(saved, tmp_path):
    def add(t):
        t["fusion.extra_layer.weight"] = torch.zeros(2)
        t["lora.up"] = torch.zeros(2)

    bad = _rewrite(saved[0], tmp_path / "extra.safetensors", add)
    with pytest.raises(CheckpointError, match=r"unexpected keys.*lora\.up"):
        load_truepose(bad)


def test_missing_or_invalid_config_metadata(saved, tmp_path):
    bad = _rewrite(
        saved[0], tmp_path / "nometa.safetensors", edit_meta=lambda m: m.pop("truepose_config")
    )
    with pytest.raises(
        CheckpointError, match="nometa.safetensors: metadata has no 'truepose_config'"
    ):
        load_truepose(bad)

    def unknown(m):
        cfg = json.loads(m["truepose_config"])
        cfg["warp_factor"] = 9
        m["truepose_config"] = json.dumps(cfg)

    bad = _rewrite(saved[0], tmp_path / "unknown.safetensors", edit_meta=unknown)
    with pytest.raises(CheckpointError, match="unknown keys \\['warp_factor'\\]"):
        load_truepose(bad)
    bad = _rewrite(
        saved[0],
        tmp_path / "notjson.safetensors",
        edit_meta=lambda m: m.update(truepose_config="{"),
    )
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_truepose(bad)


def test_foreign_files_are_refused(tmp_path):
    unet = build_tiny_unet()
    plain = tmp_path / "sd_unet.safetensors"
    save_file(unet.state_dict(), str(plain))
    with pytest.raises(CheckpointError, match="not a TruePose checkpoint"):
        load_truepose(plain)


def test_sdxl_like_unet_config_is_refused(saved, tmp_path):
    def sdxl(m):
        cfg = json.loads(m["unet_config"])
        cfg["addition_embed_type"] = "text_time"
        m["unet_config"] = json.dumps(cfg)

    bad = _rewrite(saved[0], tmp_path / "xl.safetensors", edit_meta=sdxl)
    with pytest.raises(CheckpointError, match="SDXL"):
        load_truepose(bad)


def test_shape_mismatch_names_key(saved, tmp_path):
    def widen(t):
        t["pose_encoder.layers.0.weight"] = torch.zeros(9, 3, 3, 3)

    bad = _rewrite(saved[0], tmp_path / "shape.safetensors", widen)
    with pytest.raises(CheckpointError, match=r"pose_encoder\.layers\.0\.weight"):
        load_truepose(bad)


def test_pickle_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        pickle.dump({"state_dict": Evil()}, f)
    with pytest.raises(CheckpointError, match="evil.pth: refused to load"):
        read_state_dict(path)


def test_sd2_and_sdxl_single_files_are_refused(tmp_path):
    base = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    sd2 = tmp_path / "sd2.safetensors"
    save_file({base: torch.zeros(320, 1024)}, str(sd2))
    with pytest.raises(CheckpointError, match="SD2 uses 1024"):
        unet_from_sd15(sd2)
    sdxl = tmp_path / "sdxl.safetensors"
    save_file({"model.diffusion_model.label_emb.0.0.weight": torch.zeros(2, 2)}, str(sdxl))
    with pytest.raises(CheckpointError, match="SDXL"):
        unet_from_sd15(sdxl)


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match="unknown keys"):
        TruePoseConfig.from_dict({"sigmaa": 0.3})
    with pytest.raises(ConfigError, match="fusion_mode"):
        TruePoseConfig(fusion_mode="magic")
    cfg = TruePoseConfig(layers=["input_1_0"], resolution=[256, 176])
    assert TruePoseConfig.from_json(cfg.to_json()) == cfg


def test_half_precision_file_loads_into_float32(saved, tmp_path):
    _, model, vae, clip = saved
    path = save_truepose(
        tmp_path / "half.safetensors", model, vae=vae, clip=clip, dtype=torch.float16
    )
    assert load_file(str(path))["pose_encoder.layers.0.weight"].dtype == torch.float16
    loaded = load_truepose(path)
    w = loaded.model.pose_encoder.layers[0].weight
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, model.pose_encoder.layers[0].weight, atol=1e-3, rtol=1e-3)
