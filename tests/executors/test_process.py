"""map(executor="process"): order, completeness, numpy through shared memory, errors."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import aiopipe as ap
from aiopipe.executors import ProcessExecutor, RemoteError, WorkerProcessError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _process_fns as fns

pytestmark = pytest.mark.anyio
TIMEOUT_S = 60  # worker start-up on a loaded 2-core machine


async def collect(pipe: ap.Pipeline[Any]) -> list[Any]:
    with anyio.fail_after(TIMEOUT_S):
        return await pipe.collect()


# -- order and completeness ----------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 3])
async def test_ordered_output_is_complete_and_in_order(workers: int) -> None:
    pipe = ap.from_iterable(range(300)).map(fns.jittery, workers=workers, executor="process")
    assert await collect(pipe) == [x + 1 for x in range(300)]


async def test_unordered_output_is_complete() -> None:
    pipe = ap.from_iterable(range(300)).map(
        fns.jittery, workers=2, ordered=False, executor="process"
    )
    assert sorted(await collect(pipe)) == [x + 1 for x in range(300)]


async def test_workers_are_persistent_processes_other_than_ours() -> None:
    import os

    pids = await collect(
        ap.from_iterable(range(400)).map(fns.pid_of, workers=2, executor="process")
    )
    assert os.getpid() not in pids
    assert 1 <= len(set(pids)) <= 2  # one process per worker for the whole run, not per call


async def test_same_outputs_on_every_run_and_backend_with_spawn() -> None:
    pipe = ap.from_iterable(range(60)).map(
        fns.square, workers=2, executor=ProcessExecutor(start_method="spawn")
    )
    assert await collect(pipe) == await collect(pipe) == [x * x for x in range(60)]


def test_process_executor_validates_its_settings() -> None:
    with pytest.raises(ValueError, match="fork is not safe"):
        ProcessExecutor(start_method="fork")
    with pytest.raises(ValueError, match=r"shared_memory_threshold must be an int >= 0, got -1"):
        ProcessExecutor(shared_memory_threshold=-1)
    with pytest.raises(ValueError, match="picklable fn"):
        ap.from_iterable([1]).map(lambda x: x, executor=ProcessExecutor())


# -- numpy through shared memory -----------------------------------------------------------------


async def test_big_arrays_come_back_as_views_of_shared_memory_and_stay_valid() -> None:
    # Held until the end while later calls reuse segments: a segment in use is never rewritten.
    out = await collect(
        ap.from_iterable(range(120)).map(fns.big_array, workers=2, executor="process")
    )
    for i, a in enumerate(out):
        np.testing.assert_array_equal(a, fns.big_array(i))
        assert a.dtype == np.float32
        assert a.shape == (50, 1000)
        assert not a.flags.owndata  # a view of the segment, not a pickled copy
        a += 1  # ours to change


@pytest.mark.parametrize(
    "value",
    [
        np.arange(100_000, dtype=np.int64).reshape(100, 1000),  # big, C order
        np.asfortranarray(np.arange(60_000, dtype=np.float64).reshape(300, 200)),  # F order
        np.arange(200_000, dtype=np.float32)[::3],  # non-contiguous: pickled in-band
        np.array(3.5),  # 0-d
        np.arange(10, dtype=np.uint8),  # small: in the pickle
        np.array([{"a": 1}, None, "x"] * 10_000, dtype=object),  # objects: pickled
        np.zeros(30_000, dtype=[("x", np.int32), ("y", np.float64)]),  # structured
        np.zeros((0, 70_000), dtype=np.float32),  # empty
    ],
    ids=["c-order", "f-order", "strided", "0-d", "small", "object", "structured", "empty"],
)
async def test_arrays_round_trip_in_both_directions(value: np.ndarray) -> None:
    out = await collect(
        ap.from_iterable([value, value]).map(fns.identity, workers=2, executor="process")
    )
    for got in out:
        assert got.dtype == value.dtype
        assert got.shape == value.shape
        if value.dtype == object:
            assert got.tolist() == value.tolist()
        else:
            np.testing.assert_array_equal(got, value)


async def test_arrays_inside_structures_and_inputs_reused_many_times() -> None:
    items = [np.full((400, 400), i, dtype=np.float32) for i in range(40)]
    out = await collect(
        ap.from_iterable(items).map(fns.as_is_plus_one, workers=2, executor="process")
    )
    assert [float(a[0, 0]) for a in out] == [i + 1.0 for i in range(40)]
    both = await collect(
        ap.from_iterable([{"x": items[3], "y": [items[4], "s"]}]).map(
            fns.identity, executor="process", workers=2
        )
    )
    np.testing.assert_array_equal(both[0]["x"], items[3])
    np.testing.assert_array_equal(both[0]["y"][0], items[4])
    assert both[0]["y"][1] == "s"


async def test_without_shared_memory_arrays_are_pickled() -> None:
    ex = ProcessExecutor(max_shared_bytes=0)
    out = await collect(ap.from_iterable(range(6)).map(fns.big_array, workers=2, executor=ex))
    for i, a in enumerate(out):
        np.testing.assert_array_equal(a, fns.big_array(i))


# -- errors --------------------------------------------------------------------------------------


async def run_to_error(fn: Any, n: int = 20) -> BaseException:
    with pytest.raises(Exception) as info:
        await collect(ap.from_iterable(range(n)).map(fn, workers=2, executor="process"))
    return info.value


async def test_plain_error_keeps_type_message_and_names_the_element() -> None:
    exc = await run_to_error(fns.fail_at_5)
    assert type(exc) is ValueError
    assert str(exc) == "bad element 5"
    assert "aiopipe: raised in stage 'map(fail_at_5)' on element 5" in exc.__notes__
    assert "raise ValueError" in str(exc.__cause__)  # the worker's traceback


async def test_error_whose_init_needs_arguments_keeps_type_message_attrs_and_notes() -> None:
    exc = await run_to_error(fns.fail_needs_args)
    assert type(exc) is fns.NeedsArgs
    assert str(exc) == "code 42 at decode"
    assert (exc.code, exc.where) == (42, "decode")
    assert exc.__notes__ == [
        "from the worker",
        "aiopipe: raised in stage 'map(fail_needs_args)' on element 3",
    ]
    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(fns.NeedsArgs(1, "x")))  # what used to reach the user


async def test_unpicklable_error_keeps_type_and_message() -> None:
    exc = await run_to_error(fns.fail_holds_lock)
    assert type(exc) is fns.HoldsLock
    assert str(exc) == "cannot pickle me"
    assert not hasattr(exc, "lock")
    assert "on element 2" in exc.__notes__[-1]


async def test_error_of_a_type_the_parent_cannot_find_is_a_same_named_remote_error() -> None:
    exc = await run_to_error(fns.fail_local_type)
    assert isinstance(exc, RemoteError)
    assert type(exc).__name__ == "Local"
    assert str(exc) == "made inside the function"
    assert "raise Local" in str(exc.__cause__)


async def test_worker_killed_mid_call_is_a_clear_error_naming_the_element() -> None:
    exc = await run_to_error(fns.die_at_6)
    assert isinstance(exc, WorkerProcessError)
    assert "was killed by SIGKILL" in str(exc)
    assert "map(die_at_6)" in str(exc)
    assert "aiopipe: raised in stage 'map(die_at_6)' on element 6" in exc.__notes__


async def test_error_reaches_an_async_for_consumer_after_the_good_elements() -> None:
    got: list[int] = []
    with anyio.fail_after(TIMEOUT_S), pytest.raises(ValueError, match="bad element 5"):
        async with (
            ap.from_iterable(range(50)).map(fns.fail_at_5, workers=2, executor="process").open()
        ) as run:
            async for x in run:
                got.append(x)
    assert got == list(range(len(got)))
    assert len(got) <= 5


def test_executors_package_exports() -> None:
    assert isinstance(ap.executors.__all__, tuple)
    assert {"ProcessExecutor", "RemoteError", "WorkerProcessError"} <= set(ap.executors.__all__)
    assert "executors" in ap.__all__
    assert issubclass(WorkerProcessError, ap.AiopipeError)


async def test_unpicklable_result_fails_its_element() -> None:
    exc = await run_to_error(fns.returns_lock_at_4)
    assert isinstance(exc, TypeError)
    assert "cannot be pickled back to the parent" in exc.__notes__[0]
    assert "aiopipe: raised in stage 'map(returns_lock_at_4)' on element 4" in exc.__notes__


async def test_unpicklable_input_fails_its_element() -> None:
    import threading

    items: list[Any] = [0, 1, 2, threading.Lock(), 4]
    with pytest.raises(TypeError) as info:
        await collect(ap.from_iterable(items).map(fns.identity, workers=2, executor="process"))
    assert "cannot be pickled for a worker process" in info.value.__notes__[0]
    assert "aiopipe: raised in stage 'map(identity)' on element 3" in info.value.__notes__
