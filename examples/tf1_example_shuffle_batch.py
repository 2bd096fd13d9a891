"""The TF 1.x ``TFRecordReader`` + ``parse_single_example`` + ``shuffle_batch`` program, in aiopipe.

    python examples/tf1_example_shuffle_batch.py

In TF 1.x::

    files = tf.train.string_input_producer(paths, num_epochs=1, shuffle=True, seed=1)
    _, serialized = tf.TFRecordReader().read(files)
    features = tf.parse_single_example(serialized, features={
        "image": tf.FixedLenFeature([], tf.string),
        "label": tf.FixedLenFeature([], tf.int64),
        "floats": tf.FixedLenFeature([10], tf.float32),
        "tokens": tf.VarLenFeature(tf.int64),
    })
    batch = tf.train.shuffle_batch(features, batch_size=256, capacity=5000,
                                   min_after_dequeue=4000, seed=2)
    # + Session, Coordinator, start_queue_runners, OutOfRangeError, join

In aiopipe the raw records are shuffled (cheap to hold), batched, and each batch of 256
serialized Examples is parsed at once by ``ap.decode.examples``, the fast path.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
import numpy as np

import aiopipe as ap

SPEC = {
    "image": ap.decode.FixedLenFeature([], bytes),
    "label": ap.decode.FixedLenFeature([], np.int64),
    "floats": ap.decode.FixedLenFeature([10], np.float32),
    "tokens": ap.decode.VarLenFeature(np.int64),
}


def write_files(root: Path, files: int = 4, per_file: int = 1000) -> list[Path]:
    """Examples as TensorFlow would have written them: ``tf.train.Example`` in TFRecord files."""
    rng = np.random.default_rng(0)
    paths = []
    for f in range(files):
        rows = (
            {
                "image": rng.bytes(3000),
                "label": int(rng.integers(0, 10)),
                "floats": rng.random(10, dtype=np.float32),
                "tokens": rng.integers(0, 30_000, int(rng.integers(0, 7))),
            }
            for _ in range(per_file)
        )
        path = root / f"train-{f:05d}-of-{files:05d}.tfrecord"
        ap.tfrecord.write(path, map(ap.tfrecord.encode_example, rows))
        paths.append(path)
    return paths


async def main(root: Path) -> None:
    write_files(root)
    pipe = (
        ap.from_files(str(root / "train-*.tfrecord"), shuffle=True, seed=1)
        .read(ap.readers.TFRecords(), parallel=2)
        .shuffle(5000, min_after_dequeue=4000, seed=2)
        .batch(256)  # a list of 256 serialized Examples
        .map(ap.decode.examples(SPEC))  # one dict of batched features
    )
    batches = examples = tokens = 0
    async with pipe.open() as run:
        async for batch in run:
            if batches == 0:
                shapes = {k: getattr(v, "shape", f"list of {len(v)}") for k, v in batch.items()}
                print(f"first batch: {shapes}")
            batches += 1
            examples += len(batch["label"])
            tokens += sum(map(len, batch["tokens"]))
    print(f"done: {examples} examples, {tokens} tokens in {batches} batches")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(main, Path(tmp))
