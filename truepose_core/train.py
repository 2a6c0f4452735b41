"""``truepose train``: the TruePose trainer (paper 4.4) on accelerate.

One process on a CPU, one GPU, or many GPUs and nodes under ``accelerate launch``. Loss: MSE
between the sampled noise and the TargetNet's prediction; with probability ``condition_drop``
all source conditions of a row are dropped together (the pose stays). Data order, noise,
timesteps and drops come from generators seeded by (seed, step), so a resumed run takes
exactly the steps an uninterrupted one would.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .clip_regions import ClipRegionEncoder, RegionEmbeddings, build_clip_vision
from .config import TruePoseConfig
from .errors import ConfigError, DataError
from .model import TruePoseModel
from .parsing import get_label_set, selection_mask
from .sampling import SD15_SCHEDULER


@dataclass(frozen=True)
class TrainConfig:
    """A training run; read from a TOML or JSON file, unknown keys raise."""

    output_dir: str = "runs/truepose"
    data: str = "synthfashion"  # "synthfashion" or "deepfashion"
    data_root: str = ""
    train_pairs: int = 2000  # SynthFashion only: pairs per epoch
    #: "tiny" builds the small SD1.5-layout UNet of ``unet`` below; a path loads SD1.5 weights
    #: (a diffusers folder or a single .safetensors/.ckpt file).
    init: str = "tiny"
    unet: dict[str, Any] = field(default_factory=dict)
    #: A VAE checkpoint written by ``truepose train-vae`` or a diffusers AutoencoderKL folder.
    vae: str = ""
    #: "tiny" (a frozen, randomly initialised small open_clip tower) or an open_clip file.
    clip: str = "tiny"
    model: dict[str, Any] = field(default_factory=dict)  # TruePoseConfig overrides
    batch_size: int = 8
    lr: float = 1e-5
    weight_decay: float = 1e-2
    epochs: int = 50
    max_steps: int = 0  # 0: run all epochs
    max_minutes: float = 0.0  # 0: no wall-clock budget
    mixed_precision: str = "no"  # "no", "fp16", "bf16"
    gradient_checkpointing: bool = False
    ema_decay: float = 0.0  # 0: no EMA
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    save_every: int = 500
    embed_vae_and_clip: bool = True
    #: Precision of the saved checkpoints' tensors ("" keeps float32; "float16" halves them).
    checkpoint_dtype: str = ""

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--config {path}: no such file")
        text = path.read_text()
        try:
            if path.suffix == ".toml":
                import tomllib  # Python >= 3.11

                data = tomllib.loads(text)
            else:
                data = json.loads(text)
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"--config {path}: cannot parse ({exc})") from exc
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "train config") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; known keys are {sorted(known)}")
        return cls(**data)


def vae_latent_scale(path: str) -> float | None:
    """The latent scale a ``truepose train-vae`` file measured for itself, if any."""
    from .checkpoint import read_metadata

    if not path or Path(path).is_dir():
        return None
    value = read_metadata(path).get("latent_scale")
    return float(value) if value else None


def truepose_config(train: TrainConfig) -> TruePoseConfig:
    from .presets import tiny_truepose_config

    base = tiny_truepose_config() if train.init == "tiny" else TruePoseConfig()
    scale = vae_latent_scale(train.vae)
    if scale is not None and "latent_scale" not in train.model:
        base = base.replace(latent_scale=scale)
    try:
        return base.replace(**train.model)
    except TypeError as exc:
        raise ConfigError(f"train config [model]: {exc}") from exc


def build_model(train: TrainConfig) -> TruePoseModel:
    from .checkpoint import unet_from_sd15
    from .presets import build_tiny_unet

    config = truepose_config(train)
    if train.init == "tiny":
        unet = build_tiny_unet(train.seed, **train.unet)
    else:
        unet = unet_from_sd15(train.init)
    return TruePoseModel.from_unet(config, unet)


def build_clip(train: TrainConfig, config: TruePoseConfig) -> nn.Module:
    from .clip_regions import load_clip_vision

    if train.clip == "tiny":
        torch.manual_seed(train.seed + 1)
        return build_clip_vision(config).eval().requires_grad_(False)
    return load_clip_vision(config, train.clip)


def load_vae(path: str):
    from diffusers import AutoencoderKL

    from .checkpoint import read_metadata, read_state_dict

    if not path:
        raise ConfigError("train config: 'vae' is empty; train one with 'truepose train-vae' first")
    p = Path(path)
    if p.is_dir():
        folder = p / "vae" if (p / "vae").is_dir() else p
        return AutoencoderKL.from_pretrained(str(folder), local_files_only=True)
    meta = read_metadata(p)
    if "vae_config" not in meta:
        raise ConfigError(f"vae {p}: no 'vae_config' metadata; not written by truepose train-vae")
    vae = AutoencoderKL.from_config(json.loads(meta["vae_config"]))
    state = read_state_dict(p)
    state = {k.removeprefix("vae."): v for k, v in state.items()}
    vae.load_state_dict(state, strict=True)
    return vae


def build_dataset(train: TrainConfig, config: TruePoseConfig, split: str = "train"):
    if train.data == "synthfashion":
        from .data.synthfashion import SynthFashion

        return SynthFashion(
            size=tuple(config.resolution), length=train.train_pairs, seed=train.seed, split=split
        )
    if train.data == "deepfashion":
        from .data.deepfashion import DeepFashionPairs

        return DeepFashionPairs(train.data_root, split, resolution=tuple(config.resolution))
    raise ConfigError(f"train config: data {train.data!r} must be 'synthfashion' or 'deepfashion'")


def selection_masks(parsing: torch.Tensor, keypoints: torch.Tensor, label_set) -> torch.Tensor:
    """M for each row: the source parsing under the target pose's visible parts."""
    from .data.batch import keypoints_to_pose

    h, w = parsing.shape[-2:]
    return selection_mask(parsing, [keypoints_to_pose(kp, w, h) for kp in keypoints], label_set)


class TrainingStep(nn.Module):
    """forward() = one noise prediction, so DDP sees every trainable module in one call."""

    def __init__(self, model: TruePoseModel):
        super().__init__()
        self.model = model

    def forward(self, source_latents, regions, parsing, masks, skeletons, noisy, timesteps, keep):
        encoding = self.model.encode_source(source_latents, regions, parsing)
        state = self.model.prepare(encoding, masks, skeletons)
        rows = torch.arange(noisy.shape[0], device=noisy.device)
        return self.model.predict_noise(noisy, timesteps, state, rows, keep)


def step_generator(seed: int, step: int, what: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed((seed * 1_000_003 + step) * 16 + what)


def step_randomness(
    generator: torch.Generator, latent_shape: torch.Size, num_timesteps: int, drop_rate: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noise, timesteps and the rows that keep their source conditions (1 - eta of them)."""
    b = latent_shape[0]
    noise = torch.randn(latent_shape, generator=generator)
    timesteps = torch.randint(0, num_timesteps, (b,), generator=generator)
    keep = torch.rand(b, generator=generator) >= drop_rate
    return noise, timesteps, keep


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch)).tolist()


def batch_indices(n: int, batch: int, seed: int, step: int, rank: int, world: int) -> list[int]:
    """The dataset indices of a global step for this process: a pure function of the step."""
    per_epoch = max(1, n // (batch * world))
    epoch, within = divmod(step, per_epoch)
    order = epoch_order(n, seed, epoch)
    start = (within * world + rank) * batch
    return order[start : start + batch]


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out


class LossLog:
    """loss.csv plus a loss.png plot, rewritten at each save."""

    def __init__(self, out_dir: Path, resume_step: int):
        self.path = out_dir / "loss.csv"
        rows = []
        if self.path.is_file():
            with self.path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, ["step", "loss", "lr", "seconds"])
            writer.writeheader()
            writer.writerows(rows)

    def append(self, step: int, loss: float, lr: float, seconds: float) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([step, f"{loss:.6f}", lr, f"{seconds:.1f}"])

    def plot(self) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        with self.path.open() as f:
            rows = list(csv.DictReader(f))
        if not rows:
            return
        steps = [int(r["step"]) for r in rows]
        losses = [float(r["loss"]) for r in rows]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(steps, losses, lw=0.8)
        ax.set_xlabel("step")
        ax.set_ylabel("MSE loss")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(self.path.with_suffix(".png"), dpi=100)
        plt.close(fig)


def _latest_state(out_dir: Path) -> Path | None:
    states = sorted(out_dir.glob("state-*"), key=lambda p: int(p.name.split("-")[1]))
    return states[-1] if states else None


def train(cfg: TrainConfig, *, resume: bool = True, progress: bool = True) -> Path:
    """Run (or resume) training; returns the path of the final checkpoint."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from diffusers import DDPMScheduler
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    from .checkpoint import save_truepose

    # A batch whose rows all drop their conditions leaves the fusion modules without gradients;
    # DDP must be told that some parameters may go unused in a step.
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        cpu=not torch.cuda.is_available(),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(cfg)
    config = model.config
    label_set = get_label_set(config.label_set)
    vae = load_vae(cfg.vae).eval().requires_grad_(False)
    clip_visual = build_clip(cfg, config)
    clip = ClipRegionEncoder(clip_visual, config.clip_image_size)
    dataset = build_dataset(cfg, config)
    if len(dataset) < cfg.batch_size * accelerator.num_processes:
        raise DataError(f"data set has {len(dataset)} pairs, fewer than one global batch")
    if cfg.gradient_checkpointing:
        model.target_unet.enable_gradient_checkpointing()
        if model.source_unet is not None:
            model.source_unet.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = None
    if cfg.ema_decay > 0:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(model.parameters(), decay=cfg.ema_decay)

    step = 0
    state_dir = _latest_state(out_dir) if resume else None
    if state_dir is not None:
        model.load_state_dict(load_file(str(state_dir / "model.safetensors")), strict=True)
        optimizer.load_state_dict(
            torch.load(state_dir / "optimizer.pt", map_location="cpu", weights_only=True)
        )
        if ema is not None and (state_dir / "ema.pt").is_file():
            ema.load_state_dict(torch.load(state_dir / "ema.pt", weights_only=True))
        step = json.loads((state_dir / "trainer.json").read_text())["step"]

    runner = TrainingStep(model)
    runner, optimizer = accelerator.prepare(runner, optimizer)
    device = accelerator.device
    vae.to(device)
    clip.to(device)
    if ema is not None:
        ema.to(device)
    ddpm_keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
    scheduler = DDPMScheduler(**{k: SD15_SCHEDULER[k] for k in ddpm_keys})
    steps_per_epoch = max(1, len(dataset) // (cfg.batch_size * accelerator.num_processes))
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    log = LossLog(out_dir, step) if accelerator.is_main_process else None
    bar = tqdm(total=total, initial=step, disable=not (progress and accelerator.is_main_process))
    started = time.monotonic()
    running = []

    def save(tag: str) -> Path:
        unwrapped = accelerator.unwrap_model(runner).model
        ckpt = out_dir / f"{tag}.safetensors"
        if not accelerator.is_main_process:
            return ckpt
        state = out_dir / f"state-{step}"
        state.mkdir(exist_ok=True)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in unwrapped.state_dict().items()},
            str(state / "model.safetensors"),
        )
        torch.save(optimizer.state_dict(), state / "optimizer.pt")
        if ema is not None:
            torch.save(ema.state_dict(), state / "ema.pt")
        (state / "trainer.json").write_text(json.dumps({"step": step}))
        for old in out_dir.glob("state-*"):
            if old != state:
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
        embed = cfg.embed_vae_and_clip
        meta = {
            "train_config": json.dumps(dataclasses.asdict(cfg), sort_keys=True),
            "step": str(step),
        }
        if ema is not None:
            ema.store(unwrapped.parameters())
            ema.copy_to(unwrapped.parameters())
        save_truepose(
            ckpt,
            unwrapped,
            vae=vae if embed else None,
            clip=clip_visual if embed else None,
            metadata=meta,
            dtype=getattr(torch, cfg.checkpoint_dtype) if cfg.checkpoint_dtype else None,
        )
        if ema is not None:
            ema.restore(unwrapped.parameters())
        log.plot()
        return ckpt

    runner.train()
    while step < total:
        if cfg.max_minutes and (time.monotonic() - started) / 60 > cfg.max_minutes:
            break
        idx = batch_indices(
            len(dataset),
            cfg.batch_size,
            cfg.seed,
            step,
            accelerator.process_index,
            accelerator.num_processes,
        )
        batch = collate([dataset[i] for i in idx])
        loss = training_loss(
            runner, batch, vae, clip, scheduler, config, label_set, cfg, step, device
        )
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(accelerator.unwrap_model(runner).model.parameters())
        step += 1
        running.append(float(loss.detach()))
        bar.update(1)
        if step % cfg.log_every == 0 or step == total:
            mean = sum(running) / len(running)
            running.clear()
            bar.set_postfix(loss=f"{mean:.4f}")
            if log is not None:
                log.append(step, mean, cfg.lr, time.monotonic() - started)
        if cfg.save_every and step % cfg.save_every == 0:
            save("latest")
    bar.close()
    final = save("final")
    accelerator.wait_for_everyone()
    return final


def training_loss(runner, batch, vae, clip, scheduler, config, label_set, cfg, step, device):
    """MSE of eq. 2/10 for one batch, with joint condition dropout (METHOD.md Training)."""
    g_noise = step_generator(cfg.seed, step, 0)
    source = batch["source_image"].to(device)
    target = batch["target_image"].to(device)
    parsing = batch["source_parsing"].to(device)
    with torch.no_grad():
        vae_dtype = next(vae.parameters()).dtype
        z_s = vae.encode(source.to(vae_dtype)).latent_dist.mean * config.latent_scale
        z_t = vae.encode(target.to(vae_dtype)).latent_dist.mean * config.latent_scale
        regions: RegionEmbeddings = clip((source + 1) / 2, parsing, label_set)
        masks = selection_masks(batch["source_parsing"], batch["target_keypoints"], label_set)
    noise, timesteps, keep = step_randomness(
        g_noise, z_t.shape, scheduler.config.num_train_timesteps, config.condition_drop
    )
    noise, timesteps, keep = noise.to(device, z_t.dtype), timesteps.to(device), keep.to(device)
    noisy = scheduler.add_noise(z_t, noise, timesteps)
    skeletons = batch["target_skeleton"].to(device)
    pred = runner(z_s, regions, parsing, masks.to(device), skeletons, noisy, timesteps, keep)
    loss = F.mse_loss(pred.float(), noise.float())
    if not math.isfinite(float(loss.detach())):
        raise FloatingPointError(f"training loss became {float(loss.detach())} at step {step}")
    return loss
