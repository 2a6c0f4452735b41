"""``truepose train-clip``: pretrain the SynthFashion model's small CLIP image tower.

METHOD.md's CLIP is frozen and contrastively pretrained; its embeddings of the source's
parsing regions are CAA's tokens and its whole-image embedding is the UNets' cross-attention
context. No CLIP weights can be downloaded here, and a tower with random weights keeps little
of a region's colour (README, "The SynthFashion CLIP tower"). This trains an open_clip ``CLIP`` (the
image tower of :data:`~.presets.TINY_CLIP_VISION` plus a small text tower) with CLIP's
symmetric contrastive loss on SynthFashion crops, cut exactly as TruePose cuts them
(:func:`~.clip_regions.region_squares`), against captions of what was drawn
(:mod:`.data.captions`). Rows whose captions are equal count as matches. Only the image tower
is saved (``visual.*`` keys, as open_clip names them), so the ``clip`` option of
``truepose train`` loads it like any open_clip file.

The run takes about 15 CPU-minutes and keeps no states: a killed run is run again, and the output
file is replaced atomically.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from .errors import ConfigError

#: What ``CLIPTrainConfig.whole_captions`` may be.
WHOLE_CAPTIONS = ("full", "parts", "both")


@dataclass(frozen=True)
class CLIPTrainConfig:
    output: str = "runs/clip-synth/clip.safetensors"
    size: tuple[int, int] = (128, 88)
    #: Training pairs rendered; both images of each pair are used.
    images: int = 3000
    batch_size: int = 512
    lr: float = 1e-3
    steps: int = 1500
    max_minutes: float = 0.0
    seed: int = 0
    text_width: int = 64
    text_layers: int = 2
    context_length: int = 64
    #: Captions also give each colour's channels at this many levels (0: names only).
    colour_levels: int = 0
    #: Draw each step's crops from one kind (one parsing label, or whole images), so that
    #: the other rows of a batch differ from a row's caption mostly in colour and pattern.
    batch_by_kind: bool = False
    #: Captions of whole images: "full" (one caption naming every part), "parts" (the image
    #: once for each of :func:`~.data.captions.person_part_captions`, so that its embedding
    #: must keep each part, the lower clothes included) or "both".
    whole_captions: str = "full"

    def __post_init__(self) -> None:
        for name, low in (("images", 1), ("steps", 1), ("batch_size", 2), ("context_length", 8)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"train-clip: {name} must be an int >= {low}, got {value!r}")
        if self.colour_levels < 0 or self.lr <= 0 or self.max_minutes < 0:
            raise ConfigError(
                "train-clip: colour_levels and max_minutes must be >= 0 and lr > 0, got "
                f"{self.colour_levels}, {self.max_minutes} and {self.lr}"
            )
        if self.whole_captions not in WHOLE_CAPTIONS:
            raise ConfigError(
                f"train-clip: whole_captions must be one of {', '.join(WHOLE_CAPTIONS)}, "
                f"got {self.whole_captions!r}"
            )


def _clip_model(cfg: CLIPTrainConfig, config):
    from open_clip.model import CLIP

    text_cfg = dict(
        context_length=cfg.context_length,
        vocab_size=49408,
        width=cfg.text_width,
        heads=max(1, cfg.text_width // 32),
        layers=cfg.text_layers,
    )
    vision_cfg = dict(config.clip_vision)
    vision_cfg.setdefault("image_size", config.clip_image_size)
    return CLIP(embed_dim=config.clip_dim, vision_cfg=vision_cfg, text_cfg=text_cfg)


def captioned_crops(
    cfg: CLIPTrainConfig, config
) -> tuple[torch.Tensor, list[str], torch.Tensor, torch.Tensor]:
    """Render the crops once: (pixels (N, 3, s, s) fp16, unique captions, caption index (N,),
    kind (N,): the crop's parsing label, or -1 for a whole image)."""
    from .clip_regions import clip_pixels, region_squares
    from .data.captions import person_caption, person_part_captions, region_caption
    from .data.synthfashion import SynthFashion
    from .parsing import get_label_set

    label_set = get_label_set(config.label_set)
    data = SynthFashion(size=tuple(cfg.size), length=cfg.images, seed=cfg.seed, split="train")
    pixels: list[torch.Tensor] = []
    captions: list[str] = []
    kinds: list[int] = []
    levels = cfg.colour_levels
    for index in range(cfg.images):
        item = data[index]
        identity = data.sample(index)[0]
        images = torch.stack([item["source_image"], item["target_image"]]).add(1).div(2)
        parsing = torch.stack([item["source_parsing"], item["target_parsing"]])
        squares, slots, _ = region_squares(images, parsing, label_set)
        texts = [region_caption(identity, label_set.labels[lab], levels) for _, lab in slots]
        whole = []
        if cfg.whole_captions in ("full", "both"):
            whole.append(person_caption(identity, levels))
        if cfg.whole_captions in ("parts", "both"):
            whole.extend(person_part_captions(identity, levels))
        whole_squares = squares[len(slots) :]  # region_squares puts the whole images last
        del squares[len(slots) :]
        for caption in whole:  # each whole image once per caption
            squares.extend(whole_squares)
            texts += [caption] * len(whole_squares)
        kind = [lab for _, lab in slots] + [-1] * (len(whole_squares) * len(whole))
        keep = [i for i, t in enumerate(texts) if t]
        pixels.append(clip_pixels([squares[i] for i in keep], config.clip_image_size).half())
        captions.extend(texts[i] for i in keep)
        kinds.extend(kind[i] for i in keep)
    unique = sorted(set(captions))
    where = {c: i for i, c in enumerate(unique)}
    ids = torch.tensor([where[c] for c in captions])
    return torch.cat(pixels), unique, ids, torch.tensor(kinds)


def batch_rows(
    kinds: torch.Tensor, size: int, by_kind: bool, generator: torch.Generator
) -> torch.Tensor:
    """A step's crop indices: uniform over all crops, or uniform within one random kind."""
    if not by_kind:
        return torch.randint(len(kinds), (size,), generator=generator)
    values = kinds.unique()
    kind = values[torch.randint(len(values), (1,), generator=generator)]
    pool = (kinds == kind).nonzero().flatten()
    return pool[torch.randint(len(pool), (size,), generator=generator)]


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, ids: torch.Tensor, scale):
    """CLIP's symmetric cross-entropy; rows with the same caption id are all matches."""
    image = F.normalize(image, dim=-1)
    text = F.normalize(text, dim=-1)
    logits = scale * image @ text.T
    match = (ids[:, None] == ids[None, :]).float()
    target = match / match.sum(1, keepdim=True)
    return 0.5 * (
        F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target.T.contiguous())
    )


def train_clip(cfg: CLIPTrainConfig, progress: bool = True) -> Path:
    """Pretrain the tower; write ``cfg.output`` (safetensors, ``visual.*``) and return it."""
    import open_clip
    from safetensors.torch import save_file

    from . import atomic
    from .presets import tiny_truepose_config

    config = tiny_truepose_config()
    torch.manual_seed(cfg.seed)
    started = time.monotonic()
    pixels, captions, ids, kinds = captioned_crops(cfg, config)
    tokens = open_clip.tokenize(captions, context_length=cfg.context_length)
    model = _clip_model(cfg, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.1)
    generator = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    for step in range(cfg.steps):
        if cfg.max_minutes and (time.monotonic() - started) / 60 > cfg.max_minutes:
            break
        for group in optimizer.param_groups:  # warm-up, then a cosine to zero
            warm = min(1.0, (step + 1) / 50)
            group["lr"] = cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        rows = batch_rows(kinds, cfg.batch_size, cfg.batch_by_kind, generator)
        batch_ids = ids[rows]
        image = model.encode_image(pixels[rows].float())
        text = model.encode_text(tokens[batch_ids])
        loss = contrastive_loss(image, text, batch_ids, model.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        if progress and (step + 1) % 100 == 0:
            print(f"train-clip: step {step + 1} loss {sum(losses[-100:]) / 100:.4f}", flush=True)
    tenth = max(1, len(losses) // 10)  # the loss means over the first and last tenth of steps
    out = Path(cfg.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "clip_train_config": json.dumps(asdict(cfg), sort_keys=True),
        "clip_vision": json.dumps(dict(config.clip_vision), sort_keys=True),
        "steps": str(len(losses)),
        "loss_start": f"{sum(losses[:tenth]) / tenth:.4f}",
        "loss_end": f"{sum(losses[-tenth:]) / tenth:.4f}",
        "crops": str(len(ids)),
        "captions": str(len(captions)),
    }
    state = {f"visual.{k}": v.detach().contiguous() for k, v in model.visual.state_dict().items()}
    with atomic.atomic_file(out) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return out
