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

__all__ = ["Packed", "bytes_lists", "gather", "packed", "single_bytes", "varint_values"]

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


def packed(u8: Array, start: Array, length: Array, limit: int) -> Packed:
    return Packed(u8, start, length, limit)


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


def single_bytes(
    u8: Array, buf: bytes, start: Array, length: Array, limit: int
) -> tuple[list[bytes], Array]:
    """Each row's BytesList holding exactly one value: the values and which rows do."""
    tag_ok = u8.take(start, mode="clip") == _TAG
    size, after = lengths(u8, start + 1)
    valid = tag_ok & (length > 0) & (after + size == start + length)
    stops = after + size
    values = [
        buf[a:b] if ok else b""
        for a, b, ok in zip(after.tolist(), stops.tolist(), valid.tolist(), strict=True)
    ]
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
