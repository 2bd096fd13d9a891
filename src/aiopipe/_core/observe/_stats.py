"""Per-stage counters and the stats table that names the bottleneck.

Counters are plain attributes bumped once per chunk; waiting time is measured only on the slow path
(when a send or receive really has to wait), so leaving stats on costs almost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, overload

__all__ = ["PipelineStats", "RunView", "StageStats", "StageStatistics"]


class _Queued(Protocol):
    used: int  # elements queued in a stream (its Space)


class StageStats:
    """Live, mutable counters of one stage (shared by its workers)."""

    __slots__ = (
        "_alive_s",
        "_live_since",
        "blocked_s",
        "buffer_size",
        "errors",
        "fills",
        "items_in",
        "items_out",
        "name",
        "output",
        "spans",
        "starved_s",
        "workers",
    )

    def __init__(self, name: str, workers: int, buffer_size: int) -> None:
        self.name = name
        self.workers = workers
        self.buffer_size = buffer_size
        self.items_in = 0
        self.items_out = 0
        self.blocked_s = 0.0
        self.starved_s = 0.0
        self.errors = 0
        # The stage's output channel (its ``used`` counts the elements queued in it); set by
        # the run, so that the next stage's receives need not write into this stage's stats.
        self.output: _Queued | None = None
        self._alive_s = 0.0
        self._live_since: list[float] = []
        # (worker, kind, start, end) spans for traces; None unless a trace was asked for.
        self.spans: list[tuple[int, str, float, float]] | None = None
        # (time, buffer_used) samples taken while tracing (see ``_trace.sample_fills``).
        self.fills: list[tuple[float, int]] = []

    def worker_started(self) -> float:
        now = time.perf_counter()
        self._live_since.append(now)
        return now

    def worker_stopped(self, started: float, worker: int = 0) -> None:
        now = time.perf_counter()
        self._live_since.remove(started)
        self._alive_s += now - started
        if self.spans is not None:
            # A trace draws busy time as the gaps between waits while the worker was alive.
            self.spans.append((worker, "alive", started, now))

    def waited(self, kind: str, started: float, worker: int = 0) -> None:
        """Account a wait (``"blocked"`` or ``"starved"``) that began at ``started`` and ends now.

        Called only when a send or receive really had to wait, never per chunk.
        """
        now = time.perf_counter()
        if kind == "blocked":
            self.blocked_s += now - started
        else:
            self.starved_s += now - started
        if self.spans is not None:
            self.spans.append((worker, kind, started, now))

    def buffer_used(self) -> int:
        if not self.buffer_size or self.output is None:
            return 0  # the consumer: it has no output buffer
        return max(0, self.output.used)

    def alive_s(self, now: float) -> float:
        return self._alive_s + sum(now - t for t in self._live_since)

    def snapshot(self, now: float, elapsed: float = 0.0, skipped: int = 0) -> StageStatistics:
        alive = self.alive_s(now)
        busy = max(0.0, alive - self.blocked_s - self.starved_s)
        return StageStatistics(
            name=self.name,
            workers=self.workers,
            items_in=self.items_in,
            items_out=self.items_out,
            busy_s=busy,
            blocked_s=self.blocked_s,
            starved_s=self.starved_s,
            buffer_used=self.buffer_used(),
            buffer_size=self.buffer_size,
            errors=self.errors,
            skipped=skipped,
            elapsed_s=elapsed,
        )


class StageStatistics(NamedTuple):
    """A frozen snapshot of one stage (or of the consumer, named ``consumer``)."""

    name: str
    workers: int
    items_in: int
    items_out: int
    busy_s: float
    blocked_s: float
    starved_s: float
    buffer_used: int
    buffer_size: int
    errors: int
    skipped: int = 0  # elements passed over under on_error="skip" (see run.errors())
    elapsed_s: float = 0.0  # the run's age when this snapshot was taken

    @property
    def fill(self) -> float:
        """How full the output buffer is, 0..1 (TF's ``fraction_of_N_full``)."""
        return self.buffer_used / self.buffer_size if self.buffer_size else 0.0

    @property
    def busy_fraction(self) -> float:
        """Working time as a share of the run (per worker), 0..1.

        Of the run, not of the stage's own life: a source that produced everything in 5 ms of
        a one-second run and then ended was busy 0.5 %, not 100 %.
        """
        return self.share(self.busy_s)

    def share(self, seconds: float) -> float:
        """``seconds`` as a share of the run per worker (of the stage's life if unknown)."""
        if self.elapsed_s > 0:
            return min(1.0, seconds / (max(1, self.workers) * self.elapsed_s))
        total = self.busy_s + self.blocked_s + self.starved_s
        return seconds / total if total > 0 else 0.0


class PipelineStats(Sequence[StageStatistics]):
    """One :class:`StageStatistics` per stage, in pipeline order, the consumer last."""

    def __init__(self, stages: Sequence[StageStatistics], elapsed_s: float) -> None:
        self._stages = tuple(stages)
        self.elapsed_s = elapsed_s

    @overload
    def __getitem__(self, i: int) -> StageStatistics: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[StageStatistics]: ...
    def __getitem__(self, i: int | slice) -> StageStatistics | Sequence[StageStatistics]:
        return self._stages[i]

    def __len__(self) -> int:
        return len(self._stages)

    def __iter__(self) -> Iterator[StageStatistics]:
        return iter(self._stages)

    def by_name(self, name: str) -> StageStatistics:
        for s in self._stages:
            if s.name == name:
                return s
        raise KeyError(f"no stage named {name!r}; stages: {[s.name for s in self._stages]}")

    @property
    def bottleneck(self) -> StageStatistics | None:
        """The stage (or the consumer) that limits throughput, or None before anything ran.

        The limiting stage works most of the run, while the stage before it waits to send and the
        one after it waits to receive. Its busy share of the run is the evidence; how much its
        neighbours wait on it (upstream blocked, downstream starved) corroborates, so a stage that
        looks busy for other reasons (waiting for the event loop, for a sibling worker) loses to
        the one its neighbours wait on. Shares are of the whole run, not of each stage's life, so
        a stage that finished early (its output all buffered) does not look busy.
        """
        scores = [self._pressure(i) for i in range(len(self._stages))]
        best = max(range(len(scores)), key=scores.__getitem__, default=None)
        return None if best is None or scores[best] <= 0 else self._stages[best]

    def _pressure(self, i: int) -> float:
        stages = self._stages
        waits = []
        if i > 0:
            waits.append(self._run_share(stages[i - 1], stages[i - 1].blocked_s))
        if i + 1 < len(stages):
            waits.append(self._run_share(stages[i + 1], stages[i + 1].starved_s))
        corroboration = sum(waits) / len(waits) if waits else 0.0
        return self._run_share(stages[i], stages[i].busy_s) * (1 + corroboration) / 2

    def _run_share(self, s: StageStatistics, seconds: float) -> float:
        """``seconds`` as a share of the run, per worker (0..1)."""
        if self.elapsed_s <= 0:
            return 0.0
        return min(1.0, seconds / (max(1, s.workers) * self.elapsed_s))

    def explain(self) -> str:
        """One line saying which stage limits throughput and why."""
        slow = self.bottleneck
        if slow is None:
            return "bottleneck: none yet (nothing has run)"
        i = self._stages.index(slow)
        parts = [f"bottleneck: {slow.name}: busy {slow.busy_fraction:.0%}"]
        if i > 0:
            up = self._stages[i - 1]
            parts.append(f"upstream {up.name} blocked {up.share(up.blocked_s):.0%}")
        if i + 1 < len(self._stages):
            down = self._stages[i + 1]
            parts.append(f"downstream {down.name} starved {down.share(down.starved_s):.0%}")
        line = ", ".join(parts)
        if i == len(self._stages) - 1 and slow.name == "consumer":
            line += " (the loop body is slower than the pipeline: input is not the problem)"
        return line

    def __str__(self) -> str:
        head = ("stage", "workers", "in", "out", "busy", "blocked", "starved", "buffer", "fill")
        rows = [(*head, "errors", "skipped")] + [_row(s) for s in self._stages]
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines = [
            "  ".join(
                cell.ljust(w) if c == 0 else cell.rjust(w)
                for c, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"elapsed {self.elapsed_s:.3f}s; {self.explain()}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"PipelineStats({list(self._stages)!r}, elapsed_s={self.elapsed_s!r})"


def _row(s: StageStatistics) -> tuple[str, ...]:
    """Times as shares of the run: the rest of a row's 100 % is time the stage was not alive
    (finished early, or not started yet)."""
    has_buffer = s.buffer_size > 0
    return (
        s.name,
        str(s.workers),
        str(s.items_in),
        str(s.items_out),
        f"{s.share(s.busy_s):.0%}",
        f"{s.share(s.blocked_s):.0%}",
        f"{s.share(s.starved_s):.0%}",
        f"{s.buffer_used}/{s.buffer_size}" if has_buffer else "-",
        f"{s.fill:.0%}" if has_buffer else "-",
        str(s.errors),
        str(s.skipped),
    )


@dataclass(frozen=True)
class RunView:
    """What observers of a run (trace, progress bar) may read: its counters, when it started,
    its length if known, and a snapshot function; never the Run itself."""

    stages: tuple[StageStats, ...]
    consumer: StageStats
    started: float
    length: int | float | None
    snapshot: Callable[[], PipelineStats]
