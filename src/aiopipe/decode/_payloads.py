"""Reading the values of one feature out of many records at once (numpy over a joined buffer).

Each function takes the list regions of the rows (from ``_layout.walk``) and returns the values
and a per-row ``valid`` mask; a row that is not valid (a list encoded in a way these fast paths
do not read, such as unpacked numbers) goes to the general reader, which reads it or says what
is wrong with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._layout import lengths
from ._wire import Malformed, bytes_list

__all__ = [
    "Packed",
    "bytes_lists",
    "gather",
    "int64_at",
    "single_bytes",
    "varint_values",
]

Array = np.ndarray[Any, Any]
_TAG = 0x0A


class Packed:
    """The packed payload of each row's number list: ``start``, ``length`` and ``valid``."""

    def __init__(self, u8: Array, start: Array, length: Array, limit: int) -> None:
        # An empty list message holds no field at all; a non-empty one, one packed field.
        empty = length == 0
        tag_ok = u8.take(start, mode="clip") == _TAG
        size, after = lengths(u8, start + 1)
        self.valid = empty | (tag_ok & (after + size == start + length))
        self.start = np.where(empty, start, after)
        self.length = np.where(empty | ~self.valid, 0, size)


_AR10 = np.arange(10)
_SHIFTS64 = (_AR10 * 7).astype(np.uint64)


def int64_at(u8: Array, pos: Array) -> tuple[Array, Array]:
    """The int64 varint at ``pos`` in every row: values and sizes in bytes (0: not a varint)."""
    first = u8.take(pos, mode="clip")
    long = first >= 0x80
    if not long.any():
        return first.astype(np.int64), np.ones(len(pos), np.int64)
    second = u8.take(pos + 1, mode="clip")
    if not (long & (second >= 0x80)).any():  # values below 16384: the usual labels and ids
        values = first.astype(np.int64)
        values[long] += (second[long].astype(np.int64) << 7) - 0x80
        return values, 1 + long
    window = u8.take(pos[:, None] + _AR10, mode="clip")
    more = window >= 0x80
    size = np.argmin(more, axis=1) + 1
    parts = (window & 0x7F).astype(np.uint64) << _SHIFTS64
    parts[size[:, None] <= _AR10] = 0
    values = np.bitwise_or.reduce(parts, axis=1).view(np.int64)
    size[more.all(axis=1)] = 0
    return values, size


def gather(u8: Array, start: Array, length: Array) -> Array:
    """The bytes of every row's range, concatenated."""
    total = int(length.sum())
    if total == 0:
        return np.empty(0, np.uint8)
    offsets = np.cumsum(length) - length
    return u8[np.repeat(start - offsets, length) + np.arange(total)]


def varint_values(data: Array, length: Array) -> tuple[Array, Array, Array] | None:
    """Int64 varints packed in ``data`` (rows of ``length`` bytes): values, counts per row, and
    which rows end on a whole varint. None when some varint is longer than 10 bytes."""
    ends = np.cumsum(length)
    last = data[np.maximum(ends - 1, 0)] if data.size else np.zeros(len(length), np.uint8)
    valid = (length == 0) | (last < 0x80)
    if data.size == 0:
        return np.empty(0, np.int64), np.zeros(len(length), np.int64), valid
    term = data < 0x80
    if term.all():
        return data.astype(np.int64), length.copy(), valid
    if not valid.all():
        return None  # a row ends inside a varint: let the general reader say where
    stops = np.flatnonzero(term)
    firsts = np.concatenate(([0], stops[:-1] + 1))
    sizes = stops - firsts + 1
    if sizes.max() > 10:
        return None
    shift = (np.arange(data.size) - np.repeat(firsts, sizes)) * 7
    parts = (data & 0x7F).astype(np.uint64) << shift.astype(np.uint64)
    values = np.bitwise_or.reduceat(parts, firsts).view(np.int64)
    seen = np.concatenate(([0], np.cumsum(term)))
    counts = seen[ends] - seen[ends - length]
    return values, counts, valid


def single_bytes(u8: Array, buf: bytes, start: Array, length: Array) -> tuple[list[bytes], Array]:
    """Each row's BytesList holding exactly one value: the values and which rows do (the value
    of a row that does not is meaningless)."""
    tag_ok = u8.take(start, mode="clip") == _TAG
    size, after = lengths(u8, start + 1)
    stops = after + size
    valid = tag_ok & (length > 0) & (stops == start + length)
    values = list(map(buf.__getitem__, map(slice, after.tolist(), stops.tolist())))
    return values, valid


def bytes_lists(buf: bytes, start: Array, length: Array) -> tuple[list[list[bytes]], Array]:
    """Each row's BytesList, read by the general reader (any number of values)."""
    out: list[list[bytes]] = []
    valid = np.ones(len(start), bool)
    for i, (a, n) in enumerate(zip(start.tolist(), length.tolist(), strict=True)):
        try:
            out.append(bytes_list(buf, a, a + n, []))
        except (Malformed, IndexError):
            out.append([])
            valid[i] = False
    return out, valid
