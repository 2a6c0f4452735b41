"""Shared benchmark helpers: each measurement runs in a fresh process for a clean peak RSS."""

from __future__ import annotations

import json
import multiprocessing as mp
import platform
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {torch.get_num_threads()} threads, {gpu}, torch {torch.__version__}"


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_cpu(
    steps: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> dict[str, dict[str, float]]:
    """Median (and least) CPU and median wall seconds of each step, interleaved by round.

    CPU time of this process (``time.process_time``) is what a step costs when the machine is
    shared: with one torch thread, another job on the other cores barely changes it, whereas
    wall time grows with their load. What they still add (shared caches and memory bandwidth)
    only ever adds time, so the least CPU time is reported too. Interleaving (one call of
    every step per round) spreads any remaining drift over all steps alike instead of over
    whichever ran last.
    """
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    wall: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            fn()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start_wall)
    return {
        name: {
            "cpu_s": statistics.median(cpu[name]),
            "cpu_min": min(cpu[name]),
            "wall_s": statistics.median(wall[name]),
            "cpu_spread": (max(cpu[name]) - min(cpu[name])) / statistics.median(cpu[name]),
        }
        for name in steps
    }


def _child(target, args, queue):
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = target(*args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if torch.cuda.is_available():
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    result["peak_rss_mb"] = peak / 1024
    result["rss_growth_mb"] = (peak - base) / 1024
    queue.put(json.dumps(result))


def isolated(target: Callable[..., dict], *args) -> dict:
    """Run ``target(*args) -> dict`` in a spawned process; add its peak memory."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, args, queue))
    proc.start()
    out = json.loads(queue.get())
    proc.join()
    return out


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table; ``columns`` are (key, header, format)."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = [
        "| " + " | ".join(format(row[k], f) if k in row else "-" for k, _, f in columns) + " |"
        for row in rows
    ]
    return "\n".join([head, rule, *body])
