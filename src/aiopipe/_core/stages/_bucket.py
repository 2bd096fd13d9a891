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

from ..engine._channel import Inbox, Outbox
from ..engine._inputs import InputPositions
from ..engine._stage import RunContext, Runner, Stage, annotate, buffer_arg, fn_name, positive
from ..engine._state import Position, resolve
from ._collate import collate

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

    resumable = True

    def runner(self, ctx: RunContext) -> Runner:
        return _Bucketer(self)

    def params(self) -> dict[str, Any]:
        return {
            "boundaries": list(self.boundaries),
            "batch_sizes": list(self.batch_sizes),
            "drop_remainder": self.drop_remainder,
        }

    def scale(self, upstream: int, batches: list[int]) -> int:
        size = max(self.batch_sizes)
        batches.append(size)
        return upstream * size


class _Bucketer(Runner):
    """The buckets, and the input index of every element in them.

    A mark (taken before each chunk of batches) holds the inputs taken, the input index of
    every held element by bucket, and the input position of the oldest of them: like
    ``shuffle``, a resumed bucketer re-reads its input from there, puts exactly the elements
    that were held back in their buckets and goes on as the original did (replaying at most
    one chunk of batches). The state grows with the batch sizes, never with the position.
    """

    def __init__(self, stage: BucketStage) -> None:
        self.stage = stage
        self.buckets: list[list[Any]] = [[] for _ in stage.batch_sizes]
        self.idx: list[list[int]] = [[] for _ in stage.batch_sizes]  # input index of each
        self.index = 0  # inputs taken
        self.inputs = InputPositions(None)
        self.plan: dict[str, Any] | None = None

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        taken, idx, first, up = mark
        resolve(up, out)
        state = {"taken": taken, "first": first, "held": [[i - first for i in b] for b in idx]}
        if k:
            state["skip"] = k
        return state

    def restore(self, state: dict[str, Any]) -> None:
        self.plan = state

    def _mark(self) -> Position:
        """The position of the next batch: the state now, re-read from the oldest held."""
        first = min((b[0] for b in self.idx if b), default=self.index)
        idx = tuple(tuple(b) for b in self.idx)
        return (self, (self.index, idx, first, self.inputs.at(first)), 0)

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        st = self.stage
        self.inputs = InputPositions(inbox.stamp)
        chunk = None
        if self.plan is not None:
            chunk = await self._refill(inbox)
            full = [i for i, b in enumerate(self.buckets) if len(b) == st.batch_sizes[i]]
            if full:  # the mark was taken right before this batch
                await outbox.send([self._collate(full[0])], at=self._mark())
        while chunk is not None or (chunk := await self._receive(inbox)) is not None:
            out: list[Any] = []
            at = None
            t0 = time.perf_counter()
            for x in chunk:
                i = self._bucket(x)
                self.buckets[i].append(x)
                self.idx[i].append(self.index)
                self.index += 1
                if len(self.buckets[i]) == st.batch_sizes[i]:
                    if at is None:
                        at = self._mark()
                    out.append(self._collate(i))
                    if time.perf_counter() - t0 > FLUSH_S:
                        await outbox.send(out, at=at)
                        out, at, t0 = [], None, time.perf_counter()
            chunk = None
            await outbox.send(out, at=at)
        if not st.drop_remainder:
            at = self._mark()
            await outbox.send([self._collate(i) for i, b in enumerate(self.buckets) if b], at=at)

    async def _receive(self, inbox: Inbox) -> list[Any] | None:
        chunk = await inbox.receive()
        if chunk is not None:
            self.inputs.add(inbox, len(chunk))
        return chunk

    async def _refill(self, inbox: Inbox) -> list[Any] | None:
        """Re-read the input from the oldest element the saved buckets held, back to the state
        it describes. Returns the part of the last chunk read that is new input."""
        plan, self.plan = self.plan, None
        assert plan is not None
        first, taken = int(plan["first"]), int(plan["taken"])
        where = {first + int(r): i for i, b in enumerate(plan["held"]) for r in b}
        order = {first + int(r): j for b in plan["held"] for j, r in enumerate(b)}
        sizes = [len(b) for b in plan["held"]]
        self.buckets = [[None] * n for n in sizes]
        self.idx = [[0] * n for n in sizes]
        self.inputs = InputPositions(inbox.stamp, first)
        self.index = first
        while self.index < taken:
            chunk = await self._receive(inbox)
            if chunk is None:
                raise ValueError(
                    f"{self.stage.name}: the saved state needs input up to element {taken}, "
                    f"but the input ended at {self.index}: it is not the input the state was "
                    f"saved with"
                )
            for j, x in enumerate(chunk):
                n = self.index
                if n >= taken:
                    return chunk[j:]  # past the saved state: new input
                i = where.get(n)
                if i is not None:
                    self.buckets[i][order[n]] = x
                    self.idx[i][order[n]] = n
                self.index += 1
        return None

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
        idx, self.idx[i] = self.idx[i], []
        try:
            return collate(items, pad=self.stage.pad, padding_value=self.stage.padding_value)
        except Exception as exc:
            annotate(exc, self.stage.name, idx[0], f"the batch of bucket {i}")
            raise
