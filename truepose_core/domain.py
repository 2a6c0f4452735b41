"""Is an input near what a checkpoint was trained on? Used for a one-time console note.

The shipped SynthFashion model saw 128x88 procedural figures only. It runs on any input,
but a real photo or a very different size is far outside what it learnt; the nodes say so
once instead of refusing.
"""

from __future__ import annotations

from .config import TruePoseConfig

#: The shipped small model's training size (height, width) and its CLIP tower's name.
SYNTHFASHION_RESOLUTION = (128, 88)
SYNTHFASHION_CLIP = "custom"
#: An input whose side differs from the training side by more than this factor (either way)
#: is far from the training size.
SIZE_FACTOR = 1.5

SYNTHFASHION_NOTE = (
    "TruePose: this model was trained on 128x88 procedural figures; real photos need a "
    "full-size checkpoint or reference mode"
)


def is_synthfashion_small(config: TruePoseConfig) -> bool:
    """True for the shipped SynthFashion model (recognised by its config, not its name)."""
    return (
        tuple(config.resolution) == SYNTHFASHION_RESOLUTION
        and config.clip_model == SYNTHFASHION_CLIP
    )


def far_from_training_size(config: TruePoseConfig, height: int, width: int) -> bool:
    """True when a side differs from the training resolution by more than SIZE_FACTOR."""
    train_h, train_w = config.resolution
    ratios = (height / train_h, width / train_w)
    return any(r > SIZE_FACTOR or r < 1 / SIZE_FACTOR for r in ratios)


def domain_note(config: TruePoseConfig, height: int, width: int) -> str | None:
    """The console note for this input, or None when it is near the model's domain."""
    if is_synthfashion_small(config) and far_from_training_size(config, height, width):
        return f"{SYNTHFASHION_NOTE} (got a {width}x{height} image)"
    return None
