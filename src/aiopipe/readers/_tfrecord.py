"""``TFRecords``: the records of TFRecord files (TensorFlow's ``TFRecordReader``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, final

from .._core.stages._reader import BlockingReader, Decoder
from ..tfrecord._compression import check_compression
from ..tfrecord._push import FrameDecoder
from ..tfrecord._reading import read_batches
from ._validate import check_storage_options

__all__ = ["TFRecords"]


@final
class TFRecords(BlockingReader):
    """Records of TFRecord files, uncompressed or ``"GZIP"``/``"ZLIB"``-compressed.

    With ``verify`` (the default) every length and data CRC-32C is checked, and a mismatch or a
    truncated file raises :class:`~aiopipe.CorruptRecordError` carrying ``.path`` and ``.offset``
    (the record's offset in the uncompressed stream; for a broken compressed stream, the byte
    offset in the file) after the records before it were delivered. ``verify=False`` skips the
    per-record checks but still checks the first record's length, so a wrong ``compression``
    fails loudly. Keys are ``"path:offset"``. ``s3://``/``gs://``/``http(s)://`` paths are
    streamed in ranges; ``storage_options`` override the environment's credentials for them.
    """

    def __init__(
        self,
        *,
        compression: str | None = None,
        verify: bool = True,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.compression = check_compression(compression)
        if not isinstance(verify, bool):
            raise ValueError(f"verify must be True or False, got {verify!r}")
        self.verify = verify
        self.storage_options = check_storage_options(storage_options)

    def decoder(self, path: str, *, keys: bool, size: int | None) -> Decoder:
        return FrameDecoder(path, verify=self.verify, keys=keys, compression=self.compression)

    def iter_records(self, path: str, *, keys: bool = False) -> Iterator[Any]:
        batches = read_batches(path, compression=self.compression, verify=self.verify)
        if not keys:
            for batch in batches:
                yield from batch.records
            return
        for base, starts, records in batches:
            for start, record in zip(starts, records, strict=True):
                yield f"{path}:{base + start}", record

    def __repr__(self) -> str:
        return f"TFRecords(compression={self.compression!r}, verify={self.verify})"
