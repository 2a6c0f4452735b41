"""The standard PGPIS DeepFashion pairs (In-shop Clothes Retrieval), as CFLD and PIDM use them.

Layout of ``root`` (the files of DPTN/GFLA that CFLD's README points to, plus our parsing):

- ``fasion-resize-pairs-{train,test}.csv``: header ``from,to``, one pair of image names a
  line (101,966 train / 8,570 test pairs). The misspelling ``fasion`` is the real file name.
- ``fasion-resize-annotation-{train,test}.csv``: ``:``-separated, header
  ``name:keypoints_y:keypoints_x``; rows like ``fashionWOMEN...1front.jpg: [y0, ..., y17]:
  [x0, ..., x17]``, OpenPose-18 order, pixels of the 256x176 (H x W) frame, -1 = missing.
- Images, in the first of these folders that exists:
  ``{split}_highres/`` (CFLD's ``generate_fashion_datasets.py``), ``{split}_lst_{512,256}_png/``
  (resized copies that keep the csv names, ``.png``; PCDMs' copies renamed to ``img1.png`` ...
  do not keep them and cannot be paired with the csv files), ``{split}/`` (GFLA/DPTN), or
  the raw ``img_highres/`` tree (``MEN/Denim/id_00000080/01_1_front.jpg``), whose paths are
  flattened to the csv names the way CFLD's script does
  (``fashionMENDenimid0000008001_1front.jpg``).
  An image is found under its csv name or with ``.png``/``.jpg`` in place of its extension.
- ``parsing/<stem>.png``: one single-channel PNG of LIP label indices per image (as the
  ``truepose parse`` command writes them); ``<name>.png`` (the full csv name plus ``.png``) is
  accepted too.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError, PoseError
from ..keypoints import DEEPFASHION_HEIGHT, DEEPFASHION_WIDTH, Pose, parse_deepfashion_row
from .synthfashion import image_tensor, keypoints_tensor, skeleton_tensor

SPLITS = ("train", "test")
#: The two resolutions of the paper's tables, (H, W).
RESOLUTIONS = ((256, 176), (512, 352))
PAIRS_FILE = "fasion-resize-pairs-{split}.csv"
ANNOTATION_FILE = "fasion-resize-annotation-{split}.csv"
ANNOTATION_HEADER = ("name", "keypoints_y", "keypoints_x")
RAW_IMAGE_DIR = "img_highres"
#: LIP has 20 labels; a parsing PNG with a larger index was not written for LIP.
NUM_LIP_LABELS = 20


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(from, to)`` image names of a ``fasion-resize-pairs-*.csv`` (header ``from,to``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"DeepFashion pairs file not found: {path}")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataError(f"{path}: empty; expected a header 'from,to' and one pair a line")
    header = [h.strip() for h in rows[0]]
    if "from" not in header or "to" not in header:
        raise DataError(f"{path}:1: header is {rows[0]!r}; expected 'from,to'")
    i_from, i_to = header.index("from"), header.index("to")
    pairs = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) <= max(i_from, i_to):
            raise DataError(f"{path}:{line}: row {row!r} has {len(row)} fields; expected 'from,to'")
        src, tgt = row[i_from].strip(), row[i_to].strip()
        if not src or not tgt:
            raise DataError(f"{path}:{line}: empty image name in {row!r}")
        pairs.append((src, tgt))
    return pairs


def read_annotations(path: str | os.PathLike) -> dict[str, Pose]:
    """Poses of a ``fasion-resize-annotation-*.csv``, in the 256x176 frame, by image name."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"DeepFashion annotation file not found: {path}")
    poses: dict[str, Pose] = {}
    with path.open(encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines or tuple(h.strip() for h in lines[0].split(":")) != ANNOTATION_HEADER:
        first = lines[0] if lines else ""
        raise DataError(
            f"{path}:1: header is {first[:80]!r}; expected 'name:keypoints_y:keypoints_x'"
        )
    for line_no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(":")
        if len(fields) != 3:
            raise DataError(
                f"{path}:{line_no}: {len(fields)} ':'-separated fields; expected 3 "
                f"(name:keypoints_y:keypoints_x), got {line[:80]!r}"
            )
        name = fields[0].strip()
        try:
            pose = parse_deepfashion_row(
                fields[1].strip(), fields[2].strip(), DEEPFASHION_WIDTH, DEEPFASHION_HEIGHT
            )
        except PoseError as exc:
            raise DataError(f"{path}:{line_no} ({name}): {exc}") from exc
        poses[name] = pose
    return poses


def flattened_name(relative: Path) -> str:
    """The csv name of a raw ``img_highres`` file: ``MEN/Denim/id_00000080/01_1_front.jpg`` ->
    ``fashionMENDenimid0000008001_1front.jpg`` (CFLD's ``generate_fashion_datasets.py``)."""
    gender, category, item, file = relative.parts[-4:]
    first, _, rest = file.partition("_")
    return (
        "fashion" + gender + category + item.replace("_", "") + first + "_" + rest.replace("_", "")
    )


def _check_resolution(resolution: tuple[int, int]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in resolution)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"DeepFashionPairs: resolution must be (height, width), e.g. {RESOLUTIONS}, "
            f"got {resolution!r}"
        ) from exc
    if height < 8 or width < 8:
        raise DataError(f"DeepFashionPairs: resolution {resolution!r} is too small")
    return height, width


class DeepFashionPairs(Dataset):
    """The PGPIS DeepFashion pairs of ``split`` at ``resolution`` (H, W).

    Items have the keys of :class:`~truepose_core.data.synthfashion.SynthFashion`: images
    float ``(3, H, W)`` in [-1, 1] (bicubic resize, as CFLD), parsing maps int64 ``(H, W)``
    (nearest resize), keypoints float ``(18, 3)`` scaled from the 256x176 annotation frame,
    ``target_skeleton`` float ``(3, H, W)`` in [0, 1], and ``pair_id`` ``"<from>_2_<to>"``
    (the file stem PGPIS evaluation scripts use for generated images).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        resolution: tuple[int, int] = (256, 176),
        parsing_dir: str | os.PathLike | None = None,
    ) -> None:
        if split not in SPLITS:
            raise DataError(f"DeepFashionPairs: split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"DeepFashionPairs: data folder not found: {self.root}")
        self.split = split
        self.resolution = _check_resolution(resolution)
        self.pairs = read_pairs(self.root / PAIRS_FILE.format(split=split))
        annotation_path = self.root / ANNOTATION_FILE.format(split=split)
        self.poses = read_annotations(annotation_path)
        for src, tgt in self.pairs:
            for name in (src, tgt):
                if name not in self.poses:
                    raise DataError(
                        f"{annotation_path}: no keypoints for image {name!r} named in "
                        f"{PAIRS_FILE.format(split=split)}"
                    )
        self.image_dir, self._raw_index = self._find_image_dir()
        self.parsing_dir = Path(parsing_dir) if parsing_dir is not None else self.root / "parsing"
        if not self.parsing_dir.is_dir():
            raise DataError(
                f"DeepFashionPairs: parsing folder not found: {self.parsing_dir}; run "
                "'truepose parse' on the images to write one LIP label PNG per image there"
            )

    def _find_image_dir(self) -> tuple[Path, dict[str, Path] | None]:
        """The first image folder that exists, and for the raw tree its name -> path index."""
        height = self.resolution[0]
        sizes = (512, 256) if height > 256 else (256, 512)
        candidates = [f"{self.split}_highres"]
        candidates += [f"{self.split}_lst_{n}_png" for n in sizes]
        candidates += [self.split, RAW_IMAGE_DIR]
        for name in candidates:
            folder = self.root / name
            if not folder.is_dir():
                continue
            if name != RAW_IMAGE_DIR:
                return folder, None
            index = {}
            for path in folder.rglob("*"):
                relative = path.relative_to(folder)
                if path.is_file() and len(relative.parts) >= 4:
                    index[flattened_name(relative)] = path
            return folder, index
        raise DataError(
            f"DeepFashionPairs: no image folder in {self.root}; expected one of {candidates}"
        )

    def _image_path(self, name: str) -> Path:
        stem = Path(name).stem
        if self._raw_index is not None:
            for key in (name, stem + ".jpg", stem + ".png"):
                if key in self._raw_index:
                    return self._raw_index[key]
            raise DataError(f"DeepFashionPairs: image {name!r} not found under {self.image_dir}")
        tried = [self.image_dir / n for n in dict.fromkeys((name, stem + ".png", stem + ".jpg"))]
        for path in tried:
            if path.is_file():
                return path
        raise DataError(
            f"DeepFashionPairs: image {name!r} not found; tried {[str(p) for p in tried]}"
        )

    def _load_image(self, name: str) -> np.ndarray:
        path = self._image_path(name)
        height, width = self.resolution
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BICUBIC)
                return np.asarray(image, dtype=np.uint8).copy()
        except OSError as exc:
            raise DataError(f"DeepFashionPairs: cannot read image {path}: {exc}") from exc

    def _load_parsing(self, name: str) -> np.ndarray:
        stem = Path(name).stem
        tried = [self.parsing_dir / (stem + ".png"), self.parsing_dir / (name + ".png")]
        path = next((p for p in tried if p.is_file()), None)
        if path is None:
            raise DataError(
                f"DeepFashionPairs: parsing map of {name!r} not found; tried "
                f"{[str(p) for p in tried]}; run 'truepose parse' on the images"
            )
        height, width = self.resolution
        try:
            with Image.open(path) as image:
                if image.mode not in ("L", "P", "I", "I;16"):
                    raise DataError(
                        f"{path}: parsing PNG has mode {image.mode}; expected a single-channel "
                        "PNG of LIP label indices (mode L or P)"
                    )
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.NEAREST)
                labels = np.asarray(image).astype(np.int64)
        except OSError as exc:
            raise DataError(f"DeepFashionPairs: cannot read parsing map {path}: {exc}") from exc
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_LIP_LABELS):
            raise DataError(
                f"{path}: label {int(labels.max())} found; expected LIP label indices "
                f"0..{NUM_LIP_LABELS - 1}"
            )
        return labels

    def pose(self, name: str) -> Pose:
        """The annotated pose of image ``name`` at this data set's resolution."""
        height, width = self.resolution
        return self.poses[name].resized(width, height)

    def __len__(self) -> int:
        return len(self.pairs)

    def pair_id(self, index: int) -> str:
        """``<from>_2_<to>``: the output file name of pair ``index`` (the papers' convention)."""
        src, tgt = self.pairs[index]
        return f"{Path(src).stem}_2_{Path(tgt).stem}"

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        src, tgt = self.pairs[index]
        src_pose, tgt_pose = self.pose(src), self.pose(tgt)
        return {
            "source_image": image_tensor(self._load_image(src)),
            "target_image": image_tensor(self._load_image(tgt)),
            "source_parsing": torch.from_numpy(self._load_parsing(src)),
            "target_parsing": torch.from_numpy(self._load_parsing(tgt)),
            "source_keypoints": keypoints_tensor(src_pose),
            "target_keypoints": keypoints_tensor(tgt_pose),
            "target_skeleton": skeleton_tensor(tgt_pose),
            "pair_id": self.pair_id(index),
        }
