"""``bucket_by_length``: batches of elements of similar length (TF's ``bucket_by_sequence_length``).

Bucket ``i`` takes elements whose ``length_fn(x)`` falls in ``[boundaries[i-1], boundaries[i])``
(the first from 0, the last with no upper end); a bucket that holds ``batch_sizes[i]`` elements
goes out as one batch, padded to its longest element. At the end of input the partial buckets go
out in bucket order unless ``drop_remainder``.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from ._channel import Inbox, Outbox
from ._collate import collate
from ._stage import RunContext, Runner, Stage, annotate, buffer_arg, fn_name, positive

__all__ = ["BucketStage"]

FLUSH_S = 0.001


def _check_boundaries(boundaries: object) -> tuple[int, ...]:
    if not isinstance(boundaries, Sequence) or isinstance(boundaries, str | bytes):
        raise TypeError(
            "bucket_by_length(boundaries) needs a sequence of ints, "
            f"got {type(boundaries).__name__}"
        )
    if not boundaries:
        raise ValueError("bucket_by_length needs at least one boundary")
    out: list[int] = []
    for i, b in enumerate(boundaries):
        if isinstance(b, bool) or not isinstance(b, int) or b < 0:
            raise ValueError(f"bucket_by_length: boundaries[{i}] must be an int >= 0, got {b!r}")
        if out and b <= out[-1]:
            raise ValueError(
                f"bucket_by_length needs strictly increasing boundaries, got "
                f"{list(boundaries)} (boundaries[{i}]={b} <= {out[-1]})"
            )
        out.append(b)
    return tuple(out)


class BucketStage(Stage):
    def __init__(
        self,
        length_fn: Callable[[Any], int],
        boundaries: Sequence[int],
        batch_sizes: Sequence[int],
        *,
        pad: bool,
        padding_value: Any,
        drop_remainder: bool,
        buffer: int | None,
    ) -> None:
        if not callable(length_fn):
            raise TypeError(
                f"bucket_by_length needs a callable length_fn, got {type(length_fn).__name__}"
            )
        self.length_fn = length_fn
        self.boundaries = _check_boundaries(boundaries)
        if not isinstance(batch_sizes, Sequence) or len(batch_sizes) != len(self.boundaries) + 1:
            got = (
                len(batch_sizes)
                if isinstance(batch_sizes, Sequence)
                else type(batch_sizes).__name__
            )
            raise ValueError(
                f"bucket_by_length needs len(boundaries) + 1 = {len(self.boundaries) + 1} batch "
                f"sizes (one per bucket), got {got}"
            )
        self.batch_sizes = tuple(
            positive(f"bucket_by_length(batch_sizes[{i}])", n) for i, n in enumerate(batch_sizes)
        )
        self.pad = bool(pad)
        self.padding_value = padding_value
        self.drop_remainder = bool(drop_remainder)
        self.name = f"bucket_by_length({fn_name(length_fn)})"
        self.buffer = buffer_arg("bucket_by_length", buffer)

    def runner(self, ctx: RunContext) -> Runner:
        return _Bucketer(self)

    def scale(self, upstream: int, batches: list[int]) -> int:
        size = max(self.batch_sizes)
        batches.append(size)
        return upstream * size


class _Bucketer(Runner):
    def __init__(self, stage: BucketStage) -> None:
        self.stage = stage
        self.buckets: list[list[Any]] = [[] for _ in stage.batch_sizes]
        # The input index of each bucket's first element, for error notes.
        self.firsts: list[int] = [0 for _ in stage.batch_sizes]
        self.index = 0

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        assert inbox is not None
        st = self.stage
        while (chunk := await inbox.receive()) is not None:
            out: list[Any] = []
            t0 = time.perf_counter()
            for x in chunk:
                i = self._bucket(x)
                bucket = self.buckets[i]
                if not bucket:
                    self.firsts[i] = self.index
                bucket.append(x)
                self.index += 1
                if len(bucket) == st.batch_sizes[i]:
                    out.append(self._collate(i))
                    if time.perf_counter() - t0 > FLUSH_S:
                        await outbox.send(out)
                        out, t0 = [], time.perf_counter()
            await outbox.send(out)
        if not st.drop_remainder:
            await outbox.send([self._collate(i) for i, b in enumerate(self.buckets) if b])

    def _bucket(self, x: Any) -> int:
        try:
            n = self.stage.length_fn(x)
            if isinstance(n, bool) or not hasattr(n, "__index__") or int(n) < 0:
                raise TypeError(f"length_fn must return an int >= 0, got {n!r}")
        except Exception as exc:
            annotate(exc, self.stage.name, self.index)
            raise
        return bisect_right(self.stage.boundaries, int(n))

    def _collate(self, i: int) -> Any:
        items, self.buckets[i] = self.buckets[i], []
        try:
            return collate(items, pad=self.stage.pad, padding_value=self.stage.padding_value)
        except Exception as exc:
            annotate(exc, self.stage.name, self.firsts[i], f"the batch of bucket {i}")
            raise
