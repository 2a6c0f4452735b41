"""``truepose generate``: a pair list through a checkpoint, batched, resumable and sharded.

Under ``accelerate launch`` each process takes every ``world``-th pair, so 8,570 DeepFashion
test pairs spread over all GPUs and nodes; an image that already exists is skipped, so an
interrupted run resumes where it stopped. ``batch_size`` pairs are denoised together, one
UNet call per step for the whole batch (both CFG branches included); each pair's initial
noise is seeded from (seed, pair index), so with DDIM's ``eta == 0`` the result does not
depend on the batch size or the number of processes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config import SamplingConfig
from .errors import CheckpointError


def _pipeline(checkpoint: Path, vae: str, clip: str, device: torch.device):
    from .checkpoint import load_truepose
    from .clip_regions import ClipRegionEncoder, load_clip_vision
    from .pipeline import TruePosePipeline
    from .train import load_vae

    loaded = load_truepose(checkpoint, device=device)
    vae_model = loaded.vae if not vae else load_vae(vae).to(device)
    visual = loaded.clip if not clip else load_clip_vision(loaded.config, clip).to(device)
    if vae_model is None or visual is None:
        raise CheckpointError(
            f"{checkpoint}: embeds no VAE/CLIP; pass --vae (SD1.5 VAE) and --clip (open_clip "
            f"{loaded.config.clip_model} weights)"
        )
    encoder = ClipRegionEncoder(visual, loaded.config.clip_image_size).to(device)
    return TruePosePipeline(loaded.model, vae_model.eval(), encoder)


def generate_pairs(
    checkpoint: Path,
    data: str,
    root: str,
    out_dir: Path,
    split: str = "test",
    limit: int = 0,
    batch_size: int = 8,
    steps: int = SamplingConfig.steps,
    cfg_scale: float = SamplingConfig.cfg_scale,
    seed: int = 0,
    vae: str = "",
    clip: str = "",
) -> int:
    """Write ``<pair_id>.png`` for each pair of this process's shard; returns how many."""
    from accelerate import PartialState

    from .data.batch import pair_batch
    from .sampling import pair_noise, sample
    from .train import TrainConfig, build_dataset

    state = PartialState()
    pipe = _pipeline(checkpoint, vae, clip, state.device)
    config = pipe.config
    h, w = config.resolution
    dataset = build_dataset(
        TrainConfig(data=data, data_root=root, train_pairs=limit or 500, seed=seed),
        config,
        split=split,
    )
    total = min(len(dataset), limit) if limit else len(dataset)
    out_dir.mkdir(parents=True, exist_ok=True)
    mine = list(range(state.process_index, total, state.num_processes))
    todo = [i for i in mine if not (out_dir / f"{dataset.pair_id(i)}.png").exists()]
    written = 0
    f = config.latent_factor
    for start in range(0, len(todo), batch_size):
        idx = todo[start : start + batch_size]
        batch = pair_batch([dataset[i] for i in idx])
        with torch.no_grad():
            encoding = pipe.encode_source(batch["sources"], batch["parsing"])
            fusion = pipe.prepare(encoding, batch["poses"], (h, w))
            latent_hw = (h // f, w // f)
            channels = pipe.model.target_unet.config.in_channels
            noise = pair_noise([seed * 1_000_003 + i for i in idx], channels, latent_hw)
            settings = SamplingConfig(steps=steps, cfg_scale=cfg_scale, seed=seed)
            latents = sample(pipe.model, fusion, latent_hw, settings, noise=noise)
            images = pipe.decode_latents(latents)
        arrays = (images.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        for pair_id, array in zip(batch["pair_ids"], arrays, strict=True):
            Image.fromarray(array).save(out_dir / f"{pair_id}.png")
            written += 1
    return written
