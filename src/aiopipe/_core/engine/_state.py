"""Exact resume: positions in a stage's output, and how a run's state is written and read back.

Every chunk that enters a stream carries a *position*: ``(runner, mark, k)``, "``k`` outputs after
the mark ``mark`` of ``runner``". A mark is whatever the stage needs to describe its own state at
a moment when it is cheap to describe (usually: right before it made the chunk), and it holds the
positions of the stage's input that it depends on. Nothing is written out while the pipeline runs;
``state_dict()`` takes the position of the next element the consumer has not received and
*resolves* it, each stage turning its mark into a small JSON dict and resolving its input's
position in turn. A chunk's position lives as long as the chunk (or a later mark that holds it),
so nothing needs pruning, and the state describes the point the consumer reached, not how far the
stages ran ahead of it.

A stage whose outputs after a mark are a deterministic function of its state and its input may
describe a position ``k`` outputs past its mark as "the mark, then skip ``k``": the engine drops
those ``k`` outputs when it resumes (a replay of at most one chunk). Stages whose order depends on
timing (unordered maps, parallel reads) instead record which elements they emitted, and resume by
emitting the ones downstream had already seen in that same order first, so the stages after them
can replay as if they were deterministic.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, overload

if TYPE_CHECKING:
    from ._stage import Stage

__all__ = [
    "STATE_VERSION",
    "Late",
    "Position",
    "Resolver",
    "Unresumable",
    "check_state",
    "fingerprint",
    "resolve",
    "shifted",
]

STATE_VERSION = 2


class Resolver(Protocol):
    """The side of a runner that turns its marks into state (see ``Runner.resolve``)."""

    slot: int

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]: ...


# (runner, mark, k): k outputs after ``mark`` of ``runner``.
Position = tuple[Resolver, Any, int]


class Unresumable(TypeError):
    """``state_dict()`` cannot describe this pipeline exactly (a stage without state)."""


class Late:
    """A position made when its chunk enters the stream, not when the send was called.

    Workers of one stage that send concurrently may enter the stream in another order than they
    called ``send`` (one woken for room is overtaken by one that finds room), so a stage whose
    marks must follow stream order (each links to the next) makes them here. ``make`` runs once
    per send; pieces of a split send share it, each with its offset.
    """

    __slots__ = ("_cell", "_offset")

    def __init__(self, make: Callable[[], Position], offset: int = 0) -> None:
        self._cell: list[Any] = [make, None]
        self._offset = offset

    def get(self) -> Position:
        cell = self._cell
        if cell[1] is None:
            cell[1] = cell[0]()
        pos: Position = cell[1]
        return (pos[0], pos[1], pos[2] + self._offset) if self._offset else pos

    def later(self, by: int) -> Late:
        late = Late.__new__(Late)
        late._cell, late._offset = self._cell, self._offset + by
        return late


@overload
def shifted(at: Position, by: int) -> Position: ...
@overload
def shifted(at: Position | None, by: int) -> Position | None: ...
@overload
def shifted(at: Position | Late | None, by: int) -> Position | Late | None: ...
def shifted(at: Position | Late | None, by: int) -> Position | Late | None:
    """The position ``by`` outputs after ``at``."""
    if at is None or by == 0:
        return at
    if type(at) is Late:
        return at.later(by)
    return (at[0], at[1], at[2] + by)  # type: ignore[index]


def resolve(at: Position | None, out: dict[int, Any]) -> None:
    """Write the state of ``at``'s stage (and, through it, of every stage before) into ``out``."""
    if at is None:
        raise Unresumable("aiopipe: a stage sent outputs without a position; cannot save state")
    runner, mark, k = at
    out[runner.slot] = runner.resolve(mark, k, out)


def fingerprint(values: Sequence[object]) -> str:
    """A short, stable digest of JSON-able values (a file list, say): states stay small."""
    blob = json.dumps(list(values), sort_keys=True, default=str).encode()
    return hashlib.sha1(blob, usedforsecurity=False).hexdigest()[:16]


def check_state(stages: Sequence[Stage], state: object) -> dict[str, Any]:
    """Validate a ``state_dict()`` against this pipeline; raise saying what differs."""
    if not isinstance(state, dict) or state.get("aiopipe_state") != STATE_VERSION:
        version = state.get("aiopipe_state") if isinstance(state, dict) else None
        raise ValueError(
            f"state must be a dict returned by run.state_dict() (aiopipe_state="
            f"{STATE_VERSION}); got {'version ' + repr(version) if version else repr(state)[:80]}"
        )
    names = [s.name for s in stages]
    if state.get("stages") != names:
        raise ValueError(
            f"state was saved from a different pipeline: its stages are {state.get('stages')}, "
            f"this pipeline's are {names}"
        )
    params = state.get("params")
    if not isinstance(params, list) or len(params) != len(stages):
        raise ValueError(f"state is damaged: params={params!r:.80}")
    for stage, saved in zip(stages, params, strict=True):
        now = stage.params()
        if saved != now:
            diffs = [
                f"{key}={saved.get(key)!r} in the state, {now.get(key)!r} now"
                for key in sorted(set(saved) | set(now))
                if saved.get(key) != now.get(key)
            ]
            raise ValueError(
                f"state cannot resume this pipeline exactly: stage '{stage.name}' has other "
                f"parameters ({'; '.join(diffs)})"
            )
    at, seeds = state.get("at"), state.get("seeds")
    if at is not None and (not isinstance(at, list) or len(at) != len(stages)):
        raise ValueError(f"state is damaged: at={at!r:.80}")
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"state is damaged: seeds={seeds!r:.80}")
    for stage, entry in zip(stages, at or [None] * len(stages), strict=True):
        stage.check_restore(entry)
    return state
