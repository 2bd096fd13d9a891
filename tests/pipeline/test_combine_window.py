"""``window`` golden tests: tf.data's documented examples and the expectations of its
window_test (``testWindowDataset``'s full and partial window counts), ported."""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np
import pytest

import aiopipe as ap

pytestmark = pytest.mark.anyio


async def collect(pipe: ap.Pipeline[Any]) -> list[Any]:
    with anyio.fail_after(10):
        return await pipe.collect()


async def windows(n: int, size: int, **kw: Any) -> list[list[int]]:
    return await collect(ap.from_iterable(range(n)).window(size, **kw))


async def test_window_documented_examples() -> None:
    assert await windows(7, 3, shift=2) == [[0, 1, 2], [2, 3, 4], [4, 5, 6], [6]]
    assert await windows(7, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert await windows(7, 3, shift=1, drop_remainder=True) == [
        [0, 1, 2],
        [1, 2, 3],
        [2, 3, 4],
        [3, 4, 5],
        [4, 5, 6],
    ]
    assert await windows(7, 3, shift=1, stride=2, drop_remainder=True) == [
        [0, 2, 4],
        [1, 3, 5],
        [2, 4, 6],
    ]
    assert await windows(7, 3, shift=1, stride=2) == [
        [0, 2, 4],
        [1, 3, 5],
        [2, 4, 6],
        [3, 5],
        [4, 6],
        [5],
        [6],
    ]


def expected_windows(
    count: int, size: int, shift: int, stride: int, drop_remainder: bool
) -> list[list[int]]:
    """tf.data's window_test expectations: element ``k`` of the input is ``k % 7`` (seven
    elements repeated ``count`` times)."""
    n = count * 7
    full = max(0, (n - ((size - 1) * stride + 1)) // shift + 1)
    out = [[(i * shift + j * stride) % 7 for j in range(size)] for i in range(full)]
    if not drop_remainder:
        partial = n // shift + (n % shift > 0) - full
        for i in range(partial):
            start = (full + i) * shift
            remaining = n - start
            m = remaining // stride + (remaining % stride > 0)
            out.append([(start + j * stride) % 7 for j in range(m)])
    return out


CASES = [
    (20, size, shift, stride, drop)
    for size in (10, 14, 17)
    for shift in (7, 14)
    for stride in (1, 2, 6)
    for drop in (True, False)
] + [(count, 10, 4, 1, drop) for count in (0, 1) for drop in (True, False)]


@pytest.mark.parametrize(("count", "size", "shift", "stride", "drop"), CASES)
async def test_window_matches_tf_data(
    count: int, size: int, shift: int, stride: int, drop: bool
) -> None:
    pipe = ap.from_iterable(range(7)).repeat(count)
    got = await collect(pipe.window(size, shift=shift, stride=stride, drop_remainder=drop))
    assert got == expected_windows(count, size, shift, stride, drop)


async def test_window_drop_remainder_then_batch() -> None:
    # tf.data's testDropRemainderOutput: range(100).window(30, drop_remainder=True), batched.
    windows = ap.from_iterable(range(100)).window(30, drop_remainder=True)
    got = await collect(windows.map(np.array).batch(4))
    assert [b.tolist() for b in got] == [[[y + 30 * x for y in range(30)] for x in range(3)]]


async def test_window_long_input_small_chunks_and_skipping_shift() -> None:
    n = 5000
    got = await collect(ap.from_arrays(np.arange(n)).map(int).window(3, shift=1000, stride=4))
    assert got == [[s, s + 4, s + 8] for s in range(0, n, 1000)]
    got = await collect(ap.from_iterable(range(n)).window(5, shift=1))
    assert got == [list(range(s, min(s + 5, n))) for s in range(n)]


async def test_window_error_upstream_reaches_consumer() -> None:
    def fn(x: int) -> int:
        if x == 11:
            raise KeyError(x)
        return x

    with anyio.fail_after(10), pytest.raises(KeyError) as info:
        await ap.from_iterable(range(20)).map(fn).window(4).collect()
    assert any("on element 11" in n for n in info.value.__notes__)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"size": 0}, r"window\(size\) must be a positive int \(>= 1\), got 0"),
        ({"size": 3, "shift": 0}, r"window\(shift=\) must be a positive int \(>= 1\), got 0"),
        ({"size": 3, "stride": 0}, r"window\(stride=\) must be a positive int \(>= 1\), got 0"),
        ({"size": 2.5}, r"window\(size\) must be a positive int"),
    ],
)
def test_window_validates_at_build_time(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ap.from_iterable(range(3)).window(**kw)
