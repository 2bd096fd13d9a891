"""Which HTTP client for object reads: GETs of 16 KiB objects, 256 in flight, 20 ms latency.

Measures each candidate in a child process of its own against ``aiopipe.testing._object_server``:
wall time, requests/s and requests per client CPU-second (the number that survives a busy
machine: wall time on a shared 2-core box mostly measures the neighbours). Candidates: aiopipe's
own client (``aiopipe.remote._http``) on asyncio and trio, httpx on both, aiohttp (asyncio only),
obstore (Rust object_store; asyncio futures, so trio needs a bridge: an asyncio loop in one
thread, each request handed over and its completion signalled back to trio).

    python benchmarks/remote_clients.py [--requests N] [--inflight C]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from w6_object_store import SIZE, Server


async def _ours(urls: list[str], c: int) -> int:
    import anyio

    from aiopipe.remote._http import HttpClient

    it, total = iter(urls), 0
    async with HttpClient() as client:

        async def worker() -> None:
            nonlocal total
            for u in it:
                body = (await client.request("GET", u)).body  # await first: no lost update
                total += len(body)

        async with anyio.create_task_group() as tg:
            for _ in range(c):
                tg.start_soon(worker)
    return total


async def _httpx(urls: list[str], c: int) -> int:
    import anyio
    import httpx

    it, total = iter(urls), 0
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(limits=limits) as client:

        async def worker() -> None:
            nonlocal total
            for u in it:
                body = (await client.get(u)).content
                total += len(body)

        async with anyio.create_task_group() as tg:
            for _ in range(c):
                tg.start_soon(worker)
    return total


async def _aiohttp(urls: list[str], c: int) -> int:
    import aiohttp
    import anyio

    it, total = iter(urls), 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:

        async def worker() -> None:
            nonlocal total
            for u in it:
                async with session.get(u) as r:
                    body = await r.read()
                total += len(body)

        async with anyio.create_task_group() as tg:
            for _ in range(c):
                tg.start_soon(worker)
    return total


def _obstore_store(urls: list[str]) -> Any:
    from obstore.store import HTTPStore

    base = urls[0].rsplit("/", 2)[0] + "/"
    return HTTPStore.from_url(base, client_options={"allow_http": "true"})


async def _obstore(urls: list[str], c: int) -> int:
    import anyio
    import obstore

    store = _obstore_store(urls)
    keys = iter(u.split("/", 3)[3] for u in urls)
    total = 0

    async def worker() -> None:
        nonlocal total
        for k in keys:
            r = await obstore.get_async(store, k)
            body = await r.bytes_async()
            total += len(body)

    async with anyio.create_task_group() as tg:
        for _ in range(c):
            tg.start_soon(worker)
    return total


async def _obstore_trio(urls: list[str], c: int) -> int:
    """obstore under trio: one asyncio loop thread runs the futures; trio tasks await events."""
    import asyncio
    import threading

    import anyio
    import obstore
    import trio

    store = _obstore_store(urls)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    token = trio.lowlevel.current_trio_token()
    keys = iter(u.split("/", 3)[3] for u in urls)
    total = 0

    async def fetch(k: str) -> int:
        r = await obstore.get_async(store, k)
        return len(await r.bytes_async())

    async def worker() -> None:
        nonlocal total
        for k in keys:
            done = trio.Event()
            fut = asyncio.run_coroutine_threadsafe(fetch(k), loop)
            fut.add_done_callback(lambda _f, d=done: token.run_sync_soon(d.set))
            await done.wait()
            total += fut.result()  # no await between reading and writing total

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(c):
                tg.start_soon(worker)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
    return total


CANDIDATES: dict[str, tuple[Any, str]] = {
    "aiopipe HttpClient / asyncio": (_ours, "asyncio"),
    "aiopipe HttpClient / trio": (_ours, "trio"),
    "httpx / asyncio": (_httpx, "asyncio"),
    "httpx / trio": (_httpx, "trio"),
    "aiohttp / asyncio": (_aiohttp, "asyncio"),
    "obstore / asyncio": (_obstore, "asyncio"),
    "obstore / trio (thread bridge)": (_obstore_trio, "trio"),
}


def child(name: str, base: str, n: int, c: int) -> None:
    import anyio

    fn, backend = CANDIDATES[name]
    urls = [f"{base}/bucket/obj-{i:05d}" for i in range(n)]
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        total = anyio.run(fn, urls, c, backend=backend)
        error = "" if total == n * SIZE else f"got {total} bytes, expected {n * SIZE}"
    except BaseException as exc:  # reported, not fatal: a candidate may fail under load
        error = f"{type(exc).__name__}: {str(exc)[:120]}"
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(json.dumps({"wall": wall, "cpu": cpu, "error": error}))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], int(argv[3]), int(argv[4]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--inflight", type=int, default=256)
    p.add_argument("--latency", type=float, default=0.02)
    args = p.parse_args(argv)
    srv = Server(args.requests, args.latency)
    try:
        print(
            f"{args.requests} GETs of {SIZE} B, {args.inflight} in flight, {args.latency}s latency"
        )
        for name in CANDIDATES:
            cmd = [sys.executable, __file__, "--child", name, srv.url]
            cmd += [str(args.requests), str(args.inflight)]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            try:
                r = json.loads(out.stdout.strip().splitlines()[-1])
            except (IndexError, ValueError):
                print(f"  {name:34s} crashed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            if r["error"]:
                print(f"  {name:34s} failed after {r['wall']:.1f}s: {r['error']}")
                continue
            n = args.requests
            print(
                f"  {name:34s} wall {r['wall']:6.2f}s  {n / r['wall']:7,.0f} req/s  "
                f"{n / r['cpu']:7,.0f} req per client CPU-s"
            )
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
