"""How much a checkpoint's predictions depend on its source image.

    python scripts/source_use.py --checkpoint FILE --pairs 16 --data-seed 11

For held-out pairs, noises the target's latent to a few timesteps (the model's own noise
schedule) and prints the MSE of the clean-latent estimate with each pair's own source, with
the next pair's source, and with no source (the unconditional branch). A model that reads
its source scores clearly lower with its own than with another's.

Then, for each fused layer, how peaked HPFA's source self-attention softmax(A') is (eq. 7
before eq. 6's weights): its mean entropy over queries, heads and pairs, against the
uniform attention's log N. Near log N, H' is close to the mean of the source's features
there, so the TargetNet can read the source's overall colours but not where each one is.

Last, for each fused layer at t=800 (``--fusion-t``), eq. 8's fusion cross-attention
softmax(Q K_h^T / sqrt(d)) (the TargetNet's tokens over the source's): its entropy against
log N, the standard deviation of its logits over the keys, and the size of what HPFA adds to
the hidden state entering the layer's self-attention, |O_h(...)| / |F|. At log N every target
token reads the same average of the source. Whether a token reads the *matching* part is the
last column: the attention mass that target tokens of a parsing label (not background) put on
source tokens of that same label, over what uniform attention would put there (1: no better
than uniform; each token takes the majority label of its cell at the layer's size).

Last, the TargetNet's own self-attention at each fused layer, in the same step: METHOD.md runs
it on Fhat, so what the fusion adds reaches the rest of the UNet only through it, as its
softmax-weighted average over the tokens. Its entropy against log N, the weight each token
gives itself, and the mass on its 3x3 neighbourhood, each over uniform attention's (1: every
token gets the same average; what is fused into one token stays there only as far as this
attention is local).
"""

from __future__ import annotations

import argparse
import math
from functools import partial

import torch

#: The timesteps of the first table; the eq. 8 table takes one of them.
TIMESTEPS = (200, 500, 800, 950)


def main() -> None:
    from truepose_core.pipeline import TruePosePipeline
    from truepose_core.quality import held_out_batch
    from truepose_core.sampling import training_scheduler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a self-contained TruePose file")
    parser.add_argument("--pairs", type=int, default=16, help="held-out pairs")
    parser.add_argument("--data-seed", type=int, default=11, help="test-split data seed")
    parser.add_argument(
        "--fusion-t",
        type=int,
        default=800,
        choices=TIMESTEPS,
        help="timestep of the eq. 8 table (at low t the target's noisy latent shows its content)",
    )
    args = parser.parse_args()
    pipe = TruePosePipeline.from_checkpoint(args.checkpoint)
    n = args.pairs
    batch = held_out_batch(tuple(pipe.config.resolution), n, args.data_seed)
    hw = tuple(batch["sources"].shape[-2:])
    encoding = pipe.encode_source(batch["sources"], batch["parsing"])
    own = pipe.prepare(encoding, batch["poses"], hw)
    other = pipe.prepare(encoding, batch["poses"], hw, source_rows=torch.arange(n).roll(1))
    clean = pipe.encode_latents(batch["targets"])
    scheduler = training_scheduler(pipe.config)
    rows, yes = torch.arange(n), torch.ones(n, dtype=torch.bool)
    print("t | x0 MSE: own source | another pair's source | no source")
    noised = {}
    with torch.no_grad():
        for t in TIMESTEPS:
            noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(t))
            steps = torch.full((n,), t)
            noisy = noised[t] = scheduler.add_noise(clean, noise, steps)
            a = scheduler.alphas_cumprod[t]
            errors = []
            for state, conditional in ((own, yes), (other, yes), (own, ~yes)):
                eps = pipe.model.predict_noise(noisy, steps, state, rows, conditional)
                x0 = (noisy - (1 - a).sqrt() * eps) / a.sqrt()
                errors.append(float((x0 - clean).pow(2).mean()))
            print(f"{t} | " + " | ".join(f"{e:.3f}" for e in errors))
    print()
    print("layer | keys N | softmax(A') entropy | log N | mean top probability | logit std")
    for name, entropy, top, spread, keys in attention_entropy(pipe.model, encoding):
        print(f"{name} | {keys} | {entropy:.2f} | {math.log(keys):.2f} | {top:.3f} | {spread:.3f}")
    t = args.fusion_t
    print()
    print(
        f"layer | keys N | eq. 8 entropy at t={t} | log N | logit std | |O_h(...)| / |F| "
        "| same-label mass / uniform's"
    )
    labels = (batch["parsing"], batch["target_parsing"])
    for name, entropy, spread, added, keys, match in fusion_attention(
        pipe.model, own, noised[t], t, labels
    ):
        print(
            f"{name} | {keys} | {entropy:.2f} | {math.log(keys):.2f} | {spread:.3f} | {added:.3f}"
            f" | {match:.2f}"
        )
    print()
    print(
        f"layer | keys N | TargetNet self-attention entropy on Fhat at t={t} | log N "
        "| self weight / uniform's | 3x3-neighbourhood mass / uniform's"
    )
    for name, entropy, keys, own_weight, local in target_self_attention(
        pipe.model, own, noised[t], t
    ):
        print(
            f"{name} | {keys} | {entropy:.2f} | {math.log(keys):.2f} | {own_weight:.2f}"
            f" | {local:.2f}"
        )


def _entropy(probs: torch.Tensor) -> float:
    """Mean entropy (nats) of attention rows ``probs`` (..., keys)."""
    return float(-(probs * probs.clamp_min(1e-12).log()).sum(-1).mean())


@torch.no_grad()
def attention_entropy(model, encoding) -> list[tuple[str, float, float, float, int]]:
    """(layer, mean entropy, mean top probability, logit std over the keys, keys) of each
    HPFA source self-attention."""
    from truepose_core.attention import reweighted_attention
    from truepose_core.heads import split_heads

    rows = []
    for name, features in encoding.features.items():
        hpfa = model.fusion[name].hpfa
        q = split_heads(hpfa.source_q(features), hpfa.heads)
        k = split_heads(hpfa.source_k(features), hpfa.heads)
        every_key = torch.ones(features.shape[:2], dtype=torch.bool)
        _, probs = reweighted_attention(q, k, k, every_key, reweight=False, return_probs=True)
        entropy = _entropy(probs)
        spread = float((q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).std(-1).mean())
        top = float(probs.amax(-1).mean())
        rows.append((name, entropy, top, spread, features.shape[1]))
    return rows


def label_match(probs: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> float:
    """Mean, over target tokens not background whose label the source has, of the attention
    mass on source tokens of that label over uniform attention's mass there.

    ``probs`` (B, heads, queries, keys); ``source`` (B, keys) and ``target`` (B, queries) labels.
    """
    same = (target[:, :, None] == source[:, None, :]).float()  # (B, queries, keys)
    uniform = same.mean(-1)
    mass = (probs.mean(1) * same).sum(-1)
    wanted = (target > 0) & (uniform > 0)
    if not wanted.any():
        return float("nan")
    return float((mass[wanted] / uniform[wanted]).mean())


def _hooked_step(
    model, state, noisy, t: int, watched: dict[tuple[str, str], torch.nn.Module]
) -> dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Run one conditional step at timestep ``t`` with forward hooks on the ``watched``
    modules, keyed (layer, part); returns seen[layer][part] = (module input, output)."""
    seen: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}

    def keep(name, part, module, inputs, output):
        seen.setdefault(name, {})[part] = (inputs[0], output)

    hooks = [
        module.register_forward_hook(partial(keep, name, part))
        for (name, part), module in watched.items()
    ]
    n = noisy.shape[0]
    try:
        model.predict_noise(
            noisy, torch.full((n,), t), state, torch.arange(n), torch.ones(n, dtype=torch.bool)
        )
    finally:
        for hook in hooks:
            hook.remove()
    return seen


@torch.no_grad()
def fusion_attention(
    model, state, noisy, t: int, labels: tuple[torch.Tensor, torch.Tensor]
) -> list[tuple[str, float, float, float, int, float]]:
    """(layer, mean entropy, logit std, |O_h(...)| / |F|, keys, same-label mass over uniform's)
    of eq. 8 in one conditional step; ``labels`` are the source and target parsing maps.

    Forward hooks on each HPFA's W_Q (its input is F, its output Q) and O_h read the step;
    the keys K_h are the prepared state's. Each token's label is the majority label of its
    cell at the layer's size, as the fusion's own precompute takes it.
    """
    from truepose_core.heads import split_heads
    from truepose_core.parsing import get_label_set, token_labels
    from truepose_core.unet_layers import level_sizes

    layers = {layer.name: layer for layer in model.layers}
    sizes = level_sizes(tuple(noisy.shape[-2:]), 1 + max(x.level for x in layers.values()))
    num_labels = get_label_set(model.config.label_set).num_labels

    watched = {}
    for name in state.layers:
        hpfa = model.fusion[name].hpfa
        watched[name, "q"], watched[name, "out"] = hpfa.to_q, hpfa.to_out
    seen = _hooked_step(model, state, noisy, t, watched)
    rows = []
    for name, parts in seen.items():
        hpfa = model.fusion[name].hpfa
        hidden, q = parts["q"]
        key = state.layers[name].hpfa.key
        logits = split_heads(q, hpfa.heads) @ key.transpose(-1, -2) / math.sqrt(key.shape[-1])
        probs = logits.softmax(-1)
        entropy = _entropy(probs)
        added = float(parts["out"][1].norm() / hidden.norm())
        size = sizes[layers[name].level]
        source, target = (token_labels(parsing, size, num_labels) for parsing in labels)
        match = label_match(probs, source, target)
        rows.append((name, entropy, float(logits.std(-1).mean()), added, key.shape[2], match))
    return rows


def locality(probs: torch.Tensor, size: tuple[int, int]) -> tuple[float, float]:
    """(self weight, 3x3-neighbourhood mass), each over uniform attention's, of attention
    ``probs`` (B, heads, N, N) over the tokens of an h x w grid (N = h * w, row-major)."""
    h, w = size
    rows, cols = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)
    near = ((rows[:, None] - rows[None, :]).abs() <= 1) & (
        (cols[:, None] - cols[None, :]).abs() <= 1
    )
    n = h * w
    own = probs.diagonal(dim1=-2, dim2=-1).mean() * n
    local = ((probs * near).sum(-1) / (near.sum(-1) / n)).mean()
    return float(own), float(local)


@torch.no_grad()
def target_self_attention(
    model, state, noisy, t: int
) -> list[tuple[str, float, int, float, float]]:
    """(layer, mean entropy, keys, self weight / uniform's, 3x3 mass / uniform's) of the
    TargetNet's self-attention at each fused layer in one conditional step.

    Forward hooks on the layer's own to_q and to_k read softmax(q k^T / sqrt(d)) of Fhat,
    which the fused processor passes as both query and key input.
    """
    from truepose_core.heads import split_heads
    from truepose_core.unet_layers import level_sizes

    layers = {layer.name: layer for layer in model.layers if layer.name in state.layers}
    sizes = level_sizes(tuple(noisy.shape[-2:]), 1 + max(x.level for x in model.layers))
    modules = dict(model.target_unet.named_modules())
    watched = {}
    for name, layer in layers.items():
        attn = modules[layer.module_path]
        watched[name, "q"], watched[name, "k"] = attn.to_q, attn.to_k
    seen = _hooked_step(model, state, noisy, t, watched)
    rows = []
    for name, layer in layers.items():
        heads = modules[layer.module_path].heads
        q, k = (split_heads(seen[name][part][1], heads) for part in ("q", "k"))
        probs = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)
        own_weight, local = locality(probs, sizes[layer.level])
        rows.append((name, _entropy(probs), k.shape[2], own_weight, local))
    return rows


if __name__ == "__main__":
    main()
