"""DeepFashion PGPIS files: a small tree in the real formats, loaded and broken on purpose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from truepose_core.data import deepfashion as df
from truepose_core.errors import DataError

NAMES = (
    "fashionMENDenimid0000008001_1front.jpg",
    "fashionMENDenimid0000008002_2side.jpg",
    "fashionWOMENBlouses_Shirtsid0000637003_1front.jpg",
)
# Keypoints in the 256x176 (H x W) frame; -1 = missing (the l_ear of the first image).
YS = [
    [27, 52, 51, 97, 134, 52, 92, 125, 133, 190, 245, 131, 187, 238, 22, 22, 26, -1],
    [30, 55, 54, 99, 136, 55, 94, 127, 135, 192, 246, 133, 189, 240, 25, 25, 29, 29],
    [25, 50, 49, 95, 130, 50, 90, 120, 130, 188, 240, 129, 185, 236, 20, 20, 24, 24],
]
XS = [
    [91, 89, 63, 56, 63, 115, 124, 126, 73, 75, 77, 103, 106, 108, 83, 96, 75, -1],
    [90, 88, 62, 55, 62, 114, 123, 125, 72, 74, 76, 102, 105, 107, 82, 95, 74, 103],
    [92, 90, 64, 57, 64, 116, 125, 127, 74, 76, 78, 104, 107, 109, 84, 97, 76, 105],
]


def write_annotation(path: Path, rows: list[tuple[str, list[int], list[int]]]) -> None:
    # The real files: "name:keypoints_y:keypoints_x", then "name: [...]: [...]".
    lines = ["name:keypoints_y:keypoints_x"] + [f"{n}: {y}: {x}" for n, y, x in rows]
    path.write_text("\n".join(lines) + "\n")


def write_tree(root: Path, split: str = "train", folder: str | None = None) -> Path:
    folder = folder or f"{split}_highres"
    (root / folder).mkdir(parents=True)
    (root / "parsing").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for k, name in enumerate(NAMES):
        pixels = rng.integers(0, 256, (128, 88, 3), dtype=np.uint8)
        stem = Path(name).stem
        if folder.endswith("_png"):
            Image.fromarray(pixels).save(root / folder / f"{stem}.png")
        else:
            Image.fromarray(pixels).save(root / folder / name, quality=95)
        labels = np.zeros((256, 176), np.uint8)
        labels[40:120, 50:120] = 5  # Upper-clothes
        labels[10:40, 70:100] = 13  # Face
        labels[120:240, 60:110] = 9 + k  # Pants, Jumpsuits, Scarf
        Image.fromarray(labels, mode="L").save(root / "parsing" / f"{stem}.png")
    (root / f"fasion-resize-pairs-{split}.csv").write_text(
        f"from,to\n{NAMES[0]},{NAMES[1]}\n{NAMES[1]},{NAMES[2]}\n"
    )
    write_annotation(
        root / f"fasion-resize-annotation-{split}.csv",
        list(zip(NAMES, YS, XS, strict=True)),
    )
    return root


def test_read_pairs_and_annotations(tmp_path: Path) -> None:
    root = write_tree(tmp_path)
    pairs = df.read_pairs(root / "fasion-resize-pairs-train.csv")
    assert pairs == [(NAMES[0], NAMES[1]), (NAMES[1], NAMES[2])]
    poses = df.read_annotations(root / "fasion-resize-annotation-train.csv")
    assert set(poses) == set(NAMES)
    pose = poses[NAMES[0]]
    assert (pose.width, pose.height) == (176, 256)
    assert pose.xy[0].tolist() == [91.0, 27.0]  # (x, y) from the y-then-x columns
    assert pose.confidence[17] == 0 and pose.confidence[:17].all()


@pytest.mark.parametrize("resolution", [(256, 176), (512, 352)])
def test_loads_pairs_at_both_resolutions(tmp_path: Path, resolution: tuple[int, int]) -> None:
    root = write_tree(tmp_path)
    ds = df.DeepFashionPairs(root, "train", resolution=resolution)
    assert len(ds) == 2
    item = ds[0]
    h, w = resolution
    assert item["source_image"].shape == (3, h, w) and item["source_image"].dtype == torch.float32
    assert item["source_image"].min() >= -1 and item["target_image"].max() <= 1
    assert item["source_parsing"].shape == (h, w) and item["source_parsing"].dtype == torch.int64
    assert set(item["source_parsing"].unique().tolist()) == {0, 5, 9, 13}
    assert set(item["target_parsing"].unique().tolist()) == {0, 5, 10, 13}
    scale = h / 256
    kp = item["source_keypoints"]
    assert kp.shape == (18, 3)
    assert torch.allclose(kp[0], torch.tensor([91 * scale, 27 * scale, 1.0]))
    assert (kp[17] == 0).all()  # missing in the annotation
    assert torch.allclose(item["target_keypoints"][1], torch.tensor([88 * scale, 55 * scale, 1]))
    assert item["target_skeleton"].shape == (3, h, w) and item["target_skeleton"].max() > 0
    assert item["pair_id"] == f"{Path(NAMES[0]).stem}_2_{Path(NAMES[1]).stem}"


def test_resized_png_folder_and_test_split(tmp_path: Path) -> None:
    root = write_tree(tmp_path, split="test", folder="test_lst_256_png")
    ds = df.DeepFashionPairs(root, "test")
    assert ds.image_dir == root / "test_lst_256_png"
    assert ds[1]["target_image"].shape == (3, 256, 176)


def test_raw_img_highres_tree(tmp_path: Path) -> None:
    root = write_tree(tmp_path)
    (root / "train_highres").rename(root / "unused")
    raw = {
        NAMES[0]: "MEN/Denim/id_00000080/01_1_front.jpg",
        NAMES[1]: "MEN/Denim/id_00000080/02_2_side.jpg",
        NAMES[2]: "WOMEN/Blouses_Shirts/id_00006370/03_1_front.jpg",
    }
    for name, relative in raw.items():
        assert df.flattened_name(Path(relative)) == name
        target = root / "img_highres" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        (root / "unused" / name).rename(target)
    ds = df.DeepFashionPairs(root, "train")
    assert ds[1]["source_image"].shape == (3, 256, 176)


def test_missing_things_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        df.DeepFashionPairs(tmp_path / "nowhere")
    root = write_tree(tmp_path / "a")
    with pytest.raises(DataError, match="fasion-resize-pairs-test.csv"):
        df.DeepFashionPairs(root, "test")
    with pytest.raises(DataError, match="split"):
        df.DeepFashionPairs(root, "val")

    (root / "train_highres" / NAMES[2]).unlink()
    ds = df.DeepFashionPairs(root, "train")
    ds[0]
    with pytest.raises(DataError, match=NAMES[2].replace(".jpg", "")):
        ds[1]

    (root / "parsing" / f"{Path(NAMES[0]).stem}.png").unlink()
    with pytest.raises(DataError, match="truepose parse"):
        ds[0]

    root = write_tree(tmp_path / "b")
    (root / "train_highres").rename(root / "elsewhere")
    with pytest.raises(DataError, match="train_highres"):
        df.DeepFashionPairs(root, "train")

    root = write_tree(tmp_path / "c")
    for f in (root / "parsing").iterdir():
        f.unlink()
    (root / "parsing").rmdir()
    with pytest.raises(DataError, match="parsing folder"):
        df.DeepFashionPairs(root, "train")


def test_malformed_files_name_file_and_line(tmp_path: Path) -> None:
    root = write_tree(tmp_path)
    path = root / "fasion-resize-annotation-train.csv"
    write_annotation(path, [(NAMES[0], YS[0], XS[0]), (NAMES[1], YS[1][:17], XS[1])])
    with pytest.raises(DataError, match=r"fasion-resize-annotation-train\.csv:3.*18 values"):
        df.read_annotations(path)
    with pytest.raises(DataError, match=r"annotation-train\.csv:3"):
        df.DeepFashionPairs(root, "train")

    path.write_text("name,keypoints_y,keypoints_x\n")
    with pytest.raises(DataError, match="name:keypoints_y:keypoints_x"):
        df.read_annotations(path)

    write_annotation(path, [(NAMES[0], YS[0], XS[0])])
    with pytest.raises(DataError, match=f"no keypoints for image '{NAMES[1]}'"):
        df.DeepFashionPairs(root, "train")

    pairs = root / "fasion-resize-pairs-train.csv"
    pairs.write_text("source;target\na;b\n")
    with pytest.raises(DataError, match="from,to"):
        df.read_pairs(pairs)


def test_parsing_with_labels_outside_lip(tmp_path: Path) -> None:
    root = write_tree(tmp_path)
    bad = np.full((256, 176), 25, np.uint8)
    Image.fromarray(bad, mode="L").save(root / "parsing" / f"{Path(NAMES[0]).stem}.png")
    with pytest.raises(DataError, match="label 25"):
        df.DeepFashionPairs(root, "train")[0]
