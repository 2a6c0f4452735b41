"""The one weights module: safe reading by content, strict loading with named keys."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from truepose_core.errors import CheckpointError
from truepose_core.presets import synthfashion_vae_config
from truepose_core.train import load_vae
from truepose_core.weights import is_safetensors, load_strict, read_tensors


def test_container_is_told_by_contents_not_suffix(tmp_path):
    tensors = {"a": torch.arange(4.0), "b": torch.ones(2, 3)}
    st_named_pth = tmp_path / "weights.pth"
    save_file(tensors, str(st_named_pth))
    torch_named_st = tmp_path / "weights.safetensors"
    torch.save({"state_dict": tensors}, torch_named_st)
    assert is_safetensors(st_named_pth) and not is_safetensors(torch_named_st)
    for path in (st_named_pth, torch_named_st):
        loaded = read_tensors(path)
        assert loaded.keys() == tensors.keys()
        assert all(torch.equal(loaded[k], v) for k, v in tensors.items())


def test_truncated_safetensors_header_is_not_taken_for_one(tmp_path):
    path = tmp_path / "cut.safetensors"
    save_file({"a": torch.ones(64)}, str(path))
    path.write_bytes(path.read_bytes()[:20])
    assert not is_safetensors(path)
    with pytest.raises(CheckpointError, match="cut.safetensors: unreadable"):
        read_tensors(path)


def test_load_strict_names_every_kind_of_problem():
    module = torch.nn.Linear(3, 2)
    state = {"weight": torch.zeros(2, 4), "extra": torch.zeros(1)}
    with pytest.raises(CheckpointError) as err:
        load_strict(module, state, "thing.pth", prefix="part.", hint="use the right file")
    message = str(err.value)
    assert message.startswith("thing.pth: 1 missing keys ['part.bias']")
    assert "1 unexpected keys ['part.extra']" in message
    assert "part.weight: file (2, 4) vs model (2, 3)" in message
    assert message.endswith("; use the right file")
    load_strict(module, {"weight": torch.ones(2, 3)}, "thing.pth", may_lack=("bias",))
    assert torch.equal(module.weight, torch.ones(2, 3))


def _vae_file(tmp_path, drop: str | None = None):
    from diffusers import AutoencoderKL

    config = synthfashion_vae_config()
    vae = AutoencoderKL.from_config(config)
    state = {k: v.contiguous() for k, v in vae.state_dict().items() if k != drop}
    path = tmp_path / "vae.safetensors"
    save_file(state, str(path), metadata={"vae_config": json.dumps(config)})
    return path, vae


def test_load_vae_loads_strictly_and_names_missing_keys(tmp_path):
    path, vae = _vae_file(tmp_path)
    loaded = load_vae(str(path))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in vae.state_dict().items())
    key = next(iter(vae.state_dict()))
    path, _ = _vae_file(tmp_path, drop=key)
    with pytest.raises(
        CheckpointError, match=rf"vae .*vae.safetensors: 1 missing keys \['{key}'\]"
    ):
        load_vae(str(path))


def test_no_import_circle_between_checkpoint_and_clip_regions():
    code = (
        "import sys, truepose_core.clip_regions; print('truepose_core.checkpoint' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
