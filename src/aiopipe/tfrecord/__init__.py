"""TFRecord files: TensorFlow's record format, written and read byte-compatibly.

``write(path, records, compression=None)`` writes a file TensorFlow reads; ``read(path)`` yields its
records (sync). In a pipeline, use :class:`aiopipe.readers.TFRecords`, which reads in worker
threads. ``masked_crc32c`` is the checksum the format stores. ``encode_example`` and
``encode_sequence_example`` serialize ``tf.train.Example`` / ``SequenceExample`` records.
"""

from __future__ import annotations

from ._crc32c import masked_crc32c as masked_crc32c
from ._example import encode_example as encode_example
from ._example import encode_sequence_example as encode_sequence_example
from ._reading import read as read
from ._reading import read_frames as read_frames
from ._writing import write as write

__all__ = (
    "encode_example",
    "encode_sequence_example",
    "masked_crc32c",
    "read",
    "read_frames",
    "write",
)
