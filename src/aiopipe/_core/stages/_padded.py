"""``batch(n, padded_shapes=...)``: pad every element to a fixed shape (tf.data's ``padded_batch``).

``padded_shapes`` mirrors the element: a shape (a tuple of ints and ``None``) for an array, a
tuple of them for a tuple element, a dict for a dict element. ``None`` in a dimension pads to the
batch's longest there; an int is the exact size, and an element longer than that is a
``ValueError`` naming its shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._collate import _fitting as fitting

__all__ = ["PaddedCollate", "check_padded_shapes"]

Shape = tuple[int | None, ...]


def _is_shape(spec: object) -> bool:
    return isinstance(spec, tuple | list) and all(
        d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in spec
    )


def check_padded_shapes(spec: Any, where: str = "padded_shapes") -> Any:
    """Validate at build time; returns the spec with shapes as tuples."""
    if isinstance(spec, Mapping):
        return {k: check_padded_shapes(v, f"{where}[{k!r}]") for k, v in spec.items()}
    if _is_shape(spec):
        for d in spec:
            if d is not None and d < 0:
                raise ValueError(f"batch({where}=): dimensions must be >= 0 or None, got {spec!r}")
        return tuple(spec)
    if isinstance(spec, tuple):
        return tuple(check_padded_shapes(s, f"{where}[{i}]") for i, s in enumerate(spec))
    raise TypeError(
        f"batch({where}=) needs a shape (a tuple of ints and None), or a tuple/dict of shapes "
        f"matching the element; got {spec!r:.80}"
    )


class PaddedCollate:
    """The collate function ``batch`` uses when given ``padded_shapes``."""

    def __init__(self, shapes: Any, padding_value: Any) -> None:
        self.shapes = shapes
        self.padding_value = padding_value

    def __call__(self, items: Sequence[Any]) -> Any:
        return _padded(items, self.shapes, self.padding_value, "")

    __name__ = "padded_collate"


def _padded(items: Sequence[Any], spec: Any, value: Any, field: str) -> Any:
    if isinstance(spec, Mapping):
        for x in items:
            if not isinstance(x, Mapping) or set(x) != set(spec):
                got = sorted(map(str, x)) if isinstance(x, Mapping) else type(x).__name__
                raise ValueError(
                    f"batch(padded_shapes=): {_where(field)} must be dicts with keys "
                    f"{sorted(map(str, spec))}, got {got}"
                )
        return {k: _padded([x[k] for x in items], spec[k], value, f"{field}[{k!r}]") for k in spec}
    if isinstance(spec, tuple) and not _is_shape(spec):
        for x in items:
            if not isinstance(x, tuple | list) or len(x) != len(spec):
                raise ValueError(
                    f"batch(padded_shapes=): {_where(field)} must be tuples of {len(spec)} "
                    f"fields, got {type(x).__name__}"
                )
        return tuple(
            _padded([x[i] for x in items], s, value, f"{field}[{i}]") for i, s in enumerate(spec)
        )
    return _pad_arrays(items, spec, value, field)


def _where(field: str) -> str:
    return f"field {field}" if field else "the elements"


def _pad_arrays(items: Sequence[Any], shape: Shape, value: Any, field: str) -> np.ndarray:
    arrays = [np.asarray(x) for x in items]
    for i, a in enumerate(arrays):
        if a.ndim != len(shape):
            raise ValueError(
                f"batch(padded_shapes=): element {i} of the batch has shape {a.shape} in "
                f"{_where(field)}, of rank {a.ndim}, but padded_shapes gives {shape} "
                f"(rank {len(shape)})"
            )
    target = []
    for d, want in enumerate(shape):
        longest = max(a.shape[d] for a in arrays)
        if want is None:
            target.append(longest)
            continue
        if longest > want:
            i = next(i for i, a in enumerate(arrays) if a.shape[d] > want)
            raise ValueError(
                f"batch(padded_shapes=): element {i} of the batch has shape {arrays[i].shape} in "
                f"{_where(field)}, longer than padded shape {shape} in dimension {d}"
            )
        target.append(want)
    if all(a.shape == tuple(target) for a in arrays):
        return np.stack(arrays)
    dtype = np.result_type(*arrays)
    out = np.full((len(arrays), *target), fitting(value, dtype, field), dtype=dtype)
    for i, a in enumerate(arrays):
        region: tuple[int | slice, ...] = (i, *(slice(0, n) for n in a.shape))
        out[region] = a
    return out
