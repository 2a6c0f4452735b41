"""``truepose train-vae --kind kl`` resumes from its newest state exactly as if never stopped."""

import shutil

import torch
from safetensors.torch import load_file

from truepose_core.checkpoint import read_metadata
from truepose_core.vae_train import VAETrainConfig, state_folder, train_vae


def _config(folder, **changes):
    base = dict(output=str(folder / "vae.safetensors"), size=(64, 64), images=8, batch_size=2)
    return VAETrainConfig(**{**base, "kind": "kl", "steps": 4, "save_every": 2, **changes})


def test_a_run_resumed_from_a_state_ends_bit_equal(tmp_path):
    straight = _config(tmp_path / "a")
    train_vae(straight, progress=False)
    states = state_folder(straight.output)
    assert sorted(p.name for p in states.iterdir()) == ["state-2", "state-4"]
    # As if killed after the save of step 2: only that state is there, and no output yet.
    resumed = _config(tmp_path / "b")
    shutil.copytree(states / "state-2", state_folder(resumed.output) / "state-2")
    train_vae(resumed, progress=False)
    a, b = load_file(straight.output), load_file(resumed.output)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    scale = read_metadata(straight.output)["latent_scale"]
    assert read_metadata(resumed.output)["latent_scale"] == scale
    # Run again when finished: it resumes at the end and writes the same weights.
    train_vae(resumed, progress=False)
    c = load_file(resumed.output)
    assert all(torch.equal(a[k], c[k]) for k in a)
