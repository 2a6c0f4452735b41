"""Reading weight files safely and loading them strictly: the one home for both rules.

Every loader of the project (TruePose checkpoints, SCHP, the VAE, the CLIP tower, the
metrics networks) reads tensors here and fills its module with :func:`load_strict`, so a
file is never unpickled with code execution and a wrong file is always reported by name:
the missing, unexpected and mis-shaped keys, never a raw torch error.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError

StrPath = str | Path
_LIST_LIMIT = 8


def _safetensors_header_length(path: Path) -> int:
    """The header length a safetensors file announces, or 0 when it does not start like one."""
    with path.open("rb") as handle:
        head = handle.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return 0
    return int.from_bytes(head[:8], "little")


def is_safetensors(path: StrPath) -> bool:
    """Recognise safetensors by content: an 8-byte header length, then a JSON object."""
    path = Path(path)
    header_len = _safetensors_header_length(path)
    return header_len > 0 and 8 + header_len <= path.stat().st_size


def _where(path: Path, what: str) -> str:
    return f"{what} {path}" if what else str(path)


def _first_line(err: BaseException, limit: int = 160) -> str:
    """The error's type and first line, short enough for a node's error box."""
    line = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), "")
    if len(line) > limit:
        line = line[: limit - 3] + "..."
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def _unpickling_detail(err: pickle.UnpicklingError) -> str:
    """What the weights-only unpickler refused, without torch's advice to switch it off."""
    for line in str(err).splitlines():
        if "GLOBAL" in line or "WeightsUnpickler error" in line:
            return line.strip()
    return _first_line(err)


def read_metadata(path: StrPath, what: str = "") -> dict[str, str]:
    """The string metadata of a safetensors file (empty when it has none)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    where = _where(path, what)
    if not path.is_file():
        raise CheckpointError(f"{where}: no such file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{where}: not a readable safetensors file ({exc})") from exc


def read_tensors(path: StrPath, what: str = "", *, hint: str = "") -> dict[str, torch.Tensor]:
    """Tensors of a file: safetensors (told by content), else ``torch.load(weights_only=True)``.

    A torch file may hold the state dict bare or under ``"state_dict"``. ``what`` names the
    input in errors ("SCHP checkpoint"), and ``hint`` is added to the "no such file" error.
    """
    path = Path(path)
    where = _where(path, what)
    if not path.is_file():
        found = "a folder" if path.is_dir() else "no such file"
        raise CheckpointError(f"{where}: {found}{'; ' + hint if hint else ''}")
    header_len = _safetensors_header_length(path)
    if header_len > 0 and 8 + header_len > path.stat().st_size:
        raise CheckpointError(
            f"{where}: unreadable safetensors file, truncated inside its header; expected a "
            "complete file, download or convert it again"
        )
    if header_len > 0:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{where}: unreadable safetensors file ({_first_line(err)}); expected a "
                "complete file, download or convert it again"
            ) from err
    try:
        # A handle, not the path: torch would pick its loader by the file name's suffix.
        with path.open("rb") as handle:
            obj = torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{where}: refused to load, the file holds Python objects beyond plain weights "
            f"or is corrupt ({_unpickling_detail(err)}); only plain tensors are loaded "
            "(torch.load with weights_only=True, so a pickle that carries code is never run): "
            "use the official file or a .safetensors copy"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"{where}: unreadable, truncated or not a PyTorch/safetensors file "
            f"({_first_line(err)}); expected a complete .pth or .safetensors file"
        ) from err
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        found = (
            f"a dict with keys {sorted(map(str, obj))[:10]}"
            if isinstance(obj, Mapping)
            else f"a {type(obj).__name__}"
        )
        raise CheckpointError(
            f"{where}: found {found}; expected a state dict of tensors, bare or under 'state_dict'"
        )
    return dict(obj)


def _short(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - _LIST_LIMIT} more" if len(keys) > _LIST_LIMIT else ""
    return f"{keys[:_LIST_LIMIT]}{more}"


def check_state(
    where: str,
    expected: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    *,
    prefix: str = "",
    may_lack: tuple[str, ...] = (),
    hint: str = "",
) -> None:
    """Raise a CheckpointError naming every missing, unexpected and mis-shaped key.

    ``prefix`` is shown before each key (the part's prefix in a combined file);
    ``may_lack`` lists key suffixes the file may omit (the module keeps its own value).
    """
    missing = [k for k in expected if k not in state and not k.endswith(may_lack)]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{prefix}{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys {_short(prefix + k for k in missing)}")
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected keys {_short(prefix + k for k in unexpected)}"
        )
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches {shapes[:_LIST_LIMIT]}")
    if problems:
        tail = f"; {hint}" if hint else ""
        raise CheckpointError(f"{where}: {'; '.join(problems)}{tail}")


def load_strict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    where: str,
    *,
    prefix: str = "",
    may_lack: tuple[str, ...] = (),
    hint: str = "",
) -> nn.Module:
    """Check ``state`` against ``module`` with :func:`check_state`, then load it strictly."""
    expected = module.state_dict()
    check_state(where, expected, state, prefix=prefix, may_lack=may_lack, hint=hint)
    full = {k: state.get(k, v) for k, v in expected.items()}
    module.load_state_dict(full, strict=True)
    return module
