"""``truepose generate``: a pair list through a checkpoint, batched, resumable and sharded.

Under ``accelerate launch`` each process takes every ``world``-th pair, so 8,570 DeepFashion
test pairs spread over all GPUs and nodes and no two processes write the same file. Each image
is written under a temporary name and renamed, and on a rerun an image that exists and
decodes is skipped, so an interrupted run (any process of it) resumes where it stopped.
``batch_size`` pairs are denoised together, one UNet call per step for the whole batch (both
CFG branches included); each pair's initial noise is seeded from (seed, pair index), so with
DDIM's ``eta == 0`` the result does not depend on the batch size or the number of processes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_file, is_complete_image
from .config import SamplingConfig
from .errors import CheckpointError

_log = logging.getLogger("truepose")


def shard(total: int, rank: int, world: int) -> list[int]:
    """The pair indices process ``rank`` of ``world`` generates; the shards are disjoint."""
    return list(range(rank, total, world))


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
    rank_world: tuple[int, int] | None = None,
) -> int:
    """Write ``<pair_id>.png`` for each pair of this process's shard; returns how many.

    The shard is cut into fixed batches of ``batch_size``; a batch with any image missing is
    run whole, so every image comes from the same batch as in an uninterrupted run.
    ``rank_world`` overrides the (process index, process count) of ``accelerate``.
    """
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
    rank, world = rank_world or (state.process_index, state.num_processes)
    mine = shard(total, rank, world)
    written = 0
    f = config.latent_factor
    for start in range(0, len(mine), batch_size):
        idx = mine[start : start + batch_size]
        todo = {i for i in idx if not _done(out_dir / f"{dataset.pair_id(i)}.png")}
        if not todo:
            continue
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
        for i, pair_id, array in zip(idx, batch["pair_ids"], arrays, strict=True):
            if i in todo:
                with atomic_file(out_dir / f"{pair_id}.png") as tmp:
                    Image.fromarray(array).save(tmp, format="PNG")
                written += 1
    return written


def _done(path: Path) -> bool:
    if not path.exists():
        return False
    if is_complete_image(path):
        return True
    _log.warning(f"{path}: does not decode; generating it again")
    return False
