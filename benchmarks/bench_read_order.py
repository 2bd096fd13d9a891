"""What ``read(parallel=N, deterministic=True)`` (tf.data's cycle order) costs against the default
completion order, on the same files, in the same run (issue 12).

    .venv/bin/python benchmarks/bench_read_order.py [--files 64] [--records 20000] [--runs 3]

Writes ``--files`` TFRecord files and as many text files (record counts varying from 1/2 to 3/2
of ``--records``) under .bench/data, then prints, per format and mode, the median seconds of
``--runs`` timed runs (after one warm-up), the spread, records per second, and the ratio of the
deterministic mode to the default one (1.00 = the order costs nothing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA_DIR, time_runs

import aiopipe as ap


def write_files(root: Path, files: int, records: int) -> dict[str, tuple[list[str], int]]:
    root.mkdir(parents=True, exist_ok=True)
    tf, text, total = [], [], 0
    for f in range(files):
        n = records // 2 + (f * 7919) % (records + 1)  # uneven lengths, the same every time
        total += n
        payload = [f"{f:04d}:{i:08d}:".encode() + b"x" * 40 for i in range(n)]
        p = root / f"part-{f:04d}-{n}.tfrecord"
        if not p.exists():
            ap.tfrecord.write(p, payload)
        t = root / f"part-{f:04d}-{n}.txt"
        if not t.exists():
            t.write_bytes(b"\n".join(payload) + b"\n")
        tf.append(str(p))
        text.append(str(t))
    return {"TFRecords": (tf, total), "TextLines": (text, total)}


async def count(pipe: ap.Pipeline[Any]) -> int:
    n = 0
    async with pipe.open() as run:
        while True:
            try:
                n += len(await run.receive_chunk())
            except anyio.EndOfStream:
                return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sets = write_files(DATA_DIR / "read_order", args.files, args.records)
    readers = {"TFRecords": ap.readers.TFRecords(), "TextLines": ap.readers.TextLines()}
    print(f"{args.files} files, parallel={args.parallel}, median of {args.runs} runs")
    print(
        f"{'reader':10} {'mode':16} {'median s':>9} {'spread':>15} {'records/s':>12} {'ratio':>6}"
    )
    for name, (paths, total) in sets.items():
        base = 0.0
        for det in (False, True):
            pipe = ap.from_files(paths).read(
                readers[name], parallel=args.parallel, deterministic=det
            )

            def check(n: int, total: int = total) -> None:
                if n != total:
                    raise AssertionError(f"read {n} records, expected {total}")

            def once(pipe: ap.Pipeline[Any] = pipe) -> int:
                return anyio.run(count, pipe)

            t = time_runs(once, runs=args.runs, check=check)
            base = base or t.median
            mode = "deterministic" if det else "completion order"
            print(
                f"{name:10} {mode:16} {t.median:9.3f} {t.lo:7.3f}-{t.hi:<7.3f} "
                f"{total / t.median:12,.0f} {t.median / base:6.2f}"
            )


if __name__ == "__main__":
    main()
