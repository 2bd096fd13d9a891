"""``pipe.cardinality()`` and ``len(pipe)``: known, infinite, unknown."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import aiopipe as ap


def r(n: int) -> ap.Pipeline[int]:
    return ap.from_iterable(range(n))


async def agen() -> AsyncIterator[int]:
    yield 1


CASES: list[tuple[ap.Pipeline[Any], int | float | None]] = [
    (r(10), 10),
    (ap.from_iterable([1, 2], epochs=3), 6),
    (ap.from_iterable([1, 2], epochs=None), math.inf),
    (ap.from_iterable([], epochs=None), 0),
    (ap.from_iterable(iter([1, 2])), None),
    (ap.from_iterable(agen()), None),
    (ap.from_arrays(np.zeros((7, 2)), epochs=2, shuffle=True), 14),
    (r(10).map(str).prefetch(2).shuffle(4), 10),
    (r(10).map(str, on_error="skip"), None),
    (r(10).map(str, retries=2), 10),
    (r(10).filter(bool), None),
    (r(10).flat_map(lambda x: [x]), None),
    (r(10).batch(3), 4),
    (r(10).batch(3, drop_remainder=True), 3),
    (r(10).batch(3).unbatch(), None),
    (r(10).take(4), 4),
    (r(3).take(4), 3),
    (r(10).skip(4), 6),
    (r(3).skip(4), 0),
    (r(10).shard(3, 1), 3),
    (r(10).shard(3, 0), 4),
    (r(7).window(3, shift=2), 4),
    (r(7).window(3, shift=1, stride=2, drop_remainder=True), 3),
    (r(10).repeat(3), 30),
    (r(10).repeat(), math.inf),
    (r(10).repeat().take(25), 25),
    (r(10).repeat().batch(4), math.inf),
    (r(10).repeat().filter(bool), None),
    (r(0).repeat(), 0),
    (r(10).filter(bool).repeat(0), 0),
    (ap.zip(r(10), r(4)), 4),
    (ap.zip(r(10), r(4).filter(bool)), None),
    (ap.zip(r(10).repeat(), r(4)), 4),
    (ap.concatenate(r(10), r(4)), 14),
    (ap.sample_from([r(10), r(4)], seed=0), 14),
    (ap.sample_from([r(10), r(4)], [1, 0], seed=0), 10),
    (ap.sample_from([r(10), r(4)], seed=0, stop_on_empty=True), None),
    (r(10).interleave(lambda x: [x], cycle_length=2), None),
    (r(10).bucket_by_length(lambda x: x, [3], [2, 2]), None),
]


@pytest.mark.parametrize(("pipe", "expected"), CASES, ids=lambda x: repr(x)[:60])
def test_cardinality(pipe: ap.Pipeline[Any], expected: int | float | None) -> None:
    assert pipe.cardinality() == expected
    if isinstance(expected, int):
        assert len(pipe) == expected


def test_len_of_unknown_or_infinite_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"length is unknown.*pipe.cardinality\(\)"):
        len(r(3).filter(bool))
    with pytest.raises(TypeError, match=r"length is infinite"):
        len(r(3).repeat())
    assert bool(r(0))  # truthy even when empty: a description, not a container


@pytest.mark.anyio
@pytest.mark.parametrize(("pipe", "expected"), [c for c in CASES if isinstance(c[1], int)][:20])
async def test_cardinality_matches_a_run(pipe: ap.Pipeline[Any], expected: int) -> None:
    with anyio.fail_after(10):
        assert len(await pipe.collect()) == expected


@pytest.mark.anyio
@pytest.mark.parametrize("equal", [False, True])
async def test_cardinality_of_shards_matches_a_run(tmp_path: Path, equal: bool) -> None:
    for i in range(7):
        (tmp_path / f"f{i}").write_text("x")
    files = ap.from_files(str(tmp_path / "f*"), epochs=2, shuffle=True, seed=3)
    for pipe in (
        files.shard(3, 2, equal=equal),  # shards the files of each epoch
        ap.from_iterable(range(10)).shard(3, 2, equal=equal),  # shards elements
    ):
        expected = pipe.cardinality()
        assert isinstance(expected, int)
        with anyio.fail_after(10):
            assert len(await pipe.collect()) == expected == len(pipe)
