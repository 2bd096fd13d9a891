"""Sources made of other pipelines: ``zip``, ``concatenate`` and ``sample_from``.

TF 1.x's ``batch_join`` fed one batcher from several reader pipelines; tf.data calls the pieces
``zip``, ``concatenate`` and ``sample_from_datasets``. Each is a source stage whose one worker
runs the given pipelines as nested runs (see ``_nested``).
"""

from __future__ import annotations

import builtins
import contextlib
import math
from bisect import bisect_right
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine._channel import MAX_CHUNK, Outbox
from ..engine._run import Run
from ..engine._stage import RunContext, Runner, Source, Stage
from ..engine._state import Position, shifted
from ._nested import (
    NestedOpener,
    check_nested,
    check_pipelines,
    nested_names,
    nested_params,
    nested_state,
    next_marked,
)
from ._sources import _check_seed as check_seed

if TYPE_CHECKING:
    from .._pipeline import Pipeline

__all__ = ["ConcatenateSource", "SampleSource", "ZipSource", "concatenate", "sample_from", "zip"]

DRAWS = 1024  # sample_from's draws made at once, from (seed, block)


def zip(*pipes: Pipeline[Any]) -> Pipeline[tuple[Any, ...]]:
    """Tuples of one element from each pipeline (``tf.data.Dataset.zip``); ends with the
    shortest, and leaving stops the others."""
    from .._pipeline import Pipeline

    return Pipeline((ZipSource(pipes),))


def concatenate(*pipes: Pipeline[Any]) -> Pipeline[Any]:
    """Every element of each pipeline in turn (``Dataset.concatenate``)."""
    from .._pipeline import Pipeline

    return Pipeline((ConcatenateSource(pipes),))


def sample_from(
    pipes: Sequence[Pipeline[Any]],
    weights: Sequence[float] | None = None,
    *,
    seed: int | None = None,
    stop_on_empty: bool = False,
) -> Pipeline[Any]:
    """Mix pipelines: each output comes from ``pipes[i]`` with probability ``weights[i]``
    (uniform when ``None``), as ``tf.data.Dataset.sample_from_datasets`` and TF 1.x's
    ``shuffle_batch_join``. The same seed gives the same sequence. An exhausted pipeline drops
    out and the others go on; with ``stop_on_empty=True`` the first one to run dry ends it."""
    from .._pipeline import Pipeline

    if isinstance(pipes, Pipeline) or not isinstance(pipes, Sequence):
        raise TypeError(
            "sample_from needs a list of pipelines as its first argument, "
            f"got {type(pipes).__name__}"
        )
    return Pipeline((SampleSource(pipes, weights, seed, stop_on_empty),))


class ZipSource(Stage):
    """Tuples of one element from each pipeline; ends with the shortest."""

    resumable = True

    def __init__(self, pipes: Sequence[Any]) -> None:
        self.pipes = check_pipelines("zip", pipes)
        self.name = f"zip({nested_names(self.pipes)})"

    def runner(self, ctx: RunContext) -> Runner:
        return _Zipper(self.pipes, NestedOpener(ctx))

    def params(self) -> dict[str, Any]:
        return {"nested": nested_params(self.pipes)}

    def check_restore(self, state: dict[str, Any] | None) -> None:
        _check_runs(self.name, self.pipes, state)


def _check_runs(what: str, pipes: Sequence[Any], state: dict[str, Any] | None) -> None:
    """A state holding one nested state per pipeline (``runs``): each must fit its pipeline."""
    if state is None:
        return
    runs = state.get("runs")
    if not isinstance(runs, list) or len(runs) != len(pipes):
        raise ValueError(f"{what}: the state is damaged (runs={runs!r:.80})")
    for i, (pipe, saved) in enumerate(builtins.zip(pipes, runs, strict=True)):
        check_nested(pipe, saved, f"{what}, pipeline {i}")


class _Zipper(Source):
    """Output ``k`` after a mark is element ``k`` after each input's position in the mark, so
    the state is every nested run's state there: nothing to replay."""

    def __init__(self, pipes: tuple[Any, ...], opener: NestedOpener) -> None:
        self.pipes = pipes
        self.opener = opener
        self.states: list[Any] = [None] * len(pipes)

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        return {"runs": [nested_state(run, shifted(at, k)) for run, at in mark]}

    def restore(self, state: dict[str, Any]) -> None:
        self.states = list(state["runs"])

    async def produce(self, worker: int, outbox: Outbox) -> None:
        async with contextlib.AsyncExitStack() as stack:
            runs: list[Run[Any]] = [
                await stack.enter_async_context(self.opener.open(p, i, self.states[i]))
                for i, p in enumerate(self.pipes)
            ]
            held: list[list[Any]] = [[] for _ in runs]
            pos = [0] * len(runs)  # held[i][:pos[i]] were zipped already
            # The position of held[i][0] in run i's output.
            at: list[Position | None] = [run.position() for run in runs]
            while True:
                for i, run in enumerate(runs):
                    if pos[i] >= len(held[i]):
                        got = await next_marked(run)
                        if got is None:
                            return  # the shortest ended: leaving stops the others
                        (held[i], at[i]), pos[i] = got, 0
                n = min(len(b) - p for b, p in builtins.zip(held, pos, strict=True))
                mark = tuple(
                    (run, shifted(a, p)) for run, a, p in builtins.zip(runs, at, pos, strict=True)
                )
                rows = builtins.zip(
                    *(b[p : p + n] for b, p in builtins.zip(held, pos, strict=True)), strict=True
                )
                await outbox.send(list(rows), at=(self, mark, 0))
                for i in range(len(pos)):
                    pos[i] += n


class ConcatenateSource(Stage):
    """Every element of the first pipeline, then of the second, and so on."""

    resumable = True

    def __init__(self, pipes: Sequence[Any]) -> None:
        self.pipes = check_pipelines("concatenate", pipes)
        self.name = f"concatenate({nested_names(self.pipes)})"

    def runner(self, ctx: RunContext) -> Runner:
        return _Concatenator(self.pipes, NestedOpener(ctx))

    def params(self) -> dict[str, Any]:
        return {"nested": nested_params(self.pipes)}

    def check_restore(self, state: dict[str, Any] | None) -> None:
        if state is None:
            return
        i = state.get("input")
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.pipes):
            raise ValueError(f"{self.name}: the state is damaged (input={i!r:.80})")
        check_nested(self.pipes[i], state.get("run"), f"{self.name}, pipeline {i}")


class _Concatenator(Source):
    """Its mark: (which pipeline, its run, the chunk's position in that run)."""

    def __init__(self, pipes: tuple[Any, ...], opener: NestedOpener) -> None:
        self.pipes = pipes
        self.opener = opener
        self.first = 0
        self.state: dict[str, Any] | None = None

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        i, run, at = mark
        return {"input": i, "run": nested_state(run, shifted(at, k))}

    def restore(self, state: dict[str, Any]) -> None:
        self.first, self.state = int(state["input"]), state["run"]

    async def produce(self, worker: int, outbox: Outbox) -> None:
        for i in range(self.first, len(self.pipes)):
            state, self.state = self.state, None
            async with self.opener.open(self.pipes[i], i, state) as run:
                while (got := await next_marked(run)) is not None:
                    chunk, at = got
                    await outbox.send(chunk, at=(self, (i, run, at), 0))


def check_weights(weights: object, n: int) -> list[float]:
    """``sample_from``'s weights at build time: one finite non-negative number per pipeline."""
    if weights is None:
        return [1.0] * n
    try:
        ws = [float(w) for w in weights]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise TypeError(
            f"sample_from(weights=) needs a sequence of {n} numbers, got {weights!r:.80}"
        ) from None
    if len(ws) != n:
        raise ValueError(
            f"sample_from got {n} pipelines but {len(ws)} weights; give one per pipeline"
        )
    for i, w in enumerate(ws):
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"sample_from: weights[{i}] must be finite and >= 0, got {w!r}")
    if sum(ws) <= 0:
        raise ValueError(f"sample_from needs at least one weight > 0, got {ws}")
    return ws


class SampleSource(Stage):
    """Each output from pipeline ``i`` with probability ``weights[i]`` (renormalised over the
    pipelines not yet exhausted), drawn from a seeded generator."""

    resumable = True

    def __init__(
        self,
        pipes: Sequence[Any],
        weights: Sequence[float] | None,
        seed: int | None,
        stop_on_empty: bool,
    ) -> None:
        self.pipes = check_pipelines("sample_from", pipes)
        self.weights = check_weights(weights, len(self.pipes))
        self.seed = check_seed(seed)
        self.stop_on_empty = bool(stop_on_empty)
        self.name = f"sample_from({nested_names(self.pipes)})"

    def runner(self, ctx: RunContext) -> Runner:
        return _Sampler(self, ctx.seed_for(self.seed), NestedOpener(ctx))

    def params(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "seed": self.seed,
            "stop_on_empty": self.stop_on_empty,
            "nested": nested_params(self.pipes),
        }

    def check_restore(self, state: dict[str, Any] | None) -> None:
        _check_runs(self.name, self.pipes, state)


class _Sampler(Source):
    """Draw number ``d`` is a pure function of (seed, d), one draw per output, so the state is
    the number of outputs made, which pipelines are known to be exhausted (they changed the
    weights the draws map through) and each nested run's position at a mark: a resumed
    sampler replays at most one chunk of draws from there."""

    def __init__(self, stage: SampleSource, seed: int, opener: NestedOpener) -> None:
        self.stage = stage
        self.seed = seed
        self.opener = opener
        self.weights = list(stage.weights)
        self.ended = [False] * len(stage.pipes)
        self.made = 0  # outputs (and draws) so far
        self.states: list[Any] = [None] * len(stage.pipes)
        self.cum: list[float] = []
        self._recount()
        self._block = -1
        self._draws: list[float] = []

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        made, ended, runs = mark
        state = {
            "made": made,
            "ended": list(ended),
            "runs": [nested_state(run, at) for run, at in runs],
        }
        if k:
            state["skip"] = k
        return state

    def restore(self, state: dict[str, Any]) -> None:
        self.made = int(state["made"])
        self.states = list(state["runs"])
        for i, ended in enumerate(state["ended"]):
            if ended:
                self._drop(i)

    def _drop(self, i: int) -> None:
        self.ended[i] = True
        self.weights[i] = 0.0  # it drops out; the same draw picks among the rest
        self._recount()

    def _recount(self) -> None:
        total, self.cum = 0.0, []
        for w in self.weights:
            total += w
            self.cum.append(total)

    def _pick(self, u: float) -> int:
        """The pipeline a uniform draw ``u`` in [0, 1) selects, among those still open."""
        return min(bisect_right(self.cum, u * self.cum[-1]), len(self.cum) - 1)

    def _uniforms(self, n: int) -> list[float]:
        """Draws ``made .. made + n - 1`` (n <= DRAWS)."""
        out: list[float] = []
        d = self.made
        while len(out) < n:
            block, i = divmod(d, DRAWS)
            if block != self._block:
                self._block = block
                self._draws = np.random.default_rng([self.seed, block]).random(DRAWS).tolist()
            piece = self._draws[i : i + n - len(out)]
            out.extend(piece)
            d += len(piece)
        return out

    async def produce(self, worker: int, outbox: Outbox) -> None:
        async with contextlib.AsyncExitStack() as stack:
            runs: list[Run[Any]] = [
                await stack.enter_async_context(self.opener.open(p, i, self.states[i]))
                for i, p in enumerate(self.stage.pipes)
            ]
            held: list[list[Any]] = [[] for _ in runs]
            pos = [0] * len(runs)
            # The position of held[i][0] in run i's output.
            starts: list[Position | None] = [run.position() for run in runs]
            while True:
                out: list[Any] = []
                mark = (
                    self.made,
                    tuple(self.ended),
                    tuple(
                        (run, shifted(at, p))
                        for run, at, p in builtins.zip(runs, starts, pos, strict=True)
                    ),
                )
                for u in self._uniforms(MAX_CHUNK):
                    i = self._pick(u)
                    if pos[i] < len(held[i]):  # the common case, without a coroutine
                        out.append(held[i][pos[i]])
                        pos[i] += 1
                        self.made += 1
                        continue
                    got = await self._next(u, runs, held, pos, starts)
                    if got is _END:
                        await outbox.send(out, at=(self, mark, 0))
                        return
                    out.append(got)
                    self.made += 1
                await outbox.send(out, at=(self, mark, 0))

    async def _next(
        self,
        u: float,
        runs: list[Run[Any]],
        held: list[list[Any]],
        pos: list[int],
        starts: list[Position | None],
    ) -> Any:
        while True:
            if self.cum[-1] <= 0:
                return _END  # every pipeline that could be chosen is exhausted
            i = self._pick(u)
            if pos[i] >= len(held[i]):
                got = await next_marked(runs[i])
                if got is None:
                    if self.stage.stop_on_empty:
                        return _END
                    self._drop(i)
                    continue
                held[i], starts[i] = got
                pos[i] = 0
            x = held[i][pos[i]]
            pos[i] += 1
            return x


_END = object()
