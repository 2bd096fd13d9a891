"""RayExecutor and RayActorExecutor against a real local Ray (started once for this module)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

ray = pytest.importorskip("ray")

import aiopipe as ap  # noqa: E402
from aiopipe.executors import RayActorExecutor, RayExecutor  # noqa: E402
from aiopipe.executors._portable import RemoteTraceback  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Ray's workers cannot import this test module by name: send its functions and classes by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def executor() -> Iterator[RayExecutor]:
    """The module's one local Ray, started and owned by an executor (2 CPUs on this machine)."""
    if os.environ.get("RAY_ADDRESS"):
        pytest.skip("RAY_ADDRESS is set: these tests start their own local Ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    assert not ray.is_initialized()
    ex = RayExecutor()
    assert ray.is_initialized()
    yield ex
    ex.close()
    assert not ray.is_initialized(), "the executor that started Ray must stop it"


def square(x: int) -> int:
    return x * x


class CodeError(Exception):
    """An exception whose __init__ does not take its message: plain pickle cannot rebuild it."""

    def __init__(self, path: str, code: int) -> None:
        super().__init__(f"{path} failed with code {code}")
        self.path = path
        self.code = code


class LockedError(Exception):
    """An exception holding something that cannot be pickled at all."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def raising_at(n: int, make: Callable[[], BaseException]) -> Callable[[int], int]:
    def fn(x: int) -> int:
        if x == n:
            raise make()
        return x

    return fn


async def run_all(pipe: ap.Pipeline[Any]) -> list[Any]:
    with anyio.fail_after(60):
        return await pipe.collect()


@pytest.mark.anyio
async def test_results_in_order_and_complete(executor: RayExecutor) -> None:
    pipe = ap.from_iterable(range(300)).map(square, workers=2, executor=executor)
    assert await run_all(pipe) == [x * x for x in range(300)]


@pytest.mark.anyio
async def test_unordered_gives_every_result_once(executor: RayExecutor) -> None:
    pipe = ap.from_iterable(range(300)).map(square, workers=3, ordered=False, executor=executor)
    assert sorted(await run_all(pipe)) == [x * x for x in range(300)]


@pytest.mark.anyio
async def test_plain_error_is_the_original_type_with_the_note(executor: RayExecutor) -> None:
    fn = raising_at(137, lambda: KeyError("no label for 137"))
    got: list[int] = []
    with anyio.fail_after(60), pytest.raises(KeyError) as info:
        async with ap.from_iterable(range(300)).map(fn, workers=2, executor=executor).open() as run:
            async for x in run:
                got.append(x)
    assert info.value.args == ("no label for 137",)
    assert "aiopipe: raised in stage 'map(fn)' on element 137" in info.value.__notes__
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "no label for 137" in str(info.value.__cause__)
    assert got == list(range(len(got)))  # in order, nothing after the failure
    assert len(got) <= 137


@pytest.mark.anyio
async def test_exception_with_custom_init_survives(executor: RayExecutor) -> None:
    fn = raising_at(5, lambda: CodeError("/data/x.rec", 7))
    with anyio.fail_after(60), pytest.raises(CodeError) as info:
        await ap.from_iterable(range(20)).map(fn, workers=2, executor=executor).collect()
    assert str(info.value) == "/data/x.rec failed with code 7"
    assert (info.value.path, info.value.code) == ("/data/x.rec", 7)
    assert "aiopipe: raised in stage 'map(fn)' on element 5" in info.value.__notes__


@pytest.mark.anyio
async def test_unpicklable_exception_keeps_type_and_message(executor: RayExecutor) -> None:
    fn = raising_at(3, lambda: LockedError("held a lock"))
    with anyio.fail_after(60), pytest.raises(LockedError) as info:
        await ap.from_iterable(range(20)).map(fn, executor=executor).collect()
    assert str(info.value) == "held a lock"
    assert not hasattr(info.value, "lock")  # the part that cannot travel stays behind
    assert "aiopipe: raised in stage 'map(fn)' on element 3" in info.value.__notes__


@pytest.mark.anyio
async def test_aiopipe_errors_survive(executor: RayExecutor) -> None:
    fn = raising_at(2, lambda: ap.CorruptRecordError("bad crc", path="/d/a.rec", offset=96))
    with anyio.fail_after(60), pytest.raises(ap.CorruptRecordError) as info:
        await ap.from_iterable(range(10)).map(fn, executor=executor).collect()
    assert (str(info.value), info.value.path, info.value.offset) == ("bad crc", "/d/a.rec", 96)


def marking(root: str) -> Callable[[int], int]:
    """A slow remote call that leaves marker files: started, stopped (interrupted), finished."""

    def slow(x: int) -> int:
        import time

        Path(root, f"started-{x}").touch()
        try:
            for _ in range(600):  # 60 s unless interrupted
                time.sleep(0.1)
        finally:
            Path(root, f"stopped-{x}").touch()
        Path(root, f"finished-{x}").touch()
        return x

    return slow


def listing(root: Path, pattern: str) -> list[str]:
    """The element numbers of the marker files matching ``pattern``."""
    return sorted(p.name.split("-")[1] for p in root.glob(pattern))


async def wait_for_files(root: Path, pattern: str, count: int) -> list[str]:
    while len(found := listing(root, pattern)) < count:  # noqa: ASYNC110 - remote processes
        await anyio.sleep(0.02)
    return found


@pytest.mark.anyio
async def test_leaving_the_run_cancels_the_remote_tasks(
    executor: RayExecutor, tmp_path: Path
) -> None:
    with RayExecutor(chunk=1) as one_each:  # shares the module's Ray
        pipe = ap.from_iterable(range(10)).map(marking(str(tmp_path)), workers=2, executor=one_each)
        with anyio.fail_after(60):
            async with pipe.open():
                started = await wait_for_files(tmp_path, "started-*", 2)
            # Leaving the block waited for Ray to confirm that both calls stopped.
            stopped = listing(tmp_path, "stopped-*")
    assert started == stopped
    assert not listing(tmp_path, "finished-*")
    assert len(started) == 2, "only `workers` calls may be in flight"
    # The cluster is free again at once: the queued calls were dropped, not left to run.
    with anyio.fail_after(30):
        assert await ap.from_iterable([4]).map(square, executor=executor).collect() == [16]


def killing_at(n: int, once_marker: str | None) -> Callable[[int], int]:
    """Kills its own Ray worker process on element ``n`` (every time, or once with a marker)."""

    def fn(x: int) -> int:
        if x == n and (once_marker is None or not os.path.exists(once_marker)):
            if once_marker is not None:
                Path(once_marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return x

    return fn


@pytest.mark.anyio
async def test_a_killed_worker_is_an_error_naming_the_element(executor: RayExecutor) -> None:
    got: list[int] = []
    with RayExecutor(chunk=1, max_retries=0) as no_retry:
        pipe = ap.from_iterable(range(12)).map(killing_at(6, None), workers=2, executor=no_retry)
        with anyio.fail_after(60), pytest.raises(ray.exceptions.RayError) as info:
            async with pipe.open() as run:
                async for x in run:
                    got.append(x)
    assert "aiopipe: raised in stage 'map(fn)' on element 6" in info.value.__notes__
    assert got == list(range(len(got)))
    assert len(got) <= 6


@pytest.mark.anyio
async def test_a_worker_killed_once_is_retried_and_nothing_is_lost(
    executor: RayExecutor, tmp_path: Path
) -> None:
    fn = killing_at(6, str(tmp_path / "killed"))
    with RayExecutor(chunk=3) as retrying:  # Ray's default: retry a call whose worker died
        pipe = ap.from_iterable(range(12)).map(fn, workers=2, executor=retrying)
        assert await run_all(pipe) == list(range(12))
    assert (tmp_path / "killed").exists()


def nap(x: int) -> int:
    import time

    time.sleep(0.01)
    return x


@pytest.mark.anyio
async def test_calls_carry_about_200_ms_of_measured_work(executor: RayExecutor) -> None:
    with RayExecutor() as adaptive:
        assert adaptive.chunk is None  # nothing measured yet: the stage starts small
        await run_all(ap.from_iterable(range(3000)).map(square, workers=2, executor=adaptive))
        cheap = adaptive.chunk
    with RayExecutor() as adaptive:
        await run_all(ap.from_iterable(range(30)).map(nap, workers=2, executor=adaptive))
        slow = adaptive.chunk
    assert cheap is not None
    assert cheap > 20  # microseconds of work: big calls (thousands when the machine is quiet)
    assert slow is not None
    assert 1 <= slow <= 20  # >= 10 ms of work each: 200 ms is 20 at most


def test_iter_sync_runs_the_loop_in_a_thread(executor: RayExecutor) -> None:
    pipe = ap.from_iterable(range(50)).map(square, workers=2, executor=executor)
    with pipe.iter_sync() as it:
        assert list(it) == [x * x for x in range(50)]


def test_bad_remote_options_fail_at_construction(executor: RayExecutor) -> None:
    with pytest.raises(ValueError, match="num_cpuz"):
        RayExecutor(num_cpuz=1)
    with pytest.raises(ValueError, match="chunk= must be a positive int"):
        RayExecutor(chunk=0)


class Counter:
    """Stateful work: counts the elements this instance has seen."""

    def __init__(self, start: int, *, step: int = 1) -> None:
        self.seen = start
        self.step = step

    def count(self, x: int) -> tuple[int, int, int]:
        self.seen += self.step
        return x, self.seen, os.getpid()


@pytest.mark.anyio
async def test_actor_keeps_state_across_calls_and_runs(executor: RayExecutor) -> None:
    actors = RayActorExecutor(Counter, 100, step=2, num_actors=1, chunk=4)
    try:
        pipe = ap.from_iterable(range(20)).map(Counter.count, workers=2, executor=actors)
        first = await run_all(pipe)
        second = await run_all(pipe)
    finally:
        actors.close()
    assert [x for x, _, _ in first] == list(range(20))
    counts = [n for _, n, _ in first + second]
    assert sorted(counts) == list(range(102, 182, 2))  # one instance saw all 40 elements
    assert len({pid for _, _, pid in first + second}) == 1


@pytest.mark.anyio
async def test_actors_share_the_work_and_keep_errors(executor: RayExecutor) -> None:
    actors = RayActorExecutor(Counter, 0, num_actors=2, chunk=1)
    try:
        pipe = ap.from_iterable(range(40)).map(Counter.count, workers=4, executor=actors)
        out = await run_all(pipe)
        assert [x for x, _, _ in out] == list(range(40))
        assert len({pid for _, _, pid in out}) == 2

        def bad(obj: Counter, x: int) -> int:
            if x == 9:
                raise CodeError("actor", x)
            return x

        with anyio.fail_after(60), pytest.raises(CodeError) as info:
            await ap.from_iterable(range(20)).map(bad, workers=2, executor=actors).collect()
        assert info.value.code == 9
        assert "aiopipe: raised in stage 'map(bad)' on element 9" in info.value.__notes__
    finally:
        actors.close()


class BrokenInit:
    def __init__(self) -> None:
        raise CodeError("model.bin", 2)


def test_actor_init_error_is_raised_at_construction(executor: RayExecutor) -> None:
    with pytest.raises(CodeError, match=r"model\.bin failed with code 2"):
        RayActorExecutor(BrokenInit, num_actors=1)
    with pytest.raises(ValueError, match="num_actors"):
        RayActorExecutor(Counter, 0, num_actors=0)
