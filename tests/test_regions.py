"""Region metrics (colour error and SSIM in the face and clothing) and the trivial baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from truepose_core import metrics
from truepose_core.errors import DataError, ParsingError
from truepose_core.parsing import ATR, LIP

H, W = 64, 56


def _parsing(label_set=LIP) -> np.ndarray:
    """Background, a face block, an upper-clothes block, pants on the left, skirt on the right."""
    m = np.zeros((H, W), np.int64)
    m[4:16, 20:36] = label_set.index("Face")
    m[18:38, 12:44] = label_set.index("Upper-clothes")
    m[40:60, 12:28] = label_set.index("Pants")
    m[40:60, 28:44] = label_set.index("Skirt")
    return m


def _noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((H, W, 3), dtype=np.float32)


def test_regions_are_face_upper_clothes_and_pants_plus_skirt():
    for label_set in (LIP, ATR):
        masks = metrics.region_masks(_parsing(label_set), label_set)
        assert set(masks) == {"face", "upper_clothes", "lower_clothes"}
        assert masks["face"].sum() == 12 * 16
        assert masks["upper_clothes"].sum() == 20 * 32
        assert masks["lower_clothes"].sum() == 20 * 32  # Pants and Skirt together


def test_colour_error_is_distance_of_region_mean_colours_in_0_255():
    parsing = _parsing()
    target = _noise(0)
    generated = target.copy()
    face = parsing == LIP.index("Face")
    # Shift the face's mean colour by (3, 4, 0)/255 and change the background wildly:
    # only the region's pixels count.
    generated[face] = np.clip(generated[face], 0.1, 0.9)
    target[face] = generated[face] + np.array([3, 4, 0], np.float32) / 255
    generated[parsing == 0] = 1.0
    row = metrics.region_scores(generated[None], target[None], parsing[None])
    assert row["face_colour_error"] == pytest.approx(5.0, abs=1e-3)
    assert row["upper_clothes_colour_error"] == pytest.approx(0.0, abs=1e-6)
    # Mean colours, not per-pixel distances: a pixel permutation inside a region costs 0.
    shuffled = target.copy()
    rng = np.random.default_rng(1)
    shuffled[face] = target[face][rng.permutation(face.sum())]
    assert metrics.colour_error(shuffled, target, face) == pytest.approx(0.0, abs=1e-4)


def test_region_ssim_sees_only_its_region():
    parsing = _parsing()
    target = _noise(2)
    generated = target.copy()
    upper = parsing == LIP.index("Upper-clothes")
    generated[upper] = _noise(3)[upper]
    scores = metrics.region_scores(generated[None], target[None], parsing[None])
    assert scores["upper_clothes_ssim"] < 0.2
    assert scores["face_ssim"] > 0.99  # two rows from the changed block: the window's edge
    assert scores["lower_clothes_ssim"] > 0.9  # only its top rows see the change
    assert scores["upper_clothes_ssim"] < metrics.ssim_256(generated, target)


def test_absent_region_is_left_out_of_the_mean_and_counted():
    with_face, without_face = _parsing(), _parsing()
    without_face[without_face == LIP.index("Face")] = 0
    target = np.stack([_noise(4), _noise(5)])
    generated = target.copy()
    generated[0] = np.clip(generated[0] + 0.1, 0, 1)
    scores = metrics.region_scores(generated, target, np.stack([with_face, without_face]))
    assert scores["face_pairs"] == 1 and scores["upper_clothes_pairs"] == 2
    assert scores["per_image"][1]["face_colour_error"] is None
    assert scores["face_colour_error"] == pytest.approx(scores["per_image"][0]["face_colour_error"])
    expected = np.mean([r["upper_clothes_colour_error"] for r in scores["per_image"]])
    assert scores["upper_clothes_colour_error"] == pytest.approx(expected)
    none = metrics.region_scores(generated[:1], target[:1], np.zeros((1, H, W), np.int64))
    assert none["face_colour_error"] is None and none["face_pairs"] == 0


def test_region_scores_take_tensors_and_check_their_inputs():
    parsing = torch.from_numpy(_parsing())
    target = torch.from_numpy(np.stack([_noise(6), _noise(7)]))
    scores = metrics.region_scores(target, target, parsing)  # one map for every pair
    assert scores["upper_clothes_colour_error"] == 0.0 and scores["face_ssim"] == pytest.approx(1)
    with pytest.raises(ParsingError, match="target_parsing"):
        metrics.region_scores(target, target, parsing[:10])
    parsing[0, 0] = LIP.index("Right-shoe")  # 19: not an ATR label
    with pytest.raises(ParsingError, match="0..17"):
        metrics.region_scores(target, target, parsing, "atr")
    with pytest.raises(ParsingError, match="0..19"):
        metrics.region_scores(target, target, parsing + 1)


def test_background_fill_uses_the_source_background_only():
    parsing = _parsing()
    source = np.zeros((H, W, 3), np.float32)
    source[parsing == 0] = (0.2, 0.4, 0.6)
    source[parsing != 0] = (1.0, 0.0, 0.0)  # the person must not tint the fill
    filled = metrics.background_fill(source[None], parsing[None])
    assert filled.shape == (1, H, W, 3)
    assert np.allclose(filled[0], (0.2, 0.4, 0.6), atol=1e-5)


def test_baselines_are_scored_on_the_same_pairs():
    parsing = _parsing()
    source = _noise(8)
    source[parsing == 0] = (0.5, 0.5, 0.5)
    target = _noise(9)
    out = metrics.baseline_scores(source[None], parsing[None], target[None], parsing[None])
    assert set(out) == {"copy_source", "background_fill"}
    copy = out["copy_source"]
    assert copy["psnr"] == pytest.approx(metrics.psnr(source, target))
    assert copy["ssim"] == pytest.approx(metrics.ssim_skimage(source, target))
    upper = parsing == LIP.index("Upper-clothes")
    assert copy["upper_clothes_colour_error"] == pytest.approx(
        metrics.colour_error(source, target, upper)
    )
    flat = np.full_like(source, 0.5)
    fill = out["background_fill"]
    assert fill["psnr"] == pytest.approx(metrics.psnr(flat, target), abs=1e-4)
    assert fill["face_colour_error"] == pytest.approx(
        metrics.colour_error(flat, target, parsing == LIP.index("Face")), abs=1e-3
    )
    identical = metrics.baseline_scores(target[None], parsing[None], target[None], parsing[None])
    assert identical["copy_source"]["face_colour_error"] == 0.0
    assert math.isinf(identical["copy_source"]["psnr"])


def _write(folder, name, array, mode=None):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(folder / f"{name}.png")


def test_evaluate_folders_reports_region_metrics_with_a_parsing_folder(tmp_path):
    parsing = _parsing()
    for i in range(2):
        gt = (_noise(10 + i) * 255).astype(np.uint8)
        pred = gt.copy()
        pred[parsing == LIP.index("Face")] //= 2  # a darker face
        _write(tmp_path / "gt", f"p{i}", gt)
        _write(tmp_path / "pred", f"p{i}", pred)
        _write(tmp_path / "parsing", f"p{i}", parsing.astype(np.uint8), "L")
    results = metrics.evaluate_folders(
        tmp_path / "pred", tmp_path / "gt", parsing_dir=tmp_path / "parsing"
    )
    assert metrics.REGIONS_MISSING not in results["missing"]
    assert results["face_colour_error"] > 30 and results["upper_clothes_colour_error"] == 0
    assert results["face_ssim"] < 0.99 < results["upper_clothes_ssim"]
    assert results["per_image"][0]["face_colour_error"] == pytest.approx(
        results["face_colour_error"], rel=0.2
    )
    assert results["protocol"]["regions"]["labels"]["lower_clothes"] == ["Pants", "Skirt"]
    _, md_path = metrics.write_report(results, tmp_path / "report")
    table = md_path.read_text()
    assert "| face colour error |" in table and "| lower clothes ssim |" in table
    (tmp_path / "parsing" / "p1.png").unlink()
    with pytest.raises(DataError, match="p1"):
        metrics.evaluate_folders(
            tmp_path / "pred", tmp_path / "gt", parsing_dir=tmp_path / "parsing"
        )
    plain = metrics.evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    assert "face_colour_error" not in plain and metrics.REGIONS_MISSING in plain["missing"]
