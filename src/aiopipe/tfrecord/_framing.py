"""Cutting a TFRecord byte stream into checked frames, one chunk's worth at a time.

A frame is ``uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)``,
all little-endian. All complete frames of a chunk are cut out in one tight loop, then their data
CRCs are checked together (numpy does the masking and comparing), so verifying costs little more
than the CRC itself. Records before a corrupt one are still delivered, then the error is raised.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from .._core.engine._errors import CorruptRecordError
from ._compression import mismatch_hint
from ._crc32c import crc32c, mask, masked_crc32c

__all__ = ["Batch", "iter_batches"]

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8
_M32 = 0xFFFFFFFF
_MAX_KNOWN_LENGTHS = 4096
_NUMPY_MIN = 16  # below this many records a plain loop checks faster than numpy's set-up
_BAD_HEADER = -1  # _split's "need" when it stopped at a length whose CRC does not match
_BATCH_BYTES = 256 << 10  # a batch this size stays in the CPU cache while it is checked


class Batch(NamedTuple):
    """Consecutive records cut from one chunk of the stream."""

    base: int  # stream offset that ``starts`` count from
    starts: list[int]  # where each record's frame starts, relative to ``base``
    records: list[bytes]


def iter_batches(chunks: Iterator[bytes], *, path: str, verify: bool = True) -> Iterator[Batch]:
    """Split a stream of TFRecord bytes into batches of checked records.

    With ``verify`` every length and data CRC is checked. Without it only the first record's
    length CRC is, so that a wrong ``compression=`` setting still fails loudly.
    """
    buf, pos, base, need = b"", 0, 0, 12
    # Lengths whose masked CRC was verified: fixed-size records then cost a dict lookup.
    known: dict[int, int] | None = {} if verify else None
    first_checked = False
    while True:
        base, buf, complete = base + pos, *_refill(chunks, buf, pos, need)
        if not complete:
            if buf:
                raise _truncated(buf, base, path)
            return
        if not first_checked and len(buf) >= 12:
            _raise_for_length(buf, 0, 0, path)
            first_checked = True
        pos, need = 0, 0
        while not need:
            starts, records, end, need, uniform = _split(buf, pos, known)
            if verify and records:
                bad = _first_bad_data(buf, starts, records, end, uniform)
                if bad >= 0:
                    if bad:
                        yield Batch(base, starts[:bad], records[:bad])
                    raise _data_crc_error(buf, starts[bad], base, path)
            if records:
                yield Batch(base, starts, records)
            pos = end
        if need == _BAD_HEADER:
            _raise_for_length(buf, pos, base, path)


def _split(
    buf: bytes, pos: int, known: dict[int, int] | None
) -> tuple[list[int], list[bytes], int, int, bool]:
    """Frames of ``buf`` from ``pos``: (starts, records, where the rest starts, bytes it needs,
    whether all records have one length; only known when checking lengths).

    Stops after about ``_BATCH_BYTES`` with a need of 0, so that a batch is still in the CPU cache
    when its CRCs are computed. With ``known`` each length's CRC is checked (once per distinct
    length); a mismatch stops the split there with ``_BAD_HEADER`` as the need.
    """
    starts: list[int] = []
    records: list[bytes] = []
    add_start, add_record = starts.append, records.append
    unpack_header = _HEADER.unpack_from
    n = len(buf)
    stop = min(n, pos + _BATCH_BYTES)
    last_length, last_crc = -1, -1  # the previous header, verified: the usual case is a repeat
    changes = 0
    while pos + 12 <= n:
        length, length_crc = unpack_header(buf, pos)
        if known is not None and (length_crc != last_crc or length != last_length):
            if known.get(length) != length_crc:
                if masked_crc32c(buf[pos : pos + 8]) != length_crc:
                    return starts, records, pos, _BAD_HEADER, False
                _remember(known, length, length_crc)
            last_length, last_crc = length, length_crc
            changes += 1
        end = pos + 12 + length
        if end + 4 > n:
            return starts, records, pos, 16 + length, changes == 1
        add_start(pos)
        add_record(buf[pos + 12 : end])
        pos = end + 4
        if pos >= stop:
            return starts, records, pos, 0 if pos < n else 12, changes == 1
    return starts, records, pos, 12, changes == 1


def _remember(known: dict[int, int], length: int, length_crc: int) -> None:
    if len(known) >= _MAX_KNOWN_LENGTHS:
        known.clear()
    known[length] = length_crc


def _first_bad_data(
    buf: bytes, starts: list[int], records: list[bytes], stop: int, uniform: bool
) -> int:
    """The index of the first record whose data CRC does not match, or -1."""
    if len(records) < _NUMPY_MIN:
        unpack_footer = _FOOTER.unpack_from
        for i, (start, record) in enumerate(zip(starts, records, strict=True)):
            if mask(crc32c(record)) != unpack_footer(buf, start + 12 + len(record))[0]:
                return i
        return -1
    crcs = np.fromiter(map(crc32c, records), dtype=np.uint64, count=len(records))
    seen = (((crcs >> 15) | (crcs << 17)) + _MASK_DELTA) & _M32
    stored = _stored_data_crcs(buf, starts, records, stop, uniform).astype(np.uint64)
    bad = np.flatnonzero(seen != stored)
    return int(bad[0]) if bad.size else -1


def _stored_data_crcs(
    buf: bytes, starts: list[int], records: list[bytes], stop: int, uniform: bool
) -> np.ndarray[Any, Any]:
    if uniform:
        # Equal lengths put the footers at a fixed stride: a zero-copy view reads them all.
        length = len(records[0])
        first = starts[0] + 12 + length
        return np.ndarray((len(records),), "<u4", buf, first, (length + 16,))
    # Each footer ends 4 bytes before the next frame (or before ``stop``, for the last one).
    footers = np.array([*starts[1:], stop], dtype=np.int64) - 4
    raw: np.ndarray[Any, Any] = np.frombuffer(buf, dtype=np.uint8)[footers[:, None] + np.arange(4)]
    return raw.view("<u4")[:, 0]


def _refill(chunks: Iterator[bytes], buf: bytes, pos: int, need: int) -> tuple[bytes, bool]:
    """The unread tail of ``buf`` and more; whether it reached ``need`` bytes before the end."""
    parts = [buf[pos:]]
    have = len(buf) - pos
    # Collect first, join once: a record spanning many chunks is copied once, not per chunk.
    while have < need:
        chunk = next(chunks, None)
        if chunk is None:
            return b"".join(parts), False
        parts.append(chunk)
        have += len(chunk)
    return (b"".join(parts) if len(parts) > 1 else parts[0]), True


def _raise_for_length(buf: bytes, pos: int, base: int, path: str) -> None:
    """Raise CorruptRecordError if the length CRC of the frame at ``pos`` does not match."""
    length, stored = _HEADER.unpack_from(buf, pos)
    seen = masked_crc32c(buf[pos : pos + 8])
    if seen == stored:
        return
    hint = mismatch_hint(buf[pos : pos + 16], None) if base + pos == 0 else ""
    raise CorruptRecordError(
        f"{path}: TFRecord length CRC mismatch in the record at offset {base + pos}: "
        f"expected masked CRC-32C 0x{stored:08x} (stored), saw 0x{seen:08x} "
        f"(computed over the length field {length}){hint}",
        path=path,
        offset=base + pos,
    )


def _data_crc_error(buf: bytes, pos: int, base: int, path: str) -> CorruptRecordError:
    (length,) = struct.unpack_from("<Q", buf, pos)
    end = pos + 12 + length
    (stored,) = _FOOTER.unpack_from(buf, end)
    seen = masked_crc32c(buf[pos + 12 : end])
    return CorruptRecordError(
        f"{path}: TFRecord data CRC mismatch in the record at offset {base + pos} "
        f"({length} data bytes): expected masked CRC-32C 0x{stored:08x} (stored), "
        f"saw 0x{seen:08x} (computed)",
        path=path,
        offset=base + pos,
    )


def _truncated(rest: bytes, offset: int, path: str) -> CorruptRecordError:
    if len(rest) < 12:
        expected = "a 12-byte header"
    else:
        (length,) = struct.unpack_from("<Q", rest)
        expected = f"{16 + length} bytes (12 header + {length} data + 4 CRC)"
    return CorruptRecordError(
        f"{path}: truncated TFRecord at offset {offset}: expected {expected}, "
        f"but the stream ends after {len(rest)} bytes",
        path=path,
        offset=offset,
    )
