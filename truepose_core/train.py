"""``truepose train``: the TruePose trainer (paper 4.4) on accelerate.

One process on a CPU, one GPU, or many GPUs and nodes under ``accelerate launch``. Loss: MSE
between the sampled noise and the TargetNet's prediction; with probability ``condition_drop``
all source conditions of a row are dropped together (the pose stays). Data order, noise,
timesteps and drops come from generators seeded by (seed, step), so a resumed run takes
exactly the steps an uninterrupted one would.
"""

from __future__ import annotations

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

from . import atomic, run_state
from .clip_regions import ClipRegionEncoder, RegionEmbeddings, build_clip_vision
from .config import TruePoseConfig
from .errors import ConfigError, DataError
from .model import TruePoseModel
from .parsing import get_label_set, selection_mask
from .run_state import DEFAULT_KEEP
from .sampling import training_scheduler
from .weights import load_strict, read_metadata, read_tensors


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
    #: Learning-rate factor of the fusion modules (HPFA and CAA). Their output projections
    #: start at zero, so the TargetNet learns the pose long before it learns to read the
    #: source; a factor above 1 lets the fusion catch up. 1 keeps one parameter group.
    fusion_lr_scale: float = 1.0
    #: Standard deviation of a per-image, per-channel constant added to the training noise
    #: ("offset noise", diffusers' ``noise_offset``; 0: none). A small latent shows its mean
    #: colour through the noise of the first sampling steps; the offset hides it, so that the
    #: model learns to take the colours from the source instead of from the starting noise.
    noise_offset: float = 0.0
    #: Grids of the offset: 1 is the constant above; g adds a g x g grid of such values,
    #: bilinearly spread over the latent, which hides the colours of larger regions (a
    #: garment) as 1 hides the mean. Each grid adds ``noise_offset`` of standard deviation.
    noise_offset_grids: tuple[int, ...] = (1,)
    #: Cosine learning-rate decay over ``lr_decay_steps`` steps from step ``lr_decay_start``
    #: down to ``lr_final_scale`` x the lr, then held there (0 steps: a constant lr). A pure
    #: function of the step, so a resumed run follows the same curve, and a constant-lr run
    #: can be continued with a decay that starts where it stopped.
    lr_decay_steps: int = 0
    lr_decay_start: int = 0
    lr_final_scale: float = 0.0
    #: Fraction of each batch's rows whose source is replaced by their own target (image,
    #: parsing, keypoints): "self pairs", a training-data curriculum the paper does not use.
    #: In a self pair every target token has an exact match in the source, meant as a strong
    #: signal for eq. 8 to learn correspondences (on SynthFashion it barely did: README, "Why
    #: not further"); 0 trains on the pairs alone. Which rows are self pairs is a pure
    #: function of the step, so a resumed run repeats them.
    self_pair_fraction: float = 0.0
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    save_every: int = 500
    #: ``state-*`` folders kept after a save; more than one leaves a fallback if the newest
    #: is damaged later (each holds the weights and the optimizer state).
    keep_states: int = DEFAULT_KEEP
    embed_vae_and_clip: bool = True
    #: Precision of the saved checkpoints' tensors ("" keeps float32; "float16" halves them).
    checkpoint_dtype: str = ""

    def __post_init__(self) -> None:
        if not self.fusion_lr_scale > 0 or self.noise_offset < 0:
            raise ConfigError(
                f"train config: fusion_lr_scale must be > 0 and noise_offset >= 0, got "
                f"{self.fusion_lr_scale} and {self.noise_offset}"
            )
        grids = self.noise_offset_grids
        if not grids or any(isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in grids):
            raise ConfigError(
                f"train config: noise_offset_grids must be whole numbers >= 1, got {grids!r}"
            )
        object.__setattr__(self, "noise_offset_grids", tuple(grids))
        if not 0 <= self.self_pair_fraction <= 1:
            raise ConfigError(
                f"train config: self_pair_fraction must be in [0, 1], got {self.self_pair_fraction}"
            )
        if self.lr_decay_steps < 0 or self.lr_decay_start < 0 or not 0 <= self.lr_final_scale <= 1:
            raise ConfigError(
                "train config: lr_decay_steps and lr_decay_start must be >= 0 and "
                f"lr_final_scale in [0, 1], got {self.lr_decay_steps}, {self.lr_decay_start} "
                f"and {self.lr_final_scale}"
            )

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

    from .patch_vae import vae_from_config

    if not path:
        raise ConfigError("train config: 'vae' is empty; train one with 'truepose train-vae' first")
    p = Path(path)
    if p.is_dir():
        folder = p / "vae" if (p / "vae").is_dir() else p
        return AutoencoderKL.from_pretrained(str(folder), local_files_only=True)
    meta = read_metadata(p, "vae")
    if "vae_config" not in meta:
        raise ConfigError(f"vae {p}: no 'vae_config' metadata; not written by truepose train-vae")
    vae = vae_from_config(json.loads(meta["vae_config"]))
    state = {k.removeprefix("vae."): v for k, v in read_tensors(p, "vae").items()}
    return load_strict(vae, state, f"vae {p}")


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


def base_learning_rates(cfg: TrainConfig) -> list[float]:
    """Each AdamW group's lr before any decay: ``[lr]``, or ``[lr, lr * fusion_lr_scale]``
    when the fusion modules get their own group (:func:`parameter_groups`)."""
    if cfg.fusion_lr_scale == 1.0:
        return [cfg.lr]
    return [cfg.lr, cfg.lr * cfg.fusion_lr_scale]


def parameter_groups(model: TruePoseModel, cfg: TrainConfig) -> list[dict[str, Any]]:
    """One AdamW group, or two when the fusion modules get ``fusion_lr_scale`` x the lr."""
    lrs = base_learning_rates(cfg)
    if len(lrs) == 1:
        return [{"params": list(model.parameters())}]
    fusion = {id(p) for p in model.fusion.parameters()}
    rest = [p for p in model.parameters() if id(p) not in fusion]
    return [{"params": rest}, {"params": list(model.fusion.parameters()), "lr": lrs[1]}]


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """The factor of every group's learning rate for the update that follows ``step``."""
    if not cfg.lr_decay_steps:
        return 1.0
    done = min(max(step - cfg.lr_decay_start, 0), cfg.lr_decay_steps) / cfg.lr_decay_steps
    final = cfg.lr_final_scale
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * done))


def learning_rates(cfg: TrainConfig, step: int) -> list[float]:
    """Each group's learning rate at ``step``, in the order of :func:`parameter_groups`."""
    return [lr * lr_factor(cfg, step) for lr in base_learning_rates(cfg)]


def split_optimizer_state(
    old: dict[str, Any], model: TruePoseModel, cfg: TrainConfig
) -> dict[str, Any]:
    """A one-group AdamW state dict moved to the groups of :func:`parameter_groups`.

    Each parameter's moments go to its index in the new layout, so a run continued with a
    ``fusion_lr_scale`` keeps them; the groups take ``cfg``'s learning rates.
    """
    if len(old["param_groups"]) != 1:
        raise ConfigError(f"optimizer state has {len(old['param_groups'])} groups, expected 1")
    position = {id(p): i for i, p in enumerate(model.parameters())}
    settings = {k: v for k, v in old["param_groups"][0].items() if k != "params"}
    state, groups, index = {}, [], 0
    for group in parameter_groups(model, cfg):
        ids = []
        for p in group["params"]:
            if position[id(p)] in old["state"]:
                state[index] = old["state"][position[id(p)]]
            ids.append(index)
            index += 1
        groups.append({**settings, "lr": group.get("lr", cfg.lr), "params": ids})
    return {"state": state, "param_groups": groups}


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


def training_randomness(
    cfg: TrainConfig, step: int, latent_shape: torch.Size, num_timesteps: int, drop_rate: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`step_randomness` of a training step, plus ``cfg.noise_offset`` if set.

    The offset (per image and latent channel: one value, plus a grid of values for each of
    ``noise_offset_grids`` above 1) has its own generator, so the rest is the same with and
    without it.
    """
    noise, timesteps, keep = step_randomness(
        step_generator(cfg.seed, step, 0), latent_shape, num_timesteps, drop_rate
    )
    if cfg.noise_offset:
        g_offset = step_generator(cfg.seed, step, 1)
        b, c, h, w = latent_shape
        offset = torch.zeros(b, c, 1, 1)
        for grid in cfg.noise_offset_grids:
            cells = torch.randn(b, c, grid, grid, generator=g_offset)
            if grid > 1:
                cells = F.interpolate(cells, size=(h, w), mode="bilinear")
            offset = offset + cells
        noise = noise + cfg.noise_offset * offset
    return noise, timesteps, keep


#: The source entries a self pair takes from its target.
SELF_PAIR_KEYS = (
    ("source_image", "target_image"),
    ("source_parsing", "target_parsing"),
    ("source_keypoints", "target_keypoints"),
)


def with_self_pairs(batch: dict[str, Any], cfg: TrainConfig, step: int) -> dict[str, Any]:
    """``batch`` with ``cfg.self_pair_fraction`` of its rows' sources set to their targets."""
    if not cfg.self_pair_fraction:
        return batch
    b = len(batch["source_image"])
    rows = torch.rand(b, generator=step_generator(cfg.seed, step, 2)) < cfg.self_pair_fraction
    out = dict(batch)
    for source, target in SELF_PAIR_KEYS:
        pick = rows.view(-1, *([1] * (batch[source].dim() - 1)))
        out[source] = torch.where(pick, batch[target], batch[source])
    return out


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


#: Seconds between redraws of loss.png at saves (drawing costs more than a small model's save).
PLOT_EVERY_S = 60.0


class LossLog:
    """loss.csv plus a loss.png plot, redrawn at saves (at most once a minute) and at the end.

    Rows are appended whole (one ``write`` each); on resume the file is rewritten atomically
    with the complete rows up to the resumed step, so a killed run leaves no half line.
    """

    HEADER = "step,loss,lr,seconds"

    def __init__(self, out_dir: Path, resume_step: int):
        self.path = out_dir / "loss.csv"
        rows = [r for r in self.rows() if int(r[0]) <= resume_step]
        atomic.write_text(self.path, "\n".join([self.HEADER, *map(",".join, rows)]) + "\n")

    def rows(self) -> list[list[str]]:
        """The complete, well-formed rows; a cut-off or garbled line is left out."""
        if not self.path.is_file():
            return []
        rows = [line.split(",") for line in atomic.complete_lines(self.path)[1:]]
        return [cells for cells in rows if _is_loss_row(cells)]

    def append(self, step: int, loss: float, lr: float, seconds: float) -> None:
        atomic.append_line(self.path, f"{step},{loss:.6f},{lr},{seconds:.1f}")

    def flush(self) -> None:
        """Put the rows on disk before a state that covers them is published."""
        atomic.fsync_file(self.path)

    def plot(self) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        rows = self.rows()
        if not rows:
            return
        steps = [int(r[0]) for r in rows]
        losses = [float(r[1]) for r in rows]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(steps, losses, lw=0.8)
        ax.set_xlabel("step")
        ax.set_ylabel("MSE loss")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic.atomic_file(self.path.with_suffix(".png")) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)


def _is_loss_row(cells: list[str]) -> bool:
    try:
        int(cells[0])
        [float(c) for c in cells[1:]]
    except ValueError:
        return False
    return len(cells) == 4


def optimizer_and_ema(model: TruePoseModel, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, Any]:
    """The run's AdamW (no moments yet) and its EMA of ``model``'s weights (None without one)."""
    optimizer = torch.optim.AdamW(
        parameter_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    ema = None
    if cfg.ema_decay > 0:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(model.parameters(), decay=cfg.ema_decay)
    return optimizer, ema


def write_state_files(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, ema: Any = None
) -> None:
    """A ``state-*`` folder's payload: the weights, the optimizer state and the EMA's."""
    from safetensors.torch import save_file

    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        str(folder / "model.safetensors"),
    )
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    if ema is not None:
        torch.save(ema.state_dict(), folder / "ema.pt")


def train(cfg: TrainConfig, *, resume: bool = True, progress: bool = True) -> Path:
    """Run (or resume) training; returns the path of the final checkpoint."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
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
    optimizer, ema = optimizer_and_ema(model, cfg)

    step = 0
    say = None if accelerator.is_main_process else (lambda _line: None)
    state_dir = run_state.latest_state(out_dir, say) if resume else None
    if accelerator.is_main_process:  # the only writer of out_dir
        atomic.remove_temporaries(out_dir)
    if state_dir is not None:
        step = int(run_state.read_record(state_dir)["step"])
        run_state.load_weights(state_dir, "model.safetensors", model)
        optimizer.load_state_dict(run_state.load_torch(state_dir, "optimizer.pt"))
        if ema is not None and (state_dir / "ema.pt").is_file():
            ema.load_state_dict(run_state.load_torch(state_dir, "ema.pt"))
    saved_step = step if state_dir is not None else -1

    runner = TrainingStep(model)
    runner, optimizer = accelerator.prepare(runner, optimizer)
    device = accelerator.device
    vae.to(device)
    clip.to(device)
    if ema is not None:
        ema.to(device)
    scheduler = training_scheduler(config)
    steps_per_epoch = max(1, len(dataset) // (cfg.batch_size * accelerator.num_processes))
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    log = LossLog(out_dir, step) if accelerator.is_main_process else None
    bar = tqdm(total=total, initial=step, disable=not (progress and accelerator.is_main_process))
    started = time.monotonic()
    last_plot = started
    running = []

    def write_state(folder: Path) -> None:
        write_state_files(folder, accelerator.unwrap_model(runner).model, optimizer, ema)

    def save(tag: str) -> Path:
        nonlocal saved_step, last_plot
        unwrapped = accelerator.unwrap_model(runner).model
        ckpt = out_dir / f"{tag}.safetensors"
        if not accelerator.is_main_process:
            return ckpt
        if saved_step != step:  # the state of this step is on disk already otherwise
            log.flush()
            run_state.save_state(out_dir, step, write_state, keep=cfg.keep_states)
            saved_step = step
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
        if tag == "final" or time.monotonic() - last_plot > PLOT_EVERY_S:
            log.plot()
            last_plot = time.monotonic()
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
        batch = with_self_pairs(collate([dataset[i] for i in idx]), cfg, step)
        lrs = learning_rates(cfg, step)
        for group, lr in zip(optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
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
                log.append(step, mean, lrs[0], time.monotonic() - started)
        if cfg.save_every and step % cfg.save_every == 0:
            save("latest")
    bar.close()
    final = save("final")
    accelerator.wait_for_everyone()
    return final


def training_loss(runner, batch, vae, clip, scheduler, config, label_set, cfg, step, device):
    """MSE of eq. 2/10 for one batch, with joint condition dropout (METHOD.md Training)."""
    source = batch["source_image"].to(device)
    target = batch["target_image"].to(device)
    parsing = batch["source_parsing"].to(device)
    with torch.no_grad():
        vae_dtype = next(vae.parameters()).dtype
        z_s = vae.encode(source.to(vae_dtype)).latent_dist.mean * config.latent_scale
        z_t = vae.encode(target.to(vae_dtype)).latent_dist.mean * config.latent_scale
        regions: RegionEmbeddings = clip((source + 1) / 2, parsing, label_set)
        masks = selection_masks(batch["source_parsing"], batch["target_keypoints"], label_set)
    noise, timesteps, keep = training_randomness(
        cfg, step, z_t.shape, scheduler.config.num_train_timesteps, config.condition_drop
    )
    noise, timesteps, keep = noise.to(device, z_t.dtype), timesteps.to(device), keep.to(device)
    noisy = scheduler.add_noise(z_t, noise, timesteps)
    skeletons = batch["target_skeleton"].to(device)
    pred = runner(z_s, regions, parsing, masks.to(device), skeletons, noisy, timesteps, keep)
    loss = F.mse_loss(pred.float(), noise.float())
    if not math.isfinite(float(loss.detach())):
        raise FloatingPointError(f"training loss became {float(loss.detach())} at step {step}")
    return loss
