"""Walking the records of a batch in lock step through a layout learned from one of them.

Writers serialize every Example of a file the same way: the same features in the same order, each
as one packed list. Only lengths differ (a longer caption, more tokens, a bigger number). So the
layout of one record, the sequence of its feature names, tells where to look in every other:
numpy follows all records at once, reading each length varint of all of them with a handful of
array operations, and checks every tag and name on the way. A record that does not fit (other
features, another order, an unpacked list, an extra field) is reported as not matched, never
misread: the caller then learns another layout from it or parses it with the general reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._features import Feature
from ._wire import Malformed, varint

__all__ = ["Entry", "Regions", "learn", "lengths", "walk"]

Array = np.ndarray[Any, Any]
_TAG = 0x0A  # field 1, length-delimited: Example.features, a map entry, BytesList.value, packed
_KEY_END = 0x12  # field 2, length-delimited: the map entry's value, right after its key
_AR5 = np.arange(5)
_SHIFTS = np.arange(0, 35, 7, dtype=np.int64)


@dataclass(frozen=True)
class Entry:
    """One map entry of the learned layout: the bytes from the key's tag to the value's tag."""

    name: str
    prefix: Array  # uint8: 0x0A, len(name), name, 0x12
    span: Array  # np.arange(len(prefix))
    spec: Feature | None  # None: a feature the caller did not ask for (stepped over)


@dataclass
class Regions:
    """Where a feature's list message is in each record: its Feature was empty (absent) or held
    the spec's kind of list at ``start`` for ``length`` bytes."""

    absent: Array  # bool
    start: Array  # int64
    length: Array  # int64


def learn(record: bytes, spec: dict[str, Feature]) -> list[Entry] | None:
    """The layout of ``record``: its map entries in order; None if it is not canonical."""
    try:
        if len(record) < 2 or record[0] != _TAG:
            return None
        size, pos = varint(record, 1)
        if pos + size != len(record):
            return None  # no features, or more than one top-level field
        entries = []
        while pos < len(record):
            if record[pos] != _TAG:
                return None
            size, start = varint(record, pos + 1)
            klen = record[start + 1]
            if record[start] != _TAG or klen >= 0x80 or record[start + 2 + klen] != _KEY_END:
                return None
            name = record[start + 2 : start + 2 + klen].decode()
            prefix = np.frombuffer(record[start : start + 3 + klen], np.uint8)
            entries.append(Entry(name, prefix, np.arange(len(prefix)), spec.get(name)))
            pos = start + size
    except (IndexError, Malformed, UnicodeDecodeError):
        return None
    if pos != len(record) or len({e.name for e in entries}) != len(entries):
        return None
    return entries


def lengths(u8: Array, pos: Array) -> tuple[Array, Array]:
    """Length varints (at most 5 bytes) at ``pos`` in every row: values and the positions after.

    Positions past the buffer are clipped (such rows fail their checks anyway); a varint longer
    than 5 bytes gives -1, which no check accepts.
    """
    first = u8.take(pos, mode="clip")
    long = first >= 0x80
    if not long.any():
        return first.astype(np.int64), pos + 1
    second = u8.take(pos + 1, mode="clip")
    if not (long & (second >= 0x80)).any():  # lengths below 16 KiB: the usual case
        values = first.astype(np.int64)
        values[long] += (second[long].astype(np.int64) << 7) - 0x80
        return values, pos + 1 + long
    window = u8.take(pos[:, None] + _AR5, mode="clip")
    more = window >= 0x80
    size = np.argmin(more, axis=1) + 1
    parts = (window & 0x7F).astype(np.int64) << _SHIFTS
    parts[size[:, None] <= _AR5] = 0
    values = parts.sum(axis=1)
    values[more.all(axis=1)] = -1
    return values, pos + size


def walk(
    u8: Array, layout: list[Entry], pos: Array, end: Array, limit: int
) -> tuple[Array, dict[str, Regions]]:
    """Follow ``layout`` in the records ``u8[pos:end]`` (one row each).

    Returns which rows matched and, for each feature the caller asked for, its list regions.
    Rows that have already failed may read anywhere: reads are clipped to the buffer.
    """
    ok = u8.take(pos, mode="clip") == _TAG
    size, pos = lengths(u8, pos + 1)
    ok &= pos + size == end
    regions: dict[str, Regions] = {}
    for entry in layout:
        ok &= u8.take(pos, mode="clip") == _TAG
        size, pos = lengths(u8, pos + 1)
        entry_end = pos + size
        width = len(entry.prefix)
        ok &= (u8.take(pos[:, None] + entry.span, mode="clip") == entry.prefix).all(axis=1)
        if entry.spec is not None:
            regions[entry.name] = _feature(u8, pos + width, entry_end, entry.spec.kind, ok, limit)
        pos = entry_end
    ok &= pos == end
    return ok, regions


def _feature(u8: Array, pos: Array, end: Array, kind: int, ok: Array, limit: int) -> Regions:
    """A Feature of ``kind`` (or empty) filling ``u8[pos:end]``; clears ``ok`` where it is not."""
    size, pos = lengths(u8, pos)
    ok &= pos + size == end
    absent = size == 0
    ok &= absent | (u8.take(pos, mode="clip") == (kind << 3 | 2))
    size, start = lengths(u8, pos + 1)
    ok &= absent | (start + size == end)
    return Regions(absent, start, np.where(absent, 0, size))
