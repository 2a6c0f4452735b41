"""The quality table over several noise seeds: the model's mean ± std, baselines once."""

import pytest

from truepose_core.quality import COLUMNS, OUTPUTS, format_table, over_seeds


def _report(model_ssim: float, pairs: int = 5) -> dict:
    row = {key: 1.0 for key, _, _ in COLUMNS}
    row["face_colour_error"] = None  # no pair had a face
    row["upper_clothes_pairs"] = pairs
    report = {name: dict(row) for name in OUTPUTS}
    report["model"] = {**row, "ssim": model_ssim, "psnr": 10.0 + model_ssim}
    return report


def test_over_seeds_averages_the_model_row_only():
    combined = over_seeds([_report(0.2), _report(0.4), _report(0.3)])
    assert combined["model"]["ssim"] == pytest.approx(0.3)
    assert combined["model_std"]["ssim"] == pytest.approx(0.1)
    assert combined["model"]["psnr"] == pytest.approx(10.3)
    assert combined["model"]["face_colour_error"] is None
    assert combined["model"]["upper_clothes_pairs"] == 5
    assert [r["ssim"] for r in combined["model_per_seed"]] == [0.2, 0.4, 0.3]
    assert combined["copy_source"] == _report(0.2)["copy_source"]
    table = format_table(combined)
    model_line = next(line for line in table.splitlines() if line.startswith("| model |"))
    assert "| 0.300 ± 0.100 |" in model_line and "| 10.30 ± 0.10 |" in model_line
    copy_line = next(line for line in table.splitlines() if line.startswith("| copy source"))
    assert "±" not in copy_line and "| - |" in copy_line


def test_one_seed_prints_plain_numbers():
    table = format_table(_report(0.25))
    assert "±" not in table and "| 0.250 |" in table


def test_colour_diagnosis_splits_brightness_from_chroma():
    """scripts/colour_diagnosis.py: an offset shared by the three channels is all brightness,
    one that sums to zero is all chroma, and the two parts combine in quadrature."""
    import numpy as np
    from script_modules import script_module

    split = script_module("colour_diagnosis").brightness_chroma
    brightness, chroma = split(np.array([[10.0, 10.0, 10.0], [5.0, -5.0, 0.0]]))
    assert brightness == pytest.approx([10 * 3**0.5, 0.0])
    assert chroma == pytest.approx([0.0, 50**0.5])
    diff = np.random.default_rng(0).normal(size=(20, 3)) * 30
    brightness, chroma = split(diff)
    assert brightness**2 + chroma**2 == pytest.approx(np.linalg.norm(diff, axis=1) ** 2)


def test_colour_diagnosis_separates_what_the_noise_moves():
    """Two seeds at m + e and m - e around a truth of 0: the over-seeds error is |m|, the
    noise spread |e|, and each seed's error its own distance."""
    import numpy as np
    from script_modules import script_module

    m = np.array([[30.0, 0.0, 0.0], [0.0, 40.0, 0.0]])
    e = np.array([[0.0, 3.0, 4.0], [6.0, 0.0, 8.0]])
    diagnosis = script_module("colour_diagnosis")
    row = diagnosis.seed_split(np.stack([m + e, m - e]), np.zeros((2, 3)))
    assert row["over_seeds"] == pytest.approx(35.0)
    assert row["noise_spread"] == pytest.approx(7.5)
    each = np.linalg.norm(m + e, axis=1).mean(), np.linalg.norm(m - e, axis=1).mean()
    assert row["each_seed"] == pytest.approx(list(each))
    brightness, chroma = diagnosis.brightness_chroma(m)
    assert (row["brightness"], row["chroma"]) == pytest.approx((brightness.mean(), chroma.mean()))
