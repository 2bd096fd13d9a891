"""Batches of a process map's results without a copy: ``map(fn, executor="process").batch(n)``.

A worker writes a slice's numpy results into the rows of one array (``_process_worker``), which
crosses in shared memory; the parent hands the rows on as views of it and remembers which map
made them (:func:`split`). When the stage right after that map is ``batch`` with the default
collate and its ``n`` elements are consecutive rows of one such array, the batch is a view of
those rows (:func:`batch_of_rows`): what ``np.stack`` would return, without copying 600 KB per
image on the event loop's core. The batch also tells the map its size (:func:`hint`), so that
the map's slices start and end on batch boundaries and every whole batch is one slice's rows.

Only a batch stage right after the map takes views: no other stage has seen the rows, so the
batch is the only array over them (``np.stack`` would have made a fresh one), and writing into
it changes nothing anyone else holds.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = ["Producer", "batch_of_rows", "hint", "last_made", "made", "split"]


class Producer(Protocol):
    """The map runner that made some rows (a ``_ProcessMap``)."""

    slot: int

    def align(self, batch_size: int, row_bytes: int) -> None: ...


# id(a run's context) -> (it, the last process map runner made for that run), weakly. Runners
# are made in pipeline order, so a batch runner made next finds the map right before it, if any.
_MADE: dict[int, tuple[weakref.ref[Any], weakref.ref[Any]]] = {}


def _forget(table: dict[int, Any], key: int) -> Callable[[Any], None]:
    """A weakref callback that drops ``table[key]`` when its object dies (before its id is
    reused: callbacks run as the object goes)."""

    def forget(_ref: Any) -> None:
        table.pop(key, None)

    return forget


def made(ctx: object, producer: Producer) -> None:
    """Say that ``producer`` was just made for the run of ``ctx``."""
    key = id(ctx)
    _MADE[key] = (weakref.ref(ctx, _forget(_MADE, key)), weakref.ref(producer))


def last_made(ctx: object) -> Producer | None:
    """The process map runner last made for the run of ``ctx`` (the caller checks its slot)."""
    entry = _MADE.get(id(ctx))
    if entry is None or entry[0]() is not ctx:
        return None
    producer: Producer | None = entry[1]()
    return producer


# id(the common base of a stacked array's rows) -> (that base, the map that made it), weakly:
# an entry goes when its base does.
_ORIGINS: dict[int, tuple[weakref.ref[Any], weakref.ref[Any]]] = {}


def split(stacked: Any, producer: Producer) -> list[Any]:
    """The rows of ``stacked`` (an array a worker sent) as views, remembered as ``producer``'s."""
    rows = list(stacked)
    base = rows[0].base if rows else None
    if base is not None:
        key = id(base)
        _ORIGINS[key] = (weakref.ref(base, _forget(_ORIGINS, key)), weakref.ref(producer))
    return rows


def _origin(first: Any, slot: int) -> tuple[Any, Producer] | None:
    """The base of ``first`` and the map that made it, if that map is the stage before ``slot``."""
    base = getattr(first, "base", None)
    if base is None:
        return None
    entry = _ORIGINS.get(id(base))
    if entry is None or entry[0]() is not base:
        return None
    producer = entry[1]()
    if producer is None or producer.slot != slot - 1:
        return None
    return base, producer


def hint(first: Any, slot: int, batch_size: int) -> None:
    """Tell the map that made ``first`` (if it is the stage before ``slot``) the batch size."""
    got = _origin(first, slot)
    if got is not None:
        got[1].align(batch_size, int(first.nbytes))


def batch_of_rows(items: Sequence[Any], slot: int) -> Any:
    """``np.stack(items)`` as a view, if ``items`` are consecutive rows of one array made by
    the map right before stage ``slot``; else None (the caller collates as usual)."""
    got = _origin(items[0], slot)
    if got is None:
        return None
    base, _ = got
    import numpy as np

    first = items[0]
    step = first.nbytes
    if step == 0 or not first.flags.c_contiguous or not base.flags.c_contiguous:
        return None
    start = first.__array_interface__["data"][0]
    shape, dtype = first.shape, first.dtype
    for j, row in enumerate(items):
        if (
            type(row) is not np.ndarray
            or row.base is not base
            or row.shape != shape
            or row.dtype != dtype
            or row.__array_interface__["data"][0] != start + j * step
        ):
            return None
    offset = start - base.__array_interface__["data"][0]
    flat = base.reshape(-1).view(np.uint8)
    batch = flat[offset : offset + len(items) * step].view(dtype).reshape(len(items), *shape)
    return batch if batch.flags.writeable else None
