"""aiopipe parses TensorFlow-written Examples and SequenceExamples to the values TensorFlow did.

The fixtures were written by TensorFlow (``fixtures/make_example_fixtures.py``, run in the rivals'
environment) together with what its own parsers returned; this test needs no TensorFlow.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aiopipe as ap

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DTYPES: dict[str, Any] = {"bytes": bytes, "int64": np.int64, "float32": np.float32}


@pytest.fixture(scope="module")
def parsed() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "examples_parsed.json").read_text())
    return data


def spec_from_json(spec: dict[str, list[Any]]) -> dict[str, ap.decode.FixedLenFeature | Any]:
    out: dict[str, Any] = {}
    for name, (kind, shape, dtype, default, allow_missing) in spec.items():
        d = DTYPES[dtype]
        if kind == "fixed":
            out[name] = ap.decode.FixedLenFeature(shape, d, default_value=default)
        elif kind == "varlen":
            out[name] = ap.decode.VarLenFeature(d)
        else:
            out[name] = ap.decode.FixedLenSequenceFeature(
                shape, d, allow_missing=allow_missing, default_value=default
            )
    return out


def expected(value: Any) -> Any:
    """A JSON value with its bytes decoded."""
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [expected(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """One of our values as nested lists, to compare with TensorFlow's."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def assert_same(ours: dict[str, Any], theirs: dict[str, Any], where: str) -> None:
    assert set(ours) == set(theirs), where
    for name, value in theirs.items():
        assert plain(ours[name]) == expected(value), f"{where}, feature {name!r}"


def test_example_matches_tensorflow_parse_single_example(parsed: dict[str, Any]) -> None:
    decode = ap.decode.example(spec_from_json(parsed["example_spec"]))
    records = list(ap.tfrecord.read(FIXTURES / "examples.tfrecord"))
    assert len(records) == len(parsed["parse_single_example"]) == 8
    for i, (record, theirs) in enumerate(zip(records, parsed["parse_single_example"], strict=True)):
        ours = decode(record)
        assert_same(ours, theirs, f"record {i}")
        assert ours["label"].dtype == np.int64
        assert ours["label"].shape == ()
        assert ours["matrix"].dtype == np.float32
        assert ours["matrix"].shape == (2, 3)
        assert isinstance(ours["image"], bytes)


def test_examples_matches_tensorflow_parse_example(parsed: dict[str, Any]) -> None:
    decode = ap.decode.examples(spec_from_json(parsed["example_spec"]))
    records = list(ap.tfrecord.read(FIXTURES / "examples.tfrecord"))
    ours = decode(records)
    assert_same(ours, parsed["parse_example"], "the batch")
    assert ours["floats"].shape == (8, 3)
    assert ours["floats"].dtype == np.float32
    assert ours["frames"].shape == (8, 2, 2)
    # Every sub-batch too: other first records, so other layouts learned.
    for start in range(len(records)):
        part = decode(records[start:])
        theirs = {k: v[start:] for k, v in parsed["parse_example"].items() if k != "frames"}
        assert_same({k: v for k, v in part.items() if k != "frames"}, theirs, f"from {start}")


def test_sequence_example_matches_tensorflow(parsed: dict[str, Any]) -> None:
    decode = ap.decode.sequence_example(
        context_features=spec_from_json(parsed["context_spec"]),
        sequence_features=spec_from_json(parsed["sequence_spec"]),
    )
    records = list(ap.tfrecord.read(FIXTURES / "sequence_examples.tfrecord"))
    theirs_all = parsed["parse_single_sequence_example"]
    assert len(records) == len(theirs_all) == 3
    for i, (record, theirs) in enumerate(zip(records, theirs_all, strict=True)):
        context, sequences = decode(record)
        assert_same(context, theirs["context"], f"record {i} context")
        assert_same(sequences, theirs["sequences"], f"record {i} sequences")
    _, sequences = decode(records[1])
    assert sequences["frames"].shape == (0, 2)
    assert sequences["frames"].dtype == np.float32


def test_inspect_recognises_tensorflow_examples(capsys: pytest.CaptureFixture[str]) -> None:
    from aiopipe._cli import main

    assert main(["inspect", str(FIXTURES / "examples.tfrecord")]) == 0
    out = capsys.readouterr().out
    assert "8 records" in out
    assert "tf.train.Example" in out
    assert "label: int64_list" in out
    assert "image: bytes_list" in out
    assert main(["inspect", str(FIXTURES / "sequence_examples.tfrecord")]) == 0
    out = capsys.readouterr().out
    assert "tf.train.SequenceExample" in out
    assert "frames: feature list" in out
