"""A/B of the read stage's client CPU per object on W6, between this checkout and another one.

    git worktree add /tmp/old <commit>
    .venv/bin/python benchmarks/ab_w6.py --old /tmp/old/src --pairs 3 --in-flight 256

One object server (``w6_object_store.Server``, 20 ms per response) serves every run, after a
warm-up run. Each round runs, each in a fresh child process and in an order that turns every
round: the other checkout's aiopipe, this one's, and the hand-written anyio task group on the
same HTTP client (the floor). A child reports its wall time
and its own CPU time (``time.process_time``), which a loaded machine disturbs far less than wall
time: the CPU a run spends per object is the comparable number.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from w6_object_store import LATENCY, Server, _spawn

NEW = str(Path(__file__).resolve().parents[1] / "src")
FLOOR = "anyio task group, 256 tasks, same HTTP client (hand-written)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the other checkout's src directory")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, choices=(256, 1024), default=256)
    parser.add_argument(
        "--no-gc", action="store_true", help="children run with the garbage collector off"
    )
    args = parser.parse_args(argv)
    system = f"aiopipe read(WholeFile, parallel={args.in_flight})"
    runs = {"old": (args.old, system), "new": (NEW, system), "floor": (NEW, FLOOR)}
    got: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    srv = Server(args.objects, LATENCY)
    order = list(runs)
    try:
        _spawn(FLOOR, srv.url, str(args.objects))  # warm-up: the server's first pass
        for i in range(args.pairs):
            # The order turns every round: a run right after another system's ran measurably
            # slower here, and a fixed order gave the first system that handicap every time.
            turn = i % len(order)
            for name in order[turn:] + order[:turn]:
                src, what = runs[name]
                env = dict(os.environ, PYTHONPATH=src)
                if args.no_gc:
                    env["AIOPIPE_BENCH_NO_GC"] = "1"
                got[name].append(_spawn(what, srv.url, str(args.objects), env=env))
    finally:
        srv.stop()
    gc_note = ", garbage collector off" if args.no_gc else ""
    what = f"{args.objects:,} objects, {args.in_flight} in flight{gc_note}"
    print(f"W6, {what}, medians of {args.pairs}:")
    for name, results in got.items():
        wall = statistics.median(r["wall"] for r in results)
        cpu = statistics.median(r["cpu"] for r in results) / args.objects * 1e6
        label = "hand-written floor" if name == "floor" else f"aiopipe ({name})"
        print(f"  {label:22s} wall {wall:6.2f} s   client CPU {cpu:5.0f} us per object")
    return 0


if __name__ == "__main__":
    sys.exit(main())
