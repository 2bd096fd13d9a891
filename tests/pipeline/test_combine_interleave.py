"""``interleave`` golden tests ported from tf.data's interleave_test: the documented example,
``testPythonImplementation``'s expected sequences and ``testInterleaveDataset``'s cases checked
against a reference of tf.data's order, for every kind of inner sequence and worker count."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest

import aiopipe as ap

pytestmark = pytest.mark.anyio


async def collect(pipe: ap.Pipeline[Any]) -> list[Any]:
    with anyio.fail_after(10):
        return await pipe.collect()


def reference(lists: list[list[Any]], cycle_length: int, block_length: int) -> Iterator[Any]:
    """tf.data's deterministic interleave order, written out plainly."""
    pending = [iter(x) for x in lists]
    slots: list[Iterator[Any] | None] = [None] * cycle_length
    while pending or any(s is not None for s in slots):
        for i in range(cycle_length):
            if slots[i] is None:
                if not pending:
                    continue
                slots[i] = pending.pop(0)
            for _ in range(block_length):
                try:
                    yield next(slots[i])  # type: ignore[arg-type]
                except StopIteration:
                    slots[i] = None
                    break


def as_pipeline(x: int) -> ap.Pipeline[int]:
    return ap.from_iterable([x] * x)


def as_list(x: int) -> list[int]:
    return [x] * x


def as_generator(x: int) -> Iterator[int]:
    yield from [x] * x


async def as_async(x: int) -> AsyncIterator[int]:
    for _ in range(x):
        yield x


KINDS: list[Callable[[int], Any]] = [as_pipeline, as_list, as_generator, as_async]


async def test_interleave_documented_example() -> None:
    pipe = ap.from_iterable(range(1, 6)).interleave(
        lambda x: ap.from_iterable([x]).repeat(6), cycle_length=2, block_length=4
    )
    # fmt: off
    assert await collect(pipe) == [
        1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 3, 3, 4, 4, 5, 5, 5, 5, 5, 5,
    ]
    # fmt: on


GOLDEN = [
    ([4, 5, 6], 1, 1, [4] * 4 + [5] * 5 + [6] * 6 + [4] * 4 + [5] * 5 + [6] * 6),
    (
        [4, 5, 6],
        2,
        1,
        [4, 5, 4, 5, 4, 5, 4, 5, 5, 6, 6, 4, 6, 4, 6, 4, 6, 4, 6, 5, 6, 5, 6, 5, 6, 5, 6, 5, 6, 6],
    ),
    (
        [4, 5, 6],
        2,
        3,
        [4, 4, 4, 5, 5, 5, 4, 5, 5, 6, 6, 6, 4, 4, 4, 6, 6, 6, 4, 5, 5, 5, 6, 6, 6, 5, 5, 6, 6, 6],
    ),
    (
        [4, 5, 6],
        7,
        2,
        [4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6, 5, 6, 6, 5, 6, 6],
    ),
    ([4, 0, 6], 2, 1, [4, 4, 6, 4, 6, 4, 6, 6, 4, 6, 4, 6, 4, 4, 6, 6, 6, 6, 6, 6]),
]


@pytest.mark.parametrize("kind", KINDS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize(("values", "cycle", "block", "expected"), GOLDEN)
async def test_interleave_golden(
    values: list[int],
    cycle: int,
    block: int,
    expected: list[int],
    kind: Callable[[int], Any],
    workers: int,
) -> None:
    pipe = ap.from_iterable(values).repeat(2)
    got = await collect(
        pipe.interleave(kind, cycle_length=cycle, block_length=block, workers=workers)
    )
    assert got == expected
    assert list(reference([[v] * v for v in values * 2], cycle, block)) == expected


CASES = [
    ([4, 5, 6], 1, 3, 1),
    ([4, 5, 6], 2, 1, 2),
    ([4, 5, 6], 2, 3, 2),
    ([4, 5, 6], 7, 2, 5),
    ([], 2, 3, 1),
    ([0, 0, 0], 2, 3, 2),
    ([4, 0, 6], 2, 3, 2),
    ([300, 2, 700, 1, 0, 90], 3, 50, 4),  # sequences longer than a feed's piece
]


@pytest.mark.parametrize(("values", "cycle", "block", "workers"), CASES)
async def test_interleave_matches_reference(
    values: list[int], cycle: int, block: int, workers: int
) -> None:
    got = await collect(
        ap.from_iterable(values)
        .repeat(2)
        .interleave(as_pipeline, cycle_length=cycle, block_length=block, workers=workers)
    )
    assert got == list(reference([[v] * v for v in values * 2], cycle, block))


async def test_interleave_of_seeded_nested_runs_resumes_exactly() -> None:
    def inner(x: int) -> ap.Pipeline[int]:
        return ap.from_iterable(range(x * 100, x * 100 + 40)).shuffle(40)  # seed drawn per run

    pipe = ap.from_iterable(range(6)).interleave(inner, cycle_length=3, block_length=5, workers=3)
    with anyio.fail_after(10):
        async with pipe.open() as run:
            head = [await run.receive() for _ in range(70)]
            state = json.loads(json.dumps(run.state_dict()))
            tail = [x async for x in run]
        async with pipe.open(state=state) as resumed:
            again = [x async for x in resumed]
    assert again == tail
    assert sorted(head + tail) == sorted(x * 100 + i for x in range(6) for i in range(40))


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("kind", ["pipeline", "generator", "fn"])
async def test_interleave_error_reaches_consumer_as_itself(kind: str) -> None:
    def bad(x: int) -> int:
        if x == 3:
            raise Boom("three")
        return x

    def gen(x: int) -> Iterator[int]:
        yield x
        bad(x)

    def inner(x: int) -> Any:
        if kind == "pipeline":
            return ap.from_iterable([x, x]).map(bad)
        if kind == "generator":
            return gen(x)
        return [bad(x)]

    pipe = ap.from_iterable(range(6)).interleave(inner, cycle_length=2, workers=2)
    with anyio.fail_after(10), pytest.raises(Boom) as info:
        await pipe.collect()
    notes = info.value.__notes__
    assert any("raised in stage" in n for n in notes), notes
    if kind != "pipeline":
        assert any("interleave(inner)' on element 3" in n for n in notes), notes


async def test_interleave_bad_fn_result() -> None:
    pipe = ap.from_iterable([1]).interleave(lambda x: 5, cycle_length=1)
    with anyio.fail_after(10), pytest.raises(TypeError, match=r"must return a Pipeline or"):
        await pipe.collect()


async def test_interleave_leaving_early_stops_every_feed() -> None:
    closed: list[int] = []

    async def endless(x: int) -> AsyncIterator[int]:
        try:
            while True:
                yield x
                await anyio.lowlevel.checkpoint()
        finally:
            closed.append(x)

    def inner(x: int) -> Any:
        return ap.from_iterable(endless(x)) if x % 2 else endless(x)

    before = len(anyio.get_running_tasks())
    pipe = ap.from_iterable(range(10)).interleave(inner, cycle_length=4, workers=2)
    with anyio.fail_after(10):
        async with pipe.open() as run:
            assert [await run.receive() for _ in range(8)] == [0, 1, 2, 3] * 2
    assert len(anyio.get_running_tasks()) == before
    assert sorted(closed) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"cycle_length": 0}, r"interleave\(cycle_length=\) must be a positive int"),
        ({"cycle_length": 2, "block_length": 0}, r"interleave\(block_length=\) must be"),
        ({"cycle_length": 2, "workers": 0}, r"interleave\(workers=\) must be a positive int"),
    ],
)
def test_interleave_validates_at_build_time(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ap.from_iterable([1]).interleave(as_list, **kw)
    with pytest.raises(TypeError, match=r"interleave needs a callable fn, got int"):
        ap.from_iterable([1]).interleave(3, cycle_length=1)  # type: ignore[arg-type]


@pytest.mark.anyio
@pytest.mark.parametrize("workers", [1, 2])
async def test_a_keyboard_interrupt_in_an_inner_sequence_arrives_unwrapped(workers: int) -> None:
    err = KeyboardInterrupt("inner")

    def inner(x: int) -> Any:
        yield x
        if x == 2:
            raise err
        yield x

    with anyio.fail_after(10), pytest.raises(KeyboardInterrupt) as info:
        await (
            ap.from_iterable(range(4)).interleave(inner, cycle_length=2, workers=workers).collect()
        )
    assert info.value is err
