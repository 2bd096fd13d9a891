"""CRC-32C (Castagnoli) and TensorFlow's masked form of it.

The C-accelerated ``google_crc32c`` package (a runtime dependency) is used when its C extension
loaded; otherwise (a platform without its wheel) a table-driven pure-Python version
(slicing-by-8) computes the same values, correctly but some hundred times slower.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

__all__ = ["crc32c", "crc32c_python", "implementation", "mask", "masked_crc32c", "unmask"]

_POLY = 0x82F63B78  # Castagnoli polynomial, bit-reversed
_M32 = 0xFFFFFFFF
_MASK_DELTA = 0xA282EAD8


def _make_tables() -> tuple[tuple[int, ...], ...]:
    first = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_POLY if crc & 1 else 0)
        first.append(crc)
    # tables[k][b]: the CRC contribution of byte b followed by k zero bytes.
    tables = [first]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(c >> 8) ^ first[c & 0xFF] for c in prev])
    return tuple(tuple(t) for t in tables)


_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7 = _make_tables()
_EIGHT = struct.Struct("<II")


def crc32c_python(data: bytes) -> int:
    """CRC-32C of ``data`` in pure Python, eight bytes per loop turn."""
    crc = _M32
    whole = len(data) & ~7
    for lo, hi in _EIGHT.iter_unpack(data[:whole]):
        lo ^= crc
        crc = (
            _T7[lo & 0xFF]
            ^ _T6[(lo >> 8) & 0xFF]
            ^ _T5[(lo >> 16) & 0xFF]
            ^ _T4[lo >> 24]
            ^ _T3[hi & 0xFF]
            ^ _T2[(hi >> 8) & 0xFF]
            ^ _T1[(hi >> 16) & 0xFF]
            ^ _T0[hi >> 24]
        )
    for byte in data[whole:]:
        crc = _T0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _M32


def _pick() -> tuple[Callable[[bytes], int], str]:
    try:
        import google_crc32c
    except ImportError:
        return crc32c_python, "python"
    # Without its C extension google_crc32c falls back to a slower loop than ours.
    if google_crc32c.implementation != "c":
        return crc32c_python, "python"
    value: Callable[[bytes], int] = google_crc32c.value
    return value, "google_crc32c"


crc32c, implementation = _pick()


def mask(crc: int) -> int:
    """TensorFlow's mask: rotate right by 15 bits and add a constant (all mod 2**32)."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _M32


def unmask(masked: int) -> int:
    """The inverse of :func:`mask`."""
    rot = (masked - _MASK_DELTA) & _M32
    return ((rot >> 17) | (rot << 15)) & _M32


def masked_crc32c(data: bytes) -> int:
    """The checksum TFRecord files store: ``mask(crc32c(data))``."""
    return mask(crc32c(data))
