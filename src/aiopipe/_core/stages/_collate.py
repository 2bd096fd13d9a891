"""``collate``: turn a list of elements into one batch of numpy arrays (and back)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Number
from typing import Any

import numpy as np

__all__ = ["collate", "uncollate"]


def collate(items: Sequence[Any], *, pad: bool = False, padding_value: Any = 0) -> Any:
    """Collate ``items`` field by field.

    numbers and bools -> 1-D array (numpy promotion); arrays of one shape -> ``np.stack`` (with
    ``pad``, numeric arrays of different shapes are padded at the end of every axis); tuples and
    lists -> tuple of collated fields; dicts -> dict; ``str``/``bytes`` (and other objects) -> list.
    Mismatched structure or shapes raise ``ValueError`` naming the field.
    """
    if len(items) == 0:
        raise ValueError("collate needs at least one element")
    return _collate(items, "", pad, padding_value)


def _collate(items: Sequence[Any], field: str, pad: bool, padding_value: Any) -> Any:
    first = items[0]
    if isinstance(first, np.ndarray):
        return _arrays(items, field, pad, padding_value)
    if isinstance(first, bool | Number | np.generic) and not isinstance(first, str | bytes):
        return _numbers(items, field)
    if isinstance(first, tuple | list):
        return _sequences(items, field, pad, padding_value)
    if isinstance(first, Mapping):
        return _mappings(items, field, pad, padding_value)
    if isinstance(first, str | bytes):
        kind = type(first)
        if not all(isinstance(x, kind) for x in items):
            kinds = sorted({type(x).__name__ for x in items})
            raise ValueError(
                f"collate: {_where(field)} mix {kind.__name__} with other types: {kinds}"
            )
    return list(items)


def _where(field: str) -> str:
    return f"field {field}" if field else "the elements"


def _numbers(items: Sequence[Any], field: str) -> np.ndarray:
    try:
        out = np.asarray(items)
    except (ValueError, TypeError):
        out = None
    if out is not None and out.ndim == 1 and out.dtype.kind in "biufc":
        return out
    # The error path only: naming the kinds costs a pass over the batch.
    if out is not None and out.dtype.kind == "O" and all(isinstance(x, int) for x in items):
        raise ValueError(f"collate: {_where(field)} hold ints too large for a 64-bit numpy array")
    kinds = sorted({type(x).__name__ for x in items})
    raise ValueError(f"collate: {_where(field)} mix numbers with other types: {kinds}")


def _arrays(items: Sequence[Any], field: str, pad: bool, padding_value: Any) -> np.ndarray:
    shapes = {getattr(a, "shape", None) for a in items}
    if len(shapes) == 1:
        return np.stack(items)
    if None in shapes:
        kinds = sorted({type(x).__name__ for x in items})
        raise ValueError(f"collate: {_where(field)} mix numpy arrays with other types: {kinds}")
    ranks = {len(s) for s in shapes if s is not None}
    numeric = all(a.dtype.kind in "biufc" for a in items)
    if pad and numeric and len(ranks) == 1:
        return _pad_stack(items, padding_value, field)
    listed = sorted(shapes, key=str)[:4]
    hint = "; use batch(pad=True) to pad them" if not pad and len(ranks) == 1 else ""
    raise ValueError(
        f"collate: {_where(field)} have arrays of different shapes {', '.join(map(str, listed))}"
        f"{hint}"
    )


def _pad_stack(items: Sequence[np.ndarray], padding_value: Any, field: str) -> np.ndarray:
    shape = tuple(max(dims) for dims in zip(*(a.shape for a in items), strict=True))
    dtype = np.result_type(*items)
    fill = _fitting(padding_value, dtype, field)
    out = np.full((len(items), *shape), fill, dtype=dtype)
    for i, a in enumerate(items):
        region: tuple[int | slice, ...] = (i, *(slice(0, d) for d in a.shape))
        out[region] = a
    return out


def _fitting(value: Any, dtype: np.dtype[Any], field: str) -> Any:
    """``value`` as ``dtype``, refusing a padding value that the arrays cannot hold exactly."""
    try:
        with np.errstate(all="raise"):
            cast = np.asarray(value).astype(dtype)
        fits = bool(np.all((cast == value) | (np.isnan(cast) & np.isnan(value))))
    except (OverflowError, ValueError, TypeError, FloatingPointError):
        fits = False
    if not fits:
        raise ValueError(
            f"collate: padding_value={value!r} does not fit the {dtype} arrays of "
            f"{_where(field)}; pass a value of that dtype"
        )
    return cast


def _sequences(items: Sequence[Any], field: str, pad: bool, padding_value: Any) -> tuple[Any, ...]:
    n = len(items[0])
    for x in items:
        if not isinstance(x, tuple | list) or len(x) != n:
            got = (
                f"{type(x).__name__} of length {len(x)}"
                if isinstance(x, tuple | list)
                else (type(x).__name__)
            )
            raise ValueError(
                f"collate: {_where(field)} must all be tuples/lists of length {n}; got {got}"
            )
    return tuple(
        _collate([x[i] for x in items], f"{field}[{i}]", pad, padding_value) for i in range(n)
    )


def _mappings(items: Sequence[Any], field: str, pad: bool, padding_value: Any) -> dict[Any, Any]:
    keys = list(items[0].keys())
    for x in items:
        if not isinstance(x, Mapping) or set(x.keys()) != set(keys):
            got = sorted(map(str, x.keys())) if isinstance(x, Mapping) else type(x).__name__
            raise ValueError(
                f"collate: {_where(field)} must all be dicts with keys {sorted(map(str, keys))}; "
                f"got {got}"
            )
    return {k: _collate([x[k] for x in items], f"{field}[{k!r}]", pad, padding_value) for k in keys}


def uncollate(batch: Any) -> list[Any]:
    """The inverse of :func:`collate`: the elements of one batch."""
    if isinstance(batch, np.ndarray):
        return list(batch)
    if isinstance(batch, tuple):
        return list(zip(*(uncollate(f) for f in batch), strict=True))
    if isinstance(batch, Mapping):
        keys = list(batch.keys())
        columns = [uncollate(batch[k]) for k in keys]
        return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]
    if isinstance(batch, list):
        return list(batch)
    raise TypeError(
        f"unbatch needs batches (arrays, tuples, dicts, lists), got {type(batch).__name__}"
    )
