"""``examples``: a batch of serialized Examples -> one dict of batched features (TensorFlow's
``parse_example``), read with numpy across the whole batch.

The records are joined into one buffer; a layout learned from the first record (``_layout``)
locates every feature in every record at once, and each feature's values are read for all rows
with a few array operations (``_payloads``). Records that do not fit the layout get a layout of
their own (a few tries), then the general reader; so every valid encoding is read, and every
error is the general reader's, naming the feature and the record's place in the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, final

import numpy as np

from .._core.engine._errors import DecodeError
from ._example import not_an_example
from ._features import (
    BYTES,
    FLOAT,
    Feature,
    FixedLenFeature,
    FixedLenSequenceFeature,
    VarLenFeature,
    check_spec,
)
from ._layout import Regions, learn, walk
from ._payloads import Packed, bytes_lists, gather, int64_at, single_bytes, varint_values
from ._values import nested, value_for
from ._wire import Malformed, parse_example

__all__ = ["ExamplesDecoder", "examples"]

Array = np.ndarray[Any, Any]
_LAYOUTS_TRIED = 4  # layouts learned per batch before the rest goes to the general reader
_FEW = 8  # fewer rows than this left: the general reader is quicker than another walk
_PAD = 16  # zero bytes after the joined records, so that a failed row's reads stay inside


def examples(features: Mapping[str, Feature]) -> ExamplesDecoder:
    """A function ``list[bytes] -> dict`` parsing a batch of serialized Examples at once.

    The fast path of a pipeline: ``.batch(256).map(ap.decode.examples(spec))``. For ``n``
    records, each feature comes out as:

    - ``FixedLenFeature`` of int64/float32: an array of shape ``(n, *shape)``;
    - ``FixedLenFeature`` of bytes: a list of ``n`` values (``bytes`` for shape ``()``, lists
      of bytes otherwise);
    - ``VarLenFeature``: a list of ``n`` 1-D arrays (lists of bytes for ``bytes``);
    - ``FixedLenSequenceFeature`` (as TensorFlow's ``parse_example``, which wants
      ``allow_missing=True``): an array ``(n, steps, *shape)``, shorter records padded with
      ``default_value`` (0 when unset) to the longest; for ``bytes`` a list of lists of steps.

    Errors are :class:`~aiopipe.DecodeError` naming the feature and the record's index in the
    batch.
    """
    return ExamplesDecoder(features)


@final
class ExamplesDecoder:
    """The callable :func:`examples` returns (picklable)."""

    __name__ = "decode.examples"

    def __init__(self, features: Mapping[str, Feature]) -> None:
        self.features = check_spec(features, "features")

    def __repr__(self) -> str:
        return f"decode.examples({self.features!r})"

    def __call__(self, records: Sequence[bytes]) -> dict[str, Any]:
        records = _checked(records)
        n = len(records)
        columns = {name: _empty_column(spec, n) for name, spec in self.features.items()}
        pending = np.arange(n)
        if n:
            pending = self._fast(records, columns, pending)
        for i in pending.tolist():
            self._general(records, i, columns)
        return {name: _finish(spec, columns[name], n) for name, spec in self.features.items()}

    def _fast(self, records: list[bytes], columns: dict[str, Any], pending: Array) -> Array:
        """Read what the learned layouts fit; returns the rows left for the general reader."""
        sizes = np.fromiter(map(len, records), np.int64, len(records))
        ends = np.cumsum(sizes)
        starts = ends - sizes
        buf = b"".join([*records, bytes(_PAD)])
        u8 = np.frombuffer(buf, np.uint8)
        limit = int(ends[-1])
        left: list[Array] = []
        for _ in range(_LAYOUTS_TRIED):
            if pending.size < min(_FEW, len(records)):
                break
            layout = learn(records[pending[0]], self.features)
            if layout is None:
                left.append(pending[:1])
                pending = pending[1:]
                continue
            ok, regions = walk(u8, layout, starts[pending], ends[pending], limit)
            rows = pending[ok]
            done = self._fill_rows(columns, u8, buf, rows, ok, regions, limit)
            left.append(rows[~done])
            pending = pending[~ok]
        left.append(pending)
        return np.sort(np.concatenate(left))

    def _fill_rows(
        self,
        columns: dict[str, Any],
        u8: Array,
        buf: bytes,
        rows: Array,
        ok: Array,
        regions: dict[str, Regions],
        limit: int,
    ) -> Array:
        """Fill the matched rows of every feature; True where a row is done."""
        done = np.ones(len(rows), bool)
        for name, spec in self.features.items():
            region = regions.get(name)
            if region is None:  # not in this layout: absent from every row
                absent = np.ones(len(rows), bool)
                start = length = np.zeros(len(rows), np.int64)
            else:
                absent, start, length = region.absent[ok], region.start[ok], region.length[ok]
            reader = _Rows(u8, buf, rows, absent, start, length, limit)
            done &= reader.fill(spec, columns[name])
        return done

    def _general(self, records: list[bytes], i: int, columns: dict[str, Any]) -> None:
        try:
            raw = parse_example(records[i], self.features)
        except Malformed as exc:
            raise _in_batch(not_an_example(exc, records[i]), i) from None
        for name, spec in self.features.items():
            try:
                value = value_for(name, spec, raw.get(name))
            except DecodeError as exc:
                raise _in_batch(exc, i) from None
            _set_row(spec, columns[name], i, value)


def _in_batch(exc: DecodeError, i: int) -> DecodeError:
    return DecodeError(f"record {i} of the batch: {exc}")


def _checked(records: object) -> list[bytes]:
    if isinstance(records, bytes | str) or not isinstance(records, Sequence | np.ndarray):
        raise TypeError(
            "decode.examples takes a batch (a list) of serialized Examples, got "
            f"{type(records).__name__}; use decode.example for one record"
        )
    out = list(records)
    if set(map(type, out)) <= {bytes}:
        return out
    for i, r in enumerate(out):
        if not isinstance(r, bytes):
            if isinstance(r, bytearray | memoryview):
                out[i] = bytes(r)
            else:
                raise TypeError(f"record {i} of the batch is {type(r).__name__}, not bytes")
    return out


def _empty_column(spec: Feature, n: int) -> Any:
    if isinstance(spec, FixedLenFeature) and spec.kind != BYTES:
        return np.empty((n, *spec.shape), spec.dtype)
    return [None] * n


def _set_row(spec: Feature, column: Any, i: int, value: Any) -> None:
    column[i] = value


def _finish(spec: Feature, column: Any, n: int) -> Any:
    if not isinstance(spec, FixedLenSequenceFeature) or spec.kind == BYTES:
        return column
    steps = max((len(v) for v in column), default=0)
    pad = 0 if spec.default is None else spec.default[0]
    out = np.full((n, steps, *spec.shape), pad, spec.dtype)
    for i, value in enumerate(column):
        out[i, : len(value)] = value
    return out


class _Rows:
    """One feature's list regions in the matched rows, and the readers for each kind of spec."""

    def __init__(
        self,
        u8: Array,
        buf: bytes,
        rows: Array,
        absent: Array,
        start: Array,
        length: Array,
        limit: int,
    ) -> None:
        self.u8, self.buf, self.rows, self.limit = u8, buf, rows, limit
        self.absent, self.start, self.length = absent, start, length

    def fill(self, spec: Feature, column: Any) -> Array:
        """Write the rows' values into ``column``; True where a row was read."""
        if spec.kind == BYTES:
            return self._bytes(spec, column)
        if isinstance(spec, FixedLenFeature):
            return self._fixed_numbers(spec, column)
        return self._number_lists(spec, column)

    def _numbers(self, spec: Feature) -> tuple[Array, Array, Array]:
        """Flat values of every present row, counts per row (0 when absent), and valid rows."""
        packed = Packed(self.u8, self.start, self.length, self.limit)
        valid = packed.valid.copy()
        length = np.where(valid & ~self.absent, packed.length, 0)
        data = gather(self.u8, packed.start, length)
        if spec.kind == FLOAT:
            valid &= length % 4 == 0
            if not valid.all():
                length = np.where(valid, length, 0)
                data = gather(self.u8, packed.start, length)
            return data.view("<f4").astype(np.float32, copy=False), length // 4, valid
        decoded = varint_values(data, length)
        if decoded is None:
            return np.empty(0, np.int64), np.zeros(len(length), np.int64), np.zeros_like(valid)
        values, counts, whole = decoded
        return values, counts, valid & whole

    def _fixed_numbers(self, spec: FixedLenFeature, column: Array) -> Array:
        if spec.kind == FLOAT or spec.count == 1:
            values, valid = self._fixed_fast(spec)
            present = valid & ~self.absent
            if not present.all():
                values = values[present]
        else:
            values, counts, valid = self._numbers(spec)
            valid &= self.absent | (counts == spec.count)
            present = valid & ~self.absent
            if not present.all():
                values = values[np.repeat(present, counts)]
        if len(self.rows) == len(column) and present.all():
            column[...] = values.reshape(column.shape)  # every row of the batch, in order
        else:
            column[self.rows[present]] = values.reshape((-1, *spec.shape))
        return self._defaults(spec, column, valid)

    def _fixed_fast(self, spec: FixedLenFeature) -> tuple[Array, Array]:
        """Every row's values at once (one float32 run, or one int64 varint), rows of the
        wrong count marked invalid; the values of invalid or absent rows are meaningless."""
        packed = Packed(self.u8, self.start, self.length, self.limit)
        if spec.kind == FLOAT:
            width = 4 * spec.count
            valid = packed.valid & (self.absent | (packed.length == width))
            window = packed.start[:, None] + np.arange(width)
            return self.u8.take(window, mode="clip").view("<f4").reshape(-1, spec.count), valid
        values, size = int64_at(self.u8, packed.start)
        return values, packed.valid & (self.absent | (size == packed.length))

    def _defaults(self, spec: FixedLenFeature, column: Any, valid: Array) -> Array:
        """Absent rows take the default; without one they go to the general reader (which
        raises the missing-feature error)."""
        if not self.absent.any():
            return valid
        if spec.default is None:
            return valid & ~self.absent
        default = spec.default
        if spec.kind == BYTES:
            value = nested(list(default), spec.shape)
            for i in self.rows[self.absent & valid].tolist():
                column[i] = value
        else:
            column[self.rows[self.absent & valid]] = np.asarray(default).reshape(spec.shape)
        return valid

    def _number_lists(self, spec: Feature, column: list[Any]) -> Array:
        values, counts, valid = self._numbers(spec)
        stops = np.cumsum(counts)
        pieces = list(
            map(values.__getitem__, map(slice, (stops - counts).tolist(), stops.tolist()))
        )
        if isinstance(spec, FixedLenSequenceFeature):
            whole = counts % spec.count == 0 if spec.count else counts == 0
            valid &= whole & (~self.absent | spec.allow_missing)
            steps = (-1, *spec.shape)
            pieces = [p.reshape(steps) if ok else p for p, ok in zip(pieces, valid, strict=True)]
        self._put(column, pieces, valid)
        return valid

    def _put(self, column: list[Any], items: list[Any], valid: Array) -> None:
        """``column[rows[k]] = items[k]`` where ``valid``; one slice copy when all rows are."""
        if len(items) == len(column) and valid.all():
            column[:] = items  # the rows are the whole batch, in order
            return
        rows = self.rows.tolist()
        for k in np.flatnonzero(valid).tolist():
            column[rows[k]] = items[k]

    def _bytes(self, spec: Feature, column: list[Any]) -> Array:
        if isinstance(spec, FixedLenFeature) and spec.count == 1:
            items, valid = single_bytes(self.u8, self.buf, self.start, self.length)
            valid &= ~self.absent
            if spec.shape != ():
                items = [nested([v], spec.shape) for v in items]
            self._put(column, items, valid)
        else:
            lists, valid = bytes_lists(self.buf, self.start, self.length)
            valid &= ~self.absent
            shaped = [self._shape_bytes(spec, v) for v in lists]
            valid &= np.fromiter((v is not None for v in shaped), bool, len(shaped))
            self._put(column, shaped, valid)
        if isinstance(spec, FixedLenFeature):
            return self._defaults(spec, column, valid | self.absent)
        if isinstance(spec, VarLenFeature):
            for i in self.rows[self.absent].tolist():
                column[i] = []
            return valid | self.absent
        return valid

    @staticmethod
    def _shape_bytes(spec: Feature, items: list[bytes]) -> Any:
        """The row's value for the spec, or None when its count does not fit (general reader)."""
        if isinstance(spec, VarLenFeature):
            return items
        count: int = spec.count  # type: ignore[attr-defined]
        shape: tuple[int, ...] = spec.shape  # type: ignore[attr-defined]
        if isinstance(spec, FixedLenFeature):
            return nested(items, shape) if len(items) == count else None
        if count == 0 or len(items) % count:
            return None
        return [nested(items[k : k + count], shape) for k in range(0, len(items), count)]
