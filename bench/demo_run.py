"""A whole ``truepose demo`` run: wall time and peak RSS of the process."""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time

from bench.common import machine


def main() -> str:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "truepose_core.cli", "demo", "--out", out], check=True
        )
        wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return (
        f"truepose demo (8 pairs, 35 steps, cfg 3.5): {wall:.1f} s wall, "
        f"peak RSS {peak:.0f} MB ({machine()})"
    )


if __name__ == "__main__":
    print(main())
