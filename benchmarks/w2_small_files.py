"""W2 many small files: 20,000 files of 768 bytes (16x16x3 uint8), warm page cache.

Every system reads each file, decodes it as a 16x16x3 uint8 array, normalises it to float32 in
[0, 1] and batches 64; the consumer sums each batch (checked against the sum of the bytes / 255).
Also measures the time to the first batch, from a cold start (listing the directory included) for
every system.

aiopipe runs the pipeline a user would write for this job: ``from_files`` -> ``read(WholeFile(),
parallel=2)`` (several small files per thread hop) -> ``batch(64)`` -> one ``map`` that decodes and
normalises the whole batch with numpy (vectorising after batching is ordinary user code). For
honesty the per-element variant (``map(decode.raw)`` -> ``batch`` -> ``map(normalise)``) and a
sequential loop that is vectorised the same way are reported too.

    python benchmarks/w2_small_files.py [--quick] [--runs R] [--json PATH] [--chart DIR]
"""

from __future__ import annotations

import glob
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
    have,
    ratio_target,
    standalone,
    time_runs,
    timed_workload,
)

import aiopipe as ap

SHAPE = (16, 16, 3)
RECORD = 16 * 16 * 3  # 768 bytes
BATCH = 64


# -- data ----------------------------------------------------------------------------------------


def make_files(n: int, directory: Path | None = None) -> tuple[list[str], float]:
    """``n`` files of random bytes, generated once and cached; returns (paths, expected sum).

    The expected sum is the sum of every normalised value, computed from the generating array.
    """
    directory = directory or DATA_DIR / f"w2_{n}"
    rng = np.random.default_rng(20_000)
    data = rng.integers(0, 256, size=(n, RECORD), dtype=np.uint8)
    marker = directory / "COMPLETE"
    paths = [str(directory / f"img_{i:06d}.bin") for i in range(n)]
    if not marker.exists():
        directory.mkdir(parents=True, exist_ok=True)
        for p, row in zip(paths, data, strict=True):
            Path(p).write_bytes(row.tobytes())
        marker.write_text(str(n))
    expected = float(data.sum(dtype=np.float64) / 255.0)
    return paths, expected


def pattern(directory: Path) -> str:
    return str(directory / "img_*.bin")


def list_files(directory: Path) -> list[str]:
    return sorted(glob.glob(pattern(directory)))


# -- the work, shared by every system ------------------------------------------------------------

DECODE = ap.decode.raw(np.uint8, shape=SHAPE)


def normalise(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) * np.float32(1 / 255)


def decode_normalise_batch(records: list[bytes]) -> np.ndarray:
    """Decode + normalise a whole batch at once: one join, one frombuffer, one multiply."""
    arr = np.frombuffer(b"".join(records), dtype=np.uint8).reshape(-1, *SHAPE)
    return normalise(arr)


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# -- systems: each takes the data directory, returns (sum, samples, time to first batch) ---------

Result = tuple[float, int, float]


class Tally:
    """The consumer every system shares: sum and count of the batches, time to the first one."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.first = 0.0
        self.total = 0.0
        self.count = 0

    def add(self, batch: np.ndarray) -> None:
        if not self.first:
            self.first = time.perf_counter() - self.t0
        self.total += float(batch.sum(dtype=np.float64))
        self.count += len(batch)

    def result(self) -> Result:
        return self.total, self.count, self.first


def sequential_loop(directory: Path) -> Result:
    """What a user writes without a library: per sample read, decode, normalise; then stack."""
    tally = Tally()
    paths = list_files(directory)
    for i in range(0, len(paths), BATCH):
        tally.add(np.stack([normalise(DECODE(read_bytes(p))) for p in paths[i : i + BATCH]]))
    return tally.result()


def sequential_vectorised(directory: Path) -> Result:
    """The sequential loop with the same batch-level decode + normalise as the aiopipe pipeline."""
    tally = Tally()
    paths = list_files(directory)
    for i in range(0, len(paths), BATCH):
        tally.add(decode_normalise_batch([read_bytes(p) for p in paths[i : i + BATCH]]))
    return tally.result()


def aiopipe_pipeline(directory: Path, parallel: int, per_element: bool) -> ap.Pipeline[Any]:
    pipe = ap.from_files(pattern(directory)).read(ap.readers.WholeFile(), parallel=parallel)
    if per_element:
        return pipe.map(DECODE).batch(BATCH).map(normalise)
    return pipe.batch(BATCH, collate=list).map(decode_normalise_batch)


def aiopipe_async(parallel: int, per_element: bool = False) -> Callable[[Path], Result]:
    def run(directory: Path) -> Result:
        async def main() -> Result:
            tally = Tally()
            async with aiopipe_pipeline(directory, parallel, per_element).open() as batches:
                async for batch in batches:
                    tally.add(batch)
            return tally.result()

        return anyio.run(main)

    return run


def aiopipe_sync(parallel: int) -> Callable[[Path], Result]:
    def run(directory: Path) -> Result:
        tally = Tally()
        with aiopipe_pipeline(directory, parallel, False).iter_sync() as batches:
            for batch in batches:
                tally.add(batch)
        return tally.result()

    return run


def torch_loader(workers: int) -> Callable[[Path], Result]:
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Files(Dataset[Any]):
        def __init__(self, paths: list[str]) -> None:
            self.paths = paths

        def __len__(self) -> int:
            return len(self.paths)

        def __getitem__(self, i: int) -> Any:
            return torch.from_numpy(normalise(DECODE(read_bytes(self.paths[i]))))

    def run(directory: Path) -> Result:
        tally = Tally()
        loader = DataLoader(Files(list_files(directory)), batch_size=BATCH, num_workers=workers)
        for batch in loader:
            tally.add(batch.numpy())  # a view of the tensor's memory, no copy
        return tally.result()

    return run


def tf_data(directory: Path) -> Result:
    import tensorflow as tf

    def load(path: Any) -> Any:
        raw = tf.io.decode_raw(tf.io.read_file(path), tf.uint8)
        return tf.cast(tf.reshape(raw, SHAPE), tf.float32) * (1 / 255)

    tally = Tally()
    ds = (
        tf.data.Dataset.from_tensor_slices(list_files(directory))
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(BATCH)
        .prefetch(tf.data.AUTOTUNE)
    )
    for batch in ds:
        tally.add(batch.numpy())
    return tally.result()


# -- the workload --------------------------------------------------------------------------------

BASELINE = "sequential loop (per sample)"
MAIN = "aiopipe read(parallel=2) + batch-level decode"


def run(*, quick: bool = False, runs: int | None = None) -> Workload:
    n = 2_000 if quick else 20_000
    runs = runs or (2 if quick else 5)
    directory = DATA_DIR / f"w2_{n}"
    _, expected = make_files(n, directory)
    w = Workload("W2", f"{n:,} small files (768 B) -> decode.raw -> float32 -> batch {BATCH}")
    w.params = {"files": n, "batch": BATCH, "runs": runs}

    systems: dict[str, Callable[[Path], Result]] = {
        BASELINE: sequential_loop,
        "sequential loop (batch-level decode)": sequential_vectorised,
        MAIN: aiopipe_async(2),
        "aiopipe read(parallel=4) + batch-level decode": aiopipe_async(4),
        "aiopipe per-element map(decode.raw) + map(normalise)": aiopipe_async(2, per_element=True),
        "aiopipe iter_sync read(parallel=2)": aiopipe_sync(2),
    }
    if have("torch"):
        systems["torch DataLoader(num_workers=0)"] = torch_loader(0)
        systems["torch DataLoader(num_workers=2)"] = torch_loader(2)
    if have("tensorflow"):
        systems["tf.data AUTOTUNE"] = tf_data
    systems |= _rivals.w2_systems()

    def check(res: Result) -> None:
        total, count, _ = res
        if count != n:
            raise AssertionError(f"W2: {count} samples, expected {n}")
        check_close("W2 sum of normalised values", total, expected, rel=1e-6)

    firsts: dict[str, list[float]] = {}
    timings: dict[str, Timing] = {}
    for name, fn in systems.items():
        seen: list[float] = []

        def call(fn: Callable[[Path], Result] = fn, seen: list[float] = seen) -> Result:
            res = fn(directory)
            seen.append(res[2])
            return res

        try:
            timings[name] = time_runs(call, runs=runs, check=check)
        except Exception as exc:  # a rival that breaks is reported, not fatal
            if name.startswith("aiopipe") or name.startswith("sequential"):
                raise
            w.note(f"{name} failed: {type(exc).__name__}: {exc}")
            continue
        firsts[name] = seen[1:]  # drop the warm-up

    base = n / timings[BASELINE].median
    for name, t in timings.items():
        rate = n / t.median
        kw: dict[str, Any] = {}
        if name != BASELINE:
            r, ok = ratio_target(rate, base, 1.0)
            kw = {"ratio": r, "ratio_to": "vs seq."}
            if name == MAIN:
                kw |= {"target": ">= 1.0x seq.", "met": ok}
        w.add_rate(name, n, t, **kw)
    for name, seen in firsts.items():
        w.add_seconds(name, Timing(tuple(seen)), metric="time to first batch", unit="ms")
    vec = "sequential loop (batch-level decode)"
    if vec in timings and MAIN in timings:
        w.note(
            f"apples to apples (both decode per batch): aiopipe / sequential = "
            f"{timings[vec].median / timings[MAIN].median:.2f}x"
        )
    return w


def main(argv: list[str] | None = None) -> int:
    return standalone(lambda **kw: timed_workload(lambda: run(**kw)), __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
