"""Running whole pipelines inside a stage: what zip, concatenate, repeat and sample_from share.

A stage that combines pipelines opens each one as a nested run with ``async with``, inside its
own task: the nested runs' tasks live in that task's scope, so structured concurrency holds (an
error in a nested stage reaches the consumer as the same object, with its notes, and leaving
early cancels every nested run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np

from ..engine._run import Run, RunOpener
from ..engine._state import Position, check_state, shifted

if TYPE_CHECKING:
    from .._pipeline import Pipeline
    from ..engine._stage import RunContext

__all__ = [
    "NestedOpener",
    "check_nested",
    "check_pipelines",
    "nested_names",
    "nested_params",
    "nested_seeds",
    "nested_state",
    "next_chunk",
    "next_marked",
]


def check_pipelines(what: str, pipes: Sequence[object], *, least: int = 1) -> tuple[Any, ...]:
    """Validate the pipelines given to ``what`` at build time."""
    from .._pipeline import Pipeline

    if len(pipes) < least:
        raise ValueError(f"{what} needs at least {least} pipeline(s), got {len(pipes)}")
    for i, p in enumerate(pipes):
        if not isinstance(p, Pipeline):
            raise TypeError(
                f"{what}: argument {i} must be an aiopipe Pipeline, got {type(p).__name__}"
            )
    return tuple(pipes)


def nested_names(pipes: Sequence[Pipeline[Any]]) -> str:
    """The nested pipelines' stages, for the combining stage's name (and so its state check)."""
    return ", ".join(" -> ".join(p.stage_names) for p in pipes)


class NestedOpener:
    """Opens nested runs whose ``seed=None`` stages get seeds derived from one seed of the
    outer run: ``(outer seed, how many runs were opened before, stage)``.

    The outer run records that one seed as it starts, so a resumed run derives the very same
    seeds for every nested run, including those opened after the state was saved (the later
    passes of ``repeat``), whatever order concurrent nested runs open in.
    """

    def __init__(self, ctx: RunContext) -> None:
        self.seed = ctx.seed_for(None)
        self.opened = 0

    def open(
        self, pipe: Pipeline[Any], index: int | None = None, state: dict[str, Any] | None = None
    ) -> RunOpener[Any]:
        """``async with opener.open(pipe) as run:`` (the next nested run, or run ``index``:
        concurrent opens give each its own index, as their order is not known); ``state``
        resumes it (a nested run's ``state_dict()``)."""
        if index is None:
            index, self.opened = self.opened, self.opened + 1
        return RunOpener(pipe._stages, state, seeds=nested_seeds(self.seed, index, pipe))


def nested_seeds(seed: int, index: int, pipe: Pipeline[Any]) -> list[int]:
    """The seeds of nested run ``index`` of ``pipe`` under the outer seed ``seed``."""
    # At most one seed per stage is drawn; spare ones are ignored.
    count = len(pipe.stage_names) + 1
    seeds = np.random.SeedSequence([seed, index]).generate_state(count, np.uint64)
    return [int(x) >> 1 for x in seeds]


def nested_params(pipes: Sequence[Pipeline[Any]]) -> list[list[dict[str, Any]]]:
    """The parameters of every nested pipeline's stages: part of the combining stage's own, so
    that a state saved with other nested parameters is refused at ``open(state=)``."""
    return [[s.params() for s in p._stages] for p in pipes]


def check_nested(pipe: Pipeline[Any], state: object, what: str) -> None:
    """Refuse, at ``open(state=)``, a nested run's saved state its pipeline cannot resume."""
    if state is None:
        return
    try:
        check_state(pipe._stages, state)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{what}: {exc}") from None


def nested_state(run: Run[Any], at: Position | None) -> dict[str, Any]:
    """The full state of nested ``run`` at its position ``at`` (taken with ``run.position()``
    or ``next_marked``): nested JSON inside the combining stage's own state."""
    return run._state_at(at, 0)


async def next_marked(run: Run[Any]) -> tuple[list[Any], Position | None] | None:
    """The next chunk of a nested run and the position of its first element; ``None`` at its
    end."""
    chunk = await next_chunk(run)
    if chunk is None:
        return None
    return chunk, shifted(run.position(), -len(chunk))


async def next_chunk(run: Run[Any]) -> list[Any] | None:
    """The next chunk of a nested run; ``None`` at its end. Its errors propagate as they are."""
    try:
        return await run.receive_chunk()
    except anyio.EndOfStream as exc:
        if run.raised is exc:
            raise  # a nested stage's OutOfRangeError is an error, not the end of input
    return None
