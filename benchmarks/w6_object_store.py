"""W6 object store: 20,000 objects of 16 KiB over HTTP with 20 ms before each response -> batch 64.

The server is ``aiopipe.testing._object_server`` in a process of its own on 127.0.0.1 (an asyncio
``Protocol``; its capacity is measured first, with no latency, and reported). aiopipe reads the
URLs with ``from_files(urls).read(WholeFile(), parallel=C).batch(64)`` at C = 256 and 1,024 in
flight. The ideal wall time is ``objects x latency / C``. Every system runs in a child process of
its own, which reports its wall time, peak RSS and the most threads it had. References in the
same run: a hand-written anyio task group on the same HTTP client (the floor of our overhead), and
64 threads each with a blocking ``http.client`` connection (what thread-pool loaders do).

    python benchmarks/w6_object_store.py [--quick] [--runs R] [--json PATH] [--chart DIR]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Timing, Workload, check_equal, standalone, timed_workload

LATENCY = 0.02
SIZE = 16 << 10
BATCH = 64
TARGET = 1.25


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Probe:
    """Peak threads, sampled once per batch by the consumer (no sampling thread of its own)."""

    def __init__(self) -> None:
        self.threads = _status("Threads")

    def sample(self) -> None:
        self.threads = max(self.threads, _status("Threads"))


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
    import http.client
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    local = threading.local()
    host = urlsplit(urls[0]).netloc

    def fetch(url: str) -> bytes:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(host)
        conn.request("GET", urlsplit(url).path)
        return conn.getresponse().read()

    count = total = 0
    batch: list[bytes] = []
    with ThreadPoolExecutor(concurrency) as pool:
        for body in pool.map(fetch, urls):
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


def child(system: str, base: str, n: int) -> None:
    fn, concurrency = SYSTEMS[system]
    urls = [f"{base}/bucket/obj-{i:05d}" for i in range(n)]
    probe = Probe()
    t0 = time.perf_counter()
    count, total = fn(urls, concurrency, probe)
    wall = time.perf_counter() - t0
    check_equal(f"W6 {system} objects", count, n)
    check_equal(f"W6 {system} bytes", total, n * SIZE)
    print(json.dumps({"wall": wall, "rss_mb": _status("VmHWM") / 1024, "threads": probe.threads}))


def _spawn(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
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
    srv = Server(n, LATENCY)
    try:
        for name, (_, concurrency) in SYSTEMS.items():
            if quick and concurrency != 256:
                continue  # --quick: a smoke run of the two 256-in-flight systems
            if not quick:
                _spawn(name, srv.url, str(min(n, 2000)))  # warm-up: imports, page cache
            results = [_spawn(name, srv.url, str(n)) for _ in range(runs)]
            t = Timing(tuple(r["wall"] for r in results))
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
    w.note("ideal = objects x latency / in flight; every system runs in a child process")
    return w


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], int(argv[3]))
        return 0
    return standalone(lambda **kw: timed_workload(lambda: run(**kw)), __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
