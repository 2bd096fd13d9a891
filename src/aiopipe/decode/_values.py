"""Turning one record's raw features into the values a spec asks for, with TensorFlow's rules.

Shared by the per-record decoders and by the batched one's fallback. Every mismatch raises
:class:`~aiopipe.DecodeError` naming the feature, what the spec expects and what the record holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.engine._errors import DecodeError
from ._features import (
    BYTES,
    INT64,
    KIND_NAMES,
    Feature,
    FixedLenFeature,
    FixedLenSequenceFeature,
    VarLenFeature,
)
from ._wire import RawFeature

__all__ = ["fixed_value", "nested", "sequence_steps", "sequence_value", "value_for", "values_of"]


def _count(n: int, kind: int) -> str:
    noun = {BYTES: "bytes value", INT64: "int64 value"}.get(kind, "float value")
    return f"{n} {noun}{'' if n == 1 else 's'}"


def values_of(name: str, spec: Feature, raw: RawFeature, what: str = "feature") -> Any:
    """The raw values, checked to be of the spec's kind (a Feature with no list set is empty)."""
    kind, values = raw
    if kind == spec.kind:
        return values
    if kind == 0:
        return [] if spec.kind != 2 else np.empty(0, np.float32)
    raise DecodeError(
        f"{what} {name!r}: expected {KIND_NAMES[spec.kind]} ({spec.dtype_name}), "
        f"the record holds {'an' if kind == INT64 else 'a'} {KIND_NAMES[kind]} of "
        f"{len(values)} values"
    )


def nested(items: list[bytes], shape: tuple[int, ...]) -> Any:
    """Flat bytes values as nested lists of ``shape`` (one ``bytes`` for shape ``()``)."""
    if not shape:
        return items[0]
    if len(shape) == 1:
        return list(items)
    step = len(items) // shape[0] if shape[0] else 0
    return [nested(items[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _array(values: Any, spec: Feature) -> np.ndarray[Any, Any]:
    return np.asarray(values, dtype=spec.dtype)


def fixed_value(name: str, spec: FixedLenFeature, raw: RawFeature | None) -> Any:
    """A FixedLenFeature's value: the record's, else the default, else an error."""
    if raw is None:
        if spec.default is None:
            raise DecodeError(
                f"feature {name!r} is required ({spec!r} without default_value) but the record "
                "does not have it"
            )
        values = spec.default
    else:
        values = values_of(name, spec, raw)
        if len(values) != spec.count:
            raise DecodeError(
                f"feature {name!r}: shape {spec.shape} needs {_count(spec.count, spec.kind)}, "
                f"the record holds {len(values)}"
            )
    if spec.kind == BYTES:
        return nested(list(values), spec.shape)
    return _array(values, spec).reshape(spec.shape)


def sequence_value(name: str, spec: FixedLenSequenceFeature, raw: RawFeature | None) -> Any:
    """A FixedLenSequenceFeature in an Example: the values cut into steps of ``shape``."""
    if raw is None:
        if not spec.allow_missing:
            raise DecodeError(
                f"feature {name!r} is required ({spec!r}) but the record does not have it"
            )
        values: Any = [] if spec.kind == BYTES else np.empty(0, spec.dtype)
    else:
        values = values_of(name, spec, raw)
    n = len(values)
    if n % spec.count if spec.count else n:
        raise DecodeError(
            f"feature {name!r}: steps of shape {spec.shape} need a multiple of "
            f"{spec.count} values, the record holds {n}"
        )
    steps = n // spec.count if spec.count else 0
    if spec.kind == BYTES:
        return [
            nested(list(values[i * spec.count : (i + 1) * spec.count]), spec.shape)
            for i in range(steps)
        ]
    return _array(values, spec).reshape((steps, *spec.shape))


def value_for(name: str, spec: Feature, raw: RawFeature | None) -> Any:
    """The value of feature ``name`` of one Example (``raw`` is None when it is absent).

    A Feature with no list set counts as absent, as in TensorFlow's parser.
    """
    if raw is not None and raw[0] == 0:
        raw = None
    if isinstance(spec, FixedLenFeature):
        return fixed_value(name, spec, raw)
    if isinstance(spec, VarLenFeature):
        if raw is None:
            return [] if spec.kind == BYTES else np.empty(0, spec.dtype)
        values = values_of(name, spec, raw)
        return list(values) if spec.kind == BYTES else _array(values, spec)
    if not isinstance(spec, FixedLenSequenceFeature):
        raise TypeError(f"feature {name!r}: not a feature spec: {spec!r}")
    return sequence_value(name, spec, raw)


def sequence_steps(name: str, spec: Feature, steps: list[RawFeature] | None) -> Any:
    """A feature list of a SequenceExample: ``(steps, *shape)`` for a FixedLenSequenceFeature,
    a list of 1-D values (one per step) for a VarLenFeature."""
    if isinstance(spec, VarLenFeature):
        return [value_for(name, spec, step) for step in steps or ()]
    if not isinstance(spec, FixedLenSequenceFeature):
        raise TypeError(
            f"sequence_features[{name!r}] must be FixedLenSequenceFeature or VarLenFeature, "
            f"got {spec!r}"
        )
    if steps is None:
        if not spec.allow_missing:
            raise DecodeError(
                f"feature list {name!r} is required ({spec!r}) but the record does not have it"
            )
        steps = []
    rows = []
    for i, step in enumerate(steps):
        values = values_of(name, spec, step, "feature list")
        if len(values) != spec.count:
            raise DecodeError(
                f"feature list {name!r}, step {i}: shape {spec.shape} needs "
                f"{_count(spec.count, spec.kind)}, the record holds {len(values)}"
            )
        rows.append(values)
    if spec.kind == BYTES:
        return [nested(list(v), spec.shape) for v in rows]
    if not rows:
        return np.empty((0, *spec.shape), spec.dtype)
    return np.stack([_array(v, spec) for v in rows]).reshape((len(rows), *spec.shape))
