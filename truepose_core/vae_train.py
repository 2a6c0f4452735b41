"""``truepose train-vae``: a small VAE for SynthFashion.

Stable Diffusion's VAE cannot be downloaded everywhere, so the self-contained SynthFashion
model brings its own. Two kinds:

- ``patch`` (the default): a :class:`~.patch_vae.PatchVAE`, SD's /8 grid with 36
  principal components per cell, fitted in closed form on ``images`` training images.
- ``kl``: a diffusers ``AutoencoderKL`` with SD's /8 downsampling and 4 latent channels,
  fitted with L1 + MSE reconstruction and a small KL term (the first shipped model's VAE;
  it cannot hold thin stripes, see the README).

Like SD's 0.18215, the scale that gives unit-variance latents is measured at the end and
stored with the weights.

The ``kl`` kind saves ``state-<step>`` folders beside the output (``<output stem>-states/``)
and resumes from the newest complete one. Data and any noise of a step come from (seed,
step), so a resumed run takes exactly the steps an uninterrupted one would. The ``patch`` fit
has no steps; a killed fit is simply run again. Either output is replaced atomically.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class VAETrainConfig:
    output: str = "runs/vae/vae.safetensors"
    size: tuple[int, int] = (128, 88)
    images: int = 4000
    batch_size: int = 16
    lr: float = 1e-3
    steps: int = 1500
    max_minutes: float = 0.0
    kl_weight: float = 1e-6
    chroma_weight: float = 2.0
    seed: int = 0
    #: A VAE file written by this command to continue from (empty: random initialisation).
    init: str = ""
    #: "patch" (closed-form PatchVAE) or "kl" (AutoencoderKL trained by gradient).
    kind: str = "patch"
    #: PatchVAE: principal components kept per 8x8 cell (0: the preset's).
    latent_channels: int = 0
    #: ``kl``: steps between resumable states; a state is also saved at the end of every run.
    save_every: int = 100


def fit_patch_vae(cfg: VAETrainConfig):
    """PCA of the 8x8 cells of ``cfg.images`` training images (sources and targets)."""
    from .data.synthfashion import SynthFashion
    from .patch_vae import PatchVAE
    from .presets import synthfashion_patch_vae_config

    config = synthfashion_patch_vae_config()
    if cfg.latent_channels:
        config["latent_channels"] = cfg.latent_channels
    data = SynthFashion(size=tuple(cfg.size), length=cfg.images, seed=cfg.seed + 101, split="train")
    images = []
    for i in range(len(data)):
        item = data[i]
        images += [item["source_image"], item["target_image"]]
    return PatchVAE.from_config(config).fit(torch.stack(images)), config, data


def state_folder(output: str | Path) -> Path:
    """Where a run writing ``output`` keeps its ``state-*`` folders."""
    output = Path(output)
    return output.with_name(f"{output.stem}-states")


def train_vae(cfg: VAETrainConfig, progress: bool = True, resume: bool = True) -> Path:
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from . import atomic, run_state
    from .data.synthfashion import SynthFashion
    from .presets import synthfashion_vae_config
    from .train import step_generator

    torch.manual_seed(cfg.seed)
    if cfg.kind == "patch":
        vae, vae_config, data = fit_patch_vae(cfg)
        return _save(cfg, vae, vae_config, data)
    if cfg.kind != "kl":
        from .errors import ConfigError

        raise ConfigError(f"train-vae: kind must be 'patch' or 'kl', got {cfg.kind!r}")
    vae_config = synthfashion_vae_config()
    if cfg.init:
        from .train import load_vae

        vae = load_vae(cfg.init).train()
        vae_config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    else:
        vae = AutoencoderKL.from_config(vae_config).train()
    data = SynthFashion(size=tuple(cfg.size), length=cfg.images, seed=cfg.seed + 101, split="train")
    optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.steps)
    states = state_folder(cfg.output)
    step = 0
    state = run_state.latest_state(states) if resume else None
    atomic.remove_temporaries(states)
    if state is not None:
        step = int(run_state.read_record(state)["step"])
        run_state.load_weights(state, "vae.safetensors", vae)
        optimizer.load_state_dict(run_state.load_torch(state, "optimizer.pt"))
        sched.load_state_dict(run_state.load_torch(state, "scheduler.pt"))
    saved_step = step if state is not None else -1

    def write_state(folder: Path) -> None:
        save_file(
            {k: v.detach().contiguous() for k, v in vae.state_dict().items()},
            str(folder / "vae.safetensors"),
        )
        torch.save(optimizer.state_dict(), folder / "optimizer.pt")
        torch.save(sched.state_dict(), folder / "scheduler.pt")

    started = time.monotonic()
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="vae")
    while step < cfg.steps:
        if cfg.max_minutes and (time.monotonic() - started) / 60 > cfg.max_minutes:
            break
        # Anything in a step that draws from torch's global generator draws from (seed, step).
        torch.manual_seed(int(step_generator(cfg.seed, step, 2).initial_seed()))
        gen = step_generator(cfg.seed, step, 1)
        idx = torch.randint(0, len(data), (cfg.batch_size // 2,), generator=gen).tolist()
        items = [data[i] for i in idx]
        x = torch.stack([it["source_image"] for it in items] + [it["target_image"] for it in items])
        posterior = vae.encode(x).latent_dist
        # Decode the mean: sampling from a posterior whose variance starts at 1 hides the
        # image from the decoder for thousands of steps; the KL term keeps latents bounded.
        recon = vae.decode(posterior.mean).sample
        # Colour differences are small next to luminance edges, so a tiny VAE learns them
        # last; an extra L1 on the chroma (each channel minus the pixel's mean) brings them in.
        chroma = F.l1_loss(recon - recon.mean(1, keepdim=True), x - x.mean(1, keepdim=True))
        loss = (
            F.l1_loss(recon, x)
            + F.mse_loss(recon, x)
            + cfg.chroma_weight * chroma
            + cfg.kl_weight * posterior.kl().mean()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sched.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss):.4f}")
        if cfg.save_every and step % cfg.save_every == 0:
            run_state.save_state(states, step, write_state)
            saved_step = step
    bar.close()
    if saved_step != step:  # a run stopped by max_minutes continues from here next time
        run_state.save_state(states, step, write_state)
    return _save(cfg, vae, vae_config, data)


def _save(cfg: VAETrainConfig, vae, vae_config: dict, data) -> Path:
    vae.eval()
    with torch.no_grad():
        probe = torch.stack([data[i]["source_image"] for i in range(min(64, len(data)))])
        latent_scale = float(1.0 / vae.encode(probe).latent_dist.mean.std())
    return write_vae_file(
        cfg.output, vae, vae_config, latent_scale, {"train_config": json.dumps(asdict(cfg))}
    )


def write_vae_file(
    path: str | Path,
    vae: torch.nn.Module,
    vae_config: dict,
    latent_scale: float,
    extra: dict[str, str] | None = None,
) -> Path:
    """A VAE file as ``truepose train-vae`` writes it and the trainer's ``vae`` option reads it."""
    from safetensors.torch import save_file

    from . import atomic

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "vae_config": json.dumps(vae_config, sort_keys=True),
        # Like SD's 0.18215: scales latents to unit variance; the trainer adopts it.
        "latent_scale": repr(latent_scale),
        **(extra or {}),
    }
    state = {k: v.detach().contiguous() for k, v in vae.state_dict().items()}
    with atomic.atomic_file(out) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return out
