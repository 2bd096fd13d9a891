"""A/B of the engine's per-item overhead (W1) between this checkout and another one.

    git worktree add /tmp/old <commit>
    .venv/bin/python benchmarks/ab_engine.py --old /tmp/old/src --pairs 7

Each pair runs the old and the new engine back to back, each in a fresh subprocess (best of
``--repeat`` runs inside), so that a machine whose speed drifts between runs affects both alike;
the result is the median of the pairwise ratios. W1: 1,000,000 ints -> map(x + 1) -> batch 256,
consumed with ``async for`` (asyncio, trio) or ``iter_sync``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

NEW = str(Path(__file__).resolve().parents[1] / "src")

RUN = r"""
import sys, time, anyio
sys.path.insert(0, sys.argv[1])
import aiopipe as ap

N = 1_000_000

def pipe():
    return ap.from_iterable(range(N)).map(lambda x: x + 1).batch(256)

async def consume():
    async with pipe().open() as run:
        async for b in run:
            b.sum()

def consume_sync():
    with pipe().iter_sync() as it:
        for b in it:
            b.sum()

best = 0.0
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    if sys.argv[2] == "sync":
        consume_sync()
    else:
        anyio.run(consume, backend=sys.argv[2])
    best = max(best, N / (time.perf_counter() - t))
print(best)
"""


def rate(src: str, mode: str, repeat: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", RUN, src, mode, str(repeat)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the other checkout's src directory")
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default="asyncio,trio,sync")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    rates: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.pairs):
        for mode in modes:
            for name, src in (("old", args.old), ("new", NEW)):
                rates.setdefault((mode, name), []).append(rate(src, mode, args.repeat))
    for mode in modes:
        old, new = rates[(mode, "old")], rates[(mode, "new")]
        ratios = [b / a for a, b in zip(old, new, strict=True)]
        print(
            f"W1 {mode:8s} old {statistics.median(old) / 1e6:.2f} M/s  "
            f"new {statistics.median(new) / 1e6:.2f} M/s  "
            f"median pairwise new/old {statistics.median(ratios):.3f}  "
            f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
