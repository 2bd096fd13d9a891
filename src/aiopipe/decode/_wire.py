"""A general reader of ``tf.train.Example`` and ``SequenceExample`` in the protobuf wire format.

It reads any valid encoding, as protobuf does: fields in any order, unknown fields skipped,
packed or unpacked number lists, a message split over several occurrences of its field (merged),
the last of duplicate map keys. It is the reference that the batched reader (``_batched``) falls
back to for records whose layout it did not learn. The messages (from TensorFlow's
``example.proto`` and ``feature.proto``)::

    Example { Features features = 1; }
    SequenceExample { Features context = 1; FeatureLists feature_lists = 2; }
    Features { map<string, Feature> feature = 1; }          # entries: key = 1, value = 2
    FeatureLists { map<string, FeatureList> feature_list = 1; }
    FeatureList { repeated Feature feature = 1; }
    Feature { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                           Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }  FloatList { repeated float value = 1 [packed]; }
    Int64List { repeated int64 value = 1 [packed]; }
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import numpy as np

from ._features import BYTES, FLOAT, INT64

__all__ = [
    "Malformed",
    "RawFeature",
    "bytes_list",
    "message_kind",
    "parse_example",
    "parse_sequence_example",
    "varint",
]

# A feature as read: (kind, values); values a list of bytes, a float32 array or a list of ints.
# Kind 0 is a Feature with no list set (TensorFlow reads it as an empty list of any kind).
RawFeature = tuple[int, Any]

_EMPTY: RawFeature = (0, [])
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_U64 = (1 << 64) - 1
_SIGN = 1 << 63
_F32 = np.dtype("<f4")


class Malformed(Exception):
    """Bytes that are not a valid message; ``str`` says what and where (internal)."""


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result, shift = b & 0x7F, 7
    while True:
        pos += 1
        b = buf[pos]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _U64, pos + 1
        shift += 7
        if shift >= 70:
            raise Malformed(f"a varint longer than 10 bytes at byte {pos}")


def _skip(buf: bytes, pos: int, wire: int, end: int) -> int:
    """The position after an unknown field's value."""
    if wire == _VARINT:
        return varint(buf, pos)[1]
    if wire == _I64:
        return pos + 8
    if wire == _I32:
        return pos + 4
    if wire == _LEN:
        length, pos = varint(buf, pos)
        return pos + length
    raise Malformed(f"wire type {wire} (groups are not used by Example) at byte {pos}")


def _fields(buf: bytes, pos: int, end: int) -> Any:
    """``(field, wire, start, stop)`` for each field of the message in ``buf[pos:end]``.

    For length-delimited fields start/stop bound the payload; for others ``start`` is where the
    value begins and ``stop`` where the next field does.
    """
    while pos < end:
        tag, pos = varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise Malformed(f"field number 0 at byte {pos}")
        if wire == _LEN:
            length, start = varint(buf, pos)
            pos = start + length
            if pos > end:
                raise Malformed(f"field {field} of {length} bytes runs past its message's end")
            yield field, wire, start, pos
        else:
            start, pos = pos, _skip(buf, pos, wire, end)
            if pos > end:
                raise Malformed(f"field {field} runs past its message's end")
            yield field, wire, start, pos


def _int64s(buf: bytes, pos: int, end: int, out: list[int]) -> None:
    while pos < end:
        value, pos = varint(buf, pos)
        out.append(value - (1 << 64) if value & _SIGN else value)
    if pos != end:
        raise Malformed("a packed int64 list whose last varint runs past its end")


def _feature(buf: bytes, pos: int, end: int) -> RawFeature:
    """One ``Feature``, read the quick way when it is one packed list, as writers write it."""
    if pos == end:
        return _EMPTY
    kind = buf[pos] >> 3
    if buf[pos] & 7 == _LEN and kind in (BYTES, FLOAT, INT64):
        size, start = varint(buf, pos + 1)
        if start + size == end:
            found = _one_list(buf, kind, start, end)
            if found is not None:
                return found
    return _feature_general(buf, pos, end)


def _one_list(buf: bytes, kind: int, pos: int, end: int) -> RawFeature | None:
    """A list message in its usual form (numbers in one packed run), or None."""
    if kind == BYTES:
        values = []
        while pos < end:
            if buf[pos] != 0x0A:
                return None
            size, pos = varint(buf, pos + 1)
            values.append(buf[pos : pos + size])
            pos += size
        return (kind, values) if pos == end else None
    if pos == end:
        return (kind, np.empty(0, _F32)) if kind == FLOAT else (kind, [])
    if buf[pos] != 0x0A:
        return None
    size, start = varint(buf, pos + 1)
    if start + size != end:
        return None
    if kind == FLOAT:
        return (kind, np.frombuffer(buf, _F32, size // 4, start)) if size % 4 == 0 else None
    out: list[int] = []
    _int64s(buf, start, end, out)
    return kind, out


def _feature_general(buf: bytes, pos: int, end: int) -> RawFeature:
    """One ``Feature``: the last list field set wins; repeats of one list field merge."""
    kind, values = 0, None  # type: tuple[int, Any]
    for field, wire, start, stop in _fields(buf, pos, end):
        if field not in (BYTES, FLOAT, INT64) or wire != _LEN:
            continue  # unknown field (a field of the right number but wrong type is unknown too)
        if field != kind:
            kind, values = field, ([] if field != FLOAT else None)
        if kind == BYTES:
            values = bytes_list(buf, start, stop, values)
        elif kind == FLOAT:
            values = _float_list(buf, start, stop, values)
        else:
            _int_list(buf, start, stop, values)
    if kind == 0:
        return _EMPTY
    if kind == FLOAT and values is None:
        values = np.empty(0, _F32)
    return kind, values


def bytes_list(buf: bytes, pos: int, end: int, out: Any) -> Any:
    for field, wire, start, stop in _fields(buf, pos, end):
        if field == 1 and wire == _LEN:
            out.append(buf[start:stop])
    return out


def _float_list(buf: bytes, pos: int, end: int, out: Any) -> Any:
    parts = [] if out is None else [out]
    for field, wire, start, stop in _fields(buf, pos, end):
        if field != 1:
            continue
        if wire == _LEN:
            if (stop - start) % 4:
                raise Malformed(f"a packed float list of {stop - start} bytes (not 4 per value)")
            parts.append(np.frombuffer(buf, _F32, (stop - start) // 4, start))
        elif wire == _I32:
            parts.append(np.frombuffer(buf, _F32, 1, start))
    if not parts:
        return out
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _int_list(buf: bytes, pos: int, end: int, out: list[int]) -> None:
    for field, wire, start, stop in _fields(buf, pos, end):
        if field != 1:
            continue
        if wire in (_LEN, _VARINT):  # packed, or one unpacked value
            _int64s(buf, start, stop, out)


def _map_entry(buf: bytes, pos: int, end: int) -> tuple[str, int, int]:
    """A map entry's key and the bounds of its value, quickly when it is key then value."""
    if (
        end - pos > 2
        and buf[pos] == 0x0A
        and (klen := buf[pos + 1]) < 0x80
        and pos + 2 + klen < end
    ):
        vtag = pos + 2 + klen
        if buf[vtag] == 0x12:
            size, start = varint(buf, vtag + 1)
            if start + size == end:
                try:
                    return buf[pos + 2 : vtag].decode(), start, end
                except UnicodeDecodeError:
                    pass  # the general path says what is wrong
    return _map_entry_general(buf, pos, end)


def _map_entry_general(buf: bytes, pos: int, end: int) -> tuple[str, int, int]:
    """A map entry's key and the bounds of its value (an empty value when absent)."""
    key, vstart, vstop = b"", end, end
    for field, wire, start, stop in _fields(buf, pos, end):
        if wire != _LEN:
            continue
        if field == 1:
            key = buf[start:stop]
        elif field == 2:
            vstart, vstop = start, stop
    try:
        return key.decode(), vstart, vstop
    except UnicodeDecodeError:
        raise Malformed(f"a feature name that is not UTF-8: {key!r}") from None


def _features(
    buf: bytes, pos: int, end: int, out: dict[str, RawFeature], wanted: Container[str] | None
) -> None:
    """The map entries of a ``Features``; values of names not ``wanted`` are not read (as in
    TensorFlow's parser, a damaged feature that nobody asked for is no error)."""
    for field, wire, start, stop in _fields(buf, pos, end):
        if field == 1 and wire == _LEN:
            name, vstart, vstop = _map_entry(buf, start, stop)
            if wanted is None or name in wanted:
                out[name] = _feature(buf, vstart, vstop)


def _feature_list(buf: bytes, pos: int, end: int) -> list[RawFeature]:
    return [
        _feature(buf, start, stop)
        for field, wire, start, stop in _fields(buf, pos, end)
        if field == 1 and wire == _LEN
    ]


def _feature_lists(
    buf: bytes, pos: int, end: int, out: dict[str, list[RawFeature]], wanted: Container[str] | None
) -> None:
    for field, wire, start, stop in _fields(buf, pos, end):
        if field == 1 and wire == _LEN:
            name, vstart, vstop = _map_entry(buf, start, stop)
            if wanted is None or name in wanted:
                out[name] = _feature_list(buf, vstart, vstop)


def _checked(buf: object) -> bytes:
    if isinstance(buf, bytes):
        return buf
    if isinstance(buf, bytearray | memoryview):
        return bytes(buf)
    raise TypeError(f"a serialized Example must be bytes, got {type(buf).__name__}")


def parse_example(record: object, wanted: Container[str] | None = None) -> dict[str, RawFeature]:
    """``{name: (kind, values)}`` of a serialized Example (only the ``wanted`` names, when
    given); raises :class:`Malformed`."""
    buf = _checked(record)
    out: dict[str, RawFeature] = {}
    try:
        for field, wire, start, stop in _fields(buf, 0, len(buf)):
            if field == 1 and wire == _LEN:
                _features(buf, start, stop, out, wanted)
    except IndexError:
        raise Malformed(f"the bytes end inside a field ({len(buf)} bytes)") from None
    return out


def parse_sequence_example(
    record: object,
    wanted_context: Container[str] | None = None,
    wanted_lists: Container[str] | None = None,
) -> tuple[dict[str, RawFeature], dict[str, list[RawFeature]]]:
    """The context features and feature lists of a serialized SequenceExample."""
    buf = _checked(record)
    context: dict[str, RawFeature] = {}
    lists: dict[str, list[RawFeature]] = {}
    try:
        for field, wire, start, stop in _fields(buf, 0, len(buf)):
            if field == 1 and wire == _LEN:
                _features(buf, start, stop, context, wanted_context)
            elif field == 2 and wire == _LEN:
                _feature_lists(buf, start, stop, lists, wanted_lists)
    except IndexError:
        raise Malformed(f"the bytes end inside a field ({len(buf)} bytes)") from None
    return context, lists


def message_kind(record: bytes) -> str | None:
    """``"Example"`` or ``"SequenceExample"`` when ``record`` looks like one, else None.

    A guess from the top-level fields (there is no type tag on the wire): only length-delimited
    fields 1 (features / context) and 2 (feature_lists), at least one of them, and a body that
    parses. An Example and a SequenceExample with only a context look the same: Example.
    """
    try:
        fields = {(field, wire) for field, wire, _, _ in _fields(record, 0, len(record))}
        if not fields or not fields <= {(1, _LEN), (2, _LEN)}:
            return None
        if (2, _LEN) in fields:
            parse_sequence_example(record)
            return "SequenceExample"
        parse_example(record)
    except (Malformed, IndexError):
        return None
    return "Example"
