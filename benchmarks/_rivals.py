"""Rival systems for the workloads: the same work as the aiopipe systems, in other loaders.

Each ``wN_systems()`` returns a dict of systems shaped like the workload module's own: same
inputs, same outputs, so the module's ``check`` validates them alike. A rival appears only when
its package is importable (``have`` prints "skipped: X not installed" once); rival packages are
imported inside the functions, so this module imports in the plain ``.venv`` too. The workload
helpers are imported inside the functions as well: the workload modules import this one, and a
top-level import back would be circular.

Every rival is stopped and its threads joined before its function returns (``_joined_threads``),
so one system's leftovers never run during the next system's timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package

from _common import discount, have, untimed

if TYPE_CHECKING:
    from w2b_slow_storage import Store
    from w6_object_store import Probe

T = TypeVar("T")

W2Result = tuple[float, int, float]  # (sum of normalised values, samples, s to first batch)
W2bResult = tuple[float, int]  # (sum, samples)
W3Result = tuple[int, int]  # (count, sum)
W2bSystem = Callable[["Store", list[str]], W2bResult]


# -- shared plumbing -----------------------------------------------------------------------------


@contextlib.contextmanager
def _joined_threads(timeout: float = 5.0) -> Iterator[None]:
    """Join every thread started inside the block; fail if one is still running after it.

    torchdata stops its worker threads on exhaustion but joins them only when garbage collected
    (its Loader and iterator form a reference cycle), and Grain's ``close`` does not wait: without
    this, their threads could still be winding down during the next system's timing.
    """
    before = set(threading.enumerate())
    try:
        yield
    finally:
        # Not on the clock: a training loop does not wait for the loader's threads to wind down
        # after its last batch (torchdata's poll every 0.1 s); we only keep runs independent.
        with untimed():
            deadline = time.monotonic() + timeout
            for t in set(threading.enumerate()) - before:
                t.join(max(0.0, deadline - time.monotonic()))
    stray = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    if stray:  # only on a normal exit: an error in the block propagates as it is
        raise RuntimeError(f"threads still running after the loader finished: {stray}")


@contextlib.contextmanager
def _closing_iter(ds: Any) -> Iterator[Any]:
    """A Grain dataset's iterator, closed on exit (its ``close`` shuts down the reader threads)."""
    it = iter(ds)
    try:
        yield it
    finally:
        it.close()


async def _async_items(items: Iterable[T]) -> AsyncIterator[T]:
    """An in-memory source as an async iterator, for SPDL.

    SPDL 0.8 runs a synchronous source on its own thread with one cross-thread round trip per
    item (about 0.1 ms each here, which halves W1's rate); an async source runs on the loop.
    """
    for item in items:
        yield item


def _w2_tally() -> Any:
    """W2's consumer (``w2_small_files.Tally``), started now."""
    from w2_small_files import Tally

    return Tally()


def _sum_batches(batches: Iterable[np.ndarray]) -> W2bResult:
    total, count = 0.0, 0
    for batch in batches:
        total += float(batch.sum(dtype=np.float64))
        count += len(batch)
    return total, count


def _train_on(items: Iterable[int]) -> W3Result:
    """The W3 consumer: a plain ``for`` loop running the blocking training step per item."""
    from w3_overlap import train_step

    count = total = 0
    for x in items:
        train_step(x)
        count += 1
        total += int(x)
    return count, total


def _installed(candidates: list[tuple[str, str, T]]) -> dict[str, T]:
    """``{name: system}`` for the ``(package, name, system)`` whose package is importable."""
    return {name: system for package, name, system in candidates if have(package)}


# -- W1: per-item overhead, range(n) -> map(x + 1) -> batch 256 -> sum ---------------------------

W1_QUEUE = 512  # bound of the hand-written queues


def w1_asyncio_queue(n: int) -> int:
    """Hand-written: a producer task puts each mapped item in a bounded ``asyncio.Queue``."""
    from bench_engine import BATCH

    async def main() -> int:
        queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=W1_QUEUE)

        async def produce() -> None:
            for x in range(n):
                await queue.put(x + 1)
            await queue.put(None)  # end of input

        total, buf = 0, []
        async with asyncio.TaskGroup() as tg:
            tg.create_task(produce())
            while (y := await queue.get()) is not None:
                buf.append(y)
                if len(buf) == BATCH:
                    total += int(np.asarray(buf).sum())
                    buf = []
        if buf:
            total += int(np.asarray(buf).sum())
        return total

    return asyncio.run(main())


def w1_anyio_stream(n: int) -> int:
    """Hand-written: one ``await send`` per item into a bounded anyio memory object stream."""
    from bench_engine import BATCH

    async def main() -> int:
        send, receive = anyio.create_memory_object_stream[int](W1_QUEUE)

        async def produce() -> None:
            async with send:
                for x in range(n):
                    await send.send(x + 1)

        total, buf = 0, []
        async with anyio.create_task_group() as tg, receive:
            tg.start_soon(produce)
            async for y in receive:
                buf.append(y)
                if len(buf) == BATCH:
                    total += int(np.asarray(buf).sum())
                    buf = []
        if buf:
            total += int(np.asarray(buf).sum())
        return total

    return anyio.run(main)


def w1_torch_dataloader(n: int) -> int:
    from bench_engine import BATCH
    from torch.utils.data import DataLoader, Dataset

    class Ints(Dataset[int]):
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int) -> int:
            return i + 1

    # num_workers=0: per-item overhead in one process, as the issue measures it.
    return sum(int(b.sum()) for b in DataLoader(Ints(), batch_size=BATCH, num_workers=0))


def w1_torchdata(n: int) -> int:
    from bench_engine import BATCH
    from torchdata.nodes import Batcher, IterableWrapper, Loader, Mapper

    node = Mapper(IterableWrapper(range(n)), lambda x: x + 1)  # Mapper: inline, no threads
    batches = Mapper(Batcher(node, batch_size=BATCH, drop_last=False), np.asarray)
    with _joined_threads():
        return sum(int(b.sum()) for b in Loader(batches))


def w1_tf_data(n: int) -> int:
    import tensorflow as tf
    from bench_engine import BATCH

    # Vectorised: the map runs once per batch, as the "tf.data (vectorised)" number.
    ds = tf.data.Dataset.range(n).batch(BATCH).map(lambda b: b + 1)
    return sum(int(b.numpy().sum()) for b in ds)


def w1_grain(n: int) -> int:
    import grain
    from bench_engine import BATCH

    ds = grain.MapDataset.range(n).map(lambda x: x + 1).batch(BATCH)
    # num_threads=0: Grain's docs advise no reader threads when the data is already in memory.
    in_memory = grain.ReadOptions(num_threads=0)
    with _joined_threads(), _closing_iter(ds.to_iter_dataset(in_memory)) as it:
        return sum(int(b.sum()) for b in it)


def w1_spdl(n: int) -> int:
    from bench_engine import BATCH
    from spdl.pipeline import PipelineBuilder

    # Async ops run on SPDL's event loop; a sync op would cost a thread-pool hop per item.
    async def add_one(x: int) -> int:
        return x + 1

    async def collate(batch: list[int]) -> np.ndarray:
        return np.asarray(batch)

    pipeline = (
        PipelineBuilder()
        .add_source(_async_items(range(n)))
        .pipe(add_one)
        .aggregate(BATCH)
        .pipe(collate)
        .add_sink(3)
        # The thread-backed output queue: the documented fast handoff to a sync consumer; its
        # blocking put takes a pool thread, which is all the pool does here.
        .build(num_threads=1, use_thread_output_queue=True)
    )
    with _joined_threads(), pipeline.auto_stop():
        return sum(int(b.sum()) for b in pipeline)


def w1_systems() -> dict[str, Callable[[int], int]]:
    """W1 systems: ``fn(n)`` returns the sum of every batch, ``n * (n + 1) // 2``."""
    return {
        "asyncio.Queue per item": w1_asyncio_queue,
        "anyio memory stream, await per item": w1_anyio_stream,
    } | _installed(
        [
            ("torch", "torch DataLoader(num_workers=0)", w1_torch_dataloader),
            ("torchdata", "torchdata.nodes", w1_torchdata),
            ("tensorflow", "tf.data (vectorised)", w1_tf_data),
            ("grain", "Grain", w1_grain),
            ("spdl", "SPDL", w1_spdl),
        ]
    )


# -- W2: many small files, read -> decode -> normalise -> batch 64 -------------------------------


def _load_sample(path: str) -> np.ndarray:
    """One sample, as the per-sample systems of W2 do it: read, decode, normalise."""
    from w2_small_files import DECODE, normalise, read_bytes

    return normalise(DECODE(read_bytes(path)))


def _read_many(paths: list[str]) -> list[bytes]:
    from w2_small_files import read_bytes

    return [read_bytes(p) for p in paths]


def w2_anyio_per_file(directory: Path) -> W2Result:
    """Hand-written: one ``to_thread`` hop per file, decode + normalise per sample, then stack."""
    from w2_small_files import BATCH, DECODE, list_files, normalise, read_bytes

    tally = _w2_tally()

    async def main() -> None:
        paths = list_files(directory)
        for i in range(0, len(paths), BATCH):
            samples = []
            for p in paths[i : i + BATCH]:
                raw = await anyio.to_thread.run_sync(read_bytes, p)
                samples.append(normalise(DECODE(raw)))
            tally.add(np.stack(samples))

    anyio.run(main)
    return tally.result()


def w2_anyio_per_batch(directory: Path) -> W2Result:
    """Hand-written: one ``to_thread`` hop reads 64 files; decode + normalise per sample."""
    from w2_small_files import BATCH, DECODE, list_files, normalise

    tally = _w2_tally()

    async def main() -> None:
        paths = list_files(directory)
        for i in range(0, len(paths), BATCH):
            records = await anyio.to_thread.run_sync(_read_many, paths[i : i + BATCH])
            tally.add(np.stack([normalise(DECODE(r)) for r in records]))

    anyio.run(main)
    return tally.result()


def w2_torchdata(directory: Path) -> W2Result:
    from torchdata.nodes import Batcher, IterableWrapper, Loader, Mapper, ParallelMapper
    from w2_small_files import BATCH, list_files

    tally = _w2_tally()
    node = IterableWrapper(list_files(directory))
    # Threads, not processes: reads release the GIL and the samples need no pickling.
    node = ParallelMapper(node, _load_sample, num_workers=2, method="thread")
    batches = Mapper(Batcher(node, batch_size=BATCH, drop_last=False), np.stack)
    with _joined_threads():
        for batch in Loader(batches):
            tally.add(batch)
    return tally.result()


def w2_grain(directory: Path) -> W2Result:
    import grain
    from w2_small_files import BATCH, list_files

    tally = _w2_tally()
    # Batching the MapDataset (Grain's tutorial order) hands a whole batch to a reader thread.
    ds = grain.MapDataset.source(list_files(directory)).map(_load_sample).batch(BATCH)
    # Reader threads, no worker processes (mp_prefetch): as the other threaded systems.
    # A buffer of 8 batches (>= num_threads, as Grain asks) keeps both threads busy.
    options = grain.ReadOptions(num_threads=2, prefetch_buffer_size=8)
    with _joined_threads(), _closing_iter(ds.to_iter_dataset(options)) as it:
        for batch in it:
            tally.add(batch)
    return tally.result()


def w2_spdl(directory: Path) -> W2Result:
    from spdl.pipeline import PipelineBuilder
    from w2_small_files import BATCH, list_files

    tally = _w2_tally()
    pipeline = (
        PipelineBuilder()
        .add_source(_async_items(list_files(directory)))
        .pipe(_load_sample, concurrency=2)
        .aggregate(BATCH)
        .pipe(np.stack)
        .add_sink(3)
        # Threads: 2 loading, 1 stacking, 1 for the thread-backed sink's blocking put.
        .build(num_threads=4, use_thread_output_queue=True)
    )
    with _joined_threads(), pipeline.auto_stop():
        for batch in pipeline:
            tally.add(batch)
    return tally.result()


def w2_systems() -> dict[str, Callable[[Path], W2Result]]:
    """W2 systems: ``fn(directory)`` returns (sum, samples, seconds to the first batch)."""
    return {
        "anyio to_thread per file": w2_anyio_per_file,
        "anyio to_thread, 64 files per call": w2_anyio_per_batch,
    } | _installed(
        [
            ("torchdata", "torchdata.nodes ParallelMapper(threads=2)", w2_torchdata),
            ("grain", "Grain", w2_grain),
            ("spdl", "SPDL", w2_spdl),
        ]
    )


# -- W2b: slow storage, fetch (5 ms) -> batch 64 -> decode + normalise ---------------------------

W2B_CONCURRENCY = 64


def w2b_spdl(store: Store, keys: list[str]) -> W2bResult:
    from spdl.pipeline import PipelineBuilder
    from w2_small_files import BATCH, decode_normalise_batch

    pipeline = (
        PipelineBuilder()
        .add_source(_async_items(keys))
        # store.fetch awaits anyio.sleep, which runs on SPDL's asyncio loop as it is.
        .pipe(store.fetch, concurrency=W2B_CONCURRENCY)
        .aggregate(BATCH)
        .pipe(decode_normalise_batch)
        .add_sink(3)
        # Threads: 1 decoding, 1 for the thread-backed sink's blocking put; fetches need none.
        .build(num_threads=2, use_thread_output_queue=True)
    )
    with _joined_threads(), pipeline.auto_stop():
        return _sum_batches(pipeline)


def w2b_torchdata(store: Store, keys: list[str]) -> W2bResult:
    from torchdata.nodes import Batcher, IterableWrapper, Loader, Mapper, ParallelMapper
    from w2_small_files import BATCH, decode_normalise_batch

    # in_order=False: order does not matter for the sum, and aiopipe runs ordered=False too.
    node = ParallelMapper(
        IterableWrapper(keys),
        store.fetch_blocking,
        num_workers=W2B_CONCURRENCY,
        method="thread",
        in_order=False,
    )
    batches = Mapper(Batcher(node, batch_size=BATCH, drop_last=False), decode_normalise_batch)
    with _joined_threads():
        return _sum_batches(Loader(batches))


def w2b_grain(store: Store, keys: list[str]) -> W2bResult:
    import grain
    from w2_small_files import BATCH, decode_normalise_batch

    # Fetch per element before batching, so 64 fetches are in flight (a batched MapDataset
    # would give each thread 64 sequential fetches); the buffer keeps every thread busy.
    options = grain.ReadOptions(
        num_threads=W2B_CONCURRENCY, prefetch_buffer_size=2 * W2B_CONCURRENCY
    )
    ds = (
        grain.MapDataset.source(keys)
        .map(store.fetch_blocking)
        .to_iter_dataset(options)
        .batch(BATCH, batch_fn=decode_normalise_batch)
    )
    with _joined_threads(), _closing_iter(ds) as it:
        return _sum_batches(it)


def w2b_systems() -> dict[str, tuple[W2bSystem, int]]:
    """W2b systems: ``(fn(store, keys) -> (sum, samples), fetches in flight)``."""
    c = W2B_CONCURRENCY
    return _installed(
        [
            ("spdl", "SPDL pipe(async fetch, concurrency=64)", (w2b_spdl, c)),
            ("torchdata", "torchdata.nodes ParallelMapper(threads=64)", (w2b_torchdata, c)),
            ("grain", "Grain ReadOptions(num_threads=64)", (w2b_grain, c)),
        ]
    )


# -- W3: overlap, a slow producer feeding a 9 ms training step -----------------------------------

W3_PREFETCH = 16  # items ready ahead of the consumer, as aiopipe's prefetch(16)


def _slow_item(latency: float) -> Callable[[int], int]:
    def load(i: int) -> int:
        time.sleep(latency)  # a blocking read, in a loader thread
        return i

    return load


def w3_torchdata(n: int, latency: float, workers: int) -> W3Result:
    from torchdata.nodes import IterableWrapper, Loader, ParallelMapper, Prefetcher

    # Threads: the producer only sleeps (I/O-like), which releases the GIL.
    node = ParallelMapper(
        IterableWrapper(range(n)), _slow_item(latency), num_workers=workers, method="thread"
    )
    with _joined_threads():
        return _train_on(Loader(Prefetcher(node, prefetch_factor=W3_PREFETCH)))


def w3_grain(n: int, latency: float, workers: int) -> W3Result:
    import grain

    # Reader threads (not mp_prefetch processes): the producer only sleeps.
    options = grain.ReadOptions(num_threads=workers, prefetch_buffer_size=W3_PREFETCH)
    ds = grain.MapDataset.range(n).map(_slow_item(latency)).to_iter_dataset(options)
    with _joined_threads(), _closing_iter(ds) as it:
        return _train_on(it)


def w3_spdl(n: int, latency: float, workers: int) -> W3Result:
    from spdl.pipeline import PipelineBuilder

    async def load(i: int) -> int:
        await anyio.sleep(latency)  # an async read, as aiopipe's producer
        return i

    pipeline = (
        PipelineBuilder()
        .add_source(_async_items(range(n)))
        .pipe(load, concurrency=workers)
        .add_sink(W3_PREFETCH)
        # One thread, for the thread-backed sink's blocking put; the loads are async.
        .build(num_threads=1, use_thread_output_queue=True)
    )
    with _joined_threads(), pipeline.auto_stop():
        return _train_on(pipeline)


def w3_systems() -> dict[str, Callable[[int, float, int], W3Result]]:
    """W3 systems: ``fn(n, latency, workers)`` returns (count, sum) of the items trained on."""
    return _installed(
        [
            ("torchdata", "torchdata.nodes", w3_torchdata),
            ("grain", "Grain", w3_grain),
            ("spdl", "SPDL", w3_spdl),
        ]
    )


# -- W8: tf.train.Example, read + parse + batch 256 ----------------------------------------------

W8Result = tuple[int, int, int, int, float]  # (records, label sum, tokens, image bytes, float sum)


def _w8_tally() -> Any:
    from w8_examples import Tally

    return Tally()


def _w8_tf_features() -> dict[str, Any]:
    import tensorflow as tf
    from w8_examples import FLOATS

    return {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "floats": tf.io.FixedLenFeature([FLOATS], tf.float32),
        "tokens": tf.io.VarLenFeature(tf.int64),
    }


def _w8_tf_consume(ds: Any) -> W8Result:
    tally = _w8_tally()
    for batch in ds:
        tokens = batch["tokens"]
        counts = [int(tokens.values.shape[0])]  # the consumer only counts them
        tally.add(batch["label"].numpy(), batch["floats"].numpy(), counts, batch["image"].numpy())
    return tally.result()


def w8_tf_single(path: str) -> W8Result:
    import tensorflow as tf
    from w8_examples import BATCH

    features = _w8_tf_features()
    ds = (
        tf.data.TFRecordDataset(path)
        .map(lambda r: tf.io.parse_single_example(r, features), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(BATCH)
        .prefetch(tf.data.AUTOTUNE)
    )
    return _w8_tf_consume(ds)


def w8_tf_batched(path: str) -> W8Result:
    import tensorflow as tf
    from w8_examples import BATCH

    features = _w8_tf_features()
    ds = (
        tf.data.TFRecordDataset(path)
        .batch(BATCH)
        .map(lambda r: tf.io.parse_example(r, features), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    return _w8_tf_consume(ds)


def _w8_batches(rows: Iterable[dict[str, Any]]) -> W8Result:
    """Per-record dicts (image bytes, label, floats, tokens arrays), batched 256 as lists."""
    from w8_examples import BATCH

    tally = _w8_tally()
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        tally.add(
            [r["label"] for r in batch],
            [r["floats"] for r in batch],
            [len(r["tokens"]) for r in batch],
            [r["image"] for r in batch],
        )

    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            flush()
            batch = []
    if batch:
        flush()
    return tally.result()


_W8_IN_SUBPROCESS = """
import json, sys, time
sys.path.insert(0, {here!r})
from _rivals import w8_tfrecord_package_here
t0 = time.perf_counter()
result = w8_tfrecord_package_here({path!r})
print(json.dumps({{"seconds": time.perf_counter() - t0, "result": result}}))
"""


def w8_tfrecord_package(path: str) -> W8Result:
    """In a subprocess timed from inside: the package's ``example_pb2`` and TensorFlow's own
    register the same protobuf names, so the two cannot be imported into one process."""
    import json
    import subprocess

    script = _W8_IN_SUBPROCESS.format(here=str(Path(__file__).resolve().parent), path=path)
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    out = json.loads(done.stdout.strip().splitlines()[-1])
    discount(time.perf_counter() - t0 - out["seconds"])  # count its loop, not its start-up
    records, labels, tokens, image_bytes, floats = out["result"]
    return records, labels, tokens, image_bytes, floats


def w8_tfrecord_package_here(path: str) -> W8Result:
    from tfrecord.reader import tfrecord_loader

    description = {"image": "byte", "label": "int", "floats": "float", "tokens": "int"}
    rows = tfrecord_loader(path, None, description)
    # It gives label as a 1-element array and image as bytes (one value), as documented.
    return _w8_batches({**r, "label": r["label"][0]} for r in rows)


def _upb_rows(records: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """protobuf's parser (upb) per record, values to numpy as a user would write it."""
    from _example_proto import example_classes

    classes = example_classes()
    assert classes is not None
    parse = classes["Example"].FromString
    for record in records:
        f = parse(record).features.feature
        yield {
            "image": f["image"].bytes_list.value[0],
            "label": f["label"].int64_list.value[0],
            "floats": np.asarray(f["floats"].float_list.value, np.float32),
            "tokens": np.asarray(f["tokens"].int64_list.value, np.int64),
        }


def w8_upb_in_memory(path: str) -> W8Result:
    import aiopipe as ap

    with untimed():  # the number: parse only, the records already in memory
        records = list(ap.tfrecord.read(path))
    return _w8_batches(_upb_rows(records))


def w8_upb_read(path: str) -> W8Result:
    import aiopipe as ap

    return _w8_batches(_upb_rows(ap.tfrecord.read(path)))


def w8_systems() -> dict[str, Callable[[str], W8Result]]:
    """W8 systems: ``fn(path)`` returns the consumer's totals (see ``w8_examples.Tally``)."""
    return _installed(
        [
            ("tensorflow", "tf.data map(parse_single_example, AUTOTUNE)", w8_tf_single),
            ("tensorflow", "tf.data batch(256).map(parse_example)", w8_tf_batched),
            ("tfrecord", "tfrecord package tfrecord_loader", w8_tfrecord_package),
            ("google.protobuf", "protobuf (upb) per record, records in memory", w8_upb_in_memory),
            ("google.protobuf", "protobuf (upb) per record: tfrecord.read + parse", w8_upb_read),
        ]
    )


# -- W5: CPU-bound loading (W5a JPEG augment, W5b pure-Python tokeniser) -------------------------

W5System = Callable[[Callable[[Any], np.ndarray], list[Any]], tuple[float, int]]


def _w5_sum(batches: Iterable[Any]) -> tuple[float, int]:
    total, count = 0.0, 0
    for batch in batches:
        arr = np.asarray(batch)
        total += float(arr.sum(dtype=np.float64))
        count += len(arr)
    return total, count


class _W5Items:
    """A map-style dataset (DataLoader, Grain): item ``i`` is ``fn(items[i])``; picklable."""

    def __init__(self, fn: Callable[[Any], np.ndarray], items: list[Any]) -> None:
        self.fn, self.items = fn, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.fn(self.items[i])


def _w5_torch(workers: int) -> W5System:
    def run(fn: Callable[[Any], np.ndarray], items: list[Any]) -> tuple[float, int]:
        from torch.utils.data import DataLoader
        from w5_cpu import BATCH

        # DataLoader's own defaults: fork start on Linux, tensors through shared memory.
        loader = DataLoader(_W5Items(fn, items), batch_size=BATCH, num_workers=workers)
        with _joined_threads():
            return _w5_sum(b.numpy() for b in loader)

    return run


def _w5_tf(fn: Callable[[Any], np.ndarray], items: list[Any]) -> tuple[float, int]:
    import tensorflow as tf
    from w5_cpu import BATCH

    shape = fn(items[0]).shape
    dtype = fn(items[0]).dtype

    def load(i: Any) -> Any:
        out = tf.numpy_function(lambda j: fn(items[int(j)]), [i], tf.as_dtype(dtype))
        out.set_shape(shape)
        return out

    ds = (
        tf.data.Dataset.range(len(items))
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(BATCH)
        .prefetch(tf.data.AUTOTUNE)
    )
    return _w5_sum(b.numpy() for b in ds)


def _w5_grain(fn: Callable[[Any], np.ndarray], items: list[Any]) -> tuple[float, int]:
    import grain
    from w5_cpu import BATCH

    ds = (
        grain.MapDataset.source(_W5Items(fn, items))
        .batch(BATCH)
        .to_iter_dataset()
        .mp_prefetch(grain.MultiprocessingOptions(num_workers=2))
    )
    # mp_prefetch starts a process-wide pool of 4 threads (1 + 3 handlers) that frees shared
    # memory, on first use, and never stops it: started here, as Grain does, it is no leftover.
    grain.multiprocessing.SharedMemoryArray.enable_async_del(1)
    # Its multiprocessing pool's handler threads take a few seconds to wind down after close().
    with _joined_threads(timeout=30.0), _closing_iter(ds) as it:
        return _w5_sum(it)


def _w5_spdl(fn: Callable[[Any], np.ndarray], items: list[Any]) -> tuple[float, int]:
    from concurrent.futures import ProcessPoolExecutor

    from spdl.pipeline import PipelineBuilder
    from w5_cpu import BATCH

    with ProcessPoolExecutor(2) as pool:
        pipeline = (
            PipelineBuilder()
            .add_source(_async_items(items))
            .pipe(fn, concurrency=2, executor=pool)
            .aggregate(BATCH)
            .pipe(np.stack)
            .add_sink(4)
            .build(num_threads=2)
        )
        with pipeline.auto_stop():
            return _w5_sum(pipeline)


def w5_systems() -> dict[str, W5System]:
    """W5 systems: ``fn(map_fn, items) -> (sum, samples)`` over batches of 64 ``map_fn(item)``."""
    return _installed(
        [
            ("torch", "torch DataLoader(num_workers=0)", _w5_torch(0)),
            ("torch", "torch DataLoader(num_workers=2)", _w5_torch(2)),
            ("tensorflow", "tf.data map(numpy_function, AUTOTUNE)", _w5_tf),
            ("grain", "Grain mp_prefetch(num_workers=2)", _w5_grain),
            ("spdl", "SPDL pipe(process pool of 2)", _w5_spdl),
        ]
    )


# -- W6: object store, GETs of 16 KiB with 20 ms before each response -> batch 64 -----------------

W6Result = tuple[int, int]  # (objects, bytes)
W6System = Callable[[list[str], int, "Probe"], W6Result]
W6_THREADS = 64  # the thread-pool rivals' threads, as the issue sets them
W6_WORKERS = 16  # DataLoader's worker processes
W6_ASYNC = 256  # SPDL's requests in flight, as aiopipe's 256 row


def blocking_get(url_example: str) -> Callable[[str], bytes]:
    """``get(url) -> body`` over one keep-alive ``http.client`` connection per thread and process.

    What a thread-pool loader's user writes with the standard library. The connection is keyed by
    process too: a DataLoader worker forked from a parent that already fetched must not share its
    socket.
    """
    import http.client
    import os
    from urllib.parse import urlsplit

    local = threading.local()
    host = urlsplit(url_example).netloc

    def get(url: str) -> bytes:
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            conn, local.pid = http.client.HTTPConnection(host), os.getpid()
            local.conn = conn
        conn.request("GET", urlsplit(url).path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise OSError(f"GET {url}: HTTP {resp.status}")
        return body

    return get


def _w6_tally(batches: Iterable[Any], probe: Probe) -> W6Result:
    """Objects and bytes of every batch (each a sequence of bodies); the probe samples per batch."""
    count = total = 0
    for batch in batches:
        count += len(batch)
        total += sum(map(len, batch))
        probe.sample()
    return count, total


class _W6Objects:
    """DataLoader's map-style dataset: item ``i`` is the body of ``urls[i]``, fetched blocking."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.get = blocking_get(urls[0])

    def __len__(self) -> int:
        return len(self.urls)

    def __getitem__(self, i: int) -> bytes:
        return self.get(self.urls[i])


def w6_torch(urls: list[str], concurrency: int, probe: Probe) -> W6Result:
    from torch.utils.data import DataLoader
    from w6_object_store import BATCH

    # Worker processes (fork), each fetching its batches one object after another: `concurrency`
    # requests in flight. in_order=False: aiopipe's read delivers in completion order too.
    loader = DataLoader(
        _W6Objects(urls),
        batch_size=BATCH,
        num_workers=concurrency,
        collate_fn=list,
        in_order=False,
    )
    with _joined_threads():
        return _w6_tally(loader, probe)


def w6_torchdata(urls: list[str], concurrency: int, probe: Probe) -> W6Result:
    from torchdata.nodes import Batcher, IterableWrapper, Loader, ParallelMapper
    from w6_object_store import BATCH

    node = ParallelMapper(
        IterableWrapper(urls),
        blocking_get(urls[0]),
        num_workers=concurrency,
        method="thread",
        in_order=False,
    )
    with _joined_threads():
        return _w6_tally(Loader(Batcher(node, batch_size=BATCH, drop_last=False)), probe)


def w6_grain(urls: list[str], concurrency: int, probe: Probe) -> W6Result:
    import grain
    from w6_object_store import BATCH

    # Fetch per element before batching, so `concurrency` fetches are in flight; the buffer
    # (>= num_threads, as Grain asks) keeps every thread busy. batch_fn=list: bodies, not arrays.
    options = grain.ReadOptions(num_threads=concurrency, prefetch_buffer_size=2 * concurrency)
    ds = (
        grain.MapDataset.source(urls)
        .map(blocking_get(urls[0]))
        .to_iter_dataset(options)
        .batch(BATCH, batch_fn=list)
    )
    with _joined_threads(), _closing_iter(ds) as it:
        return _w6_tally(it, probe)


def w6_spdl(urls: list[str], concurrency: int, probe: Probe) -> W6Result:
    from spdl.pipeline import PipelineBuilder
    from w6_object_store import BATCH

    from aiopipe.remote._http import HttpClient

    # aiopipe's own HTTP client, so that the row compares the two engines and not two clients
    # (it spends less CPU per request than aiohttp: see aiopipe/remote/_http.py). It opens its
    # connections on SPDL's event loop at the first request; the child process's exit closes them.
    client = HttpClient()

    async def get(url: str) -> bytes:
        return (await client.request("GET", url)).body

    pipeline = (
        PipelineBuilder()
        .add_source(_async_items(urls))
        .pipe(get, concurrency=concurrency)
        .aggregate(BATCH)
        .add_sink(3)
        # One thread, for the thread-backed sink's blocking put; the GETs are async.
        .build(num_threads=1, use_thread_output_queue=True)
    )
    with _joined_threads(), pipeline.auto_stop():
        return _w6_tally(pipeline, probe)


def w6_tf_data(urls: list[str], concurrency: int, probe: Probe) -> W6Result:
    import tensorflow as tf
    from w6_object_store import BATCH

    get = blocking_get(urls[0])

    def fetch(url: Any) -> Any:
        return tf.numpy_function(lambda u: get(u.decode()), [url], tf.string, stateful=True)

    # A private pool of `concurrency` threads: by default tf.data runs map calls on a pool of one
    # thread per core, which caps a blocking fetch at 2 in flight here whatever num_parallel_calls.
    options = tf.data.Options()
    options.threading.private_threadpool_size = concurrency
    ds = (
        tf.data.Dataset.from_tensor_slices(urls)
        .map(fetch, num_parallel_calls=concurrency, deterministic=False)
        .batch(BATCH)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )
    return _w6_tally((b.numpy() for b in ds), probe)


# What each rival's child process imports before its clock starts: a training job has its
# loader's package imported long before it reads (TensorFlow's import alone takes seconds here).
W6_IMPORTS = {
    "torch": "torch.utils.data",
    "torchdata": "torchdata.nodes",
    "grain": "grain",
    "spdl": "spdl.pipeline",
    "tensorflow": "tensorflow",
}


def w6_imports(system: str) -> str | None:
    """The module to import before timing ``system`` (None: not a rival)."""
    return next((W6_IMPORTS[pkg] for pkg, name, _ in _w6_candidates() if name == system), None)


def w6_systems() -> dict[str, tuple[W6System, int]]:
    """W6 rivals: ``(fn(urls, in_flight, probe) -> (objects, bytes), requests in flight)``."""
    return _installed(_w6_candidates())


def _w6_candidates() -> list[tuple[str, str, tuple[W6System, int]]]:
    return [
        (
            "torch",
            f"torch DataLoader(num_workers={W6_WORKERS}), blocking http.client",
            (w6_torch, W6_WORKERS),
        ),
        (
            "torchdata",
            f"torchdata.nodes ParallelMapper(threads={W6_THREADS}), blocking http.client",
            (w6_torchdata, W6_THREADS),
        ),
        (
            "grain",
            f"Grain ReadOptions(num_threads={W6_THREADS}), blocking http.client",
            (w6_grain, W6_THREADS),
        ),
        (
            "spdl",
            f"SPDL pipe(async GET, concurrency={W6_ASYNC}), aiopipe's HTTP client",
            (w6_spdl, W6_ASYNC),
        ),
        (
            "tensorflow",
            f"tf.data map(numpy_function GET, {W6_THREADS} parallel), blocking http.client",
            (w6_tf_data, W6_THREADS),
        ),
    ]
