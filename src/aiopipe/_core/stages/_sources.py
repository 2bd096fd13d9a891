"""Sources: where elements come from (replace ``string_input_producer`` and friends)."""

from __future__ import annotations

import glob
import os
import time
from collections import deque
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

import anyio
import numpy as np

from ..engine._channel import MAX_CHUNK, Outbox
from ..engine._pacer import Pacer
from ..engine._stage import RunContext, Runner, Source, Stage, annotate, maybe_aclosing
from ..engine._state import fingerprint
from ._urls import is_url, remote

__all__ = ["FromFiles", "FromIterable", "FromSequences", "check_epochs", "epoch_order"]

# A source spends at most this long producing one chunk before handing it downstream.
SOURCE_BUDGET_S = 0.001


def check_epochs(epochs: object) -> int | None:
    if epochs is None:
        return None
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int or None (forever), got {epochs!r}")
    return epochs


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation of ``range(n)`` used in ``epoch``: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def _epochs(epochs: int | None) -> Iterable[int]:
    epoch = 0
    while epochs is None or epoch < epochs:
        yield epoch
        epoch += 1


class FromIterable(Stage):
    def __init__(self, obj: Iterable[Any] | AsyncIterable[Any], epochs: int | None) -> None:
        self.epochs = check_epochs(epochs)
        self.is_async = not isinstance(obj, Iterable) and isinstance(obj, AsyncIterable)
        if not self.is_async and not isinstance(obj, Iterable):
            raise TypeError(
                f"from_iterable needs a sync or async iterable, got {type(obj).__name__}"
            )
        if self.epochs != 1 and _is_iterator(obj):
            raise TypeError(
                f"from_iterable(epochs={epochs!r}) needs a re-iterable (a list, a range, an object "
                f"whose __iter__ returns a fresh iterator); got the iterator "
                f"{type(obj).__name__}, which can be walked only once"
            )
        self.obj = obj
        self.name = "from_iterable"
        self.one_shot = _is_iterator(obj)

    resumable = True

    def runner(self, ctx: RunContext) -> Runner:
        if isinstance(self.obj, Sequence) and not self.one_shot:
            return _SequenceIterableRunner(self)
        return _IterableRunner(self)

    def params(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def check_restore(self, state: dict[str, Any] | None) -> None:
        if self.one_shot:
            raise TypeError(
                f"from_iterable over the iterator {type(self.obj).__name__} cannot resume: an "
                f"iterator can be walked only once, and part of it is gone; give a re-iterable "
                f"(a list, a range, an object whose __iter__ starts afresh) or from_arrays"
            )


def _is_iterator(obj: object) -> bool:
    if isinstance(obj, Iterable) and not isinstance(obj, AsyncIterable):
        return iter(obj) is obj
    if isinstance(obj, AsyncIterable):
        return aiter(obj) is obj
    return False


class _IterableRunner(Source):
    """Its mark is (epoch, elements of that epoch before the chunk)."""

    def __init__(self, stage: FromIterable) -> None:
        self.stage = stage
        self.index = 0  # elements sent in this run (for error notes)
        self.epoch = 0
        self.at = 0  # elements of this epoch before the next one sent

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        epoch, at = mark
        return {"epoch": epoch, "index": at + k}

    def restore(self, state: dict[str, Any]) -> None:
        self.epoch, self.at = int(state["epoch"]), int(state["index"])

    async def produce(self, worker: int, outbox: Outbox) -> None:
        epochs = self.stage.epochs
        while epochs is None or self.epoch < epochs:
            before = self.index
            skipped = self.at
            if self.stage.is_async:
                await self._async_epoch(outbox)
            else:
                await self._sync_epoch(outbox)
            if self.index == before and not skipped:
                return  # an empty source repeated forever is still empty: end, do not spin
            self.epoch, self.at = self.epoch + 1, 0
            await anyio.lowlevel.checkpoint()

    async def _sync_epoch(self, outbox: Outbox) -> None:
        it = iter(self.stage.obj)  # type: ignore[arg-type]
        if self.at:
            # A resumed epoch: step over what was delivered (in C; a sequence is not re-read).
            deque(islice(it, self.at), maxlen=0)
        # A generator is closed when the run stops early, so its ``finally`` runs now.
        try:
            await self._sync_pieces(it, outbox)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    async def _sync_pieces(self, it: Iterator[Any], outbox: Outbox) -> None:
        pacer = Pacer(SOURCE_BUDGET_S)
        while True:
            piece: list[Any] = []
            t0 = time.perf_counter()
            try:
                # extend() keeps what it got before an error, so the failing index is known.
                piece.extend(islice(it, pacer.size))
            except Exception as exc:
                annotate(exc, self.stage.name, self.index + len(piece))
                at = (self, (self.epoch, self.at), 0)
                self.index += len(piece)
                await outbox.send_before_failing(piece, at=at)  # those before it still count
                raise
            pacer.record(len(piece), time.perf_counter() - t0)
            if not piece:
                return
            await self._send(piece, outbox)

    async def _send(self, piece: list[Any], outbox: Outbox) -> None:
        at = (self, (self.epoch, self.at), 0)
        self.index += len(piece)
        self.at += len(piece)
        await outbox.send(piece, at=at)

    async def _async_epoch(self, outbox: Outbox) -> None:
        ait = aiter(self.stage.obj)  # type: ignore[arg-type]
        pacer = Pacer(SOURCE_BUDGET_S)
        async with maybe_aclosing(ait):
            for _ in range(self.at):  # a resumed epoch: step over what was delivered
                try:
                    await anext(ait)
                except StopAsyncIteration:
                    return
            done = False
            while not done:
                piece: list[Any] = []
                t0 = time.perf_counter()
                while len(piece) < pacer.size:
                    try:
                        piece.append(await anext(ait))
                    except StopAsyncIteration:
                        done = True
                        break
                    except Exception as exc:
                        annotate(exc, self.stage.name, self.index + len(piece))
                        at = (self, (self.epoch, self.at), 0)
                        self.index += len(piece)
                        await outbox.send_before_failing(piece, at=at)  # those before count
                        raise
                pacer.record(len(piece), time.perf_counter() - t0)
                await self._send(piece, outbox)


class _SequenceIterableRunner(_IterableRunner):
    """``from_iterable`` over a sequence (a list, a tuple, a range): it can seek, so a shuffle
    after it resumes by having the rows it held sent first (see ``_SequenceRunner``). Row
    numbers count over epochs: ``epoch * len(obj) + index``."""

    def __init__(self, stage: FromIterable) -> None:
        super().__init__(stage)
        self.length = len(stage.obj)  # type: ignore[arg-type]
        self.picks: tuple[int, ...] = ()

    def row_number(self, mark: Any, k: int) -> int:
        if isinstance(mark, Picks):
            return mark.rows[mark.first + k] if mark.first + k < len(mark.rows) else mark.then
        epoch, at = mark
        return int(epoch) * self.length + int(at) + k

    def picked(self, rows: list[int], then: int) -> dict[str, Any]:
        epoch, index = divmod(then, self.length) if self.length else (0, 0)
        return {"epoch": epoch, "index": index, "pick": [then - r for r in rows]}

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        if isinstance(mark, Picks):
            return self.picked(list(mark.rows[mark.first + k :]), mark.then)
        return super().resolve(mark, k, out)

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        then = self.epoch * self.length + self.at
        self.picks = tuple(then - int(r) for r in state.get("pick", ()))

    async def produce(self, worker: int, outbox: Outbox) -> None:
        if self.picks:
            obj: Sequence[Any] = self.stage.obj  # type: ignore[assignment]
            then = self.epoch * self.length + self.at
            for at in range(0, len(self.picks), MAX_CHUNK):
                rows = [obj[r % self.length] for r in self.picks[at : at + MAX_CHUNK]]
                await outbox.send(rows, at=(self, Picks(self.picks, at, then), 0))
        await super().produce(worker, outbox)


class FromSequences(Stage):
    """Rows of one or more equal-length sequences (numpy arrays, lists), optionally shuffled."""

    def __init__(
        self,
        columns: Sequence[Any],
        *,
        epochs: int | None,
        shuffle: bool,
        seed: int | None,
        name: str = "from_arrays",
    ) -> None:
        if not columns:
            raise ValueError("from_arrays needs at least one array")
        # One dict of arrays gives one dict per row (tf.data's from_tensor_slices).
        self.keys: tuple[Any, ...] | None = None
        if len(columns) == 1 and isinstance(columns[0], Mapping):
            if not columns[0]:
                raise ValueError("from_arrays needs a non-empty dict of arrays")
            self.keys = tuple(columns[0])
            columns = [columns[0][k] for k in self.keys]
        labels = (
            [repr(k) for k in self.keys] if self.keys else [str(i) for i in range(len(columns))]
        )
        lengths = [_length(c, label) for c, label in zip(columns, labels, strict=True)]
        for label, n in zip(labels[1:], lengths[1:], strict=True):
            if n != lengths[0]:
                raise ValueError(
                    f"from_arrays needs arrays of one length: array {labels[0]} has "
                    f"{lengths[0]} rows but array {label} has {n}"
                )
        self.columns = tuple(columns)
        self.length = lengths[0]
        self.epochs = check_epochs(epochs)
        self.shuffle = bool(shuffle)
        self.seed = _check_seed(seed)
        self.name = name

    resumable = True

    def runner(self, ctx: RunContext) -> Runner:
        seed = ctx.seed_for(self.seed) if self.shuffle else 0
        return _SequenceRunner(self, seed)

    def params(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "epochs": self.epochs,
            "shuffle": self.shuffle,
            "seed": self.seed,
        }


def _length(column: Any, label: str) -> int:
    try:
        return len(column)
    except TypeError:
        raise TypeError(
            f"from_arrays needs arrays or sequences (with len() and indexing); array {label} is "
            f"a {type(column).__name__}: use from_iterable for iterators"
        ) from None


def _check_seed(seed: object) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    return int(seed)


class _SequenceRunner(Source):
    """Its mark is the number of rows sent before the chunk, over all epochs: a row's epoch
    and place follow from it (the permutations are pure functions of seed and epoch).

    It can also seek: a resumed run may first send some rows picked by their number (the
    elements a shuffle downstream held, see ``_shuffle``), then go on from ``pos``. Picked rows
    are marked ``Picks``: what remains of the picks, then ``pos``.
    """

    def __init__(self, stage: FromSequences, seed: int) -> None:
        self.stage = stage
        self.seed = seed
        self.start = 0
        self.picks: tuple[int, ...] = ()

    def row_number(self, mark: Any, k: int) -> int:
        """The row number (over all epochs) of the element ``k`` after ``mark``."""
        if isinstance(mark, Picks):
            return mark.rows[mark.first + k] if mark.first + k < len(mark.rows) else mark.then
        return int(mark) + k

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        if isinstance(mark, Picks):
            rest = mark.rows[mark.first + k :]
            return (
                {"pos": mark.then, "pick": [mark.then - r for r in rest]}
                if rest
                else {"pos": mark.then}
            )
        return {"pos": int(mark) + k}

    def picked(self, rows: list[int], then: int) -> dict[str, Any]:
        """The state that sends ``rows`` (row numbers) first, then goes on from ``then``."""
        return {"pos": then, "pick": [then - r for r in rows]}

    def restore(self, state: dict[str, Any]) -> None:
        self.start = int(state["pos"])
        self.picks = tuple(self.start - int(r) for r in state.get("pick", ()))

    async def produce(self, worker: int, outbox: Outbox) -> None:
        n = self.stage.length
        if n == 0:
            return
        if self.picks:
            await self._send_picks(outbox)
        first_epoch, first = divmod(self.start, n)
        for epoch in _epochs(self.stage.epochs):
            if epoch < first_epoch:
                continue
            order = epoch_order(n, self.seed, epoch) if self.stage.shuffle else None
            for start in range(first if epoch == first_epoch else 0, n, MAX_CHUNK):
                rows = self._rows(order, start, min(n, start + MAX_CHUNK))
                await outbox.send(rows, at=(self, epoch * n + start, 0))
            await anyio.lowlevel.checkpoint()

    async def _send_picks(self, outbox: Outbox) -> None:
        n, orders = self.stage.length, dict[int, np.ndarray | None]()
        for at in range(0, len(self.picks), MAX_CHUNK):
            rows = []
            for number in self.picks[at : at + MAX_CHUNK]:
                epoch, i = divmod(number, n)
                if epoch not in orders:
                    orders[epoch] = epoch_order(n, self.seed, epoch) if self.stage.shuffle else None
                rows.extend(self._rows(orders[epoch], i, i + 1))
            await outbox.send(rows, at=(self, Picks(self.picks, at, self.start), 0))

    def _rows(self, order: np.ndarray | None, start: int, stop: int) -> list[Any]:
        cols = [_take(c, order, start, stop) for c in self.stage.columns]
        keys = self.stage.keys
        if keys is not None:
            return [dict(zip(keys, row, strict=True)) for row in zip(*cols, strict=True)]
        if len(cols) == 1:
            return cols[0]
        return list(zip(*cols, strict=True))


def _take(col: Any, order: np.ndarray | None, start: int, stop: int) -> list[Any]:
    if isinstance(col, np.ndarray):
        return list(col[start:stop] if order is None else col[order[start:stop]])
    if order is None:
        return [col[i] for i in range(start, stop)]
    return [col[int(i)] for i in order[start:stop]]


class Picks:
    """The mark of rows sent by their number: ``rows[first:]``, then row ``then`` on."""

    __slots__ = ("first", "rows", "then")

    def __init__(self, rows: tuple[int, ...], first: int, then: int) -> None:
        self.rows = rows
        self.first = first
        self.then = then


class FromFiles(FromSequences):
    def __init__(
        self,
        patterns: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        epochs: int | None,
        shuffle: bool,
        seed: int | None,
        storage_options: Any = None,
    ) -> None:
        paths = _match(patterns, storage_options)
        super().__init__([paths], epochs=epochs, shuffle=shuffle, seed=seed, name="from_files")
        self.files = fingerprint(paths)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "files": self.files}


def _match(
    patterns: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], storage_options: Any = None
) -> list[str]:
    if isinstance(patterns, str | os.PathLike):
        patterns = [patterns]
    if not patterns:
        raise ValueError("from_files needs at least one path or glob pattern")
    if storage_options is not None:  # checked now, even when no pattern needs a listing
        remote("_options").check_storage_options(storage_options)
    paths: list[str] = []
    for pattern in patterns:
        p = os.fspath(pattern)
        if is_url(p):  # a URL as given, or a glob over an object listing (aiopipe.remote)
            magic = glob.has_magic(p)
            paths.extend(remote("_listing").expand_url(p, storage_options) if magic else [p])
            continue
        found = sorted(glob.glob(p)) if glob.has_magic(p) else ([p] if os.path.exists(p) else [])
        if not found:
            raise FileNotFoundError(f"from_files: no file matches {p!r}")
        paths.extend(found)
    return paths
