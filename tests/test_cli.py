"""The ``truepose`` command: the demo in reduced size, and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest

from truepose_core.cli import SHIPPED_MODEL, main


@pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="shipped SynthFashion model not built yet")
def test_demo_runs_in_reduced_size(tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--pairs", "2", "--steps", "2"]) == 0
    report = json.loads((tmp_path / "demo_metrics.json").read_text())
    assert report["summary"]["count"] == 2
    assert 0.0 <= report["summary"]["ssim"] <= 1.0
    from PIL import Image

    grid = Image.open(tmp_path / "demo_grid.png")
    assert grid.size == (4 * 88, 2 * 128)


def test_missing_checkpoint_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "truepose_core.cli",
            "demo",
            "--checkpoint",
            str(tmp_path / "x.safetensors"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "x.safetensors" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_train_config_is_one_line(tmp_path, capsys):
    bad = tmp_path / "train.json"
    bad.write_text('{"bogus": 1}')
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown keys ['bogus']" in err and err.strip().count("\n") == 0


@pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="shipped SynthFashion model not built yet")
def test_generate_writes_named_images_and_resumes(tmp_path):
    args = ["generate", "--checkpoint", str(SHIPPED_MODEL), "--out", str(tmp_path)]
    args += ["--limit", "3", "--batch-size", "2", "--steps", "2"]
    assert main(args) == 0
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == [f"synthfashion-test-0-{i:07d}.png" for i in range(3)]
    first = (tmp_path / names[0]).read_bytes()
    (tmp_path / names[1]).unlink()
    assert main(args) == 0  # resumes: only the missing image is made again
    assert sorted(p.name for p in tmp_path.glob("*.png")) == names
    assert (tmp_path / names[0]).read_bytes() == first
