"""W7 scale-out: CPU-bound map work inline, on executor="process" and on Ray (2 workers each).

400 elements of 20 ms of pure-Python CPU work each (the GIL is held, so threads cannot help) run
through ``from_iterable(...).map(burn, executor=...)``: inline (one core), on the local process
pool (``workers=2``) and on a local Ray of 2 CPUs with ``RayExecutor()`` (``workers=4``: two calls
queued per Ray worker, so a round trip to Ray never leaves one idle). The target: Ray >= 1.5x
inline on this 2-core machine (2.0x is the ceiling). Smaller work sizes (5 ms, 1 ms) show what a
remote call costs: the overhead per element is the wall time per element minus the ideal
``work / 2``.
Also reported: Ray's startup time and the memory of the processes it starts. Ray's workers run at
niceness 0 here (Ray's default is 15), the process pool's priority.

    python benchmarks/w7_ray.py [--quick] [--runs R] [--json PATH] [--chart DIR]
"""

from __future__ import annotations

import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Timing, Workload, have, standalone, timed_workload

import aiopipe as ap

WORKERS = 2  # processes of the pool; CPUs of the local Ray (this machine's cores)
RAY_IN_FLIGHT = 2 * WORKERS  # map(workers=) on Ray
# (work per element in ms, elements): the headline size first.
SIZES = ((20, 400), (5, 400), (1, 1000))
QUICK_SIZES = ((2, 20),)
TARGET = 1.5


def burn(loops: int, x: int) -> int:
    """Pure-Python CPU work holding the GIL; ``loops`` calibrated to the wanted time."""
    acc = x
    for i in range(loops):
        acc = (acc * 31 + i) % 1_000_003
    return acc


def calibrate(ms: float) -> int:
    """Loops of :func:`burn` that take ``ms`` milliseconds here (the fastest of a few tries: the
    machine is shared, and the slower tries measure the neighbours)."""
    probe = 20_000
    tries = []
    for _ in range(5):
        t0 = time.perf_counter()
        burn(probe, 1)
        tries.append(time.perf_counter() - t0)
    per_loop = min(tries) / probe
    return max(1, int(ms / 1000 / per_loop))


def run_map(n: int, fn: Any, executor: Any) -> list[int]:
    # Inline is one worker: the GIL-bound work could not overlap anyway. Ray's 2 workers get two
    # calls each in flight, so the next one is already there when one returns (a round trip to
    # Ray costs ms); the process pool runs exactly `workers` calls at once whatever we send.
    workers = 1 if executor is None else WORKERS if executor == "process" else RAY_IN_FLIGHT
    pipe = ap.from_iterable(range(n)).map(fn, workers=workers, executor=executor)
    out: list[int] = []
    with pipe.iter_sync() as it:
        out.extend(it)
    return out


def tree_rss_mb() -> tuple[float, int]:
    """Resident memory of the processes this one started (Ray's), and how many there are."""
    import psutil

    procs = psutil.Process().children(recursive=True)
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20, len(procs)


def run(*, quick: bool = False, runs: int | None = None) -> Workload:
    runs = runs or (1 if quick else 3)
    sizes = QUICK_SIZES if quick else SIZES
    w = Workload("W7", f"CPU-bound map on {WORKERS} workers: inline, process, Ray (s per run)")
    w.params = {"sizes_ms_elements": sizes, "runs": runs, "cpus": WORKERS, "ray": RAY_IN_FLIGHT}
    ray_ex = start_ray(w, quick)
    try:
        for ms, n in sizes:
            measure_size(w, ms, n, runs, ray_ex)
        if ray_ex is not None:
            measure_waiting(w, runs, ray_ex)
    finally:
        if ray_ex is not None:
            ray_ex.close()
    return w


def start_ray(w: Workload, quick: bool) -> Any:
    if not have("ray"):
        w.note("Ray rows skipped: ray is not installed (pip install 'aiopipe[ray]')")
        return None
    if quick:
        w.note("Ray rows skipped in --quick: starting a local Ray takes ~5-15 s")
        return None
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local cluster
    # Ray starts its workers at niceness 15, the process pool's run at 0: on a machine shared
    # with other work that alone would decide the race, so both compete at the same priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    if not os.environ.get("RAY_ADDRESS"):
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    t0 = time.perf_counter()
    ex = ap.executors.RayExecutor()
    startup = time.perf_counter() - t0
    w.add("Ray local startup", "startup", "s", startup, higher_is_better=False)
    if have("psutil"):
        mb, count = tree_rss_mb()
        w.add(f"Ray's {count} processes (RSS)", "memory", "MB", mb, higher_is_better=False)
    return ex


def measure_size(w: Workload, ms: int, n: int, runs: int, ray_ex: Any) -> None:
    fn = partial(burn, calibrate(ms))
    expected = [fn(x) for x in range(min(n, 3))]

    def check(out: list[int]) -> None:
        if len(out) != n or out[:3] != expected:
            raise AssertionError(f"W7: wrong output ({len(out)} of {n})")

    systems: dict[str, Any] = {"inline": None, "process": "process"}
    if ray_ex is not None:
        systems["Ray"] = ray_ex
    for executor in systems.values():
        if executor is not None:  # starts the pool's processes, imports fn on Ray's workers
            run_map(2 * WORKERS, fn, executor)
    wall: dict[str, list[float]] = {name: [] for name in systems}
    cpu: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(runs):
        # Round robin, so that a change in the machine's load hits every system alike.
        for name, executor in systems.items():
            c0, t0 = time.process_time(), time.perf_counter()
            out = run_map(n, fn, executor)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            check(out)
    base = Timing(tuple(wall["inline"])).median
    w.note(f"{ms} ms/element: measured {base / n * 1000:.2f} ms/element inline")
    for name, samples in wall.items():
        t = Timing(tuple(samples))
        kw: dict[str, Any] = {}
        if name != "inline":
            kw = {"ratio": base / t.median, "ratio_to": "x inline"}
        if name == "Ray" and ms == SIZES[0][0]:
            kw |= {"target": f">= {TARGET}x inline", "met": base / t.median >= TARGET}
        w.add_seconds(f"{name} {ms} ms x {n}", t, metric=f"{ms} ms/element", **kw)
        if name == "inline":
            continue
        # Beyond a perfect split of the inline work over the workers; and what the driver spent.
        overhead = (t.median - base / WORKERS) / n * 1000
        driver = Timing(tuple(cpu[name])).median / n * 1000
        w.note(
            f"{name} at {ms} ms: {base / t.median:.2f}x inline, {overhead:.2f} ms/element "
            f"overhead (wall), driver CPU {driver:.3f} ms/element"
        )


def wait_20ms(x: int) -> int:
    time.sleep(0.02)
    return x


def measure_waiting(w: Workload, runs: int, ray_ex: Any) -> None:
    """Elements that wait 20 ms without the CPU: what the executor costs, whatever the load."""
    n = 200
    ideal = n * 0.02 / WORKERS
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = run_map(n, wait_20ms, ray_ex)
        samples.append(time.perf_counter() - t0)
        if out != list(range(n)):
            raise AssertionError("W7: wrong output of wait_20ms")
    t = Timing(tuple(samples))
    label = f"Ray 20 ms waits x {n}"
    w.add_seconds(label, t, metric="20 ms waits", ratio=ideal / t.median, ratio_to="of ideal")


def main(argv: list[str] | None = None) -> int:
    return standalone(lambda **kw: timed_workload(lambda: run(**kw)), __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
