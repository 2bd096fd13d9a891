"""Decoders: factories returning a function ``record -> value`` for ``Pipeline.map``.

The functions are picklable objects, so they also run under ``executor="process"``.
``example``/``examples``/``sequence_example`` parse ``tf.train.Example`` records with the
feature specs ``FixedLenFeature``, ``VarLenFeature`` and ``FixedLenSequenceFeature``.
"""

from __future__ import annotations

from ._batched import examples as examples
from ._csv import csv as csv
from ._example import example as example
from ._example import sequence_example as sequence_example
from ._features import FixedLenFeature as FixedLenFeature
from ._features import FixedLenSequenceFeature as FixedLenSequenceFeature
from ._features import VarLenFeature as VarLenFeature
from ._image import image as image
from ._raw import raw as raw

__all__ = (
    "FixedLenFeature",
    "FixedLenSequenceFeature",
    "VarLenFeature",
    "csv",
    "example",
    "examples",
    "image",
    "raw",
    "sequence_example",
)
