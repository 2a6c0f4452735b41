"""The fusion patch on a TargetNet MODEL clone: the per-run state and the two patches.

:func:`prepare_state` is the node's (source, poses) precompute: the core's
:func:`~truepose_core.pairs.prepare_pairs`, on ComfyUI's devices. :class:`FusionPatch` is what
``TruePose_HPFAPatchModel`` attaches to a MODEL clone: an ``attn1_patch`` that calls
:func:`truepose_core.fusion.apply_to_rows` on the conditional rows and an
``input_block_patch`` that adds the PoseEncoder output after ``conv_in``. Which fusion
variant runs is the checkpoint's business; this module never asks.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from ..truepose_core.errors import BatchError, PoseError
from ..truepose_core.fusion import (
    FusionSettings,
    FusionState,
    LayerSource,
    SourceEncoding,
    apply_to_rows,
)
from ..truepose_core.keypoints import Pose, require_visible
from ..truepose_core.pairs import prepare_pairs
from .comfy_unet import layer_key
from .handle import TruePoseHandle

#: Key of the TruePose patch in a MODEL's ``transformer_options``.
PATCH_KEY = "truepose"
#: Key of the CAA settings a ``TruePose_CAAPatch`` node leaves for the HPFA patch.
CAA_KEY = "truepose_caa"
#: Key under which the TruePose modules ride along with a patched MODEL.
ADDITIONAL_MODELS_KEY = "truepose"


def check_target_poses(poses: Sequence[Pose], what: str = "target pose") -> list[Pose]:
    """A non-empty list of poses, each with at least one visible joint, or a PoseError."""
    if isinstance(poses, Pose):
        poses = [poses]
    if not isinstance(poses, (list, tuple)) or not poses:
        raise PoseError(
            f"{what}: no pose arrived; connect a TruePose pose node (e.g. Pose from "
            "POSE_KEYPOINT) that outputs at least one pose"
        )
    for i, pose in enumerate(poses):
        if not isinstance(pose, Pose):
            raise PoseError(
                f"{what} {i}: got {type(pose).__name__}, expected a TruePose pose; connect a "
                "TruePose pose node"
            )
    require_visible(poses, what)
    return list(poses)


@torch.no_grad()
def prepare_state(
    handle: TruePoseHandle,
    encoding: SourceEncoding,
    poses: Sequence[Pose],
    *,
    sigma: float,
    delta: float,
    caa: bool,
    caa_regions: int | None,
) -> FusionState:
    """The (source, pose) precompute of :func:`~truepose_core.pairs.prepare_pairs` on
    ComfyUI's devices; one source with N poses gives N pairs from one SourceNet pass.

    ``sigma``/``delta`` (eq. 6), ``caa`` and ``caa_regions`` (K, None: the checkpoint's)
    are passed down as arguments; the shared modules on the handle are never changed.
    """
    import comfy.model_management as mm

    device = handle.load_modules()
    h, w = encoding.parsing.shape[-2:]
    settings = FusionSettings(sigma=sigma, delta=delta, caa_regions=caa_regions, use_caa=caa)
    state = prepare_pairs(handle.model, encoding.to(device), list(poses), (h, w), None, settings)
    return state.to(mm.intermediate_device())


class FusionPatch:
    """The ``attn1_patch`` and ``input_block_patch`` of one patched MODEL.

    Holds the precomputed :class:`FusionState` of P (source, pose) pairs. A UNet batch is
    ``len(cond_or_uncond)`` chunks of the latent batch B; row i of each chunk uses pair i
    (B == P) or pair 0 (P == 1). Only chunks whose ``cond_or_uncond`` entry is 0 (the
    positive branch) receive the fusion; the pose residual goes to every row. ``strength``
    is the core fusion's (:class:`~truepose_core.fusion.FusionSettings`): 0 = TargetNet
    alone, 1 = the method; the pose encoder is not scaled.

    ``clone()`` deep-copies model_options: a copy shares the read-only handle and state but
    gets caches of its own, so clones never see each other's device copies.
    """

    def __init__(self, handle: TruePoseHandle, state: FusionState, strength: float):
        self.handle = handle
        self.state = dataclasses.replace(state, strength=float(strength))
        self._moved: dict[tuple, FusionState] = {}
        self._sources: dict[tuple, LayerSource] = {}

    def __deepcopy__(self, memo):
        clone = copy.copy(self)  # the same read-only handle and state
        clone._moved, clone._sources = {}, {}
        memo[id(self)] = clone
        return clone

    @property
    def strength(self) -> float:
        return self.state.strength

    @property
    def pairs(self) -> int:
        return self.state.batch

    def _state_on(self, device: torch.device, dtype: torch.dtype) -> FusionState:
        key = (str(device), dtype)
        if key not in self._moved:
            self._moved.clear()
            self._sources.clear()
            self._moved[key] = self.state.to(device, dtype)
        return self._moved[key]

    def rows(self, batch: int, cond_or_uncond: Sequence[int] | None, device):
        """(pair index per UNet row, conditional flag per row) for a UNet batch."""
        chunks = list(cond_or_uncond) if cond_or_uncond else [0]
        if batch % len(chunks):
            raise BatchError(f"UNet batch {batch} is not {len(chunks)} equal cond/uncond chunks")
        per_chunk = batch // len(chunks)
        if self.pairs == per_chunk:
            pair = torch.arange(per_chunk, device=device)
        elif self.pairs == 1:
            pair = torch.zeros(per_chunk, dtype=torch.long, device=device)
        else:
            raise BatchError(
                f"latent batch {per_chunk} does not fit the {self.pairs} (source, pose) pairs of "
                "the TruePose patch; use a latent batch of 1 or of the number of target poses"
            )
        rows = pair.repeat(len(chunks))
        flags = torch.tensor([c == 0 for c in chunks], device=device).repeat_interleave(per_chunk)
        return rows, flags

    def _fusion_dtype(self) -> torch.dtype:
        return self.handle.dtype

    def attn1(self, n, context_attn1, value_attn1, extra_options):
        name = layer_key(extra_options)
        if name not in self.state.layers:
            return n, context_attn1, value_attn1
        rows, conditional = self.rows(n.shape[0], extra_options.get("cond_or_uncond"), n.device)
        if not bool(conditional.any()):
            return n, context_attn1, value_attn1
        dtype = self._fusion_dtype()
        cond_rows = rows[conditional]
        key = (name, str(n.device), tuple(cond_rows.tolist()))
        source = self._sources.get(key)
        if source is None:
            state = self._state_on(n.device, dtype)
            source = self._sources[key] = state.layers[name].index(cond_rows)
        layer = self.handle.model.fusion[name]
        hidden = n.to(dtype)
        query, kv = apply_to_rows(layer, hidden, source, conditional, self.strength)
        kv = kv.to(n.dtype)
        return query.to(n.dtype), kv, kv

    def input_block(self, h, transformer_options):
        if transformer_options.get("block") != ("input", 0) or self.state.pose_features is None:
            return h
        rows, _ = self.rows(h.shape[0], transformer_options.get("cond_or_uncond"), h.device)
        pose = self._state_on(h.device, self._fusion_dtype()).pose_features[rows]
        if pose.shape[-2:] != h.shape[-2:]:
            raise BatchError(
                f"latent {h.shape[-2]}x{h.shape[-1]} differs from the target pose's latent "
                f"grid {pose.shape[-2]}x{pose.shape[-1]}: generate at the source image's size"
            )
        return h + pose.to(h.dtype)


def patch_model(model, handle: TruePoseHandle, state: FusionState, strength: float):
    """A clone of ``model`` carrying the TruePose patch; ``model`` itself is left as it was."""
    patch = FusionPatch(handle, state, strength)
    patched = model.clone()
    patched.set_model_attn1_patch(patch.attn1)
    patched.set_model_input_block_patch(patch.input_block)
    patched.model_options.setdefault("transformer_options", {})[PATCH_KEY] = patch
    patched.set_additional_models(ADDITIONAL_MODELS_KEY, [handle.modules])
    return patched


def find_patch(model) -> FusionPatch | None:
    return model.model_options.get("transformer_options", {}).get(PATCH_KEY)


def find_caa_settings(model) -> dict[str, Any]:
    """CAA settings left by a ``TruePose_CAAPatch`` node; default: on, the checkpoint's K."""
    found = model.model_options.get("transformer_options", {}).get(CAA_KEY)
    return dict(found) if found else {"enabled": True, "regions": None}
