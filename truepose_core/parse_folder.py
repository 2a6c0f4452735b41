"""``truepose parse``: SCHP parsing maps for a folder of images (DeepFashion preprocessing).

Each ``<name>.jpg`` becomes ``<name>.png``, a single-channel label-index image, which the
DeepFashion loader reads. Each map is written under a temporary name and renamed; maps that
exist and decode are skipped, so the command resumes after any interruption.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_file, is_complete_image
from .errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def parse_folder(
    images: str | Path,
    out: str | Path,
    weights: str | Path,
    *,
    batch_size: int = 8,
    device: str = "cpu",
) -> int:
    from .schp import load_schp

    src, dst = Path(images), Path(out)
    if not src.is_dir():
        raise DataError(f"--images {src}: no such folder")
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"--images {src}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    parser = load_schp(weights, device=device)
    todo = [p for p in files if not is_complete_image(_target(src, dst, p))]
    written = 0
    # Images of one size batch together; DeepFashion folders hold a single size.
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        arrays = [np.asarray(Image.open(p).convert("RGB")) for p in chunk]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, a in enumerate(arrays):
            groups.setdefault(a.shape[:2], []).append(i)
        for members in groups.values():
            batch = torch.from_numpy(np.stack([arrays[i] for i in members])).float() / 255.0
            labels = parser.parse(batch).cpu().numpy().astype(np.uint8)
            for i, label_map in zip(members, labels, strict=True):
                target = _target(src, dst, chunk[i])
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_file(target) as tmp:
                    Image.fromarray(label_map, mode="L").save(tmp, format="PNG")
                written += 1
    return written


def _target(src: Path, dst: Path, image: Path) -> Path:
    return (dst / image.relative_to(src)).with_suffix(".png")
