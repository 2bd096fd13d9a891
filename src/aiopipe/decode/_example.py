"""``example`` and ``sequence_example``: one serialized record -> its features (TensorFlow's
``parse_single_example`` and ``parse_single_sequence_example``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

from .._core.engine._errors import DecodeError
from ._features import Feature, FixedLenSequenceFeature, VarLenFeature, check_spec
from ._values import sequence_steps, value_for
from ._wire import Malformed, parse_example, parse_sequence_example

__all__ = ["ExampleDecoder", "SequenceExampleDecoder", "example", "sequence_example"]


def example(features: Mapping[str, Feature]) -> ExampleDecoder:
    """A function ``record -> dict`` parsing one serialized ``tf.train.Example``.

    Numeric features come out as numpy arrays of the spec's shape and dtype (0-d for shape
    ``()``); a ``bytes`` feature of shape ``()`` as one ``bytes``, of other shapes as (nested)
    lists of bytes; a ``VarLenFeature`` as a 1-D array (a list for ``bytes``), empty when the
    record lacks it. A missing fixed-length feature takes its default or raises
    :class:`~aiopipe.DecodeError`, as do bytes that are not an Example, the wrong kind of list
    and the wrong number of values.
    """
    return ExampleDecoder(features)


def sequence_example(
    context_features: Mapping[str, Feature] | None = None,
    sequence_features: Mapping[str, Feature] | None = None,
) -> SequenceExampleDecoder:
    """A function ``record -> (context, sequences)`` parsing one ``tf.train.SequenceExample``.

    ``context`` is parsed like an Example's features; in ``sequences`` a
    ``FixedLenSequenceFeature`` gives a ``(steps, *shape)`` array (a list of steps for
    ``bytes``) and a ``VarLenFeature`` a list with one 1-D array per step.
    """
    return SequenceExampleDecoder(context_features or {}, sequence_features or {})


def not_an_example(exc: Malformed, record: object, what: str = "tf.train.Example") -> DecodeError:
    size = len(record) if isinstance(record, bytes | bytearray | memoryview) else "?"
    return DecodeError(f"not a serialized {what} ({size} bytes): {exc}")


@final
class ExampleDecoder:
    """The callable :func:`example` returns; an object rather than a closure so that it pickles."""

    __name__ = "decode.example"

    def __init__(self, features: Mapping[str, Feature]) -> None:
        self.features = check_spec(features, "features")

    def __call__(self, record: bytes) -> dict[str, Any]:
        try:
            raw = parse_example(record, self.features)
        except Malformed as exc:
            raise not_an_example(exc, record) from None
        return {name: value_for(name, spec, raw.get(name)) for name, spec in self.features.items()}

    def __repr__(self) -> str:
        return f"decode.example({self.features!r})"


@final
class SequenceExampleDecoder:
    """The callable :func:`sequence_example` returns (picklable)."""

    __name__ = "decode.sequence_example"

    def __init__(
        self, context_features: Mapping[str, Feature], sequence_features: Mapping[str, Feature]
    ) -> None:
        self.context_features = check_spec(context_features, "context_features")
        self.sequence_features = check_spec(sequence_features, "sequence_features")
        for name, spec in self.sequence_features.items():
            if not isinstance(spec, FixedLenSequenceFeature | VarLenFeature):
                raise TypeError(
                    f"sequence_features[{name!r}] must be FixedLenSequenceFeature or "
                    f"VarLenFeature, got {spec!r}"
                )

    def __call__(self, record: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            raw_context, raw_lists = parse_sequence_example(
                record, self.context_features, self.sequence_features
            )
        except Malformed as exc:
            raise not_an_example(exc, record, "tf.train.SequenceExample") from None
        context = {
            name: value_for(name, spec, raw_context.get(name))
            for name, spec in self.context_features.items()
        }
        sequences = {
            name: sequence_steps(name, spec, raw_lists.get(name))
            for name, spec in self.sequence_features.items()
        }
        return context, sequences

    def __repr__(self) -> str:
        return (
            f"decode.sequence_example(context_features={self.context_features!r}, "
            f"sequence_features={self.sequence_features!r})"
        )
