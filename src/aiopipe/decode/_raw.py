"""``raw``: bytes to a numpy array of a fixed dtype (TensorFlow's ``decode_raw``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, final

import numpy as np
import numpy.typing as npt

from .._core.engine._errors import DecodeError

__all__ = ["RawDecoder", "raw"]


def raw(
    dtype: npt.DTypeLike, *, shape: Sequence[int] | None = None, little_endian: bool = True
) -> RawDecoder:
    """A function turning ``bytes`` into an array of ``dtype`` (1-D, or ``shape``; one -1 allowed).

    The array is a read-only view of the bytes (no copy) when their byte order is the machine's;
    ``little_endian=False`` reads big-endian data. Copy the array to write into it.
    """
    return RawDecoder(dtype, shape=shape, little_endian=little_endian)


@final
class RawDecoder:
    """The callable :func:`raw` returns; an object rather than a closure so that it pickles."""

    __name__ = "decode.raw"

    def __init__(
        self,
        dtype: npt.DTypeLike,
        *,
        shape: Sequence[int] | None = None,
        little_endian: bool = True,
    ) -> None:
        native = _check_dtype(dtype)
        self.little_endian = bool(little_endian)
        self.dtype = native
        self.shape = None if shape is None else _check_shape(shape)
        # The file's byte order; arrays are handed out in the machine's.
        self._file_dtype = native.newbyteorder("<" if little_endian else ">")
        self._swap = self._file_dtype != native and native.itemsize > 1

    def __call__(self, data: bytes | bytearray | memoryview) -> np.ndarray[Any, Any]:
        itemsize = self.dtype.itemsize
        nbytes = len(data) if not isinstance(data, memoryview) else data.nbytes
        left = nbytes % itemsize
        if left:
            raise DecodeError(
                f"a record of {nbytes} bytes is not a whole number of {self.dtype} values "
                f"({itemsize} bytes each): {left} bytes left over"
            )
        array = np.frombuffer(data, dtype=self._file_dtype)
        if self._swap:
            array = array.astype(self.dtype)
        return array if self.shape is None else _reshape(array, self.shape, nbytes)

    def __repr__(self) -> str:
        return (
            f"decode.raw({self.dtype.name!r}, shape={self.shape!r}, "
            f"little_endian={self.little_endian})"
        )


def _reshape(
    array: np.ndarray[Any, Any], shape: tuple[int, ...], nbytes: int
) -> np.ndarray[Any, Any]:
    known = math.prod(d for d in shape if d != -1)
    fits = array.size % known == 0 if -1 in shape else array.size == known
    if not fits:
        need = "a multiple of " if -1 in shape else ""
        raise DecodeError(
            f"a record of {nbytes} bytes holds {array.size} {array.dtype} values, but shape "
            f"{shape} needs {need}{known} ({need}{known * array.dtype.itemsize} bytes)"
        )
    return array.reshape(shape)


def _check_dtype(dtype: npt.DTypeLike) -> np.dtype[Any]:
    try:
        checked = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be a numpy dtype, got {dtype!r}") from None
    if checked.hasobject or checked.itemsize == 0:
        raise ValueError(f"dtype must be a fixed-size numeric dtype, got {checked}")
    # Store the machine's byte order; little_endian= says what the bytes hold.
    return checked.newbyteorder("=")


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    dims = tuple(shape)
    bad = [d for d in dims if isinstance(d, bool) or not isinstance(d, int | np.integer)]
    if bad or any(d < -1 or d == 0 for d in dims) or dims.count(-1) > 1:
        raise ValueError(
            f"shape must be a sequence of positive ints with at most one -1, got {shape!r}"
        )
    return tuple(int(d) for d in dims)
