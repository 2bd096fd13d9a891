"""``shuffle``, ``batch(pad=)``, ``unbatch``, ``ap.collate`` and whole-pipeline reproducibility.

Everything goes through the public API, on asyncio and trio (see ``tests/conftest.py``).

What keeps a pipeline's output reproducible: a ``seed`` on every random stage (``from_files``,
``from_arrays``, ``shuffle``), maps with ``ordered=True`` (any worker count) and
``read(parallel=1)``. What breaks it: ``map(ordered=False)`` and ``read(parallel>1)``, which emit
in completion order (tf.data's ``deterministic=False``): the same elements come out, in an order
that depends on timing.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import aiopipe as ap

TIMEOUT_S = 20


async def collect(pipe: ap.Pipeline[Any]) -> list[Any]:
    with anyio.fail_after(TIMEOUT_S):
        return await pipe.collect()


def on_both_backends(make: Callable[[], ap.Pipeline[Any]]) -> list[list[Any]]:
    """The outputs of fresh runs of ``make()`` on asyncio and on trio (from sync code)."""

    async def run() -> list[Any]:
        return await collect(make())

    return [anyio.run(run, backend=backend) for backend in ("asyncio", "trio")]


def chi_square(observed: np.ndarray, expected: float) -> float:
    return float(((observed - expected) ** 2 / expected).sum())


# -- shuffle: exactly once -----------------------------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("n", "buffer_size", "min_after_dequeue"),
    [
        (0, 4, None),  # empty input
        (1, 4, 0),
        (10, 100, None),  # input shorter than the buffer: everything is drained at the end
        (10, 100, 0),
        (1000, 64, None),
        (1000, 64, 0),
        (1000, 64, 32),
        (1000, 1000, 999),  # input exactly fills the buffer
        (2500, 7, 3),
    ],
)
async def test_shuffle_emits_every_element_exactly_once(
    n: int, buffer_size: int, min_after_dequeue: int | None
) -> None:
    pipe = ap.from_iterable(range(n)).shuffle(
        buffer_size, min_after_dequeue=min_after_dequeue, seed=3
    )
    out = await collect(pipe)
    assert sorted(out) == list(range(n))


@pytest.mark.anyio
async def test_shuffle_of_one_is_the_identity() -> None:
    assert await collect(ap.from_iterable(range(300)).shuffle(1, seed=5)) == list(range(300))


@pytest.mark.anyio
@pytest.mark.parametrize(("buffer_size", "min_after_dequeue"), [(16, None), (64, 8), (50, 0)])
async def test_shuffle_never_looks_beyond_min_after_dequeue_plus_one(
    buffer_size: int, min_after_dequeue: int | None
) -> None:
    # An element is emitted only once more than min_after_dequeue are held, so while input
    # flows, output i was chosen among inputs 0..keep+i: that is all the buffer has seen.
    keep = buffer_size - 1 if min_after_dequeue is None else min_after_dequeue
    n = 2000
    out = await collect(
        ap.from_iterable(range(n)).shuffle(buffer_size, min_after_dequeue=min_after_dequeue)
    )
    assert all(x <= keep + i for i, x in enumerate(out[: n - keep]))
    in_place = sum(x == i for i, x in enumerate(out))
    if keep == 0:
        # Each element leaves as soon as it arrives: buffer_size alone does not shuffle. (Unlike
        # TF's queue, whose fill depended on the consumer's speed; here it is fixed, hence seeded.)
        assert in_place == n
    else:
        assert in_place < n // 10  # a random buffer leaves nearly nothing in place


def test_shuffle_bad_arguments_fail_at_build_time() -> None:
    pipe = ap.from_iterable(range(3))
    with pytest.raises(ValueError, match="buffer_size"):
        pipe.shuffle(0)
    with pytest.raises(ValueError, match=r"min_after_dequeue in \[0, buffer_size=8\)"):
        pipe.shuffle(8, min_after_dequeue=8)
    with pytest.raises(ValueError, match="min_after_dequeue"):
        pipe.shuffle(8, min_after_dequeue=-1)
    with pytest.raises(ValueError, match="seed"):
        pipe.shuffle(8, seed=-1)


# -- shuffle: uniform ----------------------------------------------------------------------------
@pytest.mark.anyio
async def test_shuffle_whole_input_positions_are_uniform() -> None:
    # 8 elements through a buffer that holds them all, 2000 seeds: each (element, position) cell
    # expects 250. The seeds are fixed, so the statistic is too; the bound (~p=1e-6 for 49 degrees
    # of freedom) only catches a real bias, such as a drain that favours the newest element.
    n, runs = 8, 2000
    counts = np.zeros((n, n))
    with anyio.fail_after(TIMEOUT_S):
        for seed in range(runs):
            out = await ap.from_iterable(range(n)).shuffle(n, seed=seed).collect()
            counts[out, np.arange(n)] += 1
    assert chi_square(counts, runs / n) < 120
    assert counts.min() > 150


@pytest.mark.anyio
async def test_shuffle_picks_uniformly_among_the_held_elements() -> None:
    # While input flows the buffer holds keep+1 elements; replaying the output tells which they
    # were, and the rank (by input order) of the one emitted must be uniform over 0..keep.
    n, keep = 20000, 15
    out = await collect(ap.from_iterable(range(n)).shuffle(keep + 1, seed=11))
    held = list(range(keep))
    ranks = np.zeros(keep + 1)
    for i, x in enumerate(out[: n - keep]):
        held.append(keep + i)
        held.sort()
        ranks[held.index(x)] += 1
        held.remove(x)
    assert chi_square(ranks, (n - keep) / (keep + 1)) < 50  # 15 degrees of freedom: ~p=1e-5


# -- shuffle: reproducible -----------------------------------------------------------------------
# Pinned once from the implementation: a refactor that changes the order fails here, on purpose.
# If the change is intended, say so in the CHANGELOG (users' seeded runs change) and re-pin.
# Re-pinned for issue 12: draws became a pure function of (seed, output number).
GOLDEN_16 = [15, 6, 14, 4, 5, 1, 3, 19, 23, 18, 7, 9, 13, 27, 10, 29, 11, 21, 2, 28]
GOLDEN_16_KEEP_4 = [4, 1, 6, 5, 7, 0, 8, 10, 12, 11, 2, 3, 16, 17, 15, 18, 19, 13, 9, 23]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("min_after_dequeue", "golden"), [(None, GOLDEN_16), (4, GOLDEN_16_KEEP_4)]
)
async def test_shuffle_golden_order(min_after_dequeue: int | None, golden: list[int]) -> None:
    pipe = ap.from_iterable(range(100)).shuffle(16, min_after_dequeue=min_after_dequeue, seed=1234)
    first = await collect(pipe)
    assert first[:20] == golden
    assert await collect(pipe) == first  # a second run of the same pipeline


def test_shuffle_same_seed_same_order_on_asyncio_and_trio() -> None:
    on_asyncio, on_trio = on_both_backends(
        lambda: ap.from_iterable(range(5000)).shuffle(100, min_after_dequeue=30, seed=77)
    )
    assert on_asyncio == on_trio
    assert on_asyncio[:20] != list(range(20))


@pytest.mark.anyio
async def test_shuffle_different_seeds_differ() -> None:
    outs = [await collect(ap.from_iterable(range(200)).shuffle(50, seed=s)) for s in range(6)]
    assert len({tuple(o) for o in outs}) == len(outs)


@pytest.mark.anyio
async def test_shuffle_chunking_upstream_does_not_change_the_order() -> None:
    # A filter that keeps everything re-chunks the stream; the draws are per element, not chunk.
    base = ap.from_iterable(range(3000))
    plain = await collect(base.shuffle(64, seed=9))
    rechunked = await collect(base.filter(lambda x: True, buffer=3).shuffle(64, seed=9))
    assert rechunked == plain


async def jittery(x: int) -> int:
    # A pseudo-random delay of 0-1 ms that differs per element, so that workers finish out of order.
    await anyio.sleep(random.Random(x).random() * 0.001)
    return x * 10


@pytest.mark.anyio
@pytest.mark.parametrize("workers", [2, 4, 8])
async def test_shuffle_after_ordered_map_does_not_depend_on_worker_count(workers: int) -> None:
    base = ap.from_iterable(range(300))
    one = await collect(base.map(jittery).shuffle(64, seed=21))
    many = await collect(base.map(jittery, workers=workers, ordered=True).shuffle(64, seed=21))
    assert many == one


@pytest.mark.anyio
async def test_shuffle_after_unordered_map_keeps_the_elements_not_the_order() -> None:
    # ordered=False emits in completion order, so the shuffle sees an input order that depends on
    # timing and its output is no longer reproducible. Only the multiset is guaranteed, and that
    # is all this test claims: asserting a different order would be asserting a race.
    base = ap.from_iterable(range(300))
    one = await collect(base.map(jittery).shuffle(64, seed=21))
    loose = await collect(base.map(jittery, workers=4, ordered=False).shuffle(64, seed=21))
    assert Counter(loose) == Counter(one)


# -- batch(pad=True): dynamic padding ------------------------------------------------------------
def ragged(lengths: list[int], dtype: type = np.int32) -> list[np.ndarray]:
    return [np.arange(1, k + 1, dtype=dtype) for k in lengths]


@pytest.mark.anyio
async def test_pad_variable_length_arrays_per_batch() -> None:
    pipe = ap.from_iterable(ragged([1, 3, 2, 5, 4])).batch(3, pad=True, padding_value=-1)
    first, second = await collect(pipe)
    np.testing.assert_array_equal(first, [[1, -1, -1], [1, 2, 3], [1, 2, -1]])
    # Padded to the longest in *its* batch (dynamic_pad), not in the whole input.
    np.testing.assert_array_equal(second, [[1, 2, 3, 4, 5], [1, 2, 3, 4, -1]])
    assert first.dtype == np.int32


@pytest.mark.anyio
async def test_pad_every_axis_of_2d_arrays_default_zero() -> None:
    items = [np.ones((2, 3)), np.full((4, 1), 2.0)]
    (batch,) = await collect(ap.from_iterable(items).batch(2, pad=True))
    assert batch.shape == (2, 4, 3)
    np.testing.assert_array_equal(batch[0, :2], np.ones((2, 3)))
    assert not batch[0, 2:].any()
    np.testing.assert_array_equal(batch[1, :, 0], [2, 2, 2, 2])
    assert not batch[1, :, 1:].any()


@pytest.mark.anyio
async def test_pad_inside_tuples() -> None:
    items = [(a, i, f"s{i}") for i, a in enumerate(ragged([2, 4, 1]))]
    (batch,) = await collect(ap.from_iterable(items).batch(3, pad=True, padding_value=9))
    tokens, labels, names = batch
    np.testing.assert_array_equal(tokens, [[1, 2, 9, 9], [1, 2, 3, 4], [1, 9, 9, 9]])
    np.testing.assert_array_equal(labels, [0, 1, 2])
    assert names == ["s0", "s1", "s2"]


@pytest.mark.anyio
async def test_pad_inside_dicts_each_field_to_its_own_max() -> None:
    items = [
        {"ids": a, "mask": np.ones((k, k), bool), "n": k}
        for k, a in zip([3, 1], ragged([3, 1]), strict=True)
    ]
    (batch,) = await collect(ap.from_iterable(items).batch(2, pad=True))
    assert set(batch) == {"ids", "mask", "n"}
    np.testing.assert_array_equal(batch["ids"], [[1, 2, 3], [1, 0, 0]])
    assert batch["mask"].shape == (2, 3, 3)
    assert batch["mask"].dtype == np.bool_
    assert batch["mask"].sum() == 9 + 1  # padding is False
    np.testing.assert_array_equal(batch["n"], [3, 1])


@pytest.mark.anyio
async def test_pad_with_drop_remainder() -> None:
    pipe = ap.from_iterable(ragged([1, 2, 3, 4, 5, 6, 7])).batch(3, pad=True, drop_remainder=True)
    batches = await collect(pipe)
    assert [b.shape for b in batches] == [(3, 3), (3, 6)]
    kept = await collect(ap.from_iterable(ragged([1, 2, 3, 4, 5, 6, 7])).batch(3, pad=True))
    assert [b.shape for b in kept] == [(3, 3), (3, 6), (1, 7)]


@pytest.mark.anyio
async def test_without_pad_ragged_arrays_fail_naming_field_and_shapes() -> None:
    items = [(a, 0) for a in ragged([2, 3])]
    with anyio.fail_after(TIMEOUT_S), pytest.raises(ValueError) as info:
        await ap.from_iterable(items).batch(2).collect()
    message = str(info.value)
    assert "field [0]" in message
    assert "(2,)" in message
    assert "(3,)" in message
    assert "pad=True" in message


# -- ap.collate ----------------------------------------------------------------------------------
def test_collate_mismatched_dict_keys_name_the_field_and_keys() -> None:
    items = [{"x": {"a": 1, "b": 2}}, {"x": {"a": 1, "c": 2}}]
    with pytest.raises(ValueError, match=r"field \['x'\]") as info:
        ap.collate(items)
    assert "['a', 'b']" in str(info.value)
    assert "['a', 'c']" in str(info.value)


def test_collate_mismatched_shapes_name_the_field_and_shapes() -> None:
    items = [{"img": np.zeros((2, 2))}, {"img": np.zeros((3, 2))}]
    with pytest.raises(ValueError, match=r"field \['img'\]") as info:
        ap.collate(items)
    assert "(2, 2)" in str(info.value)
    assert "(3, 2)" in str(info.value)


def test_collate_mismatched_tuple_lengths_and_types() -> None:
    with pytest.raises(ValueError, match="length 2"):
        ap.collate([(1, 2), (1, 2, 3)])
    with pytest.raises(ValueError, match=r"field \[1\]"):
        ap.collate([(1, np.zeros(2)), (1, 5)])
    with pytest.raises(ValueError, match="mix numbers with other types"):
        ap.collate([1, "a"])
    with pytest.raises(ValueError, match="at least one"):
        ap.collate([])


def test_collate_numbers_follow_numpy_promotion() -> None:
    mixed = ap.collate([1, 2.5, 3])
    assert mixed.dtype.kind == "f"
    np.testing.assert_array_equal(mixed, [1.0, 2.5, 3.0])
    assert ap.collate([1, 2]).dtype.kind == "i"
    assert ap.collate([np.float32(1), np.float32(2)]).dtype == np.float32


def test_collate_bools_stay_bools() -> None:
    out = ap.collate([True, False, True])
    assert out.dtype == np.bool_
    assert out.tolist() == [True, False, True]


def test_collate_str_and_bytes_become_lists() -> None:
    assert ap.collate(["a", "b"]) == ["a", "b"]
    assert ap.collate([b"x", b"y"]) == [b"x", b"y"]
    out = ap.collate([("a", 1.0), ("b", 2.0)])
    assert out[0] == ["a", "b"]
    np.testing.assert_array_equal(out[1], [1.0, 2.0])


def test_collate_same_shape_arrays_stack_and_lists_become_tuples() -> None:
    out = ap.collate([[np.zeros(3), 1], [np.ones(3), 2]])
    assert isinstance(out, tuple)
    assert out[0].shape == (2, 3)


# -- unbatch -------------------------------------------------------------------------------------
def assert_same_elements(got: list[Any], want: list[Any]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if isinstance(w, dict):
            assert set(g) == set(w)
            assert_same_elements([g[k] for k in w], list(w.values()))
        elif isinstance(w, tuple):
            assert isinstance(g, tuple)
            assert_same_elements(list(g), list(w))
        else:
            np.testing.assert_array_equal(g, w)


ROWS = 10  # batches of 4: two full ones and a final one of 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda i: np.full((2, 3), i, dtype=np.float32), id="arrays"),
        pytest.param(lambda i: (np.arange(3) + i, i, f"s{i}"), id="tuples"),
        pytest.param(lambda i: {"x": np.arange(2) * i, "y": float(i), "tag": f"t{i}"}, id="dicts"),
    ],
)
async def test_unbatch_is_the_inverse_of_batch(make: Callable[[int], Any]) -> None:
    items = [make(i) for i in range(ROWS)]
    batched = await collect(ap.from_iterable(items).batch(4))
    assert len(batched) == 3
    assert_same_elements(await collect(ap.from_iterable(items).batch(4).unbatch()), items)


@pytest.mark.anyio
async def test_unbatch_keeps_dtypes_and_shapes() -> None:
    items = [(np.full(3, i, dtype=np.int16), i) for i in range(5)]
    out = await collect(ap.from_iterable(items).batch(2).unbatch())
    assert [x[0].dtype for x in out] == [np.dtype(np.int16)] * 5
    assert [x[0].shape for x in out] == [(3,)] * 5


# -- the whole pipeline --------------------------------------------------------------------------
FILES, LINES = 6, 40


@pytest.fixture
def csv_shards(tmp_path: Path) -> str:
    for f in range(FILES):
        rows = [f"{f},{i},{f * 1000 + i * 0.5}" for i in range(LINES)]
        (tmp_path / f"shard-{f}.csv").write_text("file,line,value\n" + "\n".join(rows) + "\n")
    return str(tmp_path / "shard-*.csv")


def csv_pipeline(pattern: str, *, parallel: int = 1, workers: int = 1) -> ap.Pipeline[Any]:
    return (
        ap.from_files(pattern, epochs=2, shuffle=True, seed=1)
        .read(ap.readers.TextLines(skip_header_lines=1), parallel=parallel)
        .map(ap.decode.csv([0, 0, 0.0]), workers=workers)
        .shuffle(64, min_after_dequeue=16, seed=2)
        .batch(16)
    )


def rows_of(batches: list[Any]) -> list[tuple[int, int, float]]:
    return [tuple(row) for b in batches for row in zip(*(c.tolist() for c in b), strict=True)]


def assert_same_batches(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for cx, cy in zip(x, y, strict=True):
            np.testing.assert_array_equal(cx, cy)


@pytest.mark.anyio
async def test_seeded_pipeline_gives_identical_batches_twice(csv_shards: str) -> None:
    first = await collect(csv_pipeline(csv_shards))
    second = await collect(csv_pipeline(csv_shards))
    assert_same_batches(first, second)
    assert len(rows_of(first)) == 2 * FILES * LINES
    # Each epoch is every line once; the two epochs are mixed only across their boundary.
    assert Counter(rows_of(first)) == Counter({r: 2 for r in rows_of(first)})
    assert rows_of(first)[:LINES] != sorted(rows_of(first)[:LINES])  # it really shuffled


@pytest.mark.anyio
async def test_seeded_pipeline_does_not_depend_on_ordered_map_workers(csv_shards: str) -> None:
    one = await collect(csv_pipeline(csv_shards))
    four = await collect(csv_pipeline(csv_shards, workers=4))
    assert_same_batches(one, four)


def test_seeded_pipeline_is_identical_on_asyncio_and_trio(csv_shards: str) -> None:
    on_asyncio, on_trio = on_both_backends(lambda: csv_pipeline(csv_shards))
    assert_same_batches(on_asyncio, on_trio)


@pytest.mark.anyio
async def test_parallel_read_keeps_the_elements_not_the_order(csv_shards: str) -> None:
    # read(parallel=4) interleaves the open files' records in the order they arrive (like
    # tf.data's deterministic=False), so the batches may differ from run to run; the rows do not.
    # Only the multiset is asserted: the order is a race, and a test of it would be flaky.
    serial = await collect(csv_pipeline(csv_shards))
    parallel = await collect(csv_pipeline(csv_shards, parallel=4))
    assert Counter(rows_of(parallel)) == Counter(rows_of(serial))
