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

from ._channel import MAX_CHUNK, Inbox, Outbox
from ._nested import NestedOpener, check_pipelines, nested_names, next_chunk
from ._run import Run
from ._sources import _check_seed as check_seed
from ._stage import RunContext, Runner, Stage

if TYPE_CHECKING:
    from ._pipeline import Pipeline

__all__ = ["ConcatenateSource", "SampleSource", "ZipSource", "concatenate", "sample_from", "zip"]


def zip(*pipes: Pipeline[Any]) -> Pipeline[tuple[Any, ...]]:
    """Tuples of one element from each pipeline (``tf.data.Dataset.zip``); ends with the
    shortest, and leaving stops the others."""
    from ._pipeline import Pipeline

    return Pipeline((ZipSource(pipes),))


def concatenate(*pipes: Pipeline[Any]) -> Pipeline[Any]:
    """Every element of each pipeline in turn (``Dataset.concatenate``)."""
    from ._pipeline import Pipeline

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
    from ._pipeline import Pipeline

    if isinstance(pipes, Pipeline) or not isinstance(pipes, Sequence):
        raise TypeError(
            "sample_from needs a list of pipelines as its first argument, "
            f"got {type(pipes).__name__}"
        )
    return Pipeline((SampleSource(pipes, weights, seed, stop_on_empty),))


class ZipSource(Stage):
    """Tuples of one element from each pipeline; ends with the shortest."""

    def __init__(self, pipes: Sequence[Any]) -> None:
        self.pipes = check_pipelines("zip", pipes)
        self.name = f"zip({nested_names(self.pipes)})"

    def runner(self, ctx: RunContext) -> Runner:
        return _Zipper(self.pipes, NestedOpener(ctx))


class _Zipper(Runner):
    def __init__(self, pipes: tuple[Any, ...], opener: NestedOpener) -> None:
        self.pipes = pipes
        self.opener = opener

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        async with contextlib.AsyncExitStack() as stack:
            runs = [await stack.enter_async_context(self.opener.open(p)) for p in self.pipes]
            held: list[list[Any]] = [[] for _ in runs]
            while True:
                for run, buf in builtins.zip(runs, held, strict=True):
                    if not buf:
                        chunk = await next_chunk(run)
                        if chunk is None:
                            return  # the shortest ended: leaving stops the others
                        buf.extend(chunk)
                n = min(len(b) for b in held)
                await outbox.send(list(builtins.zip(*(b[:n] for b in held), strict=True)))
                for buf in held:
                    del buf[:n]


class ConcatenateSource(Stage):
    """Every element of the first pipeline, then of the second, and so on."""

    def __init__(self, pipes: Sequence[Any]) -> None:
        self.pipes = check_pipelines("concatenate", pipes)
        self.name = f"concatenate({nested_names(self.pipes)})"

    def runner(self, ctx: RunContext) -> Runner:
        return _Concatenator(self.pipes, NestedOpener(ctx))


class _Concatenator(Runner):
    def __init__(self, pipes: tuple[Any, ...], opener: NestedOpener) -> None:
        self.pipes = pipes
        self.opener = opener

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        for pipe in self.pipes:
            async with self.opener.open(pipe) as run:
                while (chunk := await next_chunk(run)) is not None:
                    await outbox.send(chunk)


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


class _Sampler(Runner):
    def __init__(self, stage: SampleSource, seed: int, opener: NestedOpener) -> None:
        self.stage = stage
        self.rng = np.random.default_rng(seed)
        self.opener = opener
        self.weights = list(stage.weights)
        self.cum: list[float] = []
        self._recount()

    def _recount(self) -> None:
        total, self.cum = 0.0, []
        for w in self.weights:
            total += w
            self.cum.append(total)

    def _pick(self, u: float) -> int:
        """The pipeline a uniform draw ``u`` in [0, 1) selects, among those still open."""
        return min(bisect_right(self.cum, u * self.cum[-1]), len(self.cum) - 1)

    async def work(self, worker: int, inbox: Inbox | None, outbox: Outbox) -> None:
        async with contextlib.AsyncExitStack() as stack:
            runs = [await stack.enter_async_context(self.opener.open(p)) for p in self.stage.pipes]
            held: list[list[Any]] = [[] for _ in runs]
            pos = [0] * len(runs)
            while True:
                out: list[Any] = []
                # One draw per output, in blocks: the sequence depends only on the seed and on
                # where the pipelines end, which is itself deterministic.
                for u in self.rng.random(MAX_CHUNK).tolist():
                    i = self._pick(u)
                    if pos[i] < len(held[i]):  # the common case, without a coroutine
                        out.append(held[i][pos[i]])
                        pos[i] += 1
                        continue
                    got = await self._next(u, runs, held, pos)
                    if got is _END:
                        await outbox.send(out)
                        return
                    out.append(got)
                await outbox.send(out)

    async def _next(
        self, u: float, runs: list[Run[Any]], held: list[list[Any]], pos: list[int]
    ) -> Any:
        while True:
            if self.cum[-1] <= 0:
                return _END  # every pipeline that could be chosen is exhausted
            i = self._pick(u)
            if pos[i] >= len(held[i]):
                chunk = await next_chunk(runs[i])
                if chunk is None:
                    if self.stage.stop_on_empty:
                        return _END
                    self.weights[i] = 0.0  # it drops out; the same draw picks among the rest
                    self._recount()
                    continue
                held[i], pos[i] = chunk, 0
            x = held[i][pos[i]]
            pos[i] += 1
            return x


_END = object()
