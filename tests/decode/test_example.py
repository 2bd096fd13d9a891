"""``ap.decode.example`` / ``examples`` / ``sequence_example`` on TFRecord files on disk.

The batched parser must agree with the per-record one on every record, whatever its layout, and
every error names the feature, what was expected and what the record holds.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import aiopipe as ap

F = ap.decode.FixedLenFeature
V = ap.decode.VarLenFeature
S = ap.decode.FixedLenSequenceFeature

SPEC: dict[str, Any] = {
    "image": F((), bytes),
    "label": F((), np.int64),
    "floats": F([3], np.float32),
    "grid": F([2, 2], np.int64, default_value=[1, 2, 3, 4]),
    "weight": F([], np.float32, default_value=0.5),
    "name": F([], bytes, default_value="none"),
    "tokens": V(np.int64),
    "scores": V(np.float32),
    "tags": V(bytes),
    "frames": S([2], np.float32, allow_missing=True),
}


def make_row(rng: np.random.Generator, i: int) -> dict[str, Any]:
    """One Example's features; optional ones are left out now and then."""
    n = int(rng.integers(0, 6))
    row: dict[str, Any] = {
        "image": rng.bytes(int(rng.integers(0, 400))),
        "label": int(rng.integers(-(2**40), 2**40)) if i % 7 == 3 else int(rng.integers(0, 300)),
        "floats": rng.random(3, dtype=np.float32),
        "tokens": rng.integers(-5, 70_000, n),
        "scores": rng.random(n, dtype=np.float32),
        "tags": [b"t%d" % k for k in range(n)],
    }
    if i % 3:
        row["grid"] = rng.integers(0, 9, (2, 2))
        row["weight"] = float(i)
        row["name"] = f"row {i}"
        row["frames"] = rng.random((i % 4, 2), dtype=np.float32)
    if i % 5 == 2:
        row = dict(reversed(row.items()))  # another order: another layout
    if i % 11 == 4:
        row["extra"] = [1.0, 2.0]  # a feature the spec does not ask for
    return row


def expected_value(row: dict[str, Any], name: str) -> Any:
    spec = SPEC[name]
    if name not in row:
        if isinstance(spec, V):
            return []
        if isinstance(spec, S):
            return np.empty((0, 2))
        if spec.dtype is bytes:
            return spec.default_value.encode()
        return np.resize(spec.default_value, spec.shape)
    value = row[name]
    return value.encode() if isinstance(value, str) else value


def assert_equal(ours: Any, expected: Any) -> None:
    if isinstance(expected, bytes | str):
        assert ours == expected
    elif isinstance(expected, list) and expected and isinstance(expected[0], bytes):
        assert list(ours) == expected
    else:
        ours = np.asarray(ours)
        np.testing.assert_array_equal(ours, np.asarray(expected, dtype=ours.dtype))


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    rng = np.random.default_rng(1414)
    return [make_row(rng, i) for i in range(300)]


@pytest.fixture(scope="module")
def path(rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("examples") / "rows.tfrecord"
    ap.tfrecord.write(path, (ap.tfrecord.encode_example(r) for r in rows))
    return path


def test_example_reads_every_feature_kind(rows: list[dict[str, Any]], path: Path) -> None:
    decode = ap.decode.example(SPEC)
    for row, record in zip(rows, ap.tfrecord.read(path), strict=True):
        out = decode(record)
        assert set(out) == set(SPEC)
        for name in SPEC:
            assert_equal(out[name], expected_value(row, name))
        assert out["label"].shape == ()
        assert out["label"].dtype == np.int64
        assert out["grid"].shape == (2, 2)
        assert out["frames"].dtype == np.float32
        assert out["frames"].shape[1:] == (2,)
        assert isinstance(out["image"], bytes)
        assert isinstance(out["name"], bytes)
        assert out["tokens"].dtype == np.int64
        assert out["scores"].dtype == np.float32


def test_examples_agrees_with_example_on_every_batch(path: Path) -> None:
    records = list(ap.tfrecord.read(path))
    one, many = ap.decode.example(SPEC), ap.decode.examples(SPEC)
    singles = [one(r) for r in records]
    for start, size in [(0, 300), (0, 1), (5, 64), (17, 3), (299, 1), (100, 200)]:
        batch = many(records[start : start + size])
        part = singles[start : start + size]
        assert batch["label"].shape == (len(part),)
        assert batch["floats"].shape == (len(part), 3)
        assert batch["grid"].shape == (len(part), 2, 2)
        for name in ("label", "floats", "grid", "weight"):
            np.testing.assert_array_equal(batch[name], np.stack([p[name] for p in part]))
        for name in ("image", "name", "tags"):
            assert batch[name] == [p[name] for p in part]
        for name in ("tokens", "scores"):
            assert len(batch[name]) == len(part)
            for got, want in zip(batch[name], part, strict=True):
                np.testing.assert_array_equal(got, want[name])
                assert got.dtype == want[name].dtype
        steps = max(len(p["frames"]) for p in part)
        assert batch["frames"].shape == (len(part), steps, 2)
        for got, want in zip(batch["frames"], part, strict=True):
            np.testing.assert_array_equal(got[: len(want["frames"])], want["frames"])
            assert not got[len(want["frames"]) :].any()  # padded with 0


def test_examples_of_an_empty_batch() -> None:
    out = ap.decode.examples(SPEC)([])
    assert out["floats"].shape == (0, 3)
    assert out["tokens"] == []
    assert out["frames"].shape == (0, 0, 2)


def test_examples_reads_encodings_other_writers_use() -> None:
    """Unpacked number lists, a list split in two, a key after its value, unknown fields,
    two ``features`` fields, a repeated key (the last wins): valid protobuf, read as such."""

    def fld(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    def entry(name: bytes, feature: bytes, *, value_first: bool = False) -> bytes:
        key, value = fld(1, name), fld(2, feature)
        return fld(1, value + key if value_first else key + value)

    unpacked = fld(3, b"\x08\x05\x08\x06")  # int64_list: 5, 6 as two unpacked varints
    split = fld(3, fld(1, b"\x07") + fld(1, b"\x08"))  # two packed runs: 7, 8
    floats = fld(2, b"\x0d" + np.float32(2.5).tobytes())  # one unpacked float
    unknown = b"\x78\x01"  # field 15, varint: skipped
    canonical = ap.tfrecord.encode_example({"a": [1, 2], "b": 1.0})
    records = [
        canonical,
        fld(1, entry(b"a", unpacked) + entry(b"b", floats, value_first=True)),
        fld(1, entry(b"a", split)) + fld(1, entry(b"b", floats)) + unknown,
        fld(1, entry(b"a", split) + entry(b"b", floats) + entry(b"a", unpacked)),
        canonical,
    ]
    spec = {"a": V(np.int64), "b": F((), np.float32)}
    out = ap.decode.examples(spec)(records)
    assert [t.tolist() for t in out["a"]] == [[1, 2], [5, 6], [7, 8], [5, 6], [1, 2]]
    assert out["b"].tolist() == [1.0, 2.5, 2.5, 2.5, 1.0]
    single = ap.decode.example(spec)
    assert [single(r)["a"].tolist() for r in records] == [t.tolist() for t in out["a"]]


def test_large_and_negative_int64() -> None:
    values = [0, 1, 127, 128, 2**31, 2**62 + 1, 2**63 - 1, -1, -(2**63)]
    record = ap.tfrecord.encode_example({"v": values, "w": np.array(values)})
    spec = {"v": V(np.int64), "w": F([len(values)], np.int64)}
    assert ap.decode.example(spec)(record)["v"].tolist() == values
    batch = ap.decode.examples(spec)([record, record])
    assert batch["w"].tolist() == [values, values]
    assert batch["v"][1].tolist() == values


def test_errors_name_the_feature_and_what_was_seen() -> None:
    decode = ap.decode.example({"label": F((), np.int64), "xy": F([2], np.float32)})
    ok = {"label": 1, "xy": [1.0, 2.0]}
    with pytest.raises(ap.DecodeError, match=r"^not a serialized tf\.train\.Example \(5 bytes\)"):
        decode(b"hello")
    with pytest.raises(ap.DecodeError, match=r"feature 'label' is required .* does not have it"):
        decode(ap.tfrecord.encode_example({"xy": [1.0, 2.0]}))
    with pytest.raises(
        ap.DecodeError,
        match=r"feature 'label': expected int64_list \(int64\), the record holds a float_list "
        "of 1 values",
    ):
        decode(ap.tfrecord.encode_example({**ok, "label": 1.5}))
    with pytest.raises(
        ap.DecodeError,
        match=r"feature 'xy': shape \(2,\) needs 2 float values, the record holds 3",
    ):
        decode(ap.tfrecord.encode_example({**ok, "xy": [1.0, 2.0, 3.0]}))
    with pytest.raises(TypeError, match="must be bytes, got str"):
        decode("label")


def test_batch_errors_name_the_record_in_the_batch() -> None:
    spec = {"label": F((), np.int64)}
    good = ap.tfrecord.encode_example({"label": 3})
    batch = [good] * 5 + [ap.tfrecord.encode_example({"label": [3, 4]})] + [good] * 3
    with pytest.raises(
        ap.DecodeError,
        match=r"^record 5 of the batch: feature 'label': shape \(\) needs 1 int64 value, "
        "the record holds 2$",
    ):
        ap.decode.examples(spec)(batch)
    with pytest.raises(ap.DecodeError, match=r"^record 2 of the batch: not a serialized"):
        ap.decode.examples(spec)([good, good, b"\xff"])
    with pytest.raises(ap.DecodeError, match=r"^record 1 of the batch: feature 'label' is req"):
        ap.decode.examples(spec)([good, ap.tfrecord.encode_example({"other": 1})])
    with pytest.raises(TypeError, match="takes a batch"):
        ap.decode.examples(spec)(good)


def test_specs_are_checked_when_made() -> None:
    with pytest.raises(ValueError, match=r"dtype must be np\.int64, np\.float32 or bytes"):
        F((), np.float64)
    with pytest.raises(ValueError, match="shape must hold non-negative ints"):
        F([None], np.int64)
    with pytest.raises(ValueError, match=r"default_value has 2 values, shape \(3,\) needs 3"):
        F([3], np.float32, default_value=[1.0, 2.0])
    with pytest.raises(TypeError, match=r"features\['x'\] must be FixedLenFeature"):
        ap.decode.example({"x": np.int64})
    with pytest.raises(TypeError, match="must be FixedLenSequenceFeature or VarLenFeature"):
        ap.decode.sequence_example(sequence_features={"x": F((), np.int64)})
    assert F([2], "int64") == F((2,), np.int64)
    assert V(str) == V(bytes)
    assert repr(S([2], np.float32, allow_missing=True)) == (
        "FixedLenSequenceFeature((2,), float32, allow_missing=True)"
    )


def test_sequence_example_fixed_and_varlen_steps() -> None:
    record = ap.tfrecord.encode_sequence_example(
        {"length": 3, "title": "abc"},
        {
            "frames": np.arange(6, dtype=np.float32).reshape(3, 2),
            "words": [[b"a"], [], ["b", "c"]],
            "ids": [np.array([], np.int64), [4], [5, 6]],
        },
    )
    decode = ap.decode.sequence_example(
        context_features={"length": F((), np.int64), "title": F((), bytes), "x": V(np.float32)},
        sequence_features={
            "frames": S([2], np.float32),
            "words": V(bytes),
            "ids": V(np.int64),
            "missing": S([], np.int64, allow_missing=True),
        },
    )
    context, seqs = decode(record)
    assert context["length"] == 3
    assert context["title"] == b"abc"
    assert context["x"].tolist() == []
    assert seqs["frames"].tolist() == [[0, 1], [2, 3], [4, 5]]
    assert seqs["words"] == [[b"a"], [], [b"b", b"c"]]
    assert [x.tolist() for x in seqs["ids"]] == [[], [4], [5, 6]]
    assert seqs["missing"].shape == (0,)
    strict = ap.decode.sequence_example(sequence_features={"missing": S([], np.int64)})
    with pytest.raises(ap.DecodeError, match="feature list 'missing' is required"):
        strict(record)
    wrong = ap.decode.sequence_example(sequence_features={"frames": S([3], np.float32)})
    with pytest.raises(ap.DecodeError, match=r"feature list 'frames', step 0: shape \(3,\) needs"):
        wrong(record)


def test_decoders_pickle() -> None:
    for decoder in (
        ap.decode.example(SPEC),
        ap.decode.examples(SPEC),
        ap.decode.sequence_example({"a": F((), np.int64)}, {"b": V(bytes)}),
    ):
        clone = pickle.loads(pickle.dumps(decoder))
        assert repr(clone) == repr(decoder)
    record = ap.tfrecord.encode_example({"label": 4})
    clone = pickle.loads(pickle.dumps(ap.decode.examples({"label": F((), np.int64)})))
    assert clone([record])["label"].tolist() == [4]


# -- in a pipeline ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_pipeline_batch_then_examples(rows: list[dict[str, Any]], path: Path) -> None:
    """The fast path as documented: ``batch`` collates the records into a list, then one parse."""
    pipe = ap.from_files(path).read(ap.readers.TFRecords()).batch(64).map(ap.decode.examples(SPEC))
    with anyio.fail_after(30):
        batches = await pipe.collect()
    assert [len(b["label"]) for b in batches] == [64, 64, 64, 64, 44]
    labels = np.concatenate([b["label"] for b in batches])
    assert labels.tolist() == [r["label"] for r in rows]
    tokens = [t for b in batches for t in b["tokens"]]
    assert [t.tolist() for t in tokens] == [r["tokens"].tolist() for r in rows]


@pytest.mark.anyio
async def test_pipeline_examples_in_worker_processes(path: Path) -> None:
    pipe = (
        ap.from_files(path)
        .read(ap.readers.TFRecords())
        .batch(100)
        .map(ap.decode.examples(SPEC), executor="process", workers=2)
    )
    with anyio.fail_after(60):
        batches = await pipe.collect()
    assert sum(len(b["image"]) for b in batches) == 300


@pytest.mark.anyio
async def test_pipeline_error_note_names_file_and_record(tmp_path: Path) -> None:
    path = tmp_path / "labels.tfrecord"
    rows = [{"label": i} for i in range(40)]
    rows[23] = {"label": 2.5}  # the wrong kind
    ap.tfrecord.write(path, (ap.tfrecord.encode_example(r) for r in rows))
    pipe = ap.from_files(path).read(ap.readers.TFRecords()).map(ap.decode.example(SPEC_LABEL))
    with anyio.fail_after(30), pytest.raises(ap.DecodeError) as info:
        await pipe.collect()
    assert "feature 'label': expected int64_list (int64)" in str(info.value)
    notes = "\n".join(info.value.__notes__)
    assert "raised in stage 'map(decode.example)' on element 23" in notes
    assert f"came from record 23 of {path}" in notes


SPEC_LABEL = {"label": F((), np.int64)}


def test_the_tf1_example_program_runs() -> None:
    """examples/tf1_example_shuffle_batch.py, the README's program, runs as users run it."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "examples" / "tf1_example_shuffle_batch.py"
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "'label': (256,), 'floats': (256, 10)" in done.stdout
    assert "done: 4000 examples" in done.stdout


def test_examples_long_varints_and_large_records() -> None:
    """Lengths of three bytes and more (a 100 KB image), single int64s of every size."""
    labels = [0, 127, 128, 16_383, 16_384, 2**35, 2**63 - 1, -1, -(2**63)]
    rows = [{"image": bytes([i]) * (100_000 + i), "label": v} for i, v in enumerate(labels)]
    records = [ap.tfrecord.encode_example(r) for r in rows]
    spec = {"image": F((), bytes), "label": F((), np.int64)}
    out = ap.decode.examples(spec)(records)
    assert out["label"].tolist() == labels
    assert out["image"] == [r["image"] for r in rows]
    assert ap.decode.examples(spec)(records[:3])["label"].tolist() == labels[:3]
