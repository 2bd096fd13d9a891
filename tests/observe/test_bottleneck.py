"""The stats name the slow stage, wherever it sits, and say why."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import aiopipe as ap

N = 100
SLOW_S = 0.005  # vs ~1 us for the fast stages: a contrast no noisy machine blurs


def fast(x: int) -> int:
    return x


async def slow_sleep(x: int) -> int:
    await anyio.sleep(SLOW_S)
    return x


def slow_cpu(x: int) -> int:
    time.sleep(SLOW_S)  # holds the event loop, like CPU-bound decoding
    return x


async def slow_source() -> AsyncIterator[int]:
    for i in range(N):
        await anyio.sleep(SLOW_S)
        yield i


def chain(slow_at: int | None, slow_fn: Any) -> ap.Pipeline[Any]:
    """Source, three maps, batch; map ``slow_at`` (0..2) is slow and named ``slow``."""
    pipe: ap.Pipeline[Any] = ap.from_iterable(range(N))
    for i in range(3):
        is_slow = i == slow_at
        pipe = pipe.map(slow_fn if is_slow else fast, name="slow" if is_slow else f"fast{i}")
    return pipe.batch(4)


async def run_to_end(pipe: ap.Pipeline[Any], consumer_s: float = 0.0) -> ap.PipelineStats:
    with anyio.fail_after(30):
        async with pipe.open() as run:
            async for _ in run:
                if consumer_s:
                    await anyio.sleep(consumer_s)
            return run.stats()


@pytest.mark.anyio
@pytest.mark.parametrize("slow_fn", [slow_sleep, slow_cpu], ids=["sleep", "cpu"])
@pytest.mark.parametrize("slow_at", [0, 1, 2], ids=["source-side", "middle", "batch-side"])
async def test_the_slow_map_is_named(slow_at: int, slow_fn: Any) -> None:
    stats = await run_to_end(chain(slow_at, slow_fn))
    bottleneck = stats.bottleneck
    assert bottleneck is not None
    assert bottleneck.name == "slow", str(stats)
    assert "bottleneck: slow: busy" in str(stats)


@pytest.mark.anyio
async def test_a_slow_source_is_named() -> None:
    pipe = ap.from_iterable(slow_source()).map(fast).map(fast, name="fast1").batch(4)
    stats = await run_to_end(pipe)
    assert stats.bottleneck is not None
    assert stats.bottleneck.name == "from_iterable", str(stats)


@pytest.mark.anyio
async def test_a_slow_consumer_is_named() -> None:
    stats = await run_to_end(chain(None, fast), consumer_s=4 * SLOW_S)
    assert stats.bottleneck is not None
    assert stats.bottleneck.name == "consumer", str(stats)
    assert "the loop body is slower than the pipeline" in stats.explain()


@pytest.mark.anyio
async def test_the_explanation_cites_both_neighbours() -> None:
    stats = await run_to_end(chain(1, slow_sleep))
    line = stats.explain()
    assert line.startswith("bottleneck: slow: busy ")
    assert "upstream fast0 blocked " in line
    assert "downstream fast2 starved " in line
    # The slow stage's neighbours wait on it most of the time.
    assert stats.by_name("fast2").starved_s > stats.by_name("fast2").busy_s


@pytest.mark.anyio
async def test_the_table_is_aligned_and_ends_with_the_bottleneck() -> None:
    stats = await run_to_end(chain(2, slow_sleep))
    lines = str(stats).splitlines()
    header = lines[0].split()
    assert header == [
        "stage", "workers", "in", "out", "busy", "blocked", "starved", "buffer", "fill", "errors",
        "skipped",
    ]  # fmt: skip
    assert set(lines[1]) == {"-"}
    rows = lines[2:-1]
    assert [r.split()[0] for r in rows] == [s.name for s in stats]
    assert len({len(r) for r in lines[:-1]}) == 1  # every row as wide as the header
    assert lines[-1].startswith("elapsed ")
    assert "bottleneck: slow" in lines[-1]


def test_nothing_ran_means_no_bottleneck() -> None:
    empty = ap.StageStatistics("x", 1, 0, 0, 0.0, 0.0, 0.0, 0, 8, 0)
    stats = ap.PipelineStats([empty], elapsed_s=0.0)
    assert stats.bottleneck is None
    assert stats.explain() == "bottleneck: none yet (nothing has run)"
    assert empty.fill == 0.0
