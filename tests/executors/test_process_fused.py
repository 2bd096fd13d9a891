"""map(executor="process") then batch: whole batches of a worker's rows without a copy.

A worker writes a slice's numpy results into one shared-memory array; a batch stage right after
the map takes whole batches of those rows as views (see aiopipe/_core/processes/_fused.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import aiopipe as ap
from aiopipe._core.processes._shm import PREFIX, Codec
from aiopipe.testing import check_resume

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _process_fns as fns

pytestmark = pytest.mark.anyio
TIMEOUT_S = 60  # worker start-up on a loaded 2-core machine


async def collect(pipe: ap.Pipeline[Any]) -> list[Any]:
    with anyio.fail_after(TIMEOUT_S):
        return await pipe.collect()


def expected_batches(n: int, size: int) -> list[np.ndarray]:
    return [
        np.stack([fns.image_like(i) for i in range(b, min(b + size, n))]) for b in range(0, n, size)
    ]


def is_view(batch: np.ndarray) -> bool:
    return not batch.flags.owndata


async def test_batches_right_after_a_process_map_are_views_equal_to_np_stack() -> None:
    pipe = ap.from_iterable(range(203)).map(fns.image_like, workers=2, executor="process")
    got = await collect(pipe.batch(16))
    want = expected_batches(203, 16)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    # The map cuts its slices on batch boundaries: every batch, the last short one too, is one
    # slice's rows, taken without a copy (and writable, as np.stack's result is).
    assert all(is_view(b) for b in got)
    assert all(b.flags.writeable and b.flags.c_contiguous for b in got)
    got[0][:] = -1  # writing into one batch changes nothing else
    np.testing.assert_array_equal(got[1], want[1])


async def test_batches_stay_valid_after_the_run_and_while_later_ones_arrive() -> None:
    pipe = ap.from_iterable(range(120)).map(fns.image_like, workers=2, executor="process")
    kept = []
    with anyio.fail_after(TIMEOUT_S):
        async with pipe.batch(8).open() as batches:
            async for batch in batches:
                kept.append(batch)  # held: their segments are not reused under them
    for g, w in zip(kept, expected_batches(120, 8), strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("between", ["prefetch", "filter"])
async def test_a_stage_between_map_and_batch_gets_fresh_batches(between: str) -> None:
    # The rows went through another stage, which could keep them: the batch must not alias.
    pipe = ap.from_iterable(range(64)).map(fns.image_like, workers=2, executor="process")
    pipe = pipe.prefetch(4) if between == "prefetch" else pipe.filter(lambda a: True)
    got = await collect(pipe.batch(16))
    for g, w in zip(got, expected_batches(64, 16), strict=True):
        np.testing.assert_array_equal(g, w)
        assert not is_view(g)


async def test_custom_collate_and_unordered_maps_are_unchanged() -> None:
    base = ap.from_iterable(range(48)).map(fns.image_like, workers=2, executor="process")
    custom = await collect(base.batch(16, collate=lambda xs: np.stack(xs) * 2))
    for g, w in zip(custom, expected_batches(48, 16), strict=True):
        np.testing.assert_array_equal(g, w * 2)
    unordered = ap.from_iterable(range(48)).map(
        fns.image_like, workers=2, executor="process", ordered=False
    )
    rows = np.concatenate(await collect(unordered.batch(16)))
    assert sorted(rows[:, 0, 0, 0].tolist()) == list(range(48))


async def test_results_of_another_shape_mid_slice_still_arrive_in_order() -> None:
    pipe = ap.from_iterable(range(40)).map(fns.ragged, workers=2, executor="process")
    got = await collect(pipe.batch(8, pad=True, padding_value=-1))
    rows = [r for b in got for r in b.tolist()]
    want = [[i] * (4 if i % 5 == 3 else 3) for i in range(40)]
    assert [r[: len(w)] for r, w in zip(rows, want, strict=True)] == want
    plain = await collect(ap.from_iterable(range(40)).map(fns.ragged, executor="process"))
    assert [a.tolist() for a in plain] == want


async def test_zero_d_results_stay_zero_d_arrays() -> None:
    got = await collect(ap.from_iterable(range(20)).map(fns.zero_d, workers=2, executor="process"))
    assert all(type(a) is np.ndarray and a.ndim == 0 for a in got)
    assert [int(a) for a in got] == [2 * i for i in range(20)]


async def test_an_error_mid_batch_names_its_element_after_the_rows_before_it() -> None:
    pipe = ap.from_iterable(range(40)).map(fns.image_unless_13, workers=2, executor="process")
    got: list[np.ndarray] = []
    with anyio.fail_after(TIMEOUT_S), pytest.raises(ValueError, match="bad element 13") as info:
        async with pipe.batch(8).open() as batches:
            async for batch in batches:
                got.append(batch)
    assert any("element 13" in note for note in info.value.__notes__)
    np.testing.assert_array_equal(got[0], expected_batches(8, 8)[0])


@pytest.mark.parametrize("source", ["from_iterable", "batches"])
async def test_resume_is_exact_when_slices_join_input_chunks(source: str) -> None:
    # The first input chunks are shorter than a batch: the map joins them into one slice and
    # sends each chunk's rows with that chunk's position (a batch stage's position names the
    # batches of its own chunk only).
    def make() -> ap.Pipeline[Any]:
        if source == "from_iterable":
            pipe = ap.from_iterable(range(150)).map(fns.image_like, workers=2, executor="process")
        else:
            pipe = ap.from_iterable(range(300)).batch(2)
            pipe = pipe.map(fns.image_of_first, workers=2, executor="process")
        return pipe.batch(10)

    with anyio.fail_after(4 * TIMEOUT_S):
        await check_resume(make, cuts=[0, 1, 3, 7, 14, 15])


async def test_resume_is_exact_through_iter_sync_too() -> None:
    def make() -> ap.Pipeline[Any]:
        return ap.from_arrays(np.arange(90)).map(fns.image_like, executor="process").batch(16)

    with anyio.fail_after(4 * TIMEOUT_S):
        await check_resume(make, cuts=[0, 2, 5], via="sync")


# -- the codec: a result made in shared memory is sent from there ------------------------------


def _round_trip(sender: Codec, receiver: Codec, obj: Any) -> Any:
    pieces, fds = sender.encode(obj)
    data = b"".join(bytes(p) for p in pieces)
    hlen, _ = PREFIX.unpack_from(data)
    head, body = data[PREFIX.size : PREFIX.size + hlen], data[PREFIX.size + hlen :]
    return receiver.decode(head, body, [os.dup(fd) for fd in fds]), fds


def test_a_reserved_room_is_sent_in_place_and_reused_when_not() -> None:
    sender, receiver = Codec(1024, 1 << 30), Codec(1024, 1 << 30)
    try:
        room = sender.reserve(8 * 1000 * 4)
        assert room is not None
        made = np.frombuffer(room, np.float32).reshape(8, 1000)
        made[:] = np.arange(8000, dtype=np.float32).reshape(8, 1000)
        got, fds = _round_trip(sender, receiver, ("rows", made, 0.0))
        np.testing.assert_array_equal(got[1], np.arange(8000, dtype=np.float32).reshape(8, 1000))
        assert len(fds) == 1  # the room's segment, new to the receiver
        del made, room, got
        # A room the message does not use (another array is sent) goes back to the free ones;
        # its descriptor goes with the first message that uses it.
        room = sender.reserve(4000)
        assert room is not None
        other = np.ones(2000, np.float32)
        got, fds = _round_trip(sender, receiver, other)
        np.testing.assert_array_equal(got, other)
        del room, got
    finally:
        sender.close()
        receiver.close()
