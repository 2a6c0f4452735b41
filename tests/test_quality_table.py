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
