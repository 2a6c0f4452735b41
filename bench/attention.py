"""Reweighted attention at N = 2816 tokens (64x44), 8 heads: naive vs chunked (vs flex)."""

from __future__ import annotations

import torch

from bench.common import isolated, machine, table, timed


def run(backend: str, tokens: int = 2816, heads: int = 8, dim: int = 40, chunk: int = 0) -> dict:
    from truepose_core.attention import reweighted_attention

    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, heads, tokens, dim, generator=g).to(device) for _ in range(3))
    mask = (torch.rand(1, tokens, generator=g) > 0.5).to(device)
    if backend == "none":  # inputs and a plain matmul only: the floor the others are measured from
        small = torch.matmul(q[:, :, :8], k.transpose(-1, -2))
        return {"backend": backend, "seconds": 0.0, "checksum": float(small.sum())}
    out = reweighted_attention(q, k, v, mask, backend=backend, chunk=chunk)
    seconds = timed(lambda: reweighted_attention(q, k, v, mask, backend=backend, chunk=chunk), 3)
    return {"backend": backend, "seconds": seconds, "checksum": float(out.double().sum())}


def main() -> str:
    backends = ["naive", "chunked"] + (["flex"] if torch.cuda.is_available() else [])
    floor = isolated(run, "none")["rss_growth_mb"]
    rows = [isolated(run, b) for b in backends]
    naive = rows[0]
    for row in rows:
        row["attn_mb"] = row["rss_growth_mb"] - floor
        row["time_ratio"] = row["seconds"] / naive["seconds"]
        row["mem_ratio"] = row["attn_mb"] / max(naive["attn_mb"], 1e-9)
        row["max_diff"] = abs(row["checksum"] - naive["checksum"])
    return f"Reweighted attention, N=2816, 8 heads ({machine()})\n\n" + table(
        rows,
        [
            ("backend", "backend", "s"),
            ("seconds", "median s", ".3f"),
            ("attn_mb", "peak memory MB (above inputs)", ".0f"),
            ("time_ratio", "time / naive", ".2f"),
            ("mem_ratio", "memory / naive", ".3f"),
            ("max_diff", "|checksum diff|", ".1e"),
        ],
    )


if __name__ == "__main__":
    print(main())
