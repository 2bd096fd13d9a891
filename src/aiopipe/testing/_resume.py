"""``check_resume``: the one save/load test for any pipeline (every built-in stage runs it).

For each cut ``c``: open the pipeline, take ``c`` outputs, save ``state_dict()`` (through JSON, as
a checkpoint would), close; open a fresh copy with that state and take the rest. The outputs
before the cut and after the resume together must be the uninterrupted run's: in the same order,
or, with ``ordered=False`` (unordered maps, parallel reads), the same multiset. Nothing lost,
nothing repeated.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import numpy as np

__all__ = ["ResumeReport", "check_resume", "default_cuts"]


@dataclass
class ResumeReport:
    """What ``check_resume`` did: the length of the whole run, the cuts it tried, and the size
    of the largest state it saved (JSON bytes)."""

    total: int
    cuts: list[int] = field(default_factory=list)
    largest_state: int = 0


def default_cuts(total: int, *, count: int = 12, seed: int = 0) -> list[int]:
    """Cuts that catch the usual bugs: the ends, the first few, around chunk and batch sizes,
    and a few at random."""
    rng = random.Random(seed)
    fixed = [0, 1, 2, 3, 7, 64, 255, 256, 257, total // 3, total // 2, total - 1, total]
    extra = [rng.randrange(total + 1) for _ in range(count)] if total else []
    return sorted({c for c in fixed + extra if 0 <= c <= total})


async def check_resume(
    make_pipeline: Callable[[], Any],
    cuts: Sequence[int] | None = None,
    *,
    ordered: bool = True,
    via: str = "async",
    chain: bool = False,
    flatten: Callable[[Any], Iterable[Any]] | None = None,
) -> ResumeReport:
    """Check that ``make_pipeline()`` resumes exactly at every cut; AssertionError if not.

    ``via="sync"`` saves and resumes through ``iter_sync`` instead of ``open``. ``chain=True``
    also resumes a resumed run: it cuts at every cut in turn, resuming each time from the last
    state, and checks the pieces add up to the whole. ``flatten`` turns each output into the
    elements to compare (for batches of an unordered stream, which group differently on every
    run: ``flatten=lambda b: b.tolist()``).
    """
    if via not in ("async", "sync"):
        raise ValueError(f"via must be 'async' or 'sync', got {via!r}")
    # Every run starts from the state of a run cut before its first output: a pipeline with
    # seed=None stages then draws the same seeds in all of them.
    _, start = await _collect(make_pipeline, None, 0, via)
    whole = await _collect(make_pipeline, start, None, via)
    total = len(whole[0])
    cuts = sorted(set(cuts)) if cuts is not None else default_cuts(total)
    report = ResumeReport(total, list(cuts))
    if chain:
        await _chained(make_pipeline, start, cuts, whole[0], ordered, via, report, flatten)
        return report
    for cut in cuts:
        if not 0 <= cut <= total:
            raise ValueError(f"cut {cut} is outside the run's {total} outputs")
        before, state = await _collect(make_pipeline, start, cut, via)
        report.largest_state = max(report.largest_state, len(json.dumps(state)))
        after, _ = await _collect(make_pipeline, state, None, via)
        _compare(whole[0], before, after, cut, ordered, flatten)
    return report


async def _chained(
    make_pipeline: Callable[[], Any],
    state: dict[str, Any] | None,
    cuts: Sequence[int],
    whole: list[Any],
    ordered: bool,
    via: str,
    report: ResumeReport,
    flatten: Callable[[Any], Iterable[Any]] | None,
) -> None:
    got: list[Any] = []
    for cut in cuts:
        piece, state = await _collect(make_pipeline, state, cut - len(got), via)
        got.extend(piece)
        assert state is not None
        report.largest_state = max(report.largest_state, len(json.dumps(state)))
    rest, _ = await _collect(make_pipeline, state, None, via)
    _compare(whole, got, rest, len(got), ordered, flatten)


async def _collect(
    make_pipeline: Callable[[], Any], state: dict[str, Any] | None, limit: int | None, via: str
) -> tuple[list[Any], dict[str, Any] | None]:
    """Up to ``limit`` outputs (all if None) and, when limited, the state after them."""
    pipe = make_pipeline()
    if via == "sync":
        return await anyio.to_thread.run_sync(_collect_sync, pipe, state, limit)
    out: list[Any] = []
    async with pipe.open(state=state) as run:
        while limit is None or len(out) < limit:
            try:
                out.append(await run.receive())
            except anyio.EndOfStream:
                break
        saved = _through_json(run.state_dict()) if limit is not None else None
    return out, saved


def _collect_sync(
    pipe: Any, state: dict[str, Any] | None, limit: int | None
) -> tuple[list[Any], dict[str, Any] | None]:
    out: list[Any] = []
    with pipe.iter_sync(state=state) as it:
        while limit is None or len(out) < limit:
            try:
                out.append(next(it))
            except StopIteration:
                break
        saved = _through_json(it.state_dict()) if limit is not None else None
    return out, saved


def _through_json(state: dict[str, Any]) -> dict[str, Any]:
    # A checkpoint is written to disk: only what survives JSON may matter.
    loaded: dict[str, Any] = json.loads(json.dumps(state))
    return loaded


def _compare(
    whole: list[Any],
    before: list[Any],
    after: list[Any],
    cut: int,
    ordered: bool,
    flatten: Callable[[Any], Iterable[Any]] | None,
) -> None:
    def elements(outputs: list[Any]) -> list[Hashable]:
        if flatten is None:
            return [_canon(x) for x in outputs]
        return [_canon(y) for x in outputs for y in flatten(x)]

    joined, expected = elements(before + after), elements(whole)
    where = f"cut at {cut} ({len(before)} before, {len(after)} after, {len(whole)} in all)"
    if ordered:
        if joined != expected:
            first = next(
                (i for i, (a, b) in enumerate(zip(joined, expected, strict=False)) if a != b),
                min(len(joined), len(expected)),
            )
            raise AssertionError(
                f"resume is not exact at the {where}: the outputs first differ at {first} "
                f"(got {_show(joined, first)}, expected {_show(expected, first)})"
            )
        return
    got, want = Counter(joined), Counter(expected)
    if got != want:
        missing = sum((want - got).values())
        extra = sum((got - want).values())
        raise AssertionError(
            f"resume is not exact at the {where}: {missing} output(s) lost and {extra} "
            f"repeated or foreign"
        )


def _show(items: list[Hashable], i: int) -> str:
    return repr(items[i])[:120] if i < len(items) else "the end"


def _canon(x: Any) -> Hashable:
    """A hashable value equal for equal outputs (numpy arrays by dtype, shape and bytes)."""
    if isinstance(x, np.ndarray):
        return ("ndarray", str(x.dtype), x.shape, x.tobytes())
    if isinstance(x, np.generic):
        return ("scalar", str(x.dtype), x.tobytes())
    if isinstance(x, dict):
        return ("dict", tuple((k, _canon(v)) for k, v in sorted(x.items(), key=repr)))
    if isinstance(x, list | tuple):
        return (type(x).__name__, tuple(_canon(v) for v in x))
    try:
        hash(x)
    except TypeError:
        return ("repr", repr(x))
    return x  # type: ignore[no-any-return]
