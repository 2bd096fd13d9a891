"""Exact resume (issue 12) for the combining and sequence stages of issue 17, through
``check_resume``: zip, concatenate, sample_from, repeat, cache, interleave, window,
bucket_by_length, padded batch and shard, each alone and inside whole pipelines, and a state
saved with other parameters refused at ``open(state=)``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import aiopipe as ap
from aiopipe.testing import check_resume

pytestmark = pytest.mark.anyio

Make = Callable[[], ap.Pipeline[Any]]


def _gen(x: int) -> Iterator[int]:
    yield from range(x * 10, x * 10 + x % 7)


async def _agen(x: int) -> AsyncIterator[int]:
    for i in range(x % 5):
        await anyio.lowlevel.checkpoint()
        yield x * 10 + i


def _shuffled_inner(x: int) -> ap.Pipeline[int]:
    # seed=None: each nested run draws its order from the outer run's seed.
    return ap.from_iterable(range(x * 100, x * 100 + 30 + x % 4)).shuffle(16)


def _ragged(n: int) -> ap.Pipeline[np.ndarray]:
    return ap.from_iterable([np.arange(i % 9 + 1) for i in range(n)])


def _tagged(tag: str, n: int, **kw: Any) -> ap.Pipeline[tuple[str, int]]:
    return ap.from_arrays(np.arange(n), **kw).map(lambda i: (tag, int(i)))


CASES: dict[str, Make] = {
    # zip / concatenate
    "zip": lambda: ap.zip(ap.from_arrays(np.arange(400)), ap.from_iterable(range(500))),
    "zip of a map and a filter": lambda: ap.zip(
        ap.from_iterable(range(700)).map(lambda x: x * 2),
        ap.from_iterable(range(1500)).filter(lambda x: x % 3 == 0),
    ).batch(6),
    "concatenate": lambda: ap.concatenate(
        ap.from_iterable(range(300)),
        ap.from_iterable([]),
        ap.from_arrays(np.arange(5)),
        ap.from_iterable(range(1000)).filter(lambda x: x % 4 == 0).batch(3).unbatch(),
    ),
    # sample_from
    "sample_from": lambda: ap.sample_from(
        [_tagged("a", 200), _tagged("b", 100)], [0.3, 0.7], seed=4
    ),
    "sample_from unseeded, stop_on_empty": lambda: ap.sample_from(
        [_tagged("a", 200), _tagged("b", 400), _tagged("c", 50)], stop_on_empty=True
    ),
    "sample_from of shuffled sources -> batch": lambda: ap.sample_from(
        [
            _tagged("a", 300, shuffle=True),
            ap.from_iterable(range(200)).shuffle(32).map(lambda i: ("b", i)),
        ]
    ).batch(5),
    # repeat
    "repeat(3) of a shuffled from_arrays, seed=None": lambda: ap.from_arrays(
        np.arange(150), shuffle=True
    ).repeat(3),
    "repeat forever -> take": lambda: ap.from_iterable(range(70)).shuffle(10).repeat().take(500),
    "repeat of a repeat -> batch": lambda: ap.from_iterable(range(40)).repeat(2).repeat(3).batch(7),
    # cache
    "cache in memory, repeated": lambda: (
        ap.from_arrays(np.arange(120), shuffle=True).map(lambda x: x * 3).cache().repeat(3)
    ),
    # interleave
    "interleave of lists": lambda: ap.from_iterable(range(60)).interleave(
        lambda x: [x] * (x % 6), cycle_length=4, block_length=2
    ),
    "interleave of generators, workers=3": lambda: ap.from_iterable(range(80)).interleave(
        _gen, cycle_length=3, block_length=3, workers=3
    ),
    "interleave of async generators": lambda: ap.from_iterable(range(80)).interleave(
        _agen, cycle_length=5
    ),
    "interleave of shuffled pipelines": lambda: ap.from_iterable(range(14)).interleave(
        _shuffled_inner, cycle_length=3, block_length=4
    ),
    "interleave(workers>1) -> shuffle -> batch": lambda: (
        ap.from_iterable(range(12))
        .interleave(_shuffled_inner, cycle_length=4, block_length=2, workers=3)
        .shuffle(40)
        .batch(4)
    ),
    # window
    "window overlapping": lambda: ap.from_iterable(range(700)).window(5, shift=2),
    "window with gaps and stride": lambda: ap.from_iterable(range(1300)).window(
        3, shift=7, stride=2
    ),
    "window drop_remainder -> map": lambda: (
        ap.from_arrays(np.arange(900)).window(4, shift=3, drop_remainder=True).map(sum)
    ),
    # bucket_by_length, padded batch
    "bucket_by_length": lambda: _ragged(400).bucket_by_length(len, [3, 6], [4, 3, 5]),
    "bucket_by_length -> unbatch": lambda: (
        _ragged(300).bucket_by_length(len, [2, 5, 8], [2, 7, 3, 4], drop_remainder=True).unbatch()
    ),
    "padded batch": lambda: _ragged(600).batch(7, padded_shapes=(10,)),
    # shard
    "shard": lambda: ap.from_iterable(range(1000)).shard(3, 1),
    "shard equal": lambda: (
        ap.from_iterable(range(1001)).filter(lambda x: x % 7 != 0).shard(4, 3, equal=True)
    ),
    "shard -> batch": lambda: (
        ap.from_arrays(np.arange(2000), shuffle=True, seed=3).shard(5, 0).batch(3)
    ),
}


def _cuts(total: int) -> list[int]:
    """Fewer cuts than ``check_resume``'s default (these stages open nested runs, which
    costs), still at the start, around a chunk (256) and at the end."""
    fixed = (0, 1, 2, 7, 31, 255, 256, 257, total // 2, total - 2, total - 1, total)
    return sorted({c for c in fixed if 0 <= c <= total})


# Cases whose length depends on the seeds drawn: cuts below any length they can have.
CUTS: dict[str, list[int]] = {"sample_from unseeded, stop_on_empty": [0, 1, 2, 7, 31, 49, 50]}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_combining_stage_resumes_exactly(case: str) -> None:
    make = CASES[case]
    with anyio.fail_after(60):
        cuts = CUTS.get(case) or _cuts(len(await make().collect()))
        report = await check_resume(make, cuts)
    assert report.total > 0
    assert report.largest_state < 20_000  # bounded by buffers and cycles, not by the position


async def test_interleave_resumes_through_iter_sync() -> None:
    with anyio.fail_after(60):
        await check_resume(
            CASES["interleave(workers>1) -> shuffle -> batch"], [0, 3, 17, 40], via="sync"
        )


@pytest.mark.parametrize(
    "case",
    [
        "sample_from of shuffled sources -> batch",
        "repeat(3) of a shuffled from_arrays, seed=None",
        "interleave of shuffled pipelines",
        "bucket_by_length",
        "shard equal",
        "window with gaps and stride",
    ],
)
async def test_a_resumed_run_resumes_again(case: str) -> None:
    with anyio.fail_after(60):
        await check_resume(CASES[case], [1, 5, 40, 41, 150, 151, 300], chain=True)


def _files(tmp_path: Path, n: int) -> list[str]:
    paths = []
    for i in range(n):
        p = tmp_path / f"f{i:02d}.txt"
        p.write_text(str(i))
        paths.append(str(p))
    return paths


@pytest.mark.parametrize("equal", [False, True])
async def test_sharded_files_resume_exactly(tmp_path: Path, equal: bool) -> None:
    paths = _files(tmp_path, 11)

    def make() -> ap.Pipeline[str]:
        return ap.from_files(paths, epochs=40, shuffle=True, seed=2).shard(3, 0, equal=equal)

    total = 40 * (3 if equal else 4)  # files 0, 3, 6 (and 9) of 11, each epoch
    with anyio.fail_after(60):
        report = await check_resume(make, _cuts(total))
    assert report.total == total


async def test_cache_file_resumes_while_writing_and_while_replaying(tmp_path: Path) -> None:
    path = tmp_path / "c.cache"

    def computing() -> ap.Pipeline[Any]:
        path.unlink(missing_ok=True)  # every run computes (and writes) the pass
        return ap.from_arrays(np.arange(700), shuffle=True).cache(path).batch(6)

    def replaying() -> ap.Pipeline[Any]:
        return ap.from_arrays(np.arange(700), shuffle=True).cache(path).batch(6)

    with anyio.fail_after(60):
        await check_resume(computing, _cuts(117))  # 700 elements in batches of 6
        await replaying().collect()  # writes the file
        assert path.exists()
        await check_resume(replaying, _cuts(117))


async def test_resumed_first_pass_makes_later_passes_cache_the_same(tmp_path: Path) -> None:
    """A resumed pass writes no cache (it saw only part of the pass); the next pass then
    computes it with the same seeds, so it writes (and delivers) what the original cached."""
    path = tmp_path / "c.cache"

    def make() -> ap.Pipeline[Any]:
        path.unlink(missing_ok=True)  # every run starts without the file
        return ap.from_arrays(np.arange(300), shuffle=True).cache(path).repeat(3).batch(5)

    with anyio.fail_after(60):
        await check_resume(make, [0, 1, 7, 30, 59])  # cuts in the first pass (60 batches)
        await check_resume(make, [3, 21, 50], chain=True)


async def test_cache_file_replaced_since_the_state_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.cache"
    pipe = ap.from_iterable(range(1000)).cache(path)
    with anyio.fail_after(20):
        await pipe.collect()
        async with pipe.open() as run:
            [await run.receive() for _ in range(300)]
            state = json.loads(json.dumps(run.state_dict()))
        assert "file" in state["at"][0]
        await ap.from_iterable(range(10)).cache(tmp_path / "other").collect()
        path.write_bytes((tmp_path / "other").read_bytes())  # rebuilt with other data
        with pytest.raises(ValueError, match=r"was rebuilt since"):
            pipe.open(state=state)
        path.unlink()
        with pytest.raises(ValueError, match=r"which is gone"):
            pipe.open(state=state)


async def test_memory_cache_resumed_in_a_fresh_process_refills_alike() -> None:
    """A state taken while replaying the memory cache resumes where no memory list exists
    (another process): the pass is computed again with the seeds of the run that filled it."""

    def make() -> ap.Pipeline[Any]:
        return ap.from_arrays(np.arange(300), shuffle=True).cache().repeat(2)

    pipe = make()
    with anyio.fail_after(20):
        async with pipe.open() as run:
            head = [await run.receive() for _ in range(450)]  # into the replayed pass
            state = json.loads(json.dumps(run.state_dict()))
            tail = [x async for x in run]
        assert "memory" in state["at"][0]["run"]["at"][0]
        assert head[300:] == head[:150]  # the second pass is the cached first
        fresh = make()  # no memory list: as in another process
        async with fresh.open(state=state) as resumed:
            again = [x async for x in resumed]
    assert again == tail


MISMATCHES: dict[str, tuple[Make, Make, str]] = {
    "zip nested": (
        lambda: ap.zip(ap.from_arrays(np.arange(90)).batch(2), ap.from_iterable(range(90))),
        lambda: ap.zip(ap.from_arrays(np.arange(90)).batch(3), ap.from_iterable(range(90))),
        "nested",
    ),
    "concatenate nested": (
        lambda: ap.concatenate(ap.from_iterable(range(90)).shuffle(5, seed=1)),
        lambda: ap.concatenate(ap.from_iterable(range(90)).shuffle(5, seed=2)),
        "nested",
    ),
    "sample_from weights": (
        lambda: ap.sample_from([_tagged("a", 90), _tagged("b", 90)], [1, 2], seed=1),
        lambda: ap.sample_from([_tagged("a", 90), _tagged("b", 90)], [2, 1], seed=1),
        "weights",
    ),
    "repeat nested": (
        lambda: ap.from_iterable(range(50)).shuffle(5, seed=1).repeat(3),
        lambda: ap.from_iterable(range(50)).shuffle(5, seed=2).repeat(3),
        "nested",
    ),
    "cache nested": (
        lambda: ap.from_iterable(range(90)).batch(2).cache(),
        lambda: ap.from_iterable(range(90)).batch(4).cache(),
        "nested",
    ),
    "interleave cycle_length": (
        lambda: ap.from_iterable(range(30)).interleave(lambda x: [x] * 3, cycle_length=2),
        lambda: ap.from_iterable(range(30)).interleave(lambda x: [x] * 3, cycle_length=3),
        "cycle_length",
    ),
    "window shift": (
        lambda: ap.from_iterable(range(90)).window(3),
        lambda: ap.from_iterable(range(90)).window(3, shift=1),
        "shift",
    ),
    "bucket batch_sizes": (
        lambda: _ragged(90).bucket_by_length(len, [4], [2, 3]),
        lambda: _ragged(90).bucket_by_length(len, [4], [3, 3]),
        "batch_sizes",
    ),
    "shard equal": (
        lambda: ap.from_iterable(range(90)).shard(3, 0),
        lambda: ap.from_iterable(range(90)).shard(3, 0, equal=True),
        "equal",
    ),
    "sharded files shuffle": (
        lambda: ap.from_files([__file__] * 10, shuffle=False).shard(1, 0),
        lambda: ap.from_files([__file__] * 10, shuffle=True, seed=1).shard(1, 0),
        "seed",
    ),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES))
async def test_a_state_from_other_parameters_is_refused(case: str) -> None:
    saved_with, other, param = MISMATCHES[case]
    with anyio.fail_after(20):
        async with saved_with().open() as run:
            [await run.receive() for _ in range(7)]
            state = json.loads(json.dumps(run.state_dict()))
    with pytest.raises(ValueError, match=rf"other parameters \({param}="):
        other().open(state=state)


async def test_a_state_of_another_repeat_count_or_shard_is_refused() -> None:
    """Those parameters are part of the stage's name: the pipelines differ."""
    pipes = [
        (ap.from_iterable(range(50)).repeat(3), ap.from_iterable(range(50)).repeat(4)),
        (ap.from_iterable(range(50)).shard(3, 0), ap.from_iterable(range(50)).shard(3, 1)),
    ]
    for saved_with, other in pipes:
        with anyio.fail_after(20):
            async with saved_with.open() as run:
                await run.receive()
                state = json.loads(json.dumps(run.state_dict()))
        with pytest.raises(ValueError, match=r"saved from a different pipeline"):
            other.open(state=state)


async def test_a_nested_one_shot_iterator_is_refused_at_open() -> None:
    def make() -> ap.Pipeline[Any]:
        return ap.zip(ap.from_iterable(iter(range(50))), ap.from_iterable(range(50)))

    with anyio.fail_after(20):
        async with make().open() as run:
            [await run.receive() for _ in range(5)]
            state = json.loads(json.dumps(run.state_dict()))
    with pytest.raises(TypeError, match=r"zip.*pipeline 0.*can be walked only once"):
        make().open(state=state)
