"""What combining pipelines costs (issue 17): each combinator against the plain pipeline that
yields the same number of elements, in the same run.

    .venv/bin/python benchmarks/bench_combine.py [--n 1000000] [--runs 5]

Prints, per combinator, the median seconds of ``--runs`` timed runs (after one warm-up), the
spread, elements per second, and the ratio to the plain baseline (1.00 = no overhead).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import time_runs

import aiopipe as ap


def cases(n: int) -> dict[str, Callable[[], ap.Pipeline[Any]]]:
    half = n // 2
    r = ap.from_iterable
    return {
        "baseline: from_iterable(range(n))": lambda: r(range(n)),
        "concatenate(2 halves)": lambda: ap.concatenate(r(range(half)), r(range(half))),
        "zip(2 halves) -> n/2 tuples": lambda: ap.zip(r(range(half)), r(range(half))),
        "sample_from(2 halves)": lambda: ap.sample_from([r(range(half)), r(range(half))], seed=0),
        "repeat(10) of n/10": lambda: r(range(n // 10)).repeat(10),
        "interleave(n/1000 x 1000, cycle 4)": lambda: r(range(n // 1000)).interleave(
            lambda _: range(1000), cycle_length=4
        ),
        "window(4, shift=4) -> n/4 lists": lambda: r(range(n)).window(4),
        "cache() replayed": _cached(n),
    }


def _cached(n: int) -> Callable[[], ap.Pipeline[Any]]:
    pipe = ap.from_iterable(range(n)).cache()
    anyio.run(pipe.collect)  # filled once, outside the timing
    return lambda: pipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = None
    print(f"n = {args.n:,} elements, median of {args.runs} runs (asyncio)")
    for label, make in cases(args.n).items():
        timing = time_runs(lambda make=make: anyio.run(make().collect), runs=args.runs)
        base = base or timing.median
        rate = args.n / timing.median
        print(
            f"{label:38s} {timing.median:7.3f}s [{timing.lo:.3f}..{timing.hi:.3f}] "
            f"{rate / 1e6:6.2f} M elem/s  x{timing.median / base:5.2f}"
        )


if __name__ == "__main__":
    main()
