"""W2b slow storage: 2,000 files of W2 behind a fetch with 5 ms latency (an object store).

The "object store" is the files' bytes held in memory; a fetch waits 5 ms (``anyio.sleep``, as an
async client would) and returns the bytes. The pipeline then decodes, normalises and batches 64, and
the consumer checks the sum. aiopipe runs the fetch as ``map(fetch, workers=C, ordered=False)``;
the ideal wall time is ``files x latency / C``. Rivals that cannot await get the same latency as a
blocking ``time.sleep`` in their workers.

    python benchmarks/w2b_slow_storage.py [--quick] [--runs R] [--json PATH] [--chart DIR]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _rivals
from _common import (
    DATA_DIR,
    Timing,
    Workload,
    check_close,
    check_equal,
    have,
    standalone,
    time_runs,
    timed_workload,
)
from w2_small_files import BATCH, decode_normalise_batch, list_files, make_files

import aiopipe as ap

LATENCY = 0.005
TARGET = 1.25  # wall within 1.25x of the ideal


class Store:
    """Objects by key, with a fixed latency per fetch."""

    def __init__(self, objects: dict[str, bytes], latency: float) -> None:
        self.objects = objects
        self.latency = latency

    async def fetch(self, key: str) -> bytes:
        await anyio.sleep(self.latency)
        return self.objects[key]

    def fetch_blocking(self, key: str) -> bytes:
        time.sleep(self.latency)
        return self.objects[key]


Result = tuple[float, int]


def sequential(store: Store, keys: list[str]) -> Result:
    total, count = 0.0, 0
    for i in range(0, len(keys), BATCH):
        batch = decode_normalise_batch([store.fetch_blocking(k) for k in keys[i : i + BATCH]])
        total += float(batch.sum(dtype=np.float64))
        count += len(batch)
    return total, count


def aiopipe_run(concurrency: int) -> Callable[[Store, list[str]], Result]:
    def run(store: Store, keys: list[str]) -> Result:
        async def main() -> Result:
            pipe = (
                ap.from_iterable(keys)
                .map(store.fetch, workers=concurrency, ordered=False)
                .batch(BATCH, collate=list)
                .map(decode_normalise_batch)
            )
            total, count = 0.0, 0
            async with pipe.open() as batches:
                async for batch in batches:
                    total += float(batch.sum(dtype=np.float64))
                    count += len(batch)
            return total, count

        return anyio.run(main)

    return run


def anyio_task_group(concurrency: int) -> Callable[[Store, list[str]], Result]:
    """Hand-written: C tasks pulling keys from a shared iterator (the floor of overhead)."""

    def run(store: Store, keys: list[str]) -> Result:
        async def main() -> Result:
            records: list[bytes] = []
            it = iter(keys)

            async def worker() -> None:
                for key in it:
                    records.append(await store.fetch(key))

            async with anyio.create_task_group() as tg:
                for _ in range(concurrency):
                    tg.start_soon(worker)
            total, count = 0.0, 0
            for i in range(0, len(records), BATCH):
                batch = decode_normalise_batch(records[i : i + BATCH])
                total += float(batch.sum(dtype=np.float64))
                count += len(batch)
            return total, count

        return anyio.run(main)

    return run


def torch_loader(workers: int) -> Callable[[Store, list[str]], Result]:
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Remote(Dataset[Any]):
        def __init__(self, store: Store, keys: list[str]) -> None:
            self.store, self.keys = store, keys

        def __len__(self) -> int:
            return len(self.keys)

        def __getitem__(self, i: int) -> Any:
            return self.store.fetch_blocking(self.keys[i])

    def collate(records: list[bytes]) -> Any:
        return torch.from_numpy(decode_normalise_batch(records))

    def run(store: Store, keys: list[str]) -> Result:
        total, count = 0.0, 0
        loader = DataLoader(
            Remote(store, keys), batch_size=BATCH, num_workers=workers, collate_fn=collate
        )
        for batch in loader:
            total += float(batch.sum(dtype=torch.float64))
            count += len(batch)
        return total, count

    return run


def tf_data(store: Store, keys: list[str]) -> Result:
    import tensorflow as tf

    def fetch(key: Any) -> Any:
        return tf.numpy_function(lambda k: store.fetch_blocking(k.decode()), [key], tf.string)

    ds = (
        tf.data.Dataset.from_tensor_slices(keys)
        .map(fetch, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(BATCH)
        .prefetch(tf.data.AUTOTUNE)
    )
    total, count = 0.0, 0
    for batch in ds:
        arr = decode_normalise_batch(list(batch.numpy()))
        total += float(arr.sum(dtype=np.float64))
        count += len(arr)
    return total, count


async def sleep_overshoot() -> float:
    t0 = time.perf_counter()
    for _ in range(40):
        await anyio.sleep(LATENCY)
    return (time.perf_counter() - t0) / 40


def run(*, quick: bool = False, runs: int | None = None) -> Workload:
    n_files = 2_000 if not quick else 300
    runs = runs or (2 if quick else 5)
    src_n = 2_000
    _, _ = make_files(src_n, DATA_DIR / f"w2_{src_n}")
    paths = list_files(DATA_DIR / f"w2_{src_n}")[:n_files]
    objects = {p: Path(p).read_bytes() for p in paths}
    expected = float(
        sum(np.frombuffer(b, np.uint8).sum(dtype=np.float64) for b in objects.values()) / 255
    )
    store = Store(objects, LATENCY)
    keys = list(objects)
    w = Workload("W2b", f"{n_files:,} files behind a {LATENCY * 1e3:.0f} ms fetch -> batch {BATCH}")
    w.params = {"files": n_files, "latency_s": LATENCY, "runs": runs}

    def check(res: Result) -> None:
        check_equal("W2b samples", res[1], n_files)
        check_close("W2b sum", res[0], expected)

    systems: dict[str, tuple[Callable[[Store, list[str]], Result], int]] = {
        "aiopipe map(fetch, workers=64)": (aiopipe_run(64), 64),
        "aiopipe map(fetch, workers=128)": (aiopipe_run(128), 128),
        "anyio task group, 64 tasks (hand-written)": (anyio_task_group(64), 64),
        "anyio task group, 128 tasks (hand-written)": (anyio_task_group(128), 128),
    }
    if have("torch"):
        systems["torch DataLoader(num_workers=0)"] = (torch_loader(0), 1)
        systems["torch DataLoader(num_workers=2)"] = (torch_loader(2), 2)
        systems["torch DataLoader(num_workers=16)"] = (torch_loader(16), 16)
    if have("tensorflow"):
        systems["tf.data AUTOTUNE (blocking fetch)"] = (tf_data, 0)
    systems |= _rivals.w2b_systems()

    medians: dict[str, float] = {}
    for name, (fn, concurrency) in systems.items():
        try:
            t = time_runs(lambda fn=fn: fn(store, keys), runs=runs, check=check)
        except Exception as exc:
            if name.startswith("aiopipe"):
                raise
            w.note(f"{name} failed: {type(exc).__name__}: {exc}")
            continue
        medians[name] = t.median
        kw: dict[str, Any] = {}
        if concurrency:
            ideal = n_files * LATENCY / concurrency
            ratio = t.median / ideal
            kw = {"ratio": ratio, "ratio_to": f"of ideal {ideal * 1e3:.0f} ms"}
            if name.startswith("aiopipe"):
                kw |= {"target": f"<= {TARGET}x ideal", "met": ratio <= TARGET}
        w.add_seconds(name, t, metric="wall", unit="ms", **kw)
    # The sequential loop: one run is enough to show the floor (it takes files x latency).
    if not quick:
        t = time_runs(lambda: sequential(store, keys[:200]), runs=1, warmup=0, check=None)
        w.add_seconds(
            "sequential loop (blocking fetch), first 200 files, scaled",
            Timing((t.median * n_files / 200,)),
            metric="wall",
            unit="ms",
            ratio=t.median * n_files / 200 / (n_files * LATENCY),
            ratio_to="of ideal",
        )
    for c in (64, 128):
        ours = medians.get(f"aiopipe map(fetch, workers={c})")
        hand = medians.get(f"anyio task group, {c} tasks (hand-written)")
        if ours and hand:
            w.note(f"aiopipe / hand-written task group at {c} in flight: {ours / hand:.2f}x")
    overshoot = anyio.run(sleep_overshoot)
    w.note(
        f"one anyio.sleep({LATENCY}) takes {overshoot * 1e3:.2f} ms here, and {n_files} files "
        f"need ceil({n_files}/C) rounds, so even hand-written code cannot reach the ideal"
    )
    w.note(
        "ideal = files x latency / concurrency; time.sleep and anyio.sleep overshoot a little, "
        "which counts against every system alike"
    )
    return w


def main(argv: list[str] | None = None) -> int:
    return standalone(lambda **kw: timed_workload(lambda: run(**kw)), __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
