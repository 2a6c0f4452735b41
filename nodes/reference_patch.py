"""Reference mode inside ComfyUI: the hooks that ``TruePose_ReferencePatch`` puts on a clone.

Translation only; the math is :mod:`truepose_core.reference`. Three ModelPatcher hooks:

- an ``APPLY_MODEL`` wrapper runs the same UNet on the source latent before the target
  pass, recording each self-attention layer's norm1 output F' (``"cached"``: once, clean, at
  timestep 0; ``"noised"``: every step, noised to the current sigma), and hands the
  features to the layers through ``transformer_options``;
- an ``attn1_patch`` appends F' to the layer's keys/values input, so ComfyUI's own
  ``to_k``/``to_v`` project it;
- an ``attn1_replace`` on every self-attention layer computes the attention over
  ``[F, F']`` with eq. 6 on the source keys (``reference_attention``).

The source pass uses the positive prompt's text (the first conditional row's context) and
no ControlNet. Outside the start/end range, and during the source pass itself, the replace
calls ComfyUI's ``optimized_attention`` exactly as the unpatched layer would.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..truepose_core.errors import ConfigError
from ..truepose_core.reference import (
    ReferenceConfig,
    blend,
    fixed_noise,
    pair_rows,
    reference_attention,
    source_key_mask,
)

#: Key of the per-call source features in ``transformer_options``.
RUN_KEY = "truepose_reference_run"
#: Key of the recorder during the source pass.
RECORD_KEY = "truepose_reference_record"
#: Wrapper key, and the key of the patch object in ``transformer_options``.
PATCH_KEY = "truepose_reference"

_BLOCK = re.compile(
    r"^(input_blocks|output_blocks)\.(\d+)\.\d+\.transformer_blocks\.(\d+)$"
    r"|^(middle_block)\.\d+\.transformer_blocks\.(\d+)$"
)
_BLOCK_NAMES = {"input_blocks": "input", "middle_block": "middle", "output_blocks": "output"}


def self_attention_blocks(diffusion_model) -> list[tuple[str, int, int]]:
    """(block, id, index) of every transformer block of a ComfyUI SD1.5-layout UNet."""
    found = []
    for name, _ in diffusion_model.named_modules():
        match = _BLOCK.match(name)
        if match and match.group(1):
            kind, number, index = match.group(1, 2, 3)
            found.append((_BLOCK_NAMES[kind], int(number), int(index)))
        elif match:
            found.append(("middle", 0, int(match.group(5))))
    if not found:
        raise ConfigError(
            "TruePose Reference: this MODEL has no spatial-transformer self-attention; "
            "connect an SD1.5 checkpoint's MODEL"
        )
    return found


def _layer(extra_options: dict) -> tuple[str, int, int] | None:
    block = extra_options.get("block")
    if block is None:
        return None
    return (block[0], int(block[1]), int(extra_options.get("block_index", 0)))


@dataclass
class _Run:
    """The source features of one UNet call: F' per layer and the target rows' pairs."""

    features: dict[tuple[str, int, int], torch.Tensor]  # (1, Ns, C)
    grids: dict[tuple[str, int, int], tuple[int, int]]
    rows: torch.Tensor  # (B,) pair index per UNet row


class ReferencePatch:
    """The state and hooks of one patched MODEL (shared, not copied, by clones).

    ``latent`` is the source's scaled latent ``(1, 4, h, w)``; ``selection`` the target
    poses' M maps on the source parsing ``(P, H, W)``.
    """

    def __init__(self, config: ReferenceConfig, latent: torch.Tensor, selection: torch.Tensor):
        self.config = config
        self.latent = latent
        self.selection = selection
        self.noise = fixed_noise(latent.shape, config.noise_seed)
        self.blocks: set[tuple[str, int, int]] = set()
        self._cache: tuple[Any, dict, dict] | None = None
        self._masks: dict[tuple, torch.Tensor] = {}

    def __deepcopy__(self, memo):
        return self

    # -- the source pass ----------------------------------------------------------------------

    def _active(self, base_model, sigma: torch.Tensor) -> bool:
        sampling = base_model.model_sampling
        start = sampling.percent_to_sigma(self.config.start_percent)
        end = sampling.percent_to_sigma(self.config.end_percent)
        value = float(sigma.max())
        return end <= value <= start

    def _source_features(self, base_model, sigma, context_row, transformer_options):
        """F' per layer for this call; ``"cached"`` reuses them while the prompt is the same."""
        cached = self.config.source_mode == "cached"
        step = None if cached else float(sigma.max())
        if self._cache is not None:
            key, features, grids = self._cache
            same_step = key[1] == step
            same_prompt = key[0].shape == context_row.shape and torch.equal(key[0], context_row)
            if same_step and same_prompt and key[2] == (context_row.device, context_row.dtype):
                return features, grids
        from comfy.model_management import cast_to_device

        dtype = context_row.dtype
        device = context_row.device
        latent = self.latent.to(device, torch.float32)
        if cached:
            xc = latent
            timestep = torch.zeros(1, device=device)
        else:
            s = sigma.max().reshape(1).to(device, torch.float32)
            sampling = base_model.model_sampling
            noisy = sampling.noise_scaling(s, self.noise.to(device, torch.float32), latent)
            xc = sampling.calculate_input(s, noisy)
            timestep = sampling.timestep(s).float()
        features: dict = {}
        grids: dict = {}
        options = {
            k: v
            for k, v in transformer_options.items()
            if k not in (RUN_KEY, "cond_or_uncond", "uuids")
        }
        options["cond_or_uncond"] = [0]
        options[RECORD_KEY] = (features, grids)
        base_model.diffusion_model(
            xc.to(dtype),
            timestep,
            context=cast_to_device(context_row, device, dtype),
            control=None,
            transformer_options=options,
        )
        self._cache = ((context_row.detach().clone(), step, (device, dtype)), features, grids)
        return features, grids

    def apply_model_wrapper(self, executor, x, t, c_concat, c_crossattn, control, options, **kw):
        base_model = executor.class_obj
        if c_crossattn is None or not self._active(base_model, t):
            return executor(x, t, c_concat, c_crossattn, control, options, **kw)
        chunks = list(options.get("cond_or_uncond") or [0])
        per_chunk = x.shape[0] // max(1, len(chunks))
        conditional = [i for i, c in enumerate(chunks) if c == 0]
        row = conditional[0] * per_chunk if conditional else 0
        dtype = base_model.get_dtype()
        if base_model.manual_cast_dtype is not None:
            dtype = base_model.manual_cast_dtype
        context_row = c_crossattn[row : row + 1].to(x.device, dtype)
        features, grids = self._source_features(base_model, t, context_row, options)
        rows = pair_rows(x.shape[0], len(chunks), self.selection.shape[0], x.device)
        options = dict(options)
        options[RUN_KEY] = _Run(features, grids, rows)
        return executor(x, t, c_concat, c_crossattn, control, options, **kw)

    # -- the attention layers -----------------------------------------------------------------

    def attn1_patch(self, n, context_attn1, value_attn1, extra_options):
        layer = _layer(extra_options)
        record = extra_options.get(RECORD_KEY)
        if record is not None:
            features, grids = record
            if layer is not None:
                features[layer] = n.detach()
                grids[layer] = tuple(int(s) for s in extra_options["activations_shape"][-2:])
            return n, context_attn1, value_attn1
        run: _Run | None = extra_options.get(RUN_KEY)
        if run is None or layer not in run.features or layer not in self.blocks:
            return n, context_attn1, value_attn1
        source = run.features[layer].to(n.device, n.dtype).expand(n.shape[0], -1, -1)
        keys = torch.cat([context_attn1, source], dim=1)
        values = keys if value_attn1 is context_attn1 else torch.cat([value_attn1, source], dim=1)
        return n, keys, values

    def _mask(self, grid: tuple[int, int], rows: torch.Tensor, device) -> torch.Tensor:
        key = (grid, str(device), tuple(rows.tolist()))
        if key not in self._masks:
            self._masks[key] = source_key_mask(self.selection, grid).to(device)[rows]
        return self._masks[key]

    def attn1_replace(self, q, k, v, extra_options):
        from comfy.ldm.modules.attention import optimized_attention

        heads = extra_options["n_heads"]
        layer = _layer(extra_options)
        run: _Run | None = extra_options.get(RUN_KEY)
        plain_options = {"attn_precision": extra_options.get("attn_precision")}
        if run is None or layer not in run.features or k.shape[1] == q.shape[1]:
            return optimized_attention(
                q, k, v, heads, transformer_options=extra_options, **plain_options
            )
        n = q.shape[1]
        mask = self._mask(run.grids[layer], run.rows, q.device)
        cfg = self.config
        out = reference_attention(
            q,
            k,
            v,
            mask,
            heads,
            sigma=cfg.sigma,
            delta=cfg.delta,
            reweight=cfg.reweight,
            backend=cfg.backend,
        )
        if cfg.strength == 1:
            return out.to(q.dtype)
        plain = optimized_attention(
            q, k[:, :n], v[:, :n], heads, transformer_options=extra_options, **plain_options
        )
        return blend(plain, out.to(q.dtype), cfg.strength)


def patch_model(model, patch: ReferencePatch, blocks: Sequence[tuple[str, int, int]] = ()):
    """A clone of ``model`` with reference attention at ``blocks`` (default: all of them)."""
    import comfy.patcher_extension

    patched = model.clone()
    blocks = list(blocks) or self_attention_blocks(patched.model.diffusion_model)
    patch.blocks = set(blocks)
    patched.set_model_attn1_patch(patch.attn1_patch)
    for block, number, index in blocks:
        patched.set_model_attn1_replace(patch.attn1_replace, block, number, index)
    patched.add_wrapper_with_key(
        comfy.patcher_extension.WrappersMP.APPLY_MODEL, PATCH_KEY, patch.apply_model_wrapper
    )
    patched.model_options.setdefault("transformer_options", {})[PATCH_KEY] = patch
    return patched
