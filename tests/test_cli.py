"""The ``truepose`` command: the demo in reduced size, and one-line errors with exit code 2."""

import argparse
import json
import subprocess
import sys

from truepose_core.cli import SHIPPED_MODEL, build_parser, main
from truepose_core.config import SamplingConfig


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


def test_every_option_of_every_command_has_help_text():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {
        "demo",
        "train",
        "train-vae",
        "train-clip",
        "generate",
        "evaluate",
        "parse",
    }
    for name, command in commands.choices.items():
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"truepose {name} {action.option_strings}: no help text"
    generate = commands.choices["generate"].parse_args(["--checkpoint", "c", "--out", "o"])
    assert (generate.steps, generate.cfg) == (SamplingConfig.steps, SamplingConfig.cfg_scale)
    evaluate = commands.choices["evaluate"].parse_args(
        ["--pred", "p", "--gt", "g", "--fid-real", "r", "--parsing", "q", "--label-set", "atr"]
    )
    assert (evaluate.fid_real, evaluate.parsing, evaluate.label_set) == ("r", "q", "atr")
    from truepose_core.clip_train import CLIPTrainConfig

    clip = commands.choices["train-clip"].parse_args([])
    assert (clip.output, clip.images, clip.steps) == (
        CLIPTrainConfig.output,
        CLIPTrainConfig.images,
        CLIPTrainConfig.steps,
    )


def test_evaluate_reports_region_metrics_with_a_parsing_folder(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from truepose_core.parsing import LIP

    rng = np.random.default_rng(0)
    labels = np.zeros((64, 56), np.uint8)
    labels[10:40, 10:40] = LIP.index("Upper-clothes")
    for folder in ("gt", "pred", "real", "parsing"):
        (tmp_path / folder).mkdir()
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (64, 56, 3), dtype=np.uint8)).save(
            tmp_path / "gt" / f"{name}.png"
        )
        Image.fromarray(rng.integers(0, 256, (64, 56, 3), dtype=np.uint8)).save(
            tmp_path / "pred" / f"{name}.png"
        )
        Image.fromarray(labels, mode="L").save(tmp_path / "parsing" / f"{name}.png")
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]
    args += ["--parsing", str(tmp_path / "parsing"), "--out", str(tmp_path / "report")]
    assert main(args) == 0
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert report["upper_clothes_pairs"] == 2 and report["face_pairs"] == 0
    assert "| upper clothes colour error |" in capsys.readouterr().out
