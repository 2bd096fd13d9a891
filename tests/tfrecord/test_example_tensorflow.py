"""Examples and SequenceExamples against TensorFlow itself, both directions (``make tf-compat``).

TensorFlow parses what ``ap.tfrecord.encode_example`` writes, and aiopipe parses what
TensorFlow's ``tf.train.Example`` classes write, to the same values, for all three feature
kinds, defaults and empty lists. Skipped where TensorFlow is not installed (``.venv``); the
rivals' environment has it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aiopipe as ap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")

F, V, S = ap.decode.FixedLenFeature, ap.decode.VarLenFeature, ap.decode.FixedLenSequenceFeature
TF_DTYPE = {bytes: "string", np.int64: "int64", np.float32: "float32"}


def tf_spec(spec: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, s in spec.items():
        dtype = getattr(tf, TF_DTYPE[s.dtype if s.dtype is bytes else s.dtype.type])
        if isinstance(s, V):
            out[name] = tf.io.VarLenFeature(dtype)
        elif isinstance(s, F):
            out[name] = tf.io.FixedLenFeature(list(s.shape), dtype, default_value=s.default_value)
        else:
            out[name] = tf.io.FixedLenSequenceFeature(
                list(s.shape), dtype, allow_missing=s.allow_missing, default_value=s.default_value
            )
    return out


def plain(value: Any) -> Any:
    """Ours or TensorFlow's value as nested Python lists (a SparseTensor: one list per row)."""
    if isinstance(value, tf.sparse.SparseTensor):
        values = value.values.numpy().tolist()
        shape = value.dense_shape.numpy().tolist()
        if len(shape) == 1:
            return values
        rows: list[list[Any]] = [[] for _ in range(shape[0])]
        for index, v in zip(value.indices.numpy().tolist(), values, strict=True):
            rows[index[0]].append(v)
        return rows
    if hasattr(value, "numpy"):
        value = value.numpy()
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


SPEC: dict[str, Any] = {
    "image": F((), bytes),
    "label": F((), np.int64),
    "xy": F([2], np.float32),
    "grid": F([2, 2], np.int64, default_value=[[0, 1], [2, 3]]),
    "name": F((), bytes, default_value=b"none"),
    "pair": F([2], bytes, default_value=[b"x", b"y"]),
    "weight": F((), np.float32, default_value=-1.0),
    "tokens": V(np.int64),
    "scores": V(np.float32),
    "tags": V(bytes),
    "frames": S([3], np.float32, allow_missing=True),
}

ROWS: list[dict[str, Any]] = [
    {
        "image": b"\x00\x01jpeg\x00",
        "label": 7,
        "xy": [0.5, -2.0],
        "grid": np.array([[5, 6], [7, 8]]),
        "name": "caf\u00e9",
        "pair": [b"a", b""],
        "weight": 0.25,
        "tokens": [1, 300, 2**40, -(2**63)],
        "scores": np.array([1.5, 2.5], np.float32),
        "tags": ["x", b"y", b""],
        "frames": np.arange(6, dtype=np.float32),
    },
    # Defaults, an empty typed list, an empty untyped list (a Feature with no list set).
    {"image": b"", "label": -1, "xy": [0.0, 1e30], "tokens": np.array([], np.int64), "tags": []},
    {"image": b"z" * 1000, "label": 2**62, "xy": (1.0, 2), "scores": [], "frames": [9.0, 8, 7]},
]


def test_tensorflow_parses_what_we_write() -> None:
    records = [ap.tfrecord.encode_example(row) for row in ROWS]
    spec = tf_spec(SPEC)
    ours_one = [ap.decode.example(SPEC)(r) for r in records]
    for record, ours in zip(records, ours_one, strict=True):
        theirs = tf.io.parse_single_example(record, spec)
        for name in SPEC:
            assert plain(ours[name]) == plain(theirs[name]), name
    theirs_batch = tf.io.parse_example(records, spec)
    ours_batch = ap.decode.examples(SPEC)(records)
    for name in SPEC:
        assert plain(ours_batch[name]) == plain(theirs_batch[name]), name
    assert ours_one[1]["grid"].tolist() == [[0, 1], [2, 3]]
    assert ours_one[1]["tags"] == []
    assert ours_batch["frames"].shape == (3, 2, 3)


def test_we_parse_what_tensorflow_writes(tmp_path: Path) -> None:
    def feature(name: str, value: Any) -> Any:
        """TensorFlow's own Feature of the spec's kind."""
        if SPEC[name].dtype is bytes:
            items = [v.encode() if isinstance(v, str) else v for v in np.ravel(value)]
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=items))
        values = np.ravel(value).tolist()
        if SPEC[name].dtype == np.int64:
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    path = tmp_path / "tf.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in ROWS:
            row = {k: ([v] if isinstance(v, bytes | str) else v) for k, v in row.items()}
            features = tf.train.Features(feature={k: feature(k, v) for k, v in row.items()})
            writer.write(tf.train.Example(features=features).SerializeToString())
    records = list(ap.tfrecord.read(path))
    spec = tf_spec(SPEC)
    for record in records:
        theirs = tf.io.parse_single_example(record, spec)
        ours = ap.decode.example(SPEC)(record)
        for name in SPEC:
            assert plain(ours[name]) == plain(theirs[name]), name
    theirs_batch = tf.io.parse_example(records, spec)
    ours_batch = ap.decode.examples(SPEC)(records)
    for name in SPEC:
        assert plain(ours_batch[name]) == plain(theirs_batch[name]), name


CONTEXT = {"length": F((), np.int64), "title": F((), bytes, default_value="?"), "c": V(np.float32)}
SEQUENCES = {
    "frames": S([2], np.float32),
    "steps": S([], np.int64),
    "words": V(bytes),
    "maybe": S([], np.float32, allow_missing=True),
}


def test_sequence_examples_both_ways() -> None:
    ours_written = ap.tfrecord.encode_sequence_example(
        {"length": 3, "c": [0.5]},
        {
            "frames": np.arange(6, dtype=np.float32).reshape(3, 2),
            "steps": [[1], [2**40], [-3]],
            "words": [[b"a"], [], ["b", "c"]],
        },
    )
    theirs_written = tf.train.SequenceExample(
        context=tf.train.Features(
            feature={
                "length": tf.train.Feature(int64_list=tf.train.Int64List(value=[2])),
                "title": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"two"])),
            }
        ),
        feature_lists=tf.train.FeatureLists(
            feature_list={
                "frames": tf.train.FeatureList(
                    feature=[
                        tf.train.Feature(float_list=tf.train.FloatList(value=[1, 2])),
                        tf.train.Feature(float_list=tf.train.FloatList(value=[3, 4])),
                    ]
                ),
                "steps": tf.train.FeatureList(
                    feature=[
                        tf.train.Feature(int64_list=tf.train.Int64List(value=[v])) for v in (5, 6)
                    ]
                ),
                "words": tf.train.FeatureList(
                    feature=[
                        tf.train.Feature(bytes_list=tf.train.BytesList(value=[])),
                        tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"q", b"r"])),
                    ]
                ),
                "maybe": tf.train.FeatureList(
                    feature=[
                        tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
                        for v in (0.5, 1.5)
                    ]
                ),
            }
        ),
    ).SerializeToString()
    decode = ap.decode.sequence_example(CONTEXT, SEQUENCES)
    for record in (ours_written, theirs_written):
        context, sequences = tf.io.parse_single_sequence_example(
            record, context_features=tf_spec(CONTEXT), sequence_features=tf_spec(SEQUENCES)
        )
        ours_context, ours_sequences = decode(record)
        for name in CONTEXT:
            assert plain(ours_context[name]) == plain(context[name]), name
        for name in SEQUENCES:
            assert plain(ours_sequences[name]) == plain(sequences[name]), name
