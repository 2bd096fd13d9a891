"""``bucket_by_length`` (golden cases ported from tf.data's bucket_by_sequence_length tests) and
``batch(padded_shapes=)`` (tf.data's ``padded_batch``)."""

from __future__ import annotations

import random
from typing import Any

import anyio
import numpy as np
import pytest

import aiopipe as ap

pytestmark = pytest.mark.anyio


async def collect(pipe: ap.Pipeline[Any]) -> list[Any]:
    with anyio.fail_after(10):
        return await pipe.collect()


async def test_bucket_one_batch_per_bucket() -> None:
    # tf's testBucket: each bucket gets exactly one batch; each batch holds one element one
    # shorter than the rest, so a batch of n rows padded to length L sums to n * L - 1.
    boundaries, batch_sizes, lengths = [10, 20, 30], [10, 8, 4, 2], [8, 13, 25, 35]
    elements = []
    for size, length in zip(batch_sizes, lengths, strict=True):
        elements.append(np.ones(length - 1, dtype=np.int32))
        elements.extend(np.ones(length, dtype=np.int32) for _ in range(size - 1))
    random.Random(0).shuffle(elements)
    pipe = ap.from_iterable(elements).bucket_by_length(len, boundaries, batch_sizes)
    batches = await collect(pipe)
    assert len(batches) == 4
    for b in batches:
        assert b.sum() == b.shape[0] * b.shape[1] - 1
    assert sorted(b.shape[0] for b in batches) == sorted(batch_sizes)
    assert sorted(b.shape[1] for b in batches) == sorted(lengths)


async def test_bucket_boundaries_and_end_order() -> None:
    # Lengths 1..10 with boundaries [3, 7, 11] and batches of 2: tf's NoExtraneousPadding case
    # without pad_to_bucket_boundary, so each batch is padded to its own longest.
    elements = [np.ones(n, dtype=np.int64) for n in range(1, 11)]
    pipe = ap.from_iterable(elements).bucket_by_length(len, [3, 7, 11], [2, 2, 2, 2])
    got = [b.tolist() for b in await collect(pipe)]
    assert got == [
        [[1, 0], [1, 1]],
        [[1, 1, 1, 0], [1, 1, 1, 1]],
        [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]],
        [[1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1, 1]],
        [[1, 1, 1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
    ]


async def test_bucket_edges_remainders_and_tuples() -> None:
    # len < 2 | 2 <= len < 5 | len >= 5; batches of 3; the rest go out at the end, in bucket
    # order, unless drop_remainder.
    lengths = [0, 1, 2, 4, 5, 9, 2, 3, 1, 7]
    elements = [(np.arange(n), n) for n in lengths]
    pipe = ap.from_iterable(elements).bucket_by_length(
        lambda e: len(e[0]), [2, 5], [3, 3, 3], padding_value=-1
    )
    got = await collect(pipe)
    assert [b[1].tolist() for b in got] == [[2, 4, 2], [0, 1, 1], [5, 9, 7], [3]]
    assert got[1][0].tolist() == [[-1], [0], [0]]
    assert got[0][0].shape == (3, 4)
    dropped = pipe = ap.from_iterable(elements).bucket_by_length(
        lambda e: len(e[0]), [2, 5], [3, 3, 3], drop_remainder=True
    )
    assert [b[1].tolist() for b in await collect(dropped)] == [[2, 4, 2], [0, 1, 1], [5, 9, 7]]


async def test_bucket_length_fn_error_reaches_consumer() -> None:
    def length(x: Any) -> int:
        return len(x)

    pipe = ap.from_iterable([np.ones(2), np.ones(3), 7]).bucket_by_length(length, [2], [5, 5])
    with anyio.fail_after(10), pytest.raises(TypeError) as info:
        await pipe.collect()
    assert any("stage 'bucket_by_length(length)' on element 2" in n for n in info.value.__notes__)


@pytest.mark.parametrize(
    ("boundaries", "sizes", "message"),
    [
        ([], [1], r"at least one boundary"),
        ([5, 5], [1, 1, 1], r"strictly increasing boundaries, got \[5, 5\]"),
        ([3, -1], [1, 1, 1], r"boundaries\[1\] must be an int >= 0, got -1"),
        ([3, 6], [1, 1], r"needs len\(boundaries\) \+ 1 = 3 batch sizes .* got 2"),
        ([3], [1, 0], r"batch_sizes\[1\]\) must be a positive int"),
    ],
)
def test_bucket_validates_at_build_time(boundaries: Any, sizes: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ap.from_iterable([]).bucket_by_length(len, boundaries, sizes)


# -- batch(padded_shapes=) -----------------------------------------------------------------------
async def test_padded_shapes_fixed_and_none() -> None:
    rows = [np.arange(n).reshape(n, 1).repeat(2, axis=1) for n in (1, 3, 2)]
    got = await collect(ap.from_iterable(rows).batch(3, padded_shapes=(5, None)))
    assert got[0].shape == (3, 5, 2)
    assert got[0][1, :, 0].tolist() == [0, 1, 2, 0, 0]
    got = await collect(ap.from_iterable(rows).batch(2, padded_shapes=(None, 2), padding_value=9))
    assert [b.shape for b in got] == [(2, 3, 2), (1, 2, 2)]
    assert got[0][0, :, 1].tolist() == [0, 9, 9]


async def test_padded_shapes_tuples_and_dicts() -> None:
    elements = [({"ids": np.arange(n)}, n) for n in (2, 4)]
    got = await collect(ap.from_iterable(elements).batch(2, padded_shapes=({"ids": (6,)}, ())))
    ids, ns = got[0]
    assert ids["ids"].tolist() == [[0, 1, 0, 0, 0, 0], [0, 1, 2, 3, 0, 0]]
    assert ns.tolist() == [2, 4]


async def test_padded_shapes_too_long_is_an_error_naming_the_shape() -> None:
    pipe = ap.from_iterable([np.ones(2), np.ones(7)]).batch(2, padded_shapes=(5,))
    with anyio.fail_after(10), pytest.raises(ValueError, match=r"shape \(7,\).*longer than"):
        await pipe.collect()


def test_padded_shapes_validated_at_build_time() -> None:
    pipe = ap.from_iterable([])
    with pytest.raises(ValueError, match=r"dimensions must be >= 0 or None"):
        pipe.batch(2, padded_shapes=(-1,))
    with pytest.raises(TypeError, match=r"needs a shape"):
        pipe.batch(2, padded_shapes="5")
    with pytest.raises(ValueError, match=r"leave out pad=True and collate="):
        pipe.batch(2, padded_shapes=(5,), pad=True)
