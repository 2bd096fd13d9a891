"""Writing ``tf.train.Example`` and ``SequenceExample`` records without TensorFlow.

Values become TensorFlow's three list kinds: ``bytes``/``str`` (UTF-8) -> ``bytes_list``;
ints, bools and integer arrays -> ``int64_list``; floats and float arrays -> ``float_list``
(float32); a list, tuple or array of those -> one list (arrays are flattened, as TensorFlow
stores them). An empty list or tuple has no kind and is written as a Feature with no list set,
which TensorFlow (and ``aiopipe.decode``) read as absent: a ``VarLenFeature`` gets no values; use
an empty array with a dtype for an empty list of one kind. Number lists are packed, as TensorFlow
writes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["encode_example", "encode_sequence_example"]

_BYTES, _FLOAT, _INT64 = 1, 2, 3
_U64 = (1 << 64) - 1


def _varint(value: int) -> bytes:
    value &= _U64  # negative int64s take ten bytes, as two's complement
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varints(values: np.ndarray[Any, Any]) -> bytes:
    """Packed varints of int64 values, vectorised for the common small non-negative values."""
    if values.size and values.min() >= 0 and values.max() < 0x80:
        return values.astype(np.uint8).tobytes()
    return b"".join(_varint(int(v)) for v in values.tolist())


def _kind(name: str, value: Any) -> tuple[int, Any]:
    """(kind, flat values) of one feature value."""
    if isinstance(value, bytes | str):
        return _BYTES, [value]
    if isinstance(value, bool | int | np.integer):
        return _INT64, np.asarray([value], np.int64)
    if isinstance(value, float | np.floating):
        return _FLOAT, np.asarray([value], np.float32)
    if isinstance(value, Sequence) and not value:
        return 0, None  # an empty list has no kind: TensorFlow reads it as absent, or empty
    if isinstance(value, Sequence) and all(isinstance(v, bytes | str) for v in value):
        return _BYTES, list(value)
    array = np.asarray(value)
    if (
        array.dtype.kind in "SUO"
        and array.size
        and all(isinstance(v, bytes | str) for v in array.flat)
    ):
        return _BYTES, list(array.flat)
    if array.dtype.kind in "iub":
        if array.dtype.kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:
            raise ValueError(f"feature {name!r}: values above the int64 range")
        return _INT64, array.astype(np.int64).reshape(-1)
    if array.dtype.kind == "f":
        return _FLOAT, array.astype(np.float32).reshape(-1)
    raise TypeError(
        f"feature {name!r}: expected bytes, str, int, float or a list/array of one of them, "
        f"got {type(value).__name__} ({value!r:.60})"
    )


def encode_feature(name: str, value: Any) -> bytes:
    """One serialized ``Feature``."""
    kind, values = _kind(name, value)
    if kind == 0:
        return b""
    if kind == _BYTES:
        items = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
        body = b"".join(_field(1, v) for v in items)
    elif kind == _FLOAT:
        body = _field(1, values.astype("<f4").tobytes()) if values.size else b""
    else:
        body = _field(1, _varints(values)) if values.size else b""
    return _field(kind, body)


def _features(mapping: Mapping[str, Any], what: str) -> bytes:
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{what} must be a dict of feature name -> value, got {mapping!r:.60}")
    entries = []
    for name, value in mapping.items():
        if not isinstance(name, str):
            raise TypeError(f"{what}: feature names must be str, got {name!r}")
        entry = _field(1, name.encode()) + _field(2, encode_feature(name, value))
        entries.append(_field(1, entry))
    return b"".join(entries)


def encode_example(mapping: Mapping[str, Any]) -> bytes:
    """A serialized ``tf.train.Example`` holding ``mapping``'s features (see the module doc).

    >>> ap.tfrecord.encode_example({"label": 3, "image": b"...", "box": [0.1, 0.2, 0.5, 0.9]})
    """
    return _field(1, _features(mapping, "encode_example"))


def encode_sequence_example(
    context: Mapping[str, Any] | None = None,
    feature_lists: Mapping[str, Sequence[Any]] | None = None,
) -> bytes:
    """A serialized ``tf.train.SequenceExample``.

    ``context`` holds features as for :func:`encode_example`; ``feature_lists`` maps a name to
    its steps, each step a feature value (``{"tokens": [[1, 2], [3]], "frames": [f0, f1]}``).
    A numpy array's first axis is its steps.
    """
    out = b""
    if context:
        out += _field(1, _features(context, "encode_sequence_example context"))
    if feature_lists:
        if not isinstance(feature_lists, Mapping):
            raise TypeError(
                f"feature_lists must be a dict of name -> steps, got {feature_lists!r:.60}"
            )
        entries = []
        for name, steps in feature_lists.items():
            if not isinstance(name, str):
                raise TypeError(f"feature_lists: names must be str, got {name!r}")
            if isinstance(steps, bytes | str) or not hasattr(steps, "__iter__"):
                raise TypeError(
                    f"feature list {name!r} must be a sequence of steps, got {steps!r:.60}"
                )
            body = b"".join(_field(1, encode_feature(name, step)) for step in steps)
            entries.append(_field(1, _field(1, name.encode()) + _field(2, body)))
        out += _field(2, b"".join(entries))
    return out
