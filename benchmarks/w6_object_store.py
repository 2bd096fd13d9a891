"""W6 object store: 20,000 objects of 16 KiB over HTTP with 20 ms before each response -> batch 64.

The server is ``aiopipe.testing._object_server`` in a process of its own on 127.0.0.1 (an asyncio
``Protocol``; its capacity is measured first, with no latency, and reported). aiopipe reads the
URLs with ``from_files(urls).read(WholeFile(), parallel=C).batch(64)`` at C = 256 and 1,024 in
flight. The ideal wall time is ``objects x latency / C``. Every system runs in a child process of
its own, which reports its wall time, peak RSS and the most threads it had. References in the
same run: a hand-written anyio task group on the same HTTP client (the floor of our overhead), and
64 threads each with a blocking ``http.client`` connection (what thread-pool loaders do). Rivals,
when installed (``make bench-rivals``; see ``_rivals.w6_systems``): DataLoader with 16 worker
processes, torchdata.nodes and Grain with 64 threads, tf.data with 64 parallel calls (each with a
blocking client), and SPDL with 256 async GETs; the target's second half, ahead of every rival,
is judged when one ran.

    python benchmarks/w6_object_store.py [--quick] [--runs R] [--json PATH] [--chart DIR]
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _rivals
from _common import Timing, Workload, check_equal, standalone, timed_workload

LATENCY = 0.02
SIZE = 16 << 10
BATCH = 64
TARGET = 1.25


def _status(field: str, pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (DataLoader's workers), from ``/proc/PID/task/TID/children``."""
    found: list[int] = []
    todo = [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:  # the thread or process ended meanwhile
                continue
            found += kids
            todo += kids
    return found


class Probe:
    """Peak threads and memory, sampled once per batch by the consumer (no sampling thread).

    Threads are counted over the whole process tree. Memory is this process's peak RSS plus the
    largest sum seen of its child processes' PSS: their proportional share, so that pages shared
    since a fork are not counted once per DataLoader worker. The tree is walked at most every
    ``TREE_S``, so that sampling costs the fast systems nothing measurable.
    """

    TREE_S = 0.2

    def __init__(self) -> None:
        self.threads = _status("Threads")
        self.children_kb = 0
        self._next_tree = 0.0

    def sample(self) -> None:
        self.threads = max(self.threads, _status("Threads"))
        now = time.monotonic()
        if now < self._next_tree:
            return
        self._next_tree = now + self.TREE_S
        threads, pss = _status("Threads"), 0
        for pid in _descendants(os.getpid()):
            try:
                threads += _status("Threads", pid)
                pss += _pss_kb(pid)
            except OSError:  # a worker that exited meanwhile
                continue
        self.threads = max(self.threads, threads)
        self.children_kb = max(self.children_kb, pss)

    def rss_mb(self) -> float:
        return (_status("VmHWM") + self.children_kb) / 1024


def run_aiopipe(urls: list[str], concurrency: int, probe: Probe) -> tuple[int, int]:
    import anyio

    import aiopipe as ap

    async def main() -> tuple[int, int]:
        pipe = (
            ap.from_files(urls)
            .read(ap.readers.WholeFile(), parallel=concurrency)
            .batch(BATCH, collate=list)
        )
        count = total = 0
        async with pipe.open() as batches:
            async for batch in batches:
                count += len(batch)
                total += sum(map(len, batch))
                probe.sample()
        return count, total

    return anyio.run(main)


def run_task_group(urls: list[str], concurrency: int, probe: Probe) -> tuple[int, int]:
    """Hand-written: C tasks on one HttpClient, batches of 64 built by hand."""
    import anyio

    from aiopipe.remote._http import HttpClient

    async def main() -> tuple[int, int]:
        it = iter(urls)
        count = total = 0
        batch: list[bytes] = []

        async def worker(client: HttpClient) -> None:
            nonlocal count, total, batch
            for url in it:
                body = (await client.request("GET", url)).body
                batch.append(body)
                if len(batch) == BATCH:
                    count += len(batch)
                    total += sum(map(len, batch))
                    batch = []
                    probe.sample()

        async with HttpClient() as client, anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker, client)
        return count + len(batch), total + sum(map(len, batch))

    return anyio.run(main)


def run_threads_prefetch(urls: list[str], concurrency: int, probe: Probe) -> tuple[int, int]:
    """The same threads kept busy: every URL submitted at once, results taken in order."""
    from concurrent.futures import ThreadPoolExecutor

    count = total = 0
    batch: list[bytes] = []
    with ThreadPoolExecutor(concurrency) as pool:
        for body in pool.map(_rivals.blocking_get(urls[0]), urls):
            batch.append(body)
            if len(batch) == BATCH:
                count += len(batch)
                total += sum(map(len, batch))
                batch = []
                probe.sample()
    return count + len(batch), total + sum(map(len, batch))


SYSTEMS: dict[str, tuple[Any, int]] = {
    "aiopipe read(WholeFile, parallel=256)": (run_aiopipe, 256),
    "aiopipe read(WholeFile, parallel=1024)": (run_aiopipe, 1024),
    "anyio task group, 256 tasks, same HTTP client (hand-written)": (run_task_group, 256),
    "64 threads, blocking http.client (thread-pool loader)": (run_threads_prefetch, 64),
}


def all_systems() -> dict[str, tuple[Any, int]]:
    """Ours and the references, then the rivals that are installed."""
    return SYSTEMS | _rivals.w6_systems()


def child(system: str, base: str, n: int) -> None:
    fn, concurrency = all_systems()[system]
    # Imports are not on the clock: ours, and the rival's package (TensorFlow's takes seconds).
    importlib.import_module("aiopipe.remote._http")
    importlib.import_module(_rivals.w6_imports(system) or "aiopipe")
    urls = [f"{base}/bucket/obj-{i:05d}" for i in range(n)]
    if os.environ.get("AIOPIPE_BENCH_NO_GC"):  # ab_w6.py --no-gc: what the collector costs
        gc.disable()
    probe = Probe()
    t0, cpu0 = time.perf_counter(), time.process_time()
    count, total = fn(urls, concurrency, probe)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    check_equal(f"W6 {system} objects", count, n)
    check_equal(f"W6 {system} bytes", total, n * SIZE)
    rss, threads = probe.rss_mb(), probe.threads
    print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": rss, "threads": threads}))


def _spawn(*args: str, env: dict[str, str] | None = None) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


class Server:
    def __init__(self, n: int, latency: float) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiopipe.testing._object_server",
                "--count",
                str(n),
                "--size",
                str(SIZE),
                "--latency",
                str(latency),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        import os

        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def server_capacity(n: int) -> tuple[float, float]:
    """(requests/s with no latency and 256 clients, requests per server CPU-second)."""
    srv = Server(n, 0.0)
    try:
        cpu0 = srv.cpu_s()
        res = _spawn(
            "anyio task group, 256 tasks, same HTTP client (hand-written)", srv.url, str(n)
        )
        return n / res["wall"], n / max(1e-9, srv.cpu_s() - cpu0)
    finally:
        srv.stop()


def run(*, quick: bool = False, runs: int | None = None) -> Workload:
    n = 20_000 if not quick else 600
    runs = runs or (1 if quick else 3)
    w = Workload(
        "W6", f"{n:,} objects of 16 KiB over HTTP, {LATENCY * 1e3:.0f} ms each -> batch 64"
    )
    w.params = {"objects": n, "latency_s": LATENCY, "object_bytes": SIZE, "runs": runs}
    rate, per_cpu = server_capacity(n)
    w.note(
        f"object server alone (no latency, 256 connections): {rate:,.0f} req/s; "
        f"{per_cpu:,.0f} requests per server CPU-second"
    )
    rivals = _rivals.w6_systems()
    walls: dict[str, float] = {}
    srv = Server(n, LATENCY)
    try:
        for name, (_, concurrency) in (SYSTEMS | rivals).items():
            if quick and concurrency != 256:
                continue  # --quick: a smoke run of the 256-in-flight systems
            try:
                if not quick:
                    _spawn(name, srv.url, str(min(n, 2000)))  # warm-up: imports, page cache
                results = [_spawn(name, srv.url, str(n)) for _ in range(runs)]
            except subprocess.SubprocessError as exc:
                if name not in rivals:
                    raise
                w.note(f"{name} failed: {_failure(exc)}")  # a rival that breaks is reported
                continue
            t = Timing(tuple(r["wall"] for r in results))
            walls[name] = t.median
            ideal = n * LATENCY / concurrency
            ratio = t.median / ideal
            kw: dict[str, Any] = {"ratio": ratio, "ratio_to": f"of ideal {ideal:.2f} s"}
            if name.startswith("aiopipe") and concurrency == 256:
                kw |= {"target": f"<= {TARGET}x ideal", "met": ratio <= TARGET}
            peak = max(r["rss_mb"] for r in results)
            threads = max(int(r["threads"]) for r in results)
            w.add_seconds(name, t, metric="wall", unit="s", **kw)
            w.add(name, "peak RSS", "MB", peak, higher_is_better=False)
            w.add(name, "threads", "threads", threads, higher_is_better=False)
    finally:
        srv.stop()
    ahead_of_rivals(w, walls, [name for name in rivals if name in walls])
    w.note("ideal = objects x latency / in flight; every system runs in a child process")
    w.note(
        "threads: the most seen in the system's process tree; peak RSS: the process's peak plus "
        "its worker processes' PSS (DataLoader), sampled every 0.2 s"
    )
    return w


OURS_256 = "aiopipe read(WholeFile, parallel=256)"


def ahead_of_rivals(w: Workload, walls: dict[str, float], rivals: list[str]) -> None:
    """The target's second half: aiopipe at 256 in flight ahead of every rival in this run."""
    if not rivals:
        w.note("'ahead of every rival' is judged with the rivals installed (make bench-rivals)")
        return
    if OURS_256 not in walls:
        return
    fastest = min(rivals, key=walls.__getitem__)
    ratio = walls[OURS_256] / walls[fastest]
    w.add(
        OURS_256,
        "wall / fastest rival's",
        "x",
        round(ratio, 3),
        higher_is_better=False,
        target="< 1 (ahead of every rival)",
        met=ratio < 1.0,
    )
    w.note(f"fastest rival in this run: {fastest}, {walls[fastest]:.2f} s")


def _failure(exc: subprocess.SubprocessError) -> str:
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"no result after {exc.timeout:.0f} s"
    stderr = getattr(exc, "stderr", "") or ""
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else str(exc)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], int(argv[3]))
        return 0
    return standalone(lambda **kw: timed_workload(lambda: run(**kw)), __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
