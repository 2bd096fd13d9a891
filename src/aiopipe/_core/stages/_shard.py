"""``shard``: one host's part of the data in data-parallel training.

Right after ``from_files`` the *files* are sharded: every host computes the same per-epoch order
(the shuffle is a pure function of the seed and the epoch), then keeps every ``num_shards``-th
file of it, so the shards are disjoint, cover every file once per epoch and differ from epoch to
epoch. Anywhere else the *elements* are sharded: every host walks the same stream and keeps every
``num_shards``-th element (it reads what the others keep, but needs no coordination).

``equal=True`` gives every shard the same count, because a data-parallel step waits for every
rank and a rank that runs out first hangs the others. Files: each epoch drops the last
``n % num_shards`` files of that epoch's order, so every shard gets ``n // num_shards`` files (a
shuffled order drops different files each epoch); shards then have equal batch counts when the
files hold equal record counts. Elements: a kept element is held back until its round of
``num_shards`` elements is complete, and the incomplete last round (at most ``num_shards - 1``
elements of the whole stream, not per epoch: the stream has no epoch marks) is dropped, so every
shard gets ``total // num_shards``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import anyio
import numpy as np

from ..engine._channel import MAX_CHUNK, Inbox, Outbox
from ..engine._stage import RunContext, Runner, Source, Stage, positive
from ..engine._state import Position, resolve, shifted
from ._sources import FromFiles, FromSequences, _epochs, epoch_order

__all__ = ["ShardStage", "ShardedFiles", "shard_stages"]

# Launchers' environment variables: (number of shards, this shard's index).
LAUNCHER_ENV = (("WORLD_SIZE", "RANK"), ("SLURM_NTASKS", "SLURM_PROCID"))


def shard_stages(
    stages: Sequence[Stage], num_shards: int | None, index: int | None, equal: bool
) -> tuple[Stage, ...]:
    """The stages of ``pipe.shard(...)``: a sharded file source, or a shard stage at the end."""
    num_shards, index = _resolve(num_shards, index)
    source = stages[0] if len(stages) == 1 else None
    if isinstance(source, FromSequences) and num_shards > 1:
        _check_shared_order(source)
    if isinstance(source, FromFiles):
        return (ShardedFiles(source, num_shards, index, equal=equal),)
    return (*stages, ShardStage(num_shards, index, equal=equal))


def _check_shared_order(source: FromSequences) -> None:
    if source.shuffle and source.seed is None:
        raise ValueError(
            f"shard() right after {source.name}(shuffle=True) needs {source.name}(seed=...): "
            f"every host must draw the same order, or the shards overlap"
        )


def _resolve(num_shards: int | None, index: int | None) -> tuple[int, int]:
    if num_shards is None and index is None:
        return _from_launcher()
    if num_shards is None or index is None:
        raise ValueError(
            f"shard() needs both num_shards and index, or neither (to read them from the "
            f"launcher's environment); got num_shards={num_shards!r}, index={index!r}"
        )
    num_shards = positive("shard(num_shards)", num_shards)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < num_shards:
        raise ValueError(
            f"shard(index) must be an int in [0, {num_shards}) for {num_shards} shards, "
            f"got {index!r}"
        )
    return num_shards, index


def _from_launcher() -> tuple[int, int]:
    for size_var, rank_var in LAUNCHER_ENV:
        size, rank = os.environ.get(size_var), os.environ.get(rank_var)
        if size is None and rank is None:
            continue
        if size is None or rank is None:
            missing, present = (size_var, rank_var) if size is None else (rank_var, size_var)
            raise ValueError(f"shard(): {present} is set but {missing} is not")
        try:
            num_shards, index = int(size), int(rank)
        except ValueError:
            raise ValueError(
                f"shard(): {size_var}={size!r} and {rank_var}={rank!r} must be integers"
            ) from None
        if not 0 <= index < num_shards:
            raise ValueError(f"shard(): {rank_var}={index} is not in [0, {size_var}={num_shards})")
        return num_shards, index
    raise ValueError(
        "shard() without arguments reads WORLD_SIZE and RANK (torchrun) or SLURM_NTASKS and "
        "SLURM_PROCID (Slurm), and none of them is set: pass shard(num_shards, index)"
    )


class ShardedFiles(Stage):
    """``from_files(...).shard(k, i)``: this shard's files of each epoch's (shared) order."""

    def __init__(self, files: FromFiles, num_shards: int, index: int, *, equal: bool) -> None:
        n = files.length
        if n < num_shards:
            raise ValueError(
                f"shard({num_shards} shards): from_files matched only {n} files, so some shards "
                f"would get none; shard the elements instead (place shard() after read())"
            )
        self.files = files
        self.num_shards = num_shards
        self.index = index
        self.equal = bool(equal)
        # Positions of each epoch's order that are dealt out: all, or a multiple of num_shards.
        self.dealt = n - n % num_shards if self.equal else n
        self.per_epoch = len(range(index, self.dealt, num_shards))
        self.name = f"from_files.shard({index}/{num_shards})"

    resumable = True

    def runner(self, ctx: RunContext) -> Runner:
        seed = ctx.seed_for(self.files.seed) if self.files.shuffle else 0
        return _ShardedFilesRunner(self, seed)

    def params(self) -> dict[str, Any]:
        return {
            **self.files.params(),
            "num_shards": self.num_shards,
            "index": self.index,
            "equal": self.equal,
        }


class _ShardedFilesRunner(Source):
    """Its mark is the number of this shard's files sent before the chunk, over all epochs:
    the epoch and the place in it follow (each epoch's order is a function of seed and epoch)."""

    def __init__(self, stage: ShardedFiles, seed: int) -> None:
        self.stage = stage
        self.seed = seed
        self.start = 0

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        return {"pos": int(mark) + k}

    def restore(self, state: dict[str, Any]) -> None:
        self.start = int(state["pos"])

    async def produce(self, worker: int, outbox: Outbox) -> None:
        st, files = self.stage, self.stage.files
        paths = files.columns[0]
        first_epoch, first = divmod(self.start, st.per_epoch)
        for epoch in _epochs(files.epochs):
            if epoch < first_epoch:
                continue
            order = epoch_order(files.length, self.seed, epoch) if files.shuffle else None
            dealt = np.arange(st.dealt) if order is None else order[: st.dealt]
            mine = [paths[int(i)] for i in dealt[st.index :: st.num_shards]]
            for start in range(first if epoch == first_epoch else 0, len(mine), MAX_CHUNK):
                at = (self, epoch * st.per_epoch + start, 0)
                await outbox.send(mine[start : start + MAX_CHUNK], at=at)
            await anyio.lowlevel.checkpoint()


class ShardStage(Stage):
    """Every ``num_shards``-th element starting at ``index``."""

    resumable = True

    def __init__(self, num_shards: int, index: int, *, equal: bool = False) -> None:
        self.num_shards, self.index = _resolve(num_shards, index)
        self.equal = bool(equal)
        self.name = f"shard({self.index}/{self.num_shards})"

    def runner(self, ctx: RunContext) -> Runner:
        if self.equal:
            return _EqualShardRunner(self.num_shards, self.index)
        return _ShardRunner(self.num_shards, self.index)

    def params(self) -> dict[str, Any]:
        return {"num_shards": self.num_shards, "index": self.index, "equal": self.equal}


class _ShardRunner(Runner):
    """Pure arithmetic on the input index: the state is ``seen``, the index of the input
    element to read next (the next kept one, or the end of a chunk), and its position."""

    def __init__(self, num_shards: int, index: int) -> None:
        self.k = num_shards
        self.index = index
        self.seen = 0  # input elements before the next chunk
        self.offset = index  # position in the next chunk of the next element we keep

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        first, n, up, offset = mark
        seen, at = _next_read(first, n, up, first + offset + k * self.k)
        resolve(at, out)
        return {"seen": seen}

    def restore(self, state: dict[str, Any]) -> None:
        self.seen = int(state["seen"])
        self.offset = (self.index - self.seen) % self.k

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        while (chunk := await inbox.receive()) is not None:
            kept = chunk[self.offset :: self.k]
            mark = (self.seen, len(chunk), inbox.stamp, self.offset)
            # Where the next kept element falls in the following chunk.
            self.offset = (self.offset - len(chunk)) % self.k
            self.seen += len(chunk)
            await outbox.send(kept, at=(self, mark, 0))


def _next_read(first: int, n: int, stamp: Position | None, e: int) -> tuple[int, Position | None]:
    """(index, position) to resume reading at for input element ``e``, given a chunk of ``n``
    elements from index ``first`` at ``stamp``: ``e`` itself, or the chunk's end if beyond."""
    if e <= first + n:
        return e, shifted(stamp, e - first)
    return first + n, shifted(stamp, n)


class _EqualShardRunner(_ShardRunner):
    """Hands on a kept element only once its round of ``k`` elements is complete.

    Output ``j`` is input element ``index + j * k``, so the state is the outputs sent and the
    input index (and position) to read from: that element, or the end of the chunk when it
    comes later. It holds at most one element from before the chunk: its position is kept."""

    def __init__(self, num_shards: int, index: int) -> None:
        super().__init__(num_shards, index)
        self.sent = 0  # kept elements handed on: one per complete round
        self.held: list[Any] = []  # kept, round not complete yet (at most one)
        self.held_at: Position | None = None  # the input position of held[0]

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        sent, held_at, first, n, stamp = mark
        e = self.index + (sent + k) * self.k
        if e < first:  # the element held from before the chunk
            seen, at = e, held_at
        else:
            seen, at = _next_read(first, n, stamp, e)
        resolve(at, out)
        return {"seen": seen, "sent": sent + k}

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        self.sent = int(state["sent"])

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        while (chunk := await inbox.receive()) is not None:
            first, n = self.seen, len(chunk)
            mark = (self.sent, self.held_at, first, n, inbox.stamp)
            self.held.extend(chunk[self.offset :: self.k])
            self.offset = (self.offset - n) % self.k
            self.seen += n
            ready = self.seen // self.k - self.sent
            if ready:
                out, self.held = self.held[:ready], self.held[ready:]
                self.sent += ready
                await outbox.send(out, at=(self, mark, 0))
            e = self.index + self.sent * self.k  # the next to hand on
            if first <= e < first + n:
                self.held_at = inbox.position(e - first)
        # What is still held belongs to the incomplete last round: dropped on every shard.
