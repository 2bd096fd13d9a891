"""Feature specs for ``tf.train.Example`` parsing, named and behaving like TensorFlow's.

``FixedLenFeature(shape, dtype, default_value=None)``, ``VarLenFeature(dtype)`` and
``FixedLenSequenceFeature(shape, dtype, allow_missing=False, default_value=None)``; ``dtype`` is
``np.int64``, ``np.float32`` or ``bytes`` (TensorFlow's ``int64``, ``float32`` and ``string``).
Specs are checked when they are made, so a bad spec fails when the pipeline is built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, final

import numpy as np

__all__ = [
    "BYTES",
    "FLOAT",
    "INT64",
    "KIND_NAMES",
    "Feature",
    "FixedLenFeature",
    "FixedLenSequenceFeature",
    "VarLenFeature",
    "check_spec",
]

# A Feature's oneof field numbers on the wire double as our kind codes.
BYTES: Final = 1
FLOAT: Final = 2
INT64: Final = 3
KIND_NAMES: Final = {BYTES: "bytes_list", FLOAT: "float_list", INT64: "int64_list"}
_DTYPE_NAMES: Final = {BYTES: "bytes", FLOAT: "float32", INT64: "int64"}
_NUMPY: Final = {FLOAT: np.dtype(np.float32), INT64: np.dtype(np.int64)}


def _kind_of(dtype: object) -> int:
    """The list kind that holds ``dtype``: TensorFlow's three Example types only."""
    if dtype is bytes or dtype is str or dtype in ("bytes", "string", "str"):
        return BYTES
    try:
        checked = np.dtype(dtype)  # type: ignore[call-overload, unused-ignore]
    except TypeError:
        checked = None
    if checked == np.int64:
        return INT64
    if checked == np.float32:
        return FLOAT
    raise ValueError(
        "dtype must be np.int64, np.float32 or bytes (an Example holds only int64_list, "
        f"float_list and bytes_list), got {dtype!r}"
    )


def _check_shape(shape: object, what: str) -> tuple[int, ...]:
    dims: tuple[Any, ...]
    if isinstance(shape, int | np.integer) and not isinstance(shape, bool):
        dims = (shape,)
    elif isinstance(shape, Sequence) and not isinstance(shape, str | bytes):
        dims = tuple(shape)
    else:
        raise ValueError(f"{what} shape must be a sequence of ints, got {shape!r}")
    ok = all(isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 0 for d in dims)
    if not ok:
        raise ValueError(
            f"{what} shape must hold non-negative ints (a fully defined shape), got {shape!r}"
        )
    return tuple(int(d) for d in dims)


class Feature:
    """Base of the three spec classes: a dtype, its wire kind and (for fixed ones) a shape."""

    __slots__ = ("dtype", "kind")

    dtype: Any  # bytes, or np.dtype int64 / float32
    kind: int

    def _set_dtype(self, dtype: object) -> None:
        self.kind = _kind_of(dtype)
        self.dtype = bytes if self.kind == BYTES else _NUMPY[self.kind]

    @property
    def dtype_name(self) -> str:
        return _DTYPE_NAMES[self.kind]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Feature) or type(other) is not type(self):
            return NotImplemented
        return bool(self._key() == other._key())

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[Any, ...]:
        return (self.kind,)

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for cls in type(self).__mro__ for name in _slots(cls)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)


def _slots(cls: type) -> tuple[str, ...]:
    slots = cls.__dict__.get("__slots__", ())
    return (slots,) if isinstance(slots, str) else tuple(slots)


@final
class VarLenFeature(Feature):
    """Every value the record holds, as a 1-D array (a list for ``bytes``); empty when absent."""

    __slots__ = ()

    def __init__(self, dtype: object) -> None:
        self._set_dtype(dtype)

    def __repr__(self) -> str:
        return f"VarLenFeature({self.dtype_name})"


class _Fixed(Feature):
    """A shape, its value count, and the default as a flat list or array (None: required)."""

    __slots__ = ("count", "default", "default_value", "shape")

    shape: tuple[int, ...]
    count: int
    default_value: Any
    default: Any

    def _set_fixed(self, shape: object, dtype: object, default_value: Any, what: str) -> None:
        self._set_dtype(dtype)
        self.shape = _check_shape(shape, what)
        self.count = math.prod(self.shape)
        self.default_value = default_value
        self.default = None if default_value is None else self._flat_default(default_value, what)

    def _flat_default(self, value: Any, what: str) -> Any:
        """The default as ``count`` flat values; a single value fills the whole shape."""
        items: Any
        if self.kind == BYTES:
            items = _bytes_items(value, what)
            if len(items) == 1 and self.count != 1:
                items = items * self.count
        else:
            try:
                array = np.asarray(value, dtype=self.dtype).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{what} default_value {value!r} is not {self.dtype}") from exc
            items = np.repeat(array, self.count) if array.size == 1 else array
        if len(items) != self.count:
            raise ValueError(
                f"{what} default_value has {len(items)} values, shape {self.shape} needs "
                f"{self.count} (or give one value to fill the shape)"
            )
        return items

    def _key(self) -> tuple[Any, ...]:
        default = None if self.default is None else tuple(np.asarray(self.default).tolist())
        return (self.kind, self.shape, default)


def _bytes_items(value: Any, what: str) -> list[bytes]:
    if isinstance(value, bytes | str):
        value = [value]
    items = [v.encode() if isinstance(v, str) else v for v in np.asarray(value, object).flat]
    if not all(isinstance(v, bytes) for v in items):
        raise ValueError(f"{what} default_value must be bytes or str, got {value!r}")
    return items


@final
class FixedLenFeature(_Fixed):
    """Exactly ``prod(shape)`` values, as an array of ``shape`` (one ``bytes`` for shape ``()``).

    A record without the feature takes ``default_value`` (one value fills the shape); without a
    default the feature is required.
    """

    __slots__ = ()

    def __init__(
        self, shape: Sequence[int] | int, dtype: object, default_value: Any = None
    ) -> None:
        self._set_fixed(shape, dtype, default_value, "FixedLenFeature")

    def __repr__(self) -> str:
        default = "" if self.default_value is None else f", default_value={self.default_value!r}"
        return f"FixedLenFeature({self.shape}, {self.dtype_name}{default})"


@final
class FixedLenSequenceFeature(_Fixed):
    """A sequence of steps of ``shape`` each: a ``(steps, *shape)`` array.

    In a SequenceExample each step is one Feature of the feature list; in an Example (with
    ``allow_missing=True``, as in TensorFlow) the values are cut into steps. ``allow_missing``
    lets a record lack the feature (zero steps); ``default_value`` pads the shorter records of a
    batch (``decode.examples``).
    """

    __slots__ = ("allow_missing",)

    allow_missing: bool

    def __init__(
        self,
        shape: Sequence[int] | int,
        dtype: object,
        allow_missing: bool = False,
        default_value: Any = None,
    ) -> None:
        self._set_fixed(shape, dtype, None, "FixedLenSequenceFeature")
        self.allow_missing = bool(allow_missing)
        self.default_value = default_value
        if default_value is not None:
            self.default = self._padding(default_value)

    def _padding(self, value: Any) -> Any:
        """The one value that pads shorter records of a batch."""
        what = "FixedLenSequenceFeature"
        if self.kind == BYTES:
            items: Any = _bytes_items(value, what)
        else:
            try:
                items = np.asarray(value, dtype=self.dtype).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{what} default_value {value!r} is not {self.dtype}") from exc
        if len(items) != 1:
            raise ValueError(
                f"{what} default_value pads the steps of a batch: one value, got {value!r}"
            )
        return items

    def _key(self) -> tuple[Any, ...]:
        return (*super()._key(), self.allow_missing)

    def __repr__(self) -> str:
        default = "" if self.default_value is None else f", default_value={self.default_value!r}"
        return (
            f"FixedLenSequenceFeature({self.shape}, {self.dtype_name}, "
            f"allow_missing={self.allow_missing}{default})"
        )


def check_spec(features: object, what: str) -> dict[str, Feature]:
    """A copy of a ``{name: spec}`` mapping, checked; ``what`` names the argument in errors."""
    if not isinstance(features, Mapping):
        raise TypeError(f"{what} must be a dict of feature name -> spec, got {features!r}")
    spec: dict[str, Feature] = {}
    for name, feature in features.items():
        if not isinstance(name, str):
            raise TypeError(f"{what}: feature names must be str, got {name!r}")
        if not isinstance(feature, Feature):
            raise TypeError(
                f"{what}[{name!r}] must be FixedLenFeature, VarLenFeature or "
                f"FixedLenSequenceFeature, got {feature!r}"
            )
        spec[name] = feature
    return spec
