"""Memory: peak RSS growth when 10x more elements go through the same pipeline.

Each size runs in a fresh subprocess, which reports its peak RSS (``VmHWM``, or
``resource.getrusage`` ``ru_maxrss`` where /proc is missing); growth = (peak at 10N - peak at N)
/ peak at N, median over the runs. A bounded
pipeline holds the same buffers whatever the length of its input, so the growth should be ~0. A
plain generator chain doing the same work shows the noise floor.

Pipeline: ``from_iterable(range(n))`` -> ``map(make 1 KiB array, workers=2, thread)`` ->
``shuffle(1024)`` -> ``batch(64)`` -> ``map(normalise)`` -> ``prefetch(4)``; the consumer sums. The
``executor="process"`` row runs the first map in worker processes and adds their sampled peak.

    python benchmarks/memory.py [--quick] [--runs R] [--json PATH] [--chart DIR]
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Workload, check_close, standalone, timed_workload

TARGET_PCT = 10.0
SIZE = 256  # float32 values per element: 1 KiB


def make(i: int) -> np.ndarray:
    return np.full(SIZE, i % 256, dtype=np.uint8).astype(np.float32)


def normalise(batch: np.ndarray) -> np.ndarray:
    return batch * np.float32(1 / 255)


def expected(n: int) -> float:
    # Computed without arrays of n elements: they would raise the very peak we measure.
    cycles, rest = divmod(n, 256)
    return (cycles * (255 * 256 // 2) + rest * (rest - 1) // 2) * SIZE / 255


def run_aiopipe(n: int, sync: bool, executor: str = "thread") -> float:
    import anyio

    import aiopipe as ap

    pipe = (
        ap.from_iterable(range(n))
        .map(make, workers=2, executor=executor)
        .shuffle(1024, seed=0)
        .batch(64)
        .map(normalise)
        .prefetch(4)
    )
    if sync:
        with pipe.iter_sync() as it:
            return sum(float(b.sum(dtype=np.float64)) for b in it)

    async def main() -> float:
        total = 0.0
        async with pipe.open() as batches:
            async for b in batches:
                total += float(b.sum(dtype=np.float64))
        return total

    return anyio.run(main)


def run_generators(n: int) -> float:
    def batches() -> Iterator[np.ndarray]:
        buf: list[np.ndarray] = []
        for i in range(n):
            buf.append(make(i))
            if len(buf) == 64:
                yield normalise(np.stack(buf))
                buf = []
        if buf:
            yield normalise(np.stack(buf))

    return sum(float(b.sum(dtype=np.float64)) for b in batches())


def child(system: str, n: int) -> None:
    import aiopipe  # noqa: F401  (same imports in every child, so the baselines compare)

    if system == "generators":
        total = run_generators(n)
    elif system == "process":
        with WorkersRss() as workers:
            total = run_aiopipe(n, sync=False, executor="process")
        check_close(f"memory {system} sum", total, expected(n), rel=1e-5)
        print(json.dumps({"maxrss_mb": peak_rss_mb() + workers.peak_mb}))
        return
    else:
        total = run_aiopipe(n, sync=system == "iter_sync")
    check_close(f"memory {system} sum", total, expected(n), rel=1e-5)
    print(json.dumps({"maxrss_mb": peak_rss_mb()}))


class WorkersRss:
    """Samples the summed RSS of our worker processes (children of the fork server) every 10 ms.

    Their peak is added to the parent's: shared-memory pages count on both sides, as ``ps`` does.
    """

    def __init__(self) -> None:
        import threading

        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> WorkersRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.01):
            total = 0
            for p in me.children(recursive=True):
                try:
                    if "resource_tracker" not in " ".join(p.cmdline()) and p.ppid() != me.pid:
                        total += p.memory_info().rss  # workers: the fork server's children
                except psutil.Error:
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)


def peak_rss_mb() -> float:
    """Peak RSS of this process.

    On Linux ``ru_maxrss`` survives ``execve``: a child started by a big parent (run_all with
    matplotlib loaded) reports the parent's peak. ``VmHWM`` belongs to the process's own address
    space, so we read it when /proc has it and use ``ru_maxrss`` elsewhere.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_mb(system: str, n: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", system, str(n)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["maxrss_mb"])


SYSTEMS = {
    "aiopipe async for": "async",
    "aiopipe iter_sync": "iter_sync",
    'aiopipe map(executor="process") (parent + workers)': "process",
    "generator chain (baseline)": "generators",
}


def run(*, quick: bool = False, runs: int | None = None) -> Workload:
    n = 5_000 if quick else 30_000
    runs = runs or (1 if quick else 3)
    w = Workload("memory", f"peak RSS, {n:,} vs {10 * n:,} elements of 1 KiB")
    w.params = {"n": n, "runs": runs}
    for name, system in SYSTEMS.items():
        small = [peak_mb(system, n) for _ in range(runs)]
        big = [peak_mb(system, 10 * n) for _ in range(runs)]
        s, b = statistics.median(small), statistics.median(big)
        growth = (b - s) / s * 100
        ours = name.startswith("aiopipe")
        w.add(
            name,
            "peak RSS growth 10x elements",
            "%",
            growth,
            target=f"< {TARGET_PCT:.0f} %" if ours else "",
            met=growth < TARGET_PCT if ours else None,
        )
        w.note(f"{name}: peak RSS {s:.1f} MB at {n:,}, {b:.1f} MB at {10 * n:,} (median of {runs})")
    return w


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1], int(argv[2]))
        return 0
    return standalone(lambda **kw: timed_workload(lambda: run(**kw)), __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
