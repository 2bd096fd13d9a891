"""W8 tf.train.Example: one TFRecord file of 50,000 Examples, read + parse + batch 256.

Each Example holds a 3 KB ``image`` (bytes), an int64 ``label``, 10 float32 ``floats`` and 0-6
int64 ``tokens`` (a VarLenFeature). Every system reads the file, parses every record into those
four features and hands batches of 256 to a consumer that checks them (record count, label sum,
token count, image bytes, float sum), so a system that skips work cannot post a number.

aiopipe runs ``from_files -> read(TFRecords()) -> batch(256) -> map(decode.examples(spec))``;
the rivals (when installed, ``make bench-rivals``) are tf.data both ways, the ``tfrecord``
package's ``tfrecord_loader`` (what PyTorch users reach for) and protobuf's parser (upb) per
record. The target is aiopipe >= 2.5x the ``tfrecord`` package; the goal, tf.data's batched
``parse_example``. Parse-only rows (records read beforehand, untimed) set aiopipe's parsers
against protobuf's on the same records.

    python benchmarks/w8_examples.py [--quick] [--runs R] [--json PATH] [--chart DIR]
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
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
    ratio_target,
    standalone,
    time_runs,
    timed_workload,
    untimed,
)

import aiopipe as ap

BATCH = 256
IMAGE_BYTES = 3000
FLOATS = 10
MAX_TOKENS = 6

SPEC = {
    "image": ap.decode.FixedLenFeature((), bytes),
    "label": ap.decode.FixedLenFeature((), np.int64),
    "floats": ap.decode.FixedLenFeature((FLOATS,), np.float32),
    "tokens": ap.decode.VarLenFeature(np.int64),
}

# (records, label sum, token count, image bytes, float sum)
Result = tuple[int, int, int, int, float]


# -- data ----------------------------------------------------------------------------------------


def make_file(n: int) -> tuple[str, Result]:
    """The workload's file (written once, cached) and the expected consumer totals."""
    rng = np.random.default_rng(50_000)
    labels = rng.integers(0, 1000, n)
    floats = rng.random((n, FLOATS), dtype=np.float32)
    counts = rng.integers(0, MAX_TOKENS + 1, n)
    tokens = rng.integers(0, 30_000, int(counts.sum()))
    expected = (n, int(labels.sum()), int(counts.sum()), n * IMAGE_BYTES, float(floats.sum()))
    path = DATA_DIR / f"w8_{n}.tfrecord"
    if not path.exists():
        pool = rng.bytes(IMAGE_BYTES * 64)
        bounds = np.concatenate(([0], np.cumsum(counts)))

        def records() -> Iterable[bytes]:
            for i in range(n):
                k = i % 64
                yield ap.tfrecord.encode_example(
                    {
                        "image": pool[k * IMAGE_BYTES : (k + 1) * IMAGE_BYTES],
                        "label": int(labels[i]),
                        "floats": floats[i],
                        "tokens": tokens[bounds[i] : bounds[i + 1]],
                    }
                )

        DATA_DIR.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        ap.tfrecord.write(partial, records())
        partial.rename(path)
    return str(path), expected


class Tally:
    """The consumer: totals over the batches it is handed."""

    def __init__(self) -> None:
        self.records = self.labels = self.tokens = self.image_bytes = 0
        self.floats = 0.0

    def add(
        self, labels: Any, floats: Any, token_counts: Iterable[int], images: Iterable[bytes]
    ) -> None:
        self.records += len(labels)
        self.labels += int(np.sum(labels))
        self.floats += float(np.sum(floats, dtype=np.float64))
        self.tokens += sum(token_counts)
        self.image_bytes += sum(map(len, images))

    def add_parsed(self, batch: dict[str, Any]) -> None:
        """A batch from ``decode.examples``."""
        self.add(batch["label"], batch["floats"], map(len, batch["tokens"]), batch["image"])

    def result(self) -> Result:
        return self.records, self.labels, self.tokens, self.image_bytes, self.floats


# -- aiopipe -------------------------------------------------------------------------------------


def aiopipe_batched(path: str) -> Result:
    """The fast path: batch the raw records, parse each batch at once."""
    tally = Tally()
    pipe = (
        ap.from_files(path).read(ap.readers.TFRecords()).batch(BATCH).map(ap.decode.examples(SPEC))
    )

    async def main() -> None:
        async with pipe.open() as batches:
            async for batch in batches:
                tally.add_parsed(batch)

    anyio.run(main)
    return tally.result()


def aiopipe_per_record(path: str) -> Result:
    """``parse_single_example`` style: parse each record, then batch the dicts as lists."""
    tally = Tally()
    pipe = (
        ap.from_files(path)
        .read(ap.readers.TFRecords())
        .map(ap.decode.example(SPEC))
        .batch(BATCH, collate=list)
    )

    async def main() -> None:
        async with pipe.open() as batches:
            async for batch in batches:
                tally.add(
                    [r["label"] for r in batch],
                    [r["floats"] for r in batch],
                    [len(r["tokens"]) for r in batch],
                    [r["image"] for r in batch],
                )

    anyio.run(main)
    return tally.result()


def sequential(path: str) -> Result:
    """No pipeline: ``tfrecord.read`` and ``decode.examples`` every 256 records in one loop."""
    tally = Tally()
    parse = ap.decode.examples(SPEC)
    batch: list[bytes] = []
    for record in ap.tfrecord.read(path):
        batch.append(record)
        if len(batch) == BATCH:
            tally.add_parsed(parse(batch))
            batch = []
    if batch:
        tally.add_parsed(parse(batch))
    return tally.result()


def in_memory_batched(path: str) -> Result:
    """Parse only (the records read beforehand, untimed): the number to set against protobuf's
    parser on the same records."""
    with untimed():
        records = list(ap.tfrecord.read(path))
    tally = Tally()
    parse = ap.decode.examples(SPEC)
    for i in range(0, len(records), BATCH):
        tally.add_parsed(parse(records[i : i + BATCH]))
    return tally.result()


def in_memory_per_record(path: str) -> Result:
    """``decode.example`` on every record (read beforehand, untimed), batched as lists."""
    with untimed():
        records = list(ap.tfrecord.read(path))
    tally = Tally()
    parse = ap.decode.example(SPEC)
    for i in range(0, len(records), BATCH):
        rows = [parse(r) for r in records[i : i + BATCH]]
        tally.add(
            [r["label"] for r in rows],
            [r["floats"] for r in rows],
            [len(r["tokens"]) for r in rows],
            [r["image"] for r in rows],
        )
    return tally.result()


# -- the workload --------------------------------------------------------------------------------

MAIN = "aiopipe read + batch(256) + map(decode.examples)"
TFRECORD = "tfrecord package tfrecord_loader"
TF_BATCHED = "tf.data batch(256).map(parse_example)"


def systems() -> dict[str, Callable[[str], Result]]:
    table: dict[str, Callable[[str], Result]] = {
        MAIN: aiopipe_batched,
        "aiopipe read + map(decode.example) + batch(256)": aiopipe_per_record,
        "sequential loop: tfrecord.read + decode.examples": sequential,
        "aiopipe decode.examples per 256, records in memory": in_memory_batched,
        "aiopipe decode.example per record, records in memory": in_memory_per_record,
    }
    return table | _rivals.w8_systems()


def run(*, quick: bool = False, runs: int | None = None) -> Workload:
    n = 5_000 if quick else 50_000
    runs = runs or (2 if quick else 5)
    path, expected = make_file(n)
    w = Workload("W8", f"{n:,} tf.train.Examples (3 KB image, label, 10 floats, 0-6 tokens)")
    w.params = {"examples": n, "batch": BATCH, "runs": runs}

    def check(res: Result) -> None:
        check_equal("W8 records, label sum, tokens, image bytes", res[:4], expected[:4])
        check_close("W8 float sum", res[4], expected[4], rel=1e-5)

    timings: dict[str, Timing] = {}
    for name, fn in systems().items():
        try:
            timings[name] = time_runs(lambda fn=fn: fn(path), runs=runs, check=check)
        except Exception as exc:  # a rival that breaks is reported, not fatal
            if name.startswith(("aiopipe", "sequential")):
                raise
            w.note(f"{name} failed: {type(exc).__name__}: {exc}")
    base_name = TFRECORD if TFRECORD in timings else None
    for name, t in timings.items():
        kw: dict[str, Any] = {}
        if base_name and name != base_name:
            r, ok = ratio_target(n / t.median, n / timings[base_name].median, 2.5)
            kw = {"ratio": r, "ratio_to": "vs tfrecord pkg"}
            if name == MAIN:
                kw |= {"target": ">= 2.5x tfrecord pkg", "met": ok}
        w.add_rate(name, n, t, **kw)
    if base_name is None:
        w.note("the >= 2.5x target is judged against the tfrecord package (make bench-rivals)")
    if MAIN in timings and TF_BATCHED in timings:
        w.note(
            f"aiopipe / tf.data batched parse_example = "
            f"{timings[TF_BATCHED].median / timings[MAIN].median:.2f}x (the goal: >= 1)"
        )
    have("tensorflow")
    return w


def main(argv: list[str] | None = None) -> int:
    return standalone(lambda **kw: timed_workload(lambda: run(**kw)), __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
