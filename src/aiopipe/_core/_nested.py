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

from ._run import Run, RunOpener

if TYPE_CHECKING:
    from ._pipeline import Pipeline
    from ._stage import RunContext

__all__ = ["NestedOpener", "check_pipelines", "next_chunk", "nested_names"]


def check_pipelines(what: str, pipes: Sequence[object], *, least: int = 1) -> tuple[Any, ...]:
    """Validate the pipelines given to ``what`` at build time."""
    from ._pipeline import Pipeline

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
        names = pipe.stage_names
        # At most one seed per stage is drawn; spare ones are ignored.
        seeds = np.random.SeedSequence([self.seed, index]).generate_state(len(names) + 1, np.uint64)
        return RunOpener(pipe._stages, state, seeds=[int(x) >> 1 for x in seeds])


async def next_chunk(run: Run[Any]) -> list[Any] | None:
    """The next chunk of a nested run; ``None`` at its end. Its errors propagate as they are."""
    try:
        return await run.receive_chunk()
    except anyio.EndOfStream as exc:
        if run.raised is exc:
            raise  # a nested stage's OutOfRangeError is an error, not the end of input
    return None
